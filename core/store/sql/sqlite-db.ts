import fs from 'node:fs';
import Database from 'better-sqlite3';
import { CoalescedSync } from '../coalesced-sync.ts';
import { CommitNotDurableError, type Row, type RunResult, type SqlDb, type SqlTransaction, type TransactionOptions } from './sql-db.ts';
import { SqliteReaders } from './sqlite-readers.ts';
import { insideTransaction, refuseInsideTransaction } from './transaction-scope.ts';

/**
 * The embedded database: one SQLite file in WAL mode. Commits run with synchronous=NORMAL (no
 * fsync on the event loop); syncDurable() fsyncs the WAL on the thread pool, in parallel with the
 * object's own fsync. An acknowledgement waits for both, which gives FULL's guarantee without
 * serializing the two disk waits.
 *
 * Writes run on the event loop (microseconds each), one transaction at a time: a transaction
 * holds the one connection until it ends, and statements outside it wait their turn. Reads that
 * may take long run on reader threads (`read`).
 */
export class SqliteDb implements SqlDb {
  readonly dialect = 'sqlite' as const;
  readonly location: string;
  private readonly raw: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly readers: SqliteReaders | undefined;
  private walFd: number | undefined;
  /** Commits that ask together share one WAL fsync. */
  private readonly walSync = new CoalescedSync(() => this.fsyncWal());
  /** A transaction holds the connection; others (and lone statements) queue behind it. */
  private busy = false;
  private readonly waiting: (() => void)[] = [];
  private savepoints = 0;

  constructor(file: string) {
    this.location = file;
    this.raw = new Database(file);
    this.raw.pragma('journal_mode = WAL');
    this.raw.pragma('synchronous = NORMAL');
    // Truncate the WAL after a checkpoint resets it, so it does not stay at its largest size.
    // (Checkpoints from a second connection on a worker thread were tried: their locks made the
    // server's own writes fail with "database is locked" under load.)
    this.raw.pragma('journal_size_limit = 67108864');
    this.raw.pragma('foreign_keys = ON');
    this.raw.pragma('busy_timeout = 5000');
    this.readers = file === ':memory:' ? undefined : new SqliteReaders(file);
  }

  /** Preparing costs more than running the small statements the stores run on every object. */
  private statement(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.raw.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  private runNow(text: string, params: unknown[]): RunResult {
    return { changes: this.statement(text).run(...params).changes };
  }

  private getNow(text: string, params: unknown[]): Row | undefined {
    return this.statement(text).get(...params) as Row | undefined;
  }

  private allNow(text: string, params: unknown[]): Row[] {
    return this.statement(text).all(...params) as Row[];
  }

  /** Runs a lone statement now, or after the transaction that holds the connection. */
  private async alone<T>(what: string, statement: () => T): Promise<T> {
    refuseInsideTransaction(this, what);
    if (this.busy) {
      await this.acquire();
      try {
        return statement();
      } finally {
        this.release();
      }
    }
    return statement();
  }

  run(text: string, ...params: unknown[]): Promise<RunResult> {
    return this.alone('a statement', () => this.runNow(text, params));
  }

  get<R extends Row = Row>(text: string, ...params: unknown[]): Promise<R | undefined> {
    return this.alone('a statement', () => this.getNow(text, params) as R | undefined);
  }

  all<R extends Row = Row>(text: string, ...params: unknown[]): Promise<R[]> {
    return this.alone('a statement', () => this.allNow(text, params) as R[]);
  }

  read<R extends Row = Row>(text: string, ...params: unknown[]): Promise<R[]> {
    if (!this.readers) return this.all<R>(text, ...params);
    return this.readers.read(text, params) as Promise<R[]>;
  }

  exec(text: string): Promise<void> {
    return this.alone('exec', () => {
      this.raw.exec(text);
    });
  }

  private acquire(): Promise<void> {
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.busy = false;
  }

  /**
   * BEGIN IMMEDIATE: the write lock is taken at the start. A deferred transaction that read
   * first fails at once with "database is locked" when another process (the CLI) wrote
   * meanwhile; waiting for the lock up front lets busy_timeout do its work.
   */
  async transaction<T>(fn: (tx: SqlTransaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
    refuseInsideTransaction(this, 'a nested transaction');
    await this.acquire();
    let result: T;
    try {
      this.runNow('BEGIN IMMEDIATE', []);
      try {
        result = await insideTransaction(this, () => fn(this.handle()));
        this.runNow('COMMIT', []);
      } catch (err) {
        if (this.raw.inTransaction) this.runNow('ROLLBACK', []);
        throw err;
      }
    } finally {
      this.release();
    }
    // The connection is free meanwhile: other transactions commit and join this fsync or the next.
    if (options?.durable) {
      try {
        await this.syncDurable();
      } catch (err) {
        throw new CommitNotDurableError(err);
      }
    }
    return result;
  }

  /** The transaction's statements run at once: it holds the connection. */
  private handle(): SqlTransaction {
    const tx: SqlTransaction = {
      dialect: 'sqlite',
      run: async (text, ...params) => this.runNow(text, params),
      get: async <R extends Row = Row>(text: string, ...params: unknown[]) => this.getNow(text, params) as R | undefined,
      all: async <R extends Row = Row>(text: string, ...params: unknown[]) => this.allNow(text, params) as R[],
      exec: async (text) => {
        this.raw.exec(text);
      },
      savepoint: async (fn) => {
        const name = `sp${++this.savepoints}`;
        this.raw.exec(`SAVEPOINT ${name}`);
        try {
          const result = await fn(tx);
          this.raw.exec(`RELEASE SAVEPOINT ${name}`);
          return result;
        } catch (err) {
          this.raw.exec(`ROLLBACK TO SAVEPOINT ${name}; RELEASE SAVEPOINT ${name}`);
          throw err;
        }
      },
      // One server runs on a SQLite file and acts on its own changes itself; the CLI's writes
      // are found by the engine's once-a-second look.
      notify: () => undefined,
    };
    return tx;
  }

  syncDurable(): Promise<void> {
    return this.walSync.request();
  }

  private fsyncWal(): Promise<void> {
    if (this.walFd === undefined) this.walFd = fs.openSync(`${this.location}-wal`, 'r');
    const fd = this.walFd;
    return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  }

  async notify(_topic: string): Promise<void> {}

  onNotify(_topic: string, _listener: () => void): () => void {
    return () => {};
  }

  /** The file answers on this thread in microseconds, or not at all (then it throws). */
  async ping(_timeoutMs: number): Promise<boolean> {
    try {
      return (await this.get('SELECT 1 AS ok')) !== undefined;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.readers?.close();
    if (this.busy) await this.acquire();
    // A WAL fsync still running would otherwise meet a closed (or reused) descriptor.
    while (this.walSync.busy) await this.walSync.request().catch(() => {});
    if (this.walFd !== undefined) fs.closeSync(this.walFd);
    this.walFd = undefined;
    if (this.raw.open) this.raw.close();
  }
}
