// The PostgreSQL adapter's own guarantees, beyond the store suites that run on it: placeholders,
// transactions that roll back, pooled connections, and a connection that hangs failing its
// statement without blocking the server.
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { freshPostgresDatabase, testBackend } from '../../../test/helpers/test-index.ts';
import { numberPlaceholders, PostgresDb } from './pg-db.ts';

const open: PostgresDb[] = [];
const relays: Worker[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => db.close()));
  await Promise.all(relays.splice(0).map((w) => w.terminate()));
});

/**
 * A TCP relay to PostgreSQL whose open connections can be frozen (packets silently dropped), on a
 * thread of its own.
 */
const RELAY = `
const net = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');
const sockets = [];
const server = net.createServer((client) => {
  const upstream = net.connect(workerData.port, workerData.host);
  sockets.push(client, upstream);
  client.pipe(upstream);
  upstream.pipe(client);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end);
  upstream.on('error', end);
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
parentPort.on('message', () => {
  for (const s of sockets.splice(0)) { s.unpipe(); s.pause(); }
  parentPort.postMessage('frozen');
});
`;

async function relay(target: URL): Promise<{ url: string; freeze(): Promise<void> }> {
  const worker = new Worker(RELAY, { eval: true, workerData: { port: Number(target.port), host: target.hostname } });
  relays.push(worker);
  const port = await new Promise<number>((r) => worker.once('message', r));
  const url = new URL(target.toString());
  url.port = String(port);
  return {
    url: url.toString(),
    freeze: () =>
      new Promise<void>((r) => {
        worker.once('message', () => r());
        worker.postMessage('freeze');
      }),
  };
}

describe('numberPlaceholders', () => {
  it('numbers ? outside quotes and comments', () => {
    expect(numberPlaceholders('SELECT ?, \'?\', "a?" -- ?\n, ?')).toBe('SELECT $1, \'?\', "a?" -- ?\n, $2');
  });
});

describe.skipIf(testBackend() !== 'postgres')('PostgresDb', () => {
  it('syncDurable flushes the WAL past the commits before it (which are asynchronous)', async () => {
    const db = await PostgresDb.open({ url: await freshPostgresDatabase() });
    open.push(db);
    await db.exec('CREATE TABLE t (x integer)');
    const flushedPast = async (lsn: string) =>
      (await db.get<{ ok: boolean }>('SELECT pg_current_wal_flush_lsn() >= CAST(? AS pg_lsn) AS ok', lsn))!.ok;
    for (let i = 0; i < 5; i++) {
      await db.transaction((tx) => tx.run('INSERT INTO t VALUES (?)', i));
      // The end of what was inserted so far: the commit above is before it.
      const written = (await db.get<{ lsn: string }>('SELECT CAST(pg_current_wal_insert_lsn() AS text) AS lsn'))!.lsn;
      await db.syncDurable();
      expect(await flushedPast(written)).toBe(true);
    }
    expect(db.roundTrips.flushes).toBe(5);
  });

  it('a durable transaction commits synchronously, with no flush round trip after it', async () => {
    const db = await PostgresDb.open({ url: await freshPostgresDatabase() });
    open.push(db);
    await db.exec('CREATE TABLE t (x integer)');
    const setting = (tx: { get: PostgresDb['get'] }) => tx.get<{ synchronous_commit: string }>('SHOW synchronous_commit');
    const durable = await db.transaction(
      async (tx) => {
        await tx.run('INSERT INTO t VALUES (?)', 1);
        return (await setting(tx))!.synchronous_commit;
      },
      { durable: true },
    );
    expect(durable).toBe('on');
    // SET LOCAL: the connection goes back to the pool as it was.
    expect(await db.transaction(async (tx) => (await setting(tx))!.synchronous_commit)).toBe('off');
    expect(db.roundTrips.flushes).toBe(0);
  });

  it('atomic: BEGIN, the statements and COMMIT in one round trip, their rows each, durable when asked', async () => {
    const db = await PostgresDb.open({ url: await freshPostgresDatabase() });
    open.push(db);
    await db.exec('CREATE TABLE t (v integer PRIMARY KEY, s text)');
    const before = db.roundTrips.waited;
    const rows = await db.atomic(
      [
        { text: 'INSERT INTO t VALUES (?, ?) RETURNING v, s', params: [1, "it's"] },
        { text: 'INSERT INTO t VALUES (?, ?)', params: [2, null] },
        { text: 'SELECT count(*) AS n FROM t', params: [] },
        { text: 'SHOW synchronous_commit', params: [] },
      ],
      { durable: true },
    );
    expect(rows).toEqual([[{ v: 1, s: "it's" }], [], [{ n: 2 }], [{ synchronous_commit: 'on' }]]);
    expect(db.roundTrips.waited - before).toBe(1);
    expect(db.roundTrips.flushes).toBe(0);
    // Committed: another connection sees the rows; and not durable unless asked.
    expect(await db.all('SELECT v, s FROM t ORDER BY v')).toEqual([
      { v: 1, s: "it's" },
      { v: 2, s: null },
    ]);
    expect(await db.atomic([{ text: 'SHOW synchronous_commit', params: [] }])).toEqual([[{ synchronous_commit: 'off' }]]);
  });

  it('atomic: a failing statement rolls back the batch, and the connection serves the next one', async () => {
    const db = await PostgresDb.open({ url: await freshPostgresDatabase(), poolSize: 1 });
    open.push(db);
    await db.exec('CREATE TABLE t (v integer PRIMARY KEY)');
    await expect(
      db.atomic([
        { text: 'INSERT INTO t VALUES (?)', params: [1] },
        { text: 'INSERT INTO t VALUES (CAST(? AS integer))', params: ['one'] },
      ]),
    ).rejects.toThrow(/DF_ERR_DATABASE.*invalid input syntax/);
    expect(await db.all('SELECT v FROM t')).toEqual([]);
    // A statement PostgreSQL refuses to parse, beside ones it parsed: which of them the connection
    // kept is unknown, so it is dropped, and the next batch prepares them anew.
    await expect(
      db.atomic([
        { text: 'INSERT INTO t VALUES (?)', params: [3] },
        { text: 'INSERT INTO nowhere VALUES (?)', params: [4] },
      ]),
    ).rejects.toThrow(/DF_ERR_DATABASE.*nowhere/);
    expect(await db.atomic([{ text: 'INSERT INTO t VALUES (?)', params: [3] }])).toEqual([[]]);
    expect(await db.all('SELECT v FROM t')).toEqual([{ v: 3 }]);
  });

  it('atomic inside a transaction is refused (it would run outside it)', async () => {
    const db = await PostgresDb.open({ url: await freshPostgresDatabase() });
    open.push(db);
    await expect(db.transaction(() => db.atomic([{ text: 'SELECT 1', params: [] }]))).rejects.toThrow(/DF_ERR_INTERNAL/);
  });

  it('rolls back a transaction that throws, and a savepoint alone', async () => {
    const db = await PostgresDb.open({ url: await freshPostgresDatabase() });
    open.push(db);
    await db.exec('CREATE TABLE t (v integer)');
    await expect(
      db.transaction(async (tx) => {
        await tx.run('INSERT INTO t VALUES (?)', 1);
        throw new Error('no');
      }),
    ).rejects.toThrow('no');
    await db.transaction(async (tx) => {
      await tx.run('INSERT INTO t VALUES (?)', 2);
      await expect(
        tx.savepoint(async (sp) => {
          await sp.run('INSERT INTO t VALUES (?)', 3);
          throw new Error('inner');
        }),
      ).rejects.toThrow('inner');
    });
    expect(await db.all('SELECT v FROM t ORDER BY v')).toEqual([{ v: 2 }]);
  });

  it('refuses a statement on the database inside one of its transactions (it would run outside it)', async () => {
    const db = await PostgresDb.open({ url: await freshPostgresDatabase() });
    open.push(db);
    await expect(db.transaction(() => db.get('SELECT 1'))).rejects.toThrow(/DF_ERR_INTERNAL|transaction's handle/);
    // After the transaction, the same call is fine.
    expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
  });

  it('runs transactions of different callers side by side on pooled connections', async () => {
    const db = await PostgresDb.open({ url: await freshPostgresDatabase(), poolSize: 4 });
    open.push(db);
    await db.exec('CREATE TABLE t (v integer)');
    // Two transactions that each wait for the other's row: they can only finish if both are open at once.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = db.transaction(async (tx) => {
      await tx.run('INSERT INTO t VALUES (1)');
      await gate;
    });
    const second = db.transaction(async (tx) => {
      await tx.run('INSERT INTO t VALUES (2)');
      release();
    });
    await Promise.all([first, second]);
    expect(await db.all('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }]);
  });

  it('a connection that stops answering fails its statement, leaves the event loop free, and the next statement gets a new one', async () => {
    const proxy = await relay(new URL(await freshPostgresDatabase()));
    const db = await PostgresDb.open({ url: proxy.url, answerTimeoutMs: 1500 });
    open.push(db);
    expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
    // The health probe's own connection is open before the freeze, like the statements'.
    expect(await db.ping(5000)).toBe(true);
    await proxy.freeze();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    try {
      // Frozen, the statement never answers: only the answer timeout can end it (else the test times out).
      const stalled = db.get('SELECT 2 AS two');
      expect(await db.ping(200)).toBe(false);
      await expect(stalled).rejects.toThrow(/DF_ERR_DATABASE/);
      // The loop kept turning while the statement waited.
      expect(ticks).toBeGreaterThan(0);
    } finally {
      clearInterval(ticker);
    }
    expect(await db.get('SELECT 3 AS three')).toEqual({ three: 3 });
  });
});
