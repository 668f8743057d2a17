import { Worker } from 'node:worker_threads';

/**
 * Runs SQLite WAL checkpoints off the event loop: a worker thread with its own connection
 * checkpoints once the WAL has grown (PASSIVE: never waits for readers or writers), and
 * truncates it when idle. The main connection has auto-checkpointing off.
 */
export function startCheckpointer(file: string, options: { intervalMs?: number } = {}): { stop(): Promise<void> } {
  const worker = new Worker(new URL('./checkpoint-worker.ts', import.meta.url), {
    workerData: { file, intervalMs: options.intervalMs ?? 1000 },
  });
  worker.unref();
  return {
    stop: async () => {
      worker.postMessage('stop');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 2000);
        worker.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
