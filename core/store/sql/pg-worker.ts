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
}

export interface PgResponse {
  seq: number;
  rows?: Record<string, unknown>[];
  rowCount?: number;
  error?: { message: string; code?: string; detail?: string };
}

const { url, flag: sharedFlag, port, statementTimeoutMs, applicationName } = workerData as {
  url: string;
  flag: SharedArrayBuffer;
  port: MessagePort;
  statementTimeoutMs: number;
  applicationName: string;
};
const flag = new Int32Array(sharedFlag);
let client: pg.Client | undefined;

async function connection(): Promise<pg.Client> {
  if (client) return client;
  const c = new pg.Client({ connectionString: url, statement_timeout: statementTimeoutMs, application_name: applicationName });
  // A broken connection is replaced at the next statement; the error reaches the caller then.
  c.on('error', () => {
    if (client === c) client = undefined;
  });
  await c.connect();
  client = c;
  return c;
}

function answer(response: PgResponse): void {
  port.postMessage(response);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

port.on('message', async (request: PgRequest) => {
  if (request.op === 'close') {
    await client?.end().catch(() => undefined);
    client = undefined;
    answer({ seq: request.seq });
    return;
  }
  try {
    const c = await connection();
    const result = await c.query({ text: request.text!, values: request.values, name: request.name });
    answer({ seq: request.seq, rows: result.rows, rowCount: result.rowCount ?? 0 });
  } catch (err) {
    const e = err as Error & { code?: string; detail?: string };
    // A connection that failed mid-statement is not reused.
    if (!e.code || e.code.startsWith('08') || e.code === '57P01') {
      const broken = client;
      client = undefined;
      broken?.end().catch(() => undefined);
    }
    answer({ seq: request.seq, error: { message: e.message, code: e.code, detail: e.detail } });
  }
});
