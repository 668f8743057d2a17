import os from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { StepPool } from '../core/jobs/run-job.ts';
import { ProcessPool } from './process-pool.ts';

export type Isolation = 'process' | 'thread';

/**
 * The pool that runs CPU-heavy steps and ctx.runTask parts: worker processes (the default, see
 * process-pool.ts for why) or piscina threads. A step that throws, exits or runs out of memory
 * fails its task and the pool replaces the worker; a timeout or cancel aborts the task (the
 * worker is terminated). The server goes on either way.
 *
 * Tasks are handed on only when a worker is free: with piscina 5, tasks queued behind an aborted
 * one can stay queued forever (piscina issues #805, #934; seen here as a job that never finished
 * after a neighbour timed out), so the waiting happens in our own queue, for both kinds.
 */
export function createStepPool(options: {
  threads?: number;
  maxOldGenerationSizeMb?: number;
  isolation?: Isolation;
  /** Worker processes keep Node's compile cache here (process-pool.ts); none when absent. */
  compileCacheDir?: string;
}): StepPool & {
  destroy(): Promise<void>;
  utilization(): { threads: number; running: number; queued: number; utilization: number };
} {
  const threads = options.threads ?? Math.max(1, os.availableParallelism());
  const backend =
    options.isolation === 'thread'
      ? threadBackend(threads, options.maxOldGenerationSizeMb)
      : processBackend(options.maxOldGenerationSizeMb, options.compileCacheDir);
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
  const limited =
    <A extends unknown[], R>(fn: (signal: AbortSignal, ...args: A) => Promise<R>) =>
    async (signal: AbortSignal, ...args: A): Promise<R> => {
      await acquire(signal);
      try {
        return await fn(signal, ...args);
      } finally {
        release();
      }
    };
  const runStep = limited(backend.runStep);
  const runTask = limited(backend.runTask);
  return {
    run: (task, { signal, transferList }) => runStep(signal, task, transferList) as ReturnType<StepPool['run']>,
    runTask: (call, { signal, transferList }) => runTask(signal, call, transferList),
    destroy: () => backend.destroy(),
    utilization: () => ({ threads, running, queued: waiting.length, utilization: running / threads }),
  };
}

interface Backend {
  runStep(signal: AbortSignal, task: Record<string, unknown>, transferList: unknown[]): Promise<unknown>;
  runTask(
    signal: AbortSignal,
    call: { moduleUrl: string; exportName: string; arg: unknown },
    transferList: Transferable[],
  ): Promise<unknown>;
  destroy(): Promise<void>;
}

function threadBackend(threads: number, maxOldGenerationSizeMb: number | undefined): Backend {
  const pool = new Piscina({
    filename: new URL('./step-worker.ts', import.meta.url).href,
    minThreads: 0,
    maxThreads: threads,
    concurrentTasksPerWorker: 1,
    idleTimeout: 60_000,
    resourceLimits: maxOldGenerationSizeMb ? { maxOldGenerationSizeMb } : undefined,
  });
  return {
    runStep: (signal, task, transferList) => pool.run(task, { signal, transferList: transferList as any[] }),
    runTask: (signal, call, transferList) => pool.run(call, { name: 'runTask', signal, transferList: transferList as any[] }),
    destroy: () => pool.destroy(),
  };
}

function processBackend(maxOldGenerationSizeMb: number | undefined, compileCacheDir: string | undefined): Backend {
  const pool = new ProcessPool({ maxOldGenerationSizeMb, compileCacheDir });
  return {
    runStep: (signal, task) => pool.runStep(task as Record<string, unknown> & { port: MessagePort }, signal),
    runTask: (signal, call) => pool.runTask(call, signal),
    destroy: () => pool.destroy(),
  };
}
