/**
 * The one database contract every durable store is written against: synchronous statements and
 * transactions, as better-sqlite3 offers them. SQLite (embedded, the default) and PostgreSQL
 * (several nodes) implement it; the stores' SQL is portable and asks `dialect` where the two
 * differ (row locking, JSON arrays, string aggregation).
 *
 * Why synchronous on PostgreSQL too: a store's transaction then runs on one connection with
 * nothing else of this process in between, as on SQLite, and no caller changed. The price is
 * that the calling thread waits out each round trip (about 20 per received object with the
 * default pipeline). An asynchronous contract with a connection per transaction would let one
 * node overlap them; it means rewriting every caller of the stores.
 */
export type Row = Record<string, any>;

export interface RunResult {
  changes: number;
}

export interface SqlStatement {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): Row | undefined;
  all(...params: unknown[]): Row[];
}

export type DialectName = 'sqlite' | 'postgres';

export interface SqlDb {
  readonly dialect: DialectName;
  /** Where the data lives, for logs and status (a file, or the URL without its password). */
  readonly location: string;
  /** A statement for this text, prepared once and kept. Placeholders are `?`. */
  prepare(text: string): SqlStatement;
  /** Runs statements without parameters (DDL). */
  exec(text: string): void;
  /**
   * Wraps fn in a transaction (nested calls use savepoints). On PostgreSQL a transaction that
   * lost a race with another node (serialization failure, deadlock, unique violation) runs again.
   */
  transaction<T>(fn: () => T): () => T;
  /** Makes every commit so far survive a power loss. */
  syncDurable(): Promise<void>;
  /**
   * Tells the other processes on this database that `topic` changed (PostgreSQL NOTIFY; inside
   * a transaction, at its commit). Other processes on one SQLite file are not told: they look.
   */
  notify(topic: string): void;
  /** Calls back when any process notified `topic`. Returns the unsubscribe. */
  onNotify(topic: string, listener: () => void): () => void;
  close(): void;
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
