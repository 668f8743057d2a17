// A reader thread of SqliteDb: its own connection to the database file, for reads that may
// take long (C-FIND pages, listings, scans). WAL lets it read beside the writer on the event loop.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface ReadRequest {
  id: number;
  text: string;
  params: unknown[];
}

export interface ReadResponse {
  id: number;
  rows?: Record<string, unknown>[];
  error?: { message: string; code?: string };
}

const { file } = workerData as { file: string };
// Not opened read-only: a read-only connection cannot recover the WAL index when the writer is
// gone; query_only refuses writes just the same.
const db = new Database(file, { fileMustExist: true });
db.pragma('query_only = 1');
db.pragma('busy_timeout = 5000');
const statements = new Map<string, Database.Statement>();

parentPort!.on('message', ({ id, text, params }: ReadRequest) => {
  try {
    let statement = statements.get(text);
    if (!statement) {
      statement = db.prepare(text);
      statements.set(text, statement);
    }
    parentPort!.postMessage({ id, rows: statement.all(...params) as Record<string, unknown>[] } satisfies ReadResponse);
  } catch (err) {
    const e = err as Error & { code?: string };
    parentPort!.postMessage({ id, error: { message: e.message, code: e.code } } satisfies ReadResponse);
  }
});
