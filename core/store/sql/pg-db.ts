import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import pg from 'pg';
import { dfError } from '../../errors.ts';
import type { PgFlushRequest, PgRequest, PgResponse } from './pg-worker.ts';
import type { Row, RunResult, SqlDb, SqlStatement } from './sql-db.ts';

const CHANNEL = 'dicomflow';
// SQLSTATEs of a transaction that lost a race with another node: running it again is correct.
const RETRYABLE = new Set(['40001', '40P01', '23505']);
const MAX_TRANSACTION_ATTEMPTS = 4;
const NAMED_STATEMENTS_MAX = 1000;

export interface PostgresOptions {
  url: string;
  /** How long one statement may run before PostgreSQL cancels it. */
  statementTimeoutMs?: number;
  /** Shown in pg_stat_activity (the node's name). */
  applicationName?: string;
  /** How long to wait for any answer before the connection is taken to hang (default: the statement timeout + 30 s). */
  answerTimeoutMs?: number;
}

/** A failed statement: DF_ERR_DATABASE with PostgreSQL's SQLSTATE kept for retry decisions. */
function databaseError(message: string, sqlState?: string, detail?: string): Error {
  return Object.assign(dfError('DF_ERR_DATABASE', `PostgreSQL: ${message}${detail ? ` (${detail})` : ''}`), { sqlState });
}

/** `?` placeholders to `$1, $2, …`, leaving quoted text and comments alone. */
export function numberPlaceholders(text: string): string {
  let out = '';
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      const stop = end === -1 ? text.length : end + 1;
      out += text.slice(i, stop);
      i = stop - 1;
    } else if (c === '-' && text[i + 1] === '-') {
      const end = text.indexOf('\n', i);
      const stop = end === -1 ? text.length : end;
      out += text.slice(i, stop);
      i = stop - 1;
    } else if (c === '?') {
      out += `$${++n}`;
    } else {
      out += c;
    }
  }
  return out;
}

/** Dates and booleans as SQLite would store them, so both back ends hold the same values. */
const toParam = (v: unknown): unknown => (v === undefined ? null : typeof v === 'boolean' ? (v ? 1 : 0) : v);

/**
 * PostgreSQL behind the synchronous store contract. One connection, on a worker thread; the
 * calling thread blocks on each statement like it does on SQLite, so a store's transaction runs
 * uninterrupted on its connection. A second, asynchronous connection LISTENs for other nodes'
 * notifications.
 */
export class PostgresDb implements SqlDb {
  readonly dialect = 'postgres' as const;
  readonly location: string;
  private worker!: Worker;
  private port!: MessagePort;
  private flushPort!: MessagePort;
  private readonly flag: Int32Array;
  private readonly workerData: Record<string, unknown>;
  private readonly waitMs: number;
  private seq = 0;
  private depth = 0;
  private closed = false;
  private readonly statements = new Map<string, SqlStatement>();
  private named = 0;
  private readonly topics = new EventEmitter();
  private listener: pg.Client | undefined;
  private listenerRetry: NodeJS.Timeout | undefined;
  private readonly url: string;
  private readonly instance = randomUUID();
  private flushSeq = 0;
  private readonly flushes = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  /** Callers of syncDurable in this turn of the event loop share one flush, sent at its end. */
  private nextFlush: Promise<void> | undefined;
  /**
   * Round trips so far (what tests and benches count per received object): `waited` the
   * statements the calling thread blocked on, `flushes` the durability flushes (not waited on).
   */
  readonly roundTrips = { waited: 0, flushes: 0 };

  constructor(options: PostgresOptions) {
    this.url = options.url;
    this.location = redact(options.url);
    const statementTimeoutMs = options.statementTimeoutMs ?? 60_000;
    // A statement PostgreSQL has not answered well after its own timeout: the connection hangs.
    this.waitMs = options.answerTimeoutMs ?? statementTimeoutMs + 30_000;
    const shared = new SharedArrayBuffer(4);
    this.flag = new Int32Array(shared);
    this.workerData = { url: options.url, flag: shared, statementTimeoutMs, applicationName: options.applicationName ?? 'dicomflow' };
    this.startWorker();
    this.topics.setMaxListeners(0);
    // Fails early, with the reason, when the server is unreachable or refuses us.
    this.call('SELECT 1');
  }

  private startWorker(): void {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const flushChannel = new MessageChannel();
    const flushPort = flushChannel.port1;
    this.flushPort = flushPort;
    flushPort.on('message', (r: PgResponse) => {
      const waiter = this.flushes.get(r.seq);
      if (!waiter) return;
      this.flushes.delete(r.seq);
      if (this.flushes.size === 0) flushPort.unref();
      if (r.error) waiter.reject(databaseError(`flushing the WAL: ${r.error.message}`, r.error.code));
      else waiter.resolve();
    });
    flushPort.unref();
    this.worker = new Worker(new URL('./pg-worker.ts', import.meta.url), {
      workerData: { ...this.workerData, port: port2, flushPort: flushChannel.port2 },
      transferList: [port2, flushChannel.port2],
    });
    this.worker.unref();
    this.worker.on('error', () => undefined);
  }

  /**
   * A connection that stopped answering (a network that drops packets silently, a stuck
   * thread) is abandoned with its thread: the next statement gets a new one, and PostgreSQL rolls
   * back what the old one had open when it notices the disconnection.
   */
  private replaceWorker(): void {
    void this.worker.terminate();
    this.port.close();
    this.flushPort.close();
    for (const waiter of this.flushes.values()) waiter.reject(databaseError('the connection stopped answering; replaced'));
    this.flushes.clear();
    this.startWorker();
  }

  private request(request: Omit<PgRequest, 'seq'>): PgResponse {
    if (this.closed) throw databaseError('the connection is closed');
    const seq = ++this.seq;
    this.roundTrips.waited++;
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage({ ...request, seq });
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(this.flag, 0, 0, left) === 'timed-out') {
        this.replaceWorker();
        throw databaseError(`no answer within ${Math.round(this.waitMs / 1000)} s; the connection is replaced`);
      }
      // An answer to an earlier, timed-out request is dropped.
      for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
        const response = m.message as PgResponse;
        if (response.seq === seq) return response;
      }
      Atomics.store(this.flag, 0, 0);
    }
  }

  private send(text: string): void {
    if (this.closed) throw databaseError('the connection is closed');
    this.port.postMessage({ op: 'query', text, values: [], seq: ++this.seq, noAnswer: true } satisfies PgRequest);
  }

  private call(text: string, values: unknown[] = [], name?: string): { rows: Row[]; rowCount: number } {
    const r = this.request({ op: 'query', text, values: values.map(toParam), name });
    if (r.error) throw databaseError(r.error.message, r.error.code, r.error.detail);
    return { rows: (r.rows ?? []) as Row[], rowCount: r.rowCount ?? 0 };
  }

  prepare(text: string): SqlStatement {
    const known = this.statements.get(text);
    if (known) return known;
    const translated = numberPlaceholders(text);
    // Named statements are parsed and planned once per connection.
    const name = this.named < NAMED_STATEMENTS_MAX ? `df${++this.named}` : undefined;
    const statement: SqlStatement = {
      run: (...params): RunResult => ({ changes: this.call(translated, params, name).rowCount }),
      get: (...params) => this.call(translated, params, name).rows[0],
      all: (...params) => this.call(translated, params, name).rows,
    };
    this.statements.set(text, statement);
    return statement;
  }

  exec(text: string): void {
    this.call(text);
  }

  transaction<T>(fn: () => T): () => T {
    return () => {
      if (this.depth > 0) return this.savepoint(fn);
      for (let attempt = 1; ; attempt++) {
        // Not waited for: BEGIN fails only with its connection, and then so does the next
        // statement, which reports it. One round trip fewer per transaction.
        this.send('BEGIN');
        this.depth++;
        try {
          const result = fn();
          this.call('COMMIT');
          return result;
        } catch (err) {
          try {
            this.call('ROLLBACK');
          } catch {
            // the connection broke: the server rolled back
          }
          const state = (err as { sqlState?: string }).sqlState;
          if (attempt >= MAX_TRANSACTION_ATTEMPTS || !state || !RETRYABLE.has(state)) throw err;
        } finally {
          this.depth--;
        }
      }
    };
  }

  private savepoint<T>(fn: () => T): T {
    const name = `sp${this.depth}`;
    this.call(`SAVEPOINT ${name}`);
    this.depth++;
    try {
      const result = fn();
      this.call(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (err) {
      this.call(`ROLLBACK TO SAVEPOINT ${name}`);
      throw err;
    } finally {
      this.depth--;
    }
  }

  /**
   * Commits here do not wait for the disk (synchronous_commit=off, like SQLite's NORMAL): this
   * makes every commit so far durable with one synchronous commit on a second connection, while
   * the calling thread goes on. Calls in one turn of the event loop share the flush.
   */
  syncDurable(): Promise<void> {
    if (this.closed) return Promise.reject(databaseError('the connection is closed'));
    this.nextFlush ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.nextFlush = undefined;
        const seq = ++this.flushSeq;
        this.roundTrips.flushes++;
        this.flushes.set(seq, { resolve, reject });
        this.flushPort.ref();
        this.flushPort.postMessage({ seq } satisfies PgFlushRequest);
      });
    });
    return this.nextFlush;
  }

  /** The payload names the sender: a process acts on its own changes itself, and skips their echo. */
  notify(topic: string): void {
    this.prepare('SELECT pg_notify(?, ?)').get(CHANNEL, `${topic} ${this.instance}`);
  }

  onNotify(topic: string, listener: () => void): () => void {
    this.listen();
    this.topics.on(topic, listener);
    return () => this.topics.off(topic, listener);
  }

  private listen(): void {
    if (this.listener || this.closed || this.listenerRetry) return;
    const client = new pg.Client({ connectionString: this.url, application_name: 'dicomflow-listen' });
    this.listener = client;
    const lost = () => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => undefined);
      if (this.closed) return;
      // Reconnect; whatever was notified meanwhile is unknown, so every topic is told.
      this.listenerRetry = setTimeout(() => {
        this.listenerRetry = undefined;
        this.listen();
      }, 1000);
      this.listenerRetry.unref();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n) => {
      if (n.channel !== CHANNEL || !n.payload) return;
      const [topic, sender] = n.payload.split(' ');
      if (sender !== this.instance) this.topics.emit(topic);
    });
    client
      .connect()
      .then(() => client.query(`LISTEN ${CHANNEL}`))
      .then(() => {
        for (const topic of this.topics.eventNames()) this.topics.emit(topic);
        // The LISTEN connection must not keep a finished CLI command alive.
        (client as unknown as { connection?: { stream?: { unref?: () => void } } }).connection?.stream?.unref?.();
      })
      .catch(lost);
  }

  close(): void {
    if (this.closed) return;
    try {
      this.request({ op: 'close' });
    } catch {
      // closing anyway
    }
    this.closed = true;
    for (const waiter of this.flushes.values()) waiter.reject(databaseError('the connection is closed'));
    this.flushes.clear();
    this.flushPort.close();
    clearTimeout(this.listenerRetry);
    const listener = this.listener;
    this.listener = undefined;
    listener?.end().catch(() => undefined);
    void this.worker.terminate();
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres';
  }
}
