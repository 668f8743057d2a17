// Versioned schema on both back ends: an older index is brought forward at start, a newer one
// is refused with a reason (a node of an older release must not write to it).
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp.ts';
import { testBackend, testIndexConfig } from '../../../test/helpers/test-index.ts';
import { migrate } from './migrate.ts';
import { openIndexDatabase } from './open.ts';
import { postgresMigrations } from './postgres-migrations.ts';
import type { SqlDb } from './sql-db.ts';
import { SqliteDb } from './sqlite-db.ts';
import { sqliteMigrations } from './sqlite-migrations.ts';

const open: SqlDb[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => db.close()));
});

const newest = () => Math.max(...(testBackend() === 'postgres' ? postgresMigrations : sqliteMigrations).map((m) => m.version));

describe('schema migrations', () => {
  it('brings a new index to the newest version once, and does nothing the second time', async () => {
    const where = { dataDir: tempDir(), ...(await testIndexConfig()) };
    const db = await openIndexDatabase(where);
    open.push(db);
    const versions = (await db.all('SELECT version FROM schema_migrations ORDER BY version')).map((r) => Number(r.version));
    expect(versions.at(-1)).toBe(newest());
    expect(await migrate(db)).toEqual([]);
  });

  it('refuses an index whose schema is newer than this release knows', async () => {
    const where = { dataDir: tempDir(), ...(await testIndexConfig()) };
    const db = await openIndexDatabase(where);
    open.push(db);
    await db.run(
      'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
      newest() + 1,
      'from the future',
      new Date().toISOString(),
    );
    await expect(openIndexDatabase(where)).rejects.toThrow(/schema is version \d+, newer than this dicomflow knows/);
  });

  it.skipIf(testBackend() === 'postgres')('upgrades a SQLite index of an earlier release, keeping its rows', async () => {
    const dataDir = tempDir();
    const old = new SqliteDb(`${dataDir}/index.sqlite`);
    await old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
    for (const m of sqliteMigrations.filter((m) => m.version <= 7)) {
      await old.exec(m.sql);
      await old.run(
        'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
        m.version,
        m.name,
        new Date().toISOString(),
      );
    }
    await old.run(
      "INSERT INTO jobs (id, pipeline, status, trigger_on, contributors, inputs, max_attempts, created_at) VALUES ('j1', 'p', 'succeeded', 'manual', '{}', '[]', 1, 'now')",
    );
    await old.close();
    const db = await openIndexDatabase({ dataDir });
    open.push(db);
    expect(await db.all('SELECT id, node FROM jobs')).toEqual([{ id: 'j1', node: null }]);
    expect(Number((await db.get('SELECT max(version) AS v FROM schema_migrations'))!.v)).toBe(newest());
  });
});
