// The PostgreSQL adapter's own guarantees, beyond the store suites that run on it: placeholders,
// transactions that roll back, and a connection that hangs being replaced instead of blocking
// the server for good.
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { freshPostgresDatabase, testBackend } from '../../../test/helpers/test-index.ts';
import { numberPlaceholders, PostgresDb } from './pg-db.ts';

const open: PostgresDb[] = [];
const relays: Worker[] = [];
afterEach(async () => {
  open.splice(0).forEach((db) => db.close());
  await Promise.all(relays.splice(0).map((w) => w.terminate()));
});

/**
 * A TCP relay to PostgreSQL whose open connections can be frozen (packets silently dropped). It
 * runs on a thread of its own: the adapter blocks this one while it waits for an answer.
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
    expect(numberPlaceholders("SELECT ?, '?', \"a?\" -- ?\n, ?")).toBe("SELECT $1, '?', \"a?\" -- ?\n, $2");
  });
});

describe.skipIf(testBackend() !== 'postgres')('PostgresDb', () => {
  it('syncDurable flushes the WAL past the commits before it (which are asynchronous)', async () => {
    const db = new PostgresDb({ url: await freshPostgresDatabase() });
    open.push(db);
    db.exec('CREATE TABLE t (x integer)');
    const flushedPast = (lsn: string) => (db.prepare('SELECT pg_current_wal_flush_lsn() >= CAST(? AS pg_lsn) AS ok').get(lsn) as { ok: boolean }).ok;
    for (let i = 0; i < 5; i++) {
      db.transaction(() => db.prepare('INSERT INTO t VALUES (?)').run(i))();
      // The end of what was inserted so far: the commit above is before it.
      const written = (db.prepare('SELECT CAST(pg_current_wal_insert_lsn() AS text) AS lsn').get() as { lsn: string }).lsn;
      await db.syncDurable();
      expect(flushedPast(written)).toBe(true);
    }
    expect(db.roundTrips.flushes).toBe(5);
  });

  it('rolls back a transaction that throws, and runs nested ones as savepoints', async () => {
    const db = new PostgresDb({ url: await freshPostgresDatabase() });
    open.push(db);
    db.exec('CREATE TABLE t (v integer)');
    expect(() => db.transaction(() => {
      db.prepare('INSERT INTO t VALUES (?)').run(1);
      throw new Error('no');
    })()).toThrow('no');
    db.transaction(() => {
      db.prepare('INSERT INTO t VALUES (?)').run(2);
      expect(() => db.transaction(() => {
        db.prepare('INSERT INTO t VALUES (?)').run(3);
        throw new Error('inner');
      })()).toThrow('inner');
    })();
    expect(db.prepare('SELECT v FROM t ORDER BY v').all()).toEqual([{ v: 2 }]);
  });

  it('replaces a connection that stops answering, with an error, and goes on with a new one', async () => {
    const proxy = await relay(new URL(await freshPostgresDatabase()));
    const db = new PostgresDb({ url: proxy.url, answerTimeoutMs: 1500 });
    open.push(db);
    expect(db.prepare('SELECT 1 AS one').get()).toEqual({ one: 1 });
    await proxy.freeze();
    // Frozen, the statement never answers: only the answer timeout can end it (else the test times out).
    expect(() => db.prepare('SELECT 2 AS two').get()).toThrow(/DF_ERR_DATABASE|no answer within/);
    expect(db.prepare('SELECT 3 AS three').get()).toEqual({ three: 3 });
  });
});
