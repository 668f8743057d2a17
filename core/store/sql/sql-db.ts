/**
 * The one database contract every durable store is written against: asynchronous statements,
 * and transactions that run on an explicit handle. SQLite (embedded, the default) and
 * PostgreSQL (several nodes) implement it; the stores' SQL is portable and asks `dialect` where
 * the two differ (row locking, JSON arrays, string aggregation).
 *
 * Why asynchronous: one event loop answers DICOM and HTTP. Nothing on it may wait for a
 * database: PostgreSQL runs on a pool of connections (a stalled server stalls the callers that
 * need it, never C-ECHO or the health probe), and SQLite's long reads run on reader threads.
 * SQLite's writes stay on the loop (microseconds each), one transaction at a time.
 *
 * Placeholders are `?`. A statement text is prepared once per connection and kept, so stores
 * pass the same constant texts again and again.
 */
export type Row = Record<string, any>;

export interface RunResult {
  changes: number;
}

export type DialectName = 'sqlite' | 'postgres';

/** What a database and a transaction handle both run. */
export interface SqlRunner {
  readonly dialect: DialectName;
  run(text: string, ...params: unknown[]): Promise<RunResult>;
  get<R extends Row = Row>(text: string, ...params: unknown[]): Promise<R | undefined>;
  all<R extends Row = Row>(text: string, ...params: unknown[]): Promise<R[]>;
}

/** A transaction in progress: its statements run on its one connection, in order. */
export interface SqlTransaction extends SqlRunner {
  /** Runs statements without parameters (DDL, migrations). */
  exec(text: string): Promise<void>;
  /** Nested work that rolls back alone when it throws (a savepoint). */
  savepoint<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T>;
  /** Tells the other processes on this database that `topic` changed, once this transaction commits. */
  notify(topic: string): void;
}

/** A statement and its parameters. */
export interface SqlStatement {
  text: string;
  params: unknown[];
}

export interface TransactionOptions {
  /**
   * The commit reaches the disk before the transaction resolves (a received object's rows,
   * which the sender is told are stored): on PostgreSQL a synchronous commit, so that no flush
   * round trip follows; on SQLite a WAL fsync after it, shared with commits that wait together.
   */
  durable?: boolean;
}

/**
 * A durable transaction committed, but making the commit durable failed (the WAL fsync): its rows
 * exist. Running it again would write them twice; what they point at must be kept.
 */
export class CommitNotDurableError extends Error {
  readonly committed = true;

  constructor(cause: unknown) {
    super(`committed, but the commit could not be made durable: ${(cause as Error).message ?? String(cause)}`, { cause });
    this.name = 'CommitNotDurableError';
  }
}

export interface SqlDb extends SqlRunner {
  /** Where the data lives, for logs and status (a file, or the URL without its password). */
  readonly location: string;
  /** Runs statements without parameters (DDL). */
  exec(text: string): Promise<void>;
  /**
   * Runs fn in a transaction on one connection, and commits when it resolves (rolls back when
   * it throws). fn must run every statement of the transaction on `tx`: a statement on the
   * database itself from inside fn is refused (DF_ERR_INTERNAL), since it would run outside the
   * transaction (PostgreSQL) or wait for it forever (SQLite). On PostgreSQL, a transaction that
   * lost a race with another node (serialization failure, deadlock, unique violation) runs again,
   * so fn must not have effects outside the database.
   */
  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Statements known in advance, run in order in one transaction (committed, or rolled back
   * when one fails, with the retries of `transaction`); the rows of each. Only where it saves
   * round trips: PostgreSQL sends BEGIN, the statements and COMMIT together and waits once.
   */
  atomic?(statements: readonly SqlStatement[], options?: TransactionOptions): Promise<Row[][]>;
  /**
   * A read that may take long (C-FIND pages, listings, scans): on SQLite it runs on a reader
   * thread with its own read-only connection (WAL lets it read beside the writer), never on the
   * event loop; on PostgreSQL on a pooled connection like any statement.
   */
  read<R extends Row = Row>(text: string, ...params: unknown[]): Promise<R[]>;
  /** Makes every commit so far survive a power loss. */
  syncDurable(): Promise<void>;
  /**
   * Tells the other processes on this database that `topic` changed (PostgreSQL NOTIFY). Other
   * processes on one SQLite file are not told: they look.
   */
  notify(topic: string): Promise<void>;
  /** Calls back when another process notified `topic`. Returns the unsubscribe. */
  onNotify(topic: string, listener: () => void): () => void;
  /** Whether the database answers a trivial query within `timeoutMs` (the health probe). */
  ping(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Dialect-specific SQL fragments, kept in one place. */
export interface Dialect {
  /** Appended to a SELECT that claims rows: other nodes skip rows claimed and not yet committed. */
  skipLocked: string;
  /** Appended to a SELECT whose rows the transaction then updates. */
  forUpdate: string;
  /** A FROM item giving `alias.value` for each element of a JSON text array column. */
  jsonElements(column: string, alias: string): string;
  jsonArrayLength(column: string): string;
  /** The text of one member of a JSON object column (`key`, a constant of ours) or array element. */
  jsonText(column: string, key: string | number): string;
  /** Distinct values joined with commas. */
  groupConcatDistinct(expression: string): string;
  /** The larger of two values (SQLite's scalar max()). */
  greatest(a: string, b: string): string;
  /** RETURNING the updated table's row, in an UPDATE … FROM. */
  returningRow(table: string): string;
}

export function dialectOf(name: DialectName): Dialect {
  if (name === 'postgres') {
    return {
      skipLocked: 'FOR UPDATE SKIP LOCKED',
      forUpdate: 'FOR UPDATE',
      jsonElements: (column, alias) => `jsonb_array_elements_text(${column}::jsonb) AS ${alias}(value)`,
      jsonArrayLength: (column) => `jsonb_array_length(${column}::jsonb)`,
      jsonText: (column, key) => `(${column}::jsonb ->> ${typeof key === 'number' ? key : `'${key}'`})`,
      groupConcatDistinct: (e) => `string_agg(DISTINCT ${e}, ',')`,
      greatest: (a, b) => `greatest(${a}, ${b})`,
      returningRow: (table) => `RETURNING ${table}.*`,
    };
  }
  return {
    // One writer at a time: SQLite needs no row locks.
    skipLocked: '',
    forUpdate: '',
    jsonElements: (column, alias) => `json_each(${column}) AS ${alias}`,
    jsonArrayLength: (column) => `json_array_length(${column})`,
    jsonText: (column, key) => `json_extract(${column}, '${typeof key === 'number' ? `$[${key}]` : `$.${key}`}')`,
    groupConcatDistinct: (e) => `group_concat(DISTINCT ${e})`,
    greatest: (a, b) => `max(${a}, ${b})`,
    // SQLite returns the updated table's columns only, and refuses table.*.
    returningRow: () => 'RETURNING *',
  };
}
