import { inject } from 'vitest';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import type { SqlDb } from '../../core/store/sql/sql-db.ts';
import { createDatabase } from './postgres.ts';

/** The index backend this test project runs on: SQLite, or PostgreSQL (the postgres project). */
export const testBackend = (): 'sqlite' | 'postgres' => (process.env.DF_TEST_BACKEND === 'postgres' ? 'postgres' : 'sqlite');

/** A new, empty database in the project's PostgreSQL cluster. */
export function freshPostgresDatabase(): Promise<string> {
  return createDatabase(inject('postgresUrl'));
}

/** The `index` part of a server configuration for this project: nothing on SQLite, a fresh database on PostgreSQL. */
export async function testIndexConfig(): Promise<{ index?: { backend: 'postgres'; url: string } }> {
  return testBackend() === 'postgres' ? { index: { backend: 'postgres', url: await freshPostgresDatabase() } } : {};
}

/** An index database for a store-level test: <dataDir>/index.sqlite, or a fresh PostgreSQL database. */
export async function openTestIndexDatabase(dataDir: string): Promise<SqlDb> {
  return openIndexDatabase({ dataDir, ...(await testIndexConfig()) });
}
