import { dfError } from '../../errors.ts';
import type { SqlDb } from './sql-db.ts';
import { postgresMigrations } from './postgres-migrations.ts';
import { sqliteMigrations } from './sqlite-migrations.ts';

/** A schema step: runs once, in order, in a transaction; released ones are never edited. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

// Any fixed number: the nodes of a cluster starting together take turns to migrate.
const MIGRATION_LOCK = 4_815_162_342;

/** Brings the schema to the newest version; returns the versions it applied. */
export async function migrate(db: SqlDb): Promise<number[]> {
  const migrations = db.dialect === 'postgres' ? postgresMigrations : sqliteMigrations;
  await db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  const applied: number[] = [];
  await db.transaction(async (tx) => {
    if (db.dialect === 'postgres') await tx.get('SELECT pg_advisory_xact_lock(?)', MIGRATION_LOCK);
    const done = new Set((await tx.all('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
    const newest = Math.max(0, ...done);
    const known = Math.max(...migrations.map((m) => m.version));
    if (newest > known) {
      throw dfError(
        'DF_ERR_DATABASE',
        `the index's schema is version ${newest}, newer than this dicomflow knows (${known}): upgrade dicomflow, or restore the backup taken before the upgrade`,
      );
    }
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.run(
        'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
        m.version,
        m.name,
        new Date().toISOString(),
      );
      applied.push(m.version);
    }
  });
  return applied;
}
