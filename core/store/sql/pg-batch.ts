import pg from 'pg';
import type { Row } from './sql-db.ts';

/**
 * A prepared statement of a batch: its name on the connection, its text ($n placeholders) and its
 * values (text, numbers, bytes or null).
 */
export interface BatchStatement {
  name: string;
  text: string;
  values: unknown[];
}

interface Field {
  name: string;
  dataTypeID: number;
}

/** node-postgres' connection, with the statements it has prepared (its own bookkeeping, which Query uses too). */
type Connection = pg.Connection & { parsedStatements: Record<string, string> };

/** A parameter as node-postgres sends strings, numbers and bytes (BatchStatement's values are only these). */
const asSent = (v: unknown): string | Buffer | null => (v === null || v === undefined ? null : Buffer.isBuffer(v) ? v : String(v));

/**
 * Statements sent together and answered together, in one round trip: each one's Bind, Describe
 * and Execute, and a single Sync at the end. PostgreSQL runs them in order and, after an error,
 * skips the rest up to the Sync, so a batch that opens with BEGIN and ends with COMMIT commits
 * all of them or none. (node-postgres sends a Sync after every statement, even in its pipeline
 * mode: each of its queries stands alone.)
 *
 * A node-postgres Submittable: the client hands it the connection to write to and then every
 * message of the answer, up to ReadyForQuery. Statements the connection has not prepared yet are
 * parsed first, all ahead of the first Bind; when the batch then fails it is not known which of
 * them PostgreSQL kept, so `parsedUnknown` tells the caller to drop the connection.
 */
export class StatementBatch implements pg.Submittable {
  /** Set by node-postgres' query timeout too: it wraps the callback to clear its timer. */
  callback: (error: Error | undefined, rows?: Row[][]) => void;
  /** This batch parsed statements and failed: which of them exist on the connection is unknown. */
  parsedUnknown = false;
  private readonly statements: readonly BatchStatement[];
  private readonly rows: Row[][] = [];
  private parsed: BatchStatement[] = [];
  private current = 0;
  private fields: Field[] = [];
  private parsers: ((text: string) => unknown)[] = [];
  private failed: Error | undefined;

  constructor(statements: readonly BatchStatement[], callback: (error: Error | undefined, rows?: Row[][]) => void) {
    this.statements = statements;
    this.callback = callback;
  }

  submit(connection: pg.Connection): void {
    const con = connection as Connection;
    this.parsed = this.statements.filter((s, i) => con.parsedStatements[s.name] === undefined && this.firstOf(s.name) === i);
    // One write for the whole batch (the socket would otherwise send each message as it comes).
    con.stream.cork();
    try {
      for (const s of this.parsed) con.parse({ name: s.name, text: s.text, types: [] }, true);
      for (const s of this.statements) {
        con.bind({ statement: s.name, values: s.values.map(asSent) }, true);
        con.describe({ type: 'P' }, true);
        con.execute({}, true);
      }
      con.sync();
    } finally {
      con.stream.uncork();
    }
  }

  private firstOf(name: string): number {
    return this.statements.findIndex((s) => s.name === name);
  }

  handleRowDescription(msg: { fields: Field[] }): void {
    this.fields = msg.fields;
    this.parsers = msg.fields.map((f) => pg.types.getTypeParser(f.dataTypeID, 'text'));
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    if (this.failed) return;
    try {
      const row: Row = {};
      for (let i = 0; i < this.fields.length; i++) {
        const v = msg.fields[i];
        row[this.fields[i].name] = v === null ? null : this.parsers[i](v);
      }
      (this.rows[this.current] ??= []).push(row);
    } catch (err) {
      this.failed = err as Error;
    }
  }

  handleCommandComplete(): void {
    this.rows[this.current] ??= [];
    this.current++;
    this.fields = [];
    this.parsers = [];
  }

  handleEmptyQuery(): void {
    this.handleCommandComplete();
  }

  handleError(error: Error): void {
    if (this.parsed.length > 0) this.parsedUnknown = true;
    this.callback(error);
  }

  handleReadyForQuery(connection: pg.Connection): void {
    if (this.failed) return this.handleError(this.failed);
    const con = connection as Connection;
    for (const s of this.parsed) con.parsedStatements[s.name] = s.text;
    this.callback(undefined, this.rows);
  }

  // Not asked for by any statement of ours; answered so that the connection is not left waiting.
  handlePortalSuspended(connection: pg.Connection): void {
    connection.sync();
  }

  handleCopyInResponse(connection: pg.Connection): void {
    (connection as pg.Connection & { sendCopyFail(message: string): void }).sendCopyFail('COPY is not supported in a statement batch');
  }

  handleCopyData(): void {}
}
