// Issue 8, faults outside: a step whose worker runs out of memory fails its job, not the server.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ctSeries } from '../fixtures/builder.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('a worker out of memory', () => {
  // With worker threads, about one run in eight V8 aborted the whole process instead of ending
  // the worker ("FATAL ERROR: Reached heap limit"; nodejs/node#47224): hence worker processes,
  // the default isolation, where the abort ends only the step's own process.
  it('fails its job with DF_ERR_STEP_FAILED naming the cause, and the pool and server go on', { timeout: 120_000 }, async () => {
    const pipelinesDir = tempDir('df-oom-pipelines-');
    fs.writeFileSync(
      path.join(pipelinesDir, 'oom.json'),
      JSON.stringify({ name: 'oom', trigger: { on: 'instance' }, retry: { maxAttempts: 1 }, steps: [{ plugin: 'test-allocates-memory' }] }),
    );
    fs.writeFileSync(
      path.join(pipelinesDir, 'works.json'),
      JSON.stringify({
        name: 'works',
        trigger: { on: 'instance' },
        steps: [{ plugin: 'test-burns-cpu', options: { slices: 2, size: 1000 } }],
      }),
    );
    const s = await startTestServer({
      pipelinesDir,
      defaultPipeline: false,
      plugins: { directories: [path.join(repo, 'test/fixtures/plugins')] },
      engine: { workerThreads: 1, workerMaxMemoryMb: 64 },
    });
    cleanups.push(() => s.close());
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
    await s.engine.idle();
    const jobs = Object.fromEntries((await s.jobs.listJobs({})).map((j) => [j.pipeline, j]));
    expect(jobs.oom).toMatchObject({ status: 'failed', errorCode: 'DF_ERR_STEP_FAILED' });
    expect(jobs.oom.error).toMatch(/ERR_WORKER_OUT_OF_MEMORY|out of memory/i);
    expect(jobs.works.status).toBe('succeeded');
    const again = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...again.files])).code).toBe(0);
    await s.engine.idle();
    expect(await s.jobs.listJobs({ pipeline: 'works', status: 'succeeded' })).toHaveLength(2);
  });
});
