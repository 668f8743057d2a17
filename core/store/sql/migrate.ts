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
export function migrate(db: SqlDb): number[] {
  const migrations = db.dialect === 'postgres' ? postgresMigrations : sqliteMigrations;
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  const applied: number[] = [];
  db.transaction(() => {
    if (db.dialect === 'postgres') db.prepare('SELECT pg_advisory_xact_lock(?)').get(MIGRATION_LOCK);
    const done = new Set(db.prepare('SELECT version FROM schema_migrations').all().map((r) => Number(r.version)));
    const newest = Math.max(0, ...done);
    const known = Math.max(...migrations.map((m) => m.version));
    if (newest > known) {
      throw dfError('DF_ERR_DATABASE', `the index's schema is version ${newest}, newer than this dicomflow knows (${known}): upgrade dicomflow, or restore the backup taken before the upgrade`);
    }
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, new Date().toISOString());
      applied.push(m.version);
    }
  })();
  return applied;
}
