// The PostgreSQL connection behind PostgresDb: node-postgres is asynchronous, the stores'
// contract is not, so the connection lives on this thread and the main thread waits for each
// answer on a shared flag (Atomics.wait), the way it waits for better-sqlite3.
import { workerData, type MessagePort } from 'node:worker_threads';
import pg from 'pg';

// Counts and sizes arrive as int8 and numeric: numbers, as SQLite gives them.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));
pg.types.setTypeParser(1700, (v) => Number.parseFloat(v));

export interface PgRequest {
  seq: number;
  op: 'query' | 'close';
  text?: string;
  values?: unknown[];
  name?: string;
  /** Sent without waiting (BEGIN): no answer; a failure is the next statement's answer. */
  noAnswer?: boolean;
}

/** A flush: answered on the asynchronous port, the calling thread does not wait for it. */
export interface PgFlushRequest {
  seq: number;
}

export interface PgResponse {
  seq: number;
  rows?: Record<string, unknown>[];
  rowCount?: number;
  error?: { message: string; code?: string; detail?: string };
}

const { url, flag: sharedFlag, port, flushPort, statementTimeoutMs, applicationName } = workerData as {
  url: string;
  flag: SharedArrayBuffer;
  port: MessagePort;
  flushPort: MessagePort;
  statementTimeoutMs: number;
  applicationName: string;
};
const flag = new Int32Array(sharedFlag);
let client: pg.Client | undefined;
let flusher: pg.Client | undefined;

// The statements' connection commits without waiting for the WAL to reach the disk (as SQLite
// does with synchronous=NORMAL); what must be durable asks for a flush afterwards (syncDurable),
// on a second connection, so the calling thread goes on meanwhile.
async function open(synchronousCommit: 'on' | 'off', onBroken: (c: pg.Client) => void): Promise<pg.Client> {
  const c = new pg.Client({
    connectionString: url,
    statement_timeout: statementTimeoutMs,
    application_name: applicationName,
    options: `-c synchronous_commit=${synchronousCommit}`,
    keepAlive: true,
  });
  // A broken connection is replaced at the next statement; the error reaches the caller then.
  c.on('error', () => onBroken(c));
  await c.connect();
  return c;
}

async function connection(): Promise<pg.Client> {
  client ??= await open('off', (c) => {
    if (client === c) client = undefined;
  });
  return client;
}

/**
 * A commit with synchronous_commit=on flushes the WAL up to its own record, and so every
 * commit before it, on any connection, but only if the transaction wrote WAL: one that merely
 * took a transaction ID (txid_current(), used until now) commits asynchronously (PostgreSQL's
 * RecordTransactionCommit; measured: pg_stat_wal.wal_sync stays 0). A transactional logical
 * message writes WAL and takes an ID, so its commit waits for the flush (wal_sync counts it).
 */
let waiting: number[] = [];
let flushing = false;

flushPort.on('message', (request: PgFlushRequest) => {
  waiting.push(request.seq);
  if (!flushing) void flushWaiting();
});

/** One flush at a time; the requests that came in during one are all answered by the next. */
async function flushWaiting(): Promise<void> {
  flushing = true;
  while (waiting.length > 0) {
    const batch = waiting;
    waiting = [];
    let error: PgResponse['error'];
    try {
      flusher ??= await open('on', (c) => {
        if (flusher === c) flusher = undefined;
      });
      await flusher.query("SELECT pg_logical_emit_message(true, 'dicomflow', '')");
    } catch (err) {
      const e = err as Error & { code?: string };
      const broken = flusher;
      flusher = undefined;
      broken?.end().catch(() => undefined);
      error = { message: e.message, code: e.code };
    }
    for (const seq of batch) flushPort.postMessage({ seq, error } satisfies PgResponse);
  }
  flushing = false;
}

function answer(response: PgResponse): void {
  port.postMessage(response);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

// Requests are handled one after another, in order: a statement sent without waiting for its
// answer (BEGIN) must reach the connection before the next one.
let serial: Promise<void> = Promise.resolve();
// The failure of a statement nobody waited for, reported as the answer to the next one.
let unreported: PgResponse['error'] | undefined;

port.on('message', (request: PgRequest) => {
  serial = serial.then(() => handle(request));
});

async function handle(request: PgRequest): Promise<void> {
  if (request.op === 'close') {
    await Promise.all([client?.end().catch(() => undefined), flusher?.end().catch(() => undefined)]);
    client = undefined;
    flusher = undefined;
    answer({ seq: request.seq });
    return;
  }
  if (unreported && !request.noAnswer) {
    const error = unreported;
    unreported = undefined;
    answer({ seq: request.seq, error });
    return;
  }
  try {
    const c = await connection();
    const result = await c.query({ text: request.text!, values: request.values, name: request.name });
    if (!request.noAnswer) answer({ seq: request.seq, rows: result.rows, rowCount: result.rowCount ?? 0 });
  } catch (err) {
    const e = err as Error & { code?: string; detail?: string };
    // A connection that failed mid-statement is not reused.
    if (!e.code || e.code.startsWith('08') || e.code === '57P01') {
      const broken = client;
      client = undefined;
      broken?.end().catch(() => undefined);
    }
    const error = { message: e.message, code: e.code, detail: e.detail };
    if (request.noAnswer) unreported = error;
    else answer({ seq: request.seq, error });
  }
}
