// The step pool with each isolation: results and typed arrays come back, a failing part
// rejects, a timeout kills the worker, and (processes) a part that exhausts its heap fails
// alone while the pool and this process go on.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createStepPool, type Isolation } from '../../workers/pool.ts';
import { until } from '../helpers/wait.ts';

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

describe('step pool, compile cache', () => {
  it("a worker process writes the modules it loaded to the pool's compile cache; a worker started on that cache runs its task", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'df-compile-cache-'));
    const cache = path.join(dir, 'compile');
    try {
      const first = createStepPool({ threads: 1, compileCacheDir: cache });
      pools.push(first);
      expect(
        await first.runTask({ moduleUrl: tasks, exportName: 'sleep', arg: 1 }, { signal: new AbortController().signal, transferList: [] }),
      ).toBe('slept');
      // Written after the reply, and the worker is killed (not ended) when the pool goes: no exit to wait for.
      // Node writes each entry to a temporary name (with a suffix) and renames it into place.
      const files = (): string[] =>
        fs.existsSync(cache)
          ? fs
              .readdirSync(cache, { recursive: true, withFileTypes: true })
              .filter((e) => e.isFile() && !e.name.includes('.'))
              .map((e) => e.name)
          : [];
      await until('the worker to write its compile cache', () => files().length > 0);
      await first.destroy();
      // A second pool's worker starts with the cache in place (Node rejects an entry that does not match its source).
      const second = createStepPool({ threads: 1, compileCacheDir: cache });
      pools.push(second);
      expect(
        await second.runTask(
          { moduleUrl: tasks, exportName: 'square', arg: Float32Array.of(3) },
          { signal: new AbortController().signal, transferList: [] },
        ),
      ).toMatchObject({
        squares: Float32Array.of(9),
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
