import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { dfError } from '../../errors.ts';
import type { ReadRequest, ReadResponse } from './sqlite-reader.ts';
import type { Row } from './sql-db.ts';

interface Reader {
  worker: Worker;
  pending: Map<number, { resolve: (rows: Row[]) => void; reject: (err: Error) => void }>;
}

/**
 * Reader threads for one SQLite file, started on the first read. A read goes to the reader with
 * the fewest reads waiting. Idle readers do not keep the process alive (a CLI command ends).
 */
export class SqliteReaders {
  private readonly file: string;
  private readonly size: number;
  private readers: Reader[] = [];
  private seq = 0;
  private closed = false;

  constructor(file: string, size = Math.max(1, Math.min(4, os.availableParallelism() - 1))) {
    this.file = file;
    this.size = size;
  }

  read(text: string, params: unknown[]): Promise<Row[]> {
    if (this.closed) return Promise.reject(dfError('DF_ERR_DATABASE', 'SQLite: the database is closed'));
    const reader = this.pick();
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      reader.pending.set(id, { resolve, reject });
      reader.worker.ref();
      reader.worker.postMessage({ id, text, params } satisfies ReadRequest);
    });
  }

  private pick(): Reader {
    const idle = this.readers.find((r) => r.pending.size === 0);
    if (idle) return idle;
    if (this.readers.length < this.size) return this.start();
    return this.readers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private start(): Reader {
    const worker = new Worker(new URL('./sqlite-reader.ts', import.meta.url), { workerData: { file: this.file } });
    const reader: Reader = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (r: ReadResponse) => {
      const waiter = reader.pending.get(r.id);
      if (!waiter) return;
      reader.pending.delete(r.id);
      if (reader.pending.size === 0) worker.unref();
      if (r.error) waiter.reject(Object.assign(dfError('DF_ERR_DATABASE', `SQLite: ${r.error.message}`), { sqliteCode: r.error.code }));
      else waiter.resolve(r.rows as Row[]);
    });
    // A reader that dies fails its reads; the next read starts another.
    const lost = (err: Error) => {
      this.readers = this.readers.filter((r) => r !== reader);
      for (const waiter of reader.pending.values())
        waiter.reject(dfError('DF_ERR_DATABASE', `SQLite reader thread stopped: ${err.message}`));
      reader.pending.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`exit code ${code}`)));
    this.readers.push(reader);
    return reader;
  }

  async close(): Promise<void> {
    this.closed = true;
    const readers = this.readers;
    this.readers = [];
    await Promise.all(readers.map((r) => r.worker.terminate()));
  }
}
