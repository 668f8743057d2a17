import os from 'node:os';
import { Piscina } from 'piscina';
import type { StepPool } from '../core/jobs/run-job.ts';

/**
 * The piscina pool that runs CPU-heavy steps. A step that throws, exits its thread or runs out
 * of memory rejects its task and piscina replaces the thread; a timeout or cancel aborts the
 * task (the thread is terminated). The server goes on either way.
 *
 * Tasks are handed to piscina only when a thread is free: with piscina 5, tasks queued behind
 * an aborted one can stay queued forever (piscina issues #805, #934; seen here as a job that
 * never finished after a neighbour timed out), so the waiting happens in our own queue.
 */
export function createStepPool(options: { threads?: number; maxOldGenerationSizeMb?: number }): StepPool & {
  destroy(): Promise<void>;
  utilization(): { threads: number; running: number; queued: number; utilization: number };
} {
  const threads = options.threads ?? Math.max(1, os.availableParallelism());
  const pool = new Piscina({
    filename: new URL('./step-worker.ts', import.meta.url).href,
    minThreads: 0,
    maxThreads: threads,
    concurrentTasksPerWorker: 1,
    idleTimeout: 60_000,
    resourceLimits: options.maxOldGenerationSizeMb ? { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb } : undefined,
  });
  let running = 0;
  const waiting: (() => void)[] = [];
  const acquire = (signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      if (running < threads) {
        running++;
        return resolve();
      }
      const start = () => {
        signal.removeEventListener('abort', onAbort);
        running++;
        resolve();
      };
      const onAbort = () => {
        const i = waiting.indexOf(start);
        if (i >= 0) waiting.splice(i, 1);
        reject(signal.reason);
      };
      waiting.push(start);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  const release = () => {
    running--;
    waiting.shift()?.();
  };
  return {
    run: async (task, { signal, transferList }) => {
      await acquire(signal);
      try {
        return await pool.run(task, { signal, transferList });
      } finally {
        release();
      }
    },
    runTask: async (call, { signal, transferList }) => {
      await acquire(signal);
      try {
        return await pool.run(call, { name: 'runTask', signal, transferList: transferList as any[] });
      } finally {
        release();
      }
    },
    destroy: () => pool.destroy(),
    utilization: () => ({ threads: pool.threads.length, running, queued: waiting.length, utilization: pool.utilization }),
  };
}
