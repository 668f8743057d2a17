import fs from 'node:fs';
import path from 'node:path';
import { dfError } from '../../errors.ts';
import { migrate } from './migrate.ts';
import { PostgresDb } from './pg-db.ts';
import type { SqlDb } from './sql-db.ts';
import { SqliteDb } from './sqlite-db.ts';
import { createPrivateFile } from '../data-dir.ts';

export interface IndexLocation {
  dataDir: string;
  index?: { backend: 'sqlite' | 'postgres'; url?: string; statementTimeoutSeconds?: number; poolSize?: number };
  /** Shown to PostgreSQL as the connection's application name. */
  nodeName?: string;
}

/**
 * The index database the configuration names, migrated to the newest schema. `existing`: the
 * SQLite file must be there already (a command that only reads must not leave an empty index in
 * a mistyped directory).
 */
export async function openIndexDatabase(where: IndexLocation, options: { existing?: boolean } = {}): Promise<SqlDb> {
  const file = path.join(where.dataDir, 'index.sqlite');
  if (options.existing && where.index?.backend !== 'postgres' && !fs.existsSync(file)) {
    throw dfError('DF_ERR_INDEX_MISSING', `no index at ${file}: is ${where.dataDir} the server's data directory?`);
  }
  const db: SqlDb =
    where.index?.backend === 'postgres'
      ? await PostgresDb.open({
          url: where.index.url!,
          poolSize: where.index.poolSize,
          statementTimeoutMs: (where.index.statementTimeoutSeconds ?? 60) * 1000,
          applicationName: where.nodeName ? `dicomflow ${where.nodeName}` : 'dicomflow',
        })
      : new SqliteDb(privateFile(file));
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

/** SQLite creates its -wal and -shm files with the database file's mode: 0600 for all three. */
function privateFile(file: string): string {
  if (!fs.existsSync(file)) createPrivateFile(file);
  return file;
}
