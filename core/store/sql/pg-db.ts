import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { dfError } from '../../errors.ts';
import { type BatchStatement, StatementBatch } from './pg-batch.ts';
import type { Row, RunResult, SqlDb, SqlStatement, SqlTransaction, TransactionOptions } from './sql-db.ts';
import { insideTransaction, refuseInsideTransaction } from './transaction-scope.ts';

// Counts and sizes arrive as int8 and numeric: numbers, as SQLite gives them.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));
pg.types.setTypeParser(1700, (v) => Number.parseFloat(v));

const CHANNEL = 'dicomflow';
// SQLSTATEs of a transaction that lost a race with another node: running it again is correct.
const RETRYABLE = new Set(['40001', '40P01', '23505']);
const MAX_TRANSACTION_ATTEMPTS = 4;
const NAMED_STATEMENTS_MAX = 1000;

export interface PostgresOptions {
  url: string;
  /** Connections of the statements' pool (default 10). */
  poolSize?: number;
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

/** node-postgres' error, as ours; `fromServer`: PostgreSQL answered (the connection is fine). */
function translate(err: unknown): { error: Error; fromServer: boolean } {
  const e = err as Error & { code?: string; detail?: string; severity?: string };
  const fromServer = typeof e.severity === 'string' && typeof e.code === 'string';
  return { error: databaseError(e.message, fromServer ? e.code : undefined, e.detail), fromServer };
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

/** toParam, for a batch, which sends values as they are: an object would not be JSON as node-postgres makes it. */
const batchParam = (v: unknown): unknown => {
  const p = toParam(v);
  if (p !== null && typeof p === 'object' && !Buffer.isBuffer(p))
    throw dfError('DF_ERR_INTERNAL', 'a statement batch takes text, numbers and bytes');
  return p;
};

/** A pooled connection, marked `broken` when it failed (it is then destroyed, not reused). */
type PooledClient = pg.PoolClient & { broken?: Error; watched?: boolean };

interface Translated {
  text: string;
  /** Named statements are parsed and planned once per connection. */
  name?: string;
}

/**
 * PostgreSQL on a pool of connections (node-postgres' pg.Pool). A statement borrows a connection
 * for its round trip; a transaction holds one until it ends. Nothing waits synchronously: a
 * stalled server stalls the callers that need it and nothing else. Two more connections of
 * their own: one flushes the WAL for durability, one LISTENs for other nodes' notifications.
 */
export class PostgresDb implements SqlDb {
  readonly dialect = 'postgres' as const;
  readonly location: string;
  private readonly pool: pg.Pool;
  private readonly url: string;
  private readonly answerTimeoutMs: number;
  private readonly statementTimeoutMs: number;
  private readonly applicationName: string;
  private readonly translated = new Map<string, Translated>();
  private closed = false;
  private readonly topics = new EventEmitter();
  private listener: pg.Client | undefined;
  private listenerRetry: NodeJS.Timeout | undefined;
  private readonly instance = randomUUID();
  private flusher: Promise<pg.Client> | undefined;
  private flushing = false;
  private flushWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  /** Callers of syncDurable in this turn of the event loop share one flush, sent at its end. */
  private flushScheduled = false;
  private pinger: Promise<pg.Client> | undefined;
  private pingInFlight: Promise<boolean> | undefined;
  /**
   * Round trips so far (what tests and benches count per received object): `waited` every
   * statement a caller waited for (BEGIN and COMMIT included), `flushes` the durability flushes.
   */
  readonly roundTrips = { waited: 0, flushes: 0 };

  private constructor(options: PostgresOptions) {
    this.url = options.url;
    this.location = redact(options.url);
    this.statementTimeoutMs = options.statementTimeoutMs ?? 60_000;
    // A statement PostgreSQL has not answered well after its own timeout: the connection hangs.
    this.answerTimeoutMs = options.answerTimeoutMs ?? this.statementTimeoutMs + 30_000;
    this.applicationName = options.applicationName ?? 'dicomflow';
    this.pool = new pg.Pool({
      ...this.connectionOptions('off'),
      max: options.poolSize ?? 10,
      idleTimeoutMillis: 30_000,
      // Idle connections must not keep a finished CLI command alive.
      allowExitOnIdle: true,
    });
    // An idle connection that breaks is dropped by the pool; the next statement gets a new one.
    this.pool.on('error', () => undefined);
    this.topics.setMaxListeners(0);
  }

  /** Connects, and fails early, with the reason, when the server is unreachable or refuses us. */
  static async open(options: PostgresOptions): Promise<PostgresDb> {
    const db = new PostgresDb(options);
    try {
      await db.run('SELECT 1');
    } catch (err) {
      await db.close();
      throw err;
    }
    return db;
  }

  /**
   * The statements' connections commit without waiting for the WAL to reach the disk (as SQLite
   * does with synchronous=NORMAL); what must be durable asks for a flush afterwards (syncDurable).
   */
  private connectionOptions(synchronousCommit: 'on' | 'off'): pg.ClientConfig {
    return {
      connectionString: this.url,
      statement_timeout: this.statementTimeoutMs,
      query_timeout: this.answerTimeoutMs,
      connectionTimeoutMillis: this.answerTimeoutMs,
      application_name: this.applicationName,
      options: `-c synchronous_commit=${synchronousCommit}`,
      keepAlive: true,
    };
  }

  private statement(text: string): Translated {
    let t = this.translated.get(text);
    if (!t) {
      t = {
        text: numberPlaceholders(text),
        name: this.translated.size < NAMED_STATEMENTS_MAX ? `df${this.translated.size + 1}` : undefined,
      };
      this.translated.set(text, t);
    }
    return t;
  }

  /** One statement on a connection. */
  private async query(client: PooledClient, text: string, params: unknown[]): Promise<pg.QueryResult> {
    if (this.closed) throw databaseError('the database is closed');
    const t = this.statement(text);
    this.roundTrips.waited++;
    try {
      return await client.query({ text: t.text, values: params.map(toParam), name: t.name });
    } catch (err) {
      throw this.failed(client, err);
    }
  }

  /** Our error for a failed statement; a connection that failed (not PostgreSQL refusing the statement) is marked to be dropped. */
  private failed(client: PooledClient, err: unknown): Error {
    const { error, fromServer } = translate(err);
    if (!fromServer) client.broken = error;
    return error;
  }

  private async connect(): Promise<PooledClient> {
    if (this.closed) throw databaseError('the database is closed');
    let client: PooledClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw translate(err).error;
    }
    // The pool listens for errors of idle connections only: one that breaks while checked out
    // (the server went away mid-statement) would raise an error nobody catches and end the
    // process. Its statement fails by itself; the connection is marked to be destroyed.
    if (!client.watched) {
      client.watched = true;
      client.on('error', (err) => {
        client.broken ??= translate(err).error;
      });
    }
    return client;
  }

  /** Back to the pool, or destroyed when its connection failed (it may still owe an answer). */
  private release(client: PooledClient): void {
    client.release(client.broken);
  }

  /** Work outside any transaction, on a connection borrowed for it. */
  private async borrowed<T>(what: string, work: (client: PooledClient) => Promise<T>): Promise<T> {
    refuseInsideTransaction(this, what);
    const client = await this.connect();
    try {
      return await work(client);
    } finally {
      this.release(client);
    }
  }

  private alone(text: string, params: unknown[]): Promise<pg.QueryResult> {
    return this.borrowed('a statement', (client) => this.query(client, text, params));
  }

  async run(text: string, ...params: unknown[]): Promise<RunResult> {
    return { changes: (await this.alone(text, params)).rowCount ?? 0 };
  }

  async get<R extends Row = Row>(text: string, ...params: unknown[]): Promise<R | undefined> {
    return (await this.alone(text, params)).rows[0] as R | undefined;
  }

  async all<R extends Row = Row>(text: string, ...params: unknown[]): Promise<R[]> {
    return (await this.alone(text, params)).rows as R[];
  }

  read<R extends Row = Row>(text: string, ...params: unknown[]): Promise<R[]> {
    return this.all<R>(text, ...params);
  }

  exec(text: string): Promise<void> {
    return this.borrowed('exec', (client) => this.execOn(client, text));
  }

  /** Statements without parameters, several at once (the simple query protocol). */
  private async execOn(client: PooledClient, text: string): Promise<void> {
    this.roundTrips.waited++;
    try {
      await client.query(text);
    } catch (err) {
      throw this.failed(client, err);
    }
  }

  async transaction<T>(fn: (tx: SqlTransaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
    refuseInsideTransaction(this, 'a nested transaction');
    return this.attempts(async (client) => {
      const topics = new Set<string>();
      // The pool's connections commit asynchronously; a durable transaction's commit waits for
      // its WAL to reach the disk (PostgreSQL groups concurrent committers' flushes itself).
      if (options?.durable) await this.execOn(client, 'BEGIN; SET LOCAL synchronous_commit = on');
      else await this.query(client, 'BEGIN', []);
      const result = await insideTransaction(this, () => fn(this.handle(client, topics)));
      // NOTIFY inside the transaction: PostgreSQL delivers it at the commit, and only then.
      for (const topic of topics) await this.query(client, 'SELECT pg_notify(?, ?)', [CHANNEL, `${topic} ${this.instance}`]);
      await this.query(client, 'COMMIT', []);
      return result;
    });
  }

  /**
   * A transaction's work on one pooled connection: rolled back when it throws, and run again
   * when it lost a race with another node (40001, 40P01, 23505).
   */
  private async attempts<T>(work: (client: PooledClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.connect();
      try {
        return await work(client);
      } catch (err) {
        try {
          if (!client.broken) await this.query(client, 'ROLLBACK', []);
        } catch {
          // the connection broke: the server rolls back when it notices
        }
        const state = (err as { sqlState?: string }).sqlState;
        if (attempt >= MAX_TRANSACTION_ATTEMPTS || !state || !RETRYABLE.has(state)) throw err;
      } finally {
        this.release(client);
      }
    }
  }

  /**
   * One round trip: BEGIN, the statements and COMMIT are sent together (StatementBatch), so
   * PostgreSQL runs them back to back and the commit, synchronous when durable, answers for all.
   */
  async atomic(statements: readonly SqlStatement[], options?: TransactionOptions): Promise<Row[][]> {
    refuseInsideTransaction(this, 'a transaction');
    const opening = options?.durable ? ['BEGIN', 'SET LOCAL synchronous_commit = on'] : ['BEGIN'];
    const batch: BatchStatement[] = [];
    for (const { text, params } of [...opening.map((text) => ({ text, params: [] })), ...statements, { text: 'COMMIT', params: [] }]) {
      const t = this.statement(text);
      // Past the cache of named statements: one statement at a time, as any transaction.
      if (t.name === undefined) return this.transaction((tx) => allInOrder(tx, statements), options);
      batch.push({ name: t.name, text: t.text, values: params.map(batchParam) });
    }
    const rows = await this.attempts((client) => this.sendBatch(client, batch));
    return rows.slice(opening.length, opening.length + statements.length);
  }

  private sendBatch(client: PooledClient, statements: BatchStatement[]): Promise<Row[][]> {
    if (this.closed) return Promise.reject(databaseError('the database is closed'));
    this.roundTrips.waited++;
    return new Promise((resolve, reject) => {
      const batch = new StatementBatch(statements, (err, rows) => {
        if (!err) return resolve(rows!);
        const error = this.failed(client, err);
        // Some of the statements it parsed may exist on the connection and some not: start afresh.
        if (batch.parsedUnknown) client.broken ??= error;
        reject(error);
      });
      client.query(batch);
    });
  }

  private handle(client: PooledClient, topics: Set<string>): SqlTransaction {
    let savepoints = 0;
    const tx: SqlTransaction = {
      dialect: 'postgres',
      run: async (text, ...params) => ({ changes: (await this.query(client, text, params)).rowCount ?? 0 }),
      get: async <R extends Row = Row>(text: string, ...params: unknown[]) =>
        (await this.query(client, text, params)).rows[0] as R | undefined,
      all: async <R extends Row = Row>(text: string, ...params: unknown[]) => (await this.query(client, text, params)).rows as R[],
      exec: (text) => this.execOn(client, text),
      savepoint: async (fn) => {
        const name = `sp${++savepoints}`;
        await this.execOn(client, `SAVEPOINT ${name}`);
        try {
          const result = await fn(tx);
          await this.execOn(client, `RELEASE SAVEPOINT ${name}`);
          return result;
        } catch (err) {
          await this.execOn(client, `ROLLBACK TO SAVEPOINT ${name}`);
          throw err;
        }
      },
      notify: (topic) => {
        topics.add(topic);
      },
    };
    return tx;
  }

  /**
   * Makes every commit so far durable: a commit with synchronous_commit=on flushes the WAL up to
   * its own record, and so every commit before it, on any connection, but only if the
   * transaction wrote WAL: one that merely took a transaction ID commits asynchronously
   * (PostgreSQL's RecordTransactionCommit; measured: pg_stat_wal.wal_sync stays 0). A
   * transactional logical message writes WAL and takes an ID, so its commit waits for the flush.
   * Calls in one turn of the event loop share a flush; one flush runs at a time, and the calls
   * that came during it share the next.
   */
  syncDurable(): Promise<void> {
    if (this.closed) return Promise.reject(databaseError('the database is closed'));
    return new Promise((resolve, reject) => {
      this.flushWaiters.push({ resolve, reject });
      if (this.flushScheduled) return;
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        if (!this.flushing) void this.flushWaiting();
      });
    });
  }

  private async flushWaiting(): Promise<void> {
    this.flushing = true;
    while (this.flushWaiters.length > 0) {
      const batch = this.flushWaiters;
      this.flushWaiters = [];
      this.roundTrips.flushes++;
      let error: Error | undefined;
      try {
        this.flusher ??= this.dedicatedClient('on', () => (this.flusher = undefined));
        await (await this.flusher).query("SELECT pg_logical_emit_message(true, 'dicomflow', '')");
      } catch (err) {
        const broken = this.flusher;
        this.flusher = undefined;
        broken?.then((c) => c.end()).catch(() => undefined);
        error = databaseError(`flushing the WAL: ${(err as Error).message}`, (err as { code?: string }).code);
      }
      for (const waiter of batch) error ? waiter.reject(error) : waiter.resolve();
    }
    this.flushing = false;
  }

  /** A connection of its own (flush, ping), forgotten when it breaks. */
  private async dedicatedClient(synchronousCommit: 'on' | 'off', forget: () => void): Promise<pg.Client> {
    const client = new pg.Client(this.connectionOptions(synchronousCommit));
    client.on('error', forget);
    client.on('end', forget);
    try {
      await client.connect();
    } catch (err) {
      forget();
      throw err;
    }
    (client as unknown as { connection?: { stream?: { unref?: () => void } } }).connection?.stream?.unref?.();
    return client;
  }

  /**
   * One ping at a time, on a connection of its own: while PostgreSQL stalls, probes asked every
   * second share the one in flight instead of taking the pool's connections.
   */
  async ping(timeoutMs: number): Promise<boolean> {
    if (this.closed) return false;
    this.pingInFlight ??= (async () => {
      try {
        this.pinger ??= this.dedicatedClient('off', () => (this.pinger = undefined));
        await (await this.pinger).query('SELECT 1');
        return true;
      } catch {
        const broken = this.pinger;
        this.pinger = undefined;
        broken?.then((c) => c.end()).catch(() => undefined);
        return false;
      } finally {
        this.pingInFlight = undefined;
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([this.pingInFlight, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The payload names the sender: a process acts on its own changes itself, and skips their echo. */
  async notify(topic: string): Promise<void> {
    await this.run('SELECT pg_notify(?, ?)', CHANNEL, `${topic} ${this.instance}`);
  }

  onNotify(topic: string, listener: () => void): () => void {
    this.listen();
    this.topics.on(topic, listener);
    return () => this.topics.off(topic, listener);
  }

  private listen(): void {
    if (this.listener || this.closed || this.listenerRetry) return;
    const client = new pg.Client({ connectionString: this.url, application_name: 'dicomflow-listen', keepAlive: true });
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.flushWaiters) waiter.reject(databaseError('the database is closed'));
    this.flushWaiters = [];
    clearTimeout(this.listenerRetry);
    const listener = this.listener;
    this.listener = undefined;
    const end = (c: Promise<pg.Client> | undefined) => c?.then((client) => client.end()).catch(() => undefined);
    await Promise.all([
      listener?.end().catch(() => undefined),
      end(this.flusher),
      end(this.pinger),
      this.pool.end().catch(() => undefined),
    ]);
  }
}

async function allInOrder(tx: SqlTransaction, statements: readonly SqlStatement[]): Promise<Row[][]> {
  const rows: Row[][] = [];
  for (const s of statements) rows.push(await tx.all(s.text, ...s.params));
  return rows;
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
