import path from 'node:path';
import { migrate } from './migrate.ts';
import { PostgresDb } from './pg-db.ts';
import type { SqlDb } from './sql-db.ts';
import { SqliteDb } from './sqlite-db.ts';

export interface IndexLocation {
  dataDir: string;
  index?: { backend: 'sqlite' | 'postgres'; url?: string; statementTimeoutSeconds?: number };
  /** Shown to PostgreSQL as the connection's application name. */
  nodeName?: string;
}

/** The index database the configuration names, migrated to the newest schema. */
export function openIndexDatabase(where: IndexLocation): SqlDb {
  const db: SqlDb =
    where.index?.backend === 'postgres'
      ? new PostgresDb({
          url: where.index.url!,
          statementTimeoutMs: (where.index.statementTimeoutSeconds ?? 60) * 1000,
          applicationName: where.nodeName ? `dicomflow ${where.nodeName}` : 'dicomflow',
        })
      : new SqliteDb(path.join(where.dataDir, 'index.sqlite'));
  try {
    migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}
