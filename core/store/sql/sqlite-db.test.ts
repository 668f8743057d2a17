// The embedded adapter's own guarantees: one transaction at a time on the writer, lone
// statements after it, savepoints, and long reads on a reader thread beside the event loop.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp.ts';
import { CommitNotDurableError } from './sql-db.ts';
import { SqliteDb } from './sqlite-db.ts';

const open: SqliteDb[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => db.close()));
});

async function fresh(): Promise<SqliteDb> {
  const db = new SqliteDb(path.join(tempDir(), 'index.sqlite'));
  open.push(db);
  await db.exec('CREATE TABLE t (v integer)');
  return db;
}

describe('SqliteDb', () => {
  it('a durable transaction resolves after the WAL fsync; when that fails, it says the rows were committed', async () => {
    const db = await fresh();
    await db.transaction((tx) => tx.run('INSERT INTO t VALUES (1)'), { durable: true });
    db.syncDurable = () => Promise.reject(new Error('EIO'));
    const failed = db.transaction((tx) => tx.run('INSERT INTO t VALUES (2)'), { durable: true });
    await expect(failed).rejects.toBeInstanceOf(CommitNotDurableError);
    await expect(failed).rejects.toMatchObject({ committed: true });
    expect((await db.all('SELECT v FROM t ORDER BY v')).map((r) => r.v)).toEqual([1, 2]);
  });

  it('runs transactions one at a time: a second waits until the first commits', async () => {
    const db = await fresh();
    const seen: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = db.transaction(async (tx) => {
      await tx.run('INSERT INTO t VALUES (1)');
      await gate;
      await tx.run('INSERT INTO t VALUES (2)');
    });
    const second = db.transaction(async (tx) => {
      seen.push((await tx.all('SELECT v FROM t ORDER BY v')).map((r) => r.v));
    });
    // A lone statement waits for the open transaction too (it would otherwise become part of it).
    const lone = db.run('INSERT INTO t VALUES (3)');
    release();
    await Promise.all([first, second, lone]);
    expect(seen).toEqual([[1, 2]]);
    expect((await db.all('SELECT v FROM t ORDER BY v')).map((r) => r.v)).toEqual([1, 2, 3]);
  });

  it('rolls back a transaction that throws, and a savepoint alone', async () => {
    const db = await fresh();
    await expect(
      db.transaction(async (tx) => {
        await tx.run('INSERT INTO t VALUES (1)');
        throw new Error('no');
      }),
    ).rejects.toThrow('no');
    await db.transaction(async (tx) => {
      await tx.run('INSERT INTO t VALUES (2)');
      await expect(
        tx.savepoint(async (sp) => {
          await sp.run('INSERT INTO t VALUES (3)');
          throw new Error('inner');
        }),
      ).rejects.toThrow('inner');
    });
    expect(await db.all('SELECT v FROM t')).toEqual([{ v: 2 }]);
  });

  it('refuses a statement on the database inside one of its transactions (it would wait for itself)', async () => {
    const db = await fresh();
    await expect(db.transaction(() => db.get('SELECT 1'))).rejects.toThrow(/transaction's handle/);
    expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
  });

  it('reads on a reader thread what was committed, while the event loop goes on', async () => {
    const db = await fresh();
    await db.transaction(async (tx) => {
      for (let v = 0; v < 100; v++) await tx.run('INSERT INTO t VALUES (?)', v);
    });
    expect(await db.read('SELECT count(*) AS n FROM t')).toEqual([{ n: 100 }]);
    // A read that takes a while (a large recursive count) does not hold the loop: a timer fires meanwhile.
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 1);
    try {
      const [row] = await db.read<{ n: number }>(
        'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) AS n FROM c',
      );
      expect(row.n).toBe(3_000_000);
    } finally {
      clearInterval(ticker);
    }
    expect(ticks).toBeGreaterThan(0);
    // Readers cannot write.
    await expect(db.read('INSERT INTO t VALUES (1) RETURNING v')).rejects.toThrow(/DF_ERR_DATABASE/);
  });
});
