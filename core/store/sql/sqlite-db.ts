import fs from 'node:fs';
import Database from 'better-sqlite3';
import type { SqlDb, SqlStatement } from './sql-db.ts';

/**
 * The embedded database: one SQLite file in WAL mode. Commits run with synchronous=NORMAL (no
 * fsync on the event loop); syncDurable() fsyncs the WAL on the thread pool, in parallel with the
 * object's own fsync. An acknowledgement waits for both, which gives FULL's guarantee without
 * serializing the two disk waits.
 */
export class SqliteDb implements SqlDb {
  readonly dialect = 'sqlite' as const;
  readonly location: string;
  private readonly raw: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private walFd: number | undefined;

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
  }

  /** Preparing costs more than running the small statements the stores run on every object. */
  prepare(text: string): SqlStatement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.raw.prepare(text);
      this.statements.set(text, statement);
    }
    return statement as unknown as SqlStatement;
  }

  exec(text: string): void {
    this.raw.exec(text);
  }

  /**
   * BEGIN IMMEDIATE: the write lock is taken at the start. A deferred transaction that read
   * first fails at once with "database is locked" when another process (the CLI) wrote
   * meanwhile; waiting for the lock up front lets busy_timeout do its work.
   */
  transaction<T>(fn: () => T): () => T {
    const wrapped = this.raw.transaction(fn);
    return () => wrapped.immediate();
  }

  syncDurable(): Promise<void> {
    if (this.walFd === undefined) this.walFd = fs.openSync(`${this.location}-wal`, 'r');
    const fd = this.walFd;
    return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * One server runs on a SQLite file, and it acts on its own changes itself; the CLI's writes are
   * found by the engine's once-a-second look. (Telling listeners here, inside the writer's
   * transaction, made the engine start a job before the writer had announced it.)
   */
  notify(_topic: string): void {}

  onNotify(_topic: string, _listener: () => void): () => void {
    return () => {};
  }

  close(): void {
    if (this.walFd !== undefined) fs.closeSync(this.walFd);
    this.walFd = undefined;
    this.raw.close();
  }
}
