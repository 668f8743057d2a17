import os from 'node:os';
import { Piscina } from 'piscina';
import type { StepPool } from '../core/jobs/run-job.ts';

/**
 * The piscina pool that runs CPU-heavy steps. A step that throws, exits its thread or runs out
 * of memory rejects its task and piscina replaces the thread; a timeout or cancel aborts the
 * task (the thread is terminated). The server goes on either way.
 */
export function createStepPool(options: { threads?: number; maxOldGenerationSizeMb?: number }): StepPool & {
  destroy(): Promise<void>;
  utilization(): { threads: number; queued: number; utilization: number };
} {
  const threads = options.threads ?? Math.max(1, os.availableParallelism());
  const pool = new Piscina({
    filename: new URL('./step-worker.ts', import.meta.url).href,
    minThreads: 0,
    maxThreads: threads,
    idleTimeout: 60_000,
    resourceLimits: options.maxOldGenerationSizeMb ? { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb } : undefined,
  });
  return {
    run: (task, { signal, transferList }) => pool.run(task, { signal, transferList }),
    destroy: () => pool.destroy(),
    utilization: () => ({ threads: pool.threads.length, queued: pool.queueSize, utilization: pool.utilization }),
  };
}
