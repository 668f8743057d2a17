import { describe, expect, it } from 'vitest';
import { CoalescedSync } from './coalesced-sync.ts';

/** A sync whose runs the test finishes by hand, in order. */
function manualSync() {
  const runs: { finish: (err?: Error) => void }[] = [];
  const sync = new CoalescedSync(
    () =>
      new Promise<void>((resolve, reject) => {
        runs.push({ finish: (err) => (err ? reject(err) : resolve()) });
      }),
  );
  return { sync, runs };
}

describe('CoalescedSync', () => {
  it('answers callers who came during a sync with one later sync that started after them', async () => {
    const { sync, runs } = manualSync();
    const settled: string[] = [];
    const first = sync.request().then(() => settled.push('first'));
    const second = sync.request().then(() => settled.push('second'));
    const third = sync.request().then(() => settled.push('third'));
    expect(runs).toHaveLength(1);
    runs[0].finish();
    await first;
    // The running sync may have started before the second and third callers' writes: they wait for the next.
    expect(settled).toEqual(['first']);
    await new Promise((r) => setImmediate(r));
    expect(runs).toHaveLength(2);
    runs[1].finish();
    await Promise.all([second, third]);
    expect(settled).toEqual(['first', 'second', 'third']);
    expect(sync.busy).toBe(false);
  });

  it('passes a failed sync to its own callers only', async () => {
    const { sync, runs } = manualSync();
    const first = sync.request();
    const second = sync.request();
    runs[0].finish(new Error('EIO'));
    await expect(first).rejects.toThrow('EIO');
    await new Promise((r) => setImmediate(r));
    runs[1].finish();
    await expect(second).resolves.toBeUndefined();
  });
});
