// The step pool with each isolation: results and typed arrays come back, a failing part
// rejects, a timeout kills the worker, and (processes) a part that exhausts its heap fails
// alone while the pool and this process go on.
import { afterAll, describe, expect, it } from 'vitest';
import { createStepPool, type Isolation } from '../../workers/pool.ts';

const tasks = new URL('../fixtures/plugins/fans-out/tasks.ts', import.meta.url).href;
const pools: { destroy(): Promise<void> }[] = [];
afterAll(async () => {
  for (const p of pools) await p.destroy();
});

describe.each(['process', 'thread'] as Isolation[])('step pool, isolation %s', (isolation) => {
  const pool = createStepPool({ threads: 2, isolation, maxOldGenerationSizeMb: 128 });
  pools.push(pool);
  const call = (exportName: string, arg: unknown, signal = new AbortController().signal, transferList: Transferable[] = []) =>
    pool.runTask({ moduleUrl: tasks, exportName, arg }, { signal, transferList });

  it('runs parts in parallel and brings typed arrays back', async () => {
    const results = (await Promise.all([1, 2, 3].map((n) => call('square', Float32Array.of(n, n + 1))))) as { squares: Float32Array }[];
    expect(results.map((r) => [...r.squares])).toEqual([
      [1, 4],
      [4, 9],
      [9, 16],
    ]);
    expect(results[0].squares).toBeInstanceOf(Float32Array);
  });

  it('a part that throws rejects with its message; the next part runs', async () => {
    await expect(call('fails', null)).rejects.toThrow(/task failed on purpose/);
    expect(await call('sleep', 1)).toBe('slept');
  });

  it('a part aborted by its signal is stopped; the pool goes on', async () => {
    // Ten minutes of sleep: only the abort can end it before the test's timeout.
    await expect(call('sleep', 600_000, AbortSignal.timeout(300))).rejects.toThrow();
    expect(await call('sleep', 1)).toBe('slept');
  });

  it.runIf(isolation === 'process')('a part that exhausts its heap fails alone, as out of memory', { timeout: 60_000 }, async () => {
    await expect(call('fillHeap', null)).rejects.toThrow(/ran out of memory/);
    expect(await call('sleep', 1)).toBe('slept');
  });
});
