import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { allJobStores } from '../../test/helpers/job-stores.ts';
import { tempDir } from '../../test/helpers/temp.ts';
import { openTestIndexDatabase } from '../../test/helpers/test-index.ts';
import { until } from '../../test/helpers/wait.ts';
import type { Announcer } from '../events.ts';
import type { LoadedPipeline } from '../pipeline/load.ts';
import { definePlugin } from '../plugin.ts';
import { PluginRegistry } from '../plugin-registry.ts';
import type { JobQueue } from '../store/job-queue.ts';
import { SqlIndex } from '../store/sql/sql-index.ts';
import { JobRunner } from './job-runner.ts';
import type { EngineServices } from './services.ts';
import type { StepPool } from './run-job.ts';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('JobRunner leases', () => {
  // Found as a rare hang of a PostgreSQL pipeline test: a lease renewal that started while an
  // attempt ran and answered after that attempt had queued its retry and the retry had been
  // claimed here again. The renewal rightly found the first attempt's lease gone; the runner
  // took that for the job's, stopped the second attempt and dropped its outcome, and the job
  // stayed "running" until its lease expired.
  it('a renewal that answers after an attempt ended leaves the next attempt of the same job alone', async () => {
    const index = new SqlIndex(await openTestIndexDatabase(tempDir()));
    open.push(index);
    const jobs = allJobStores(index.connection);
    const gates = [deferred(), deferred()];
    const plugin = definePlugin({
      name: 'test-fails-at-gate',
      version: '1.0.0',
      description: 'Waits for its attempt’s gate, then throws.',
      runsIn: 'main',
      consumes: [],
      produces: [],
      options: { type: 'object' },
      async run(ctx) {
        const gate = gates[ctx.job.attempt - 1].promise;
        await Promise.race([gate, new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stopped'))))]);
        throw new Error(`attempt ${ctx.job.attempt} fails`);
      },
    });
    const registry = new PluginRegistry();
    registry.register(plugin, 'file:///test-fails-at-gate.ts');
    const pipeline = {
      file: 'p.json',
      definition: { name: 'p', trigger: { on: 'manual' }, steps: [{ plugin: 'test-fails-at-gate' }] },
      steps: [
        {
          id: 'fails',
          index: 0,
          pluginRef: 'test-fails-at-gate@1.0.0',
          registered: registry.resolve('test-fails-at-gate')!,
          options: {},
          timeoutSeconds: 60,
        },
      ],
    } as unknown as LoadedPipeline;

    const jobOf = async (id: string) => (await jobs.getJob(id))!;
    let jobId = '';
    // The renewal reads the store just as the first attempt has queued its retry (before the
    // retry can be claimed), and answers once the retry runs.
    const retryQueued = deferred();
    const renewalRead = deferred();
    const racing: JobQueue = {
      ...jobs,
      async retryLater(...args) {
        const recorded = await jobs.retryLater(...args);
        retryQueued.resolve();
        await renewalRead.promise;
        return recorded;
      },
      async renewLeases(owner, ids, leaseUntil) {
        await retryQueued.promise;
        const lost = await jobs.renewLeases(owner, ids, leaseUntil);
        renewalRead.resolve();
        await until('the retry running', async () => {
          const job = await jobOf(jobId);
          return job.status === 'running' && job.attempts === 2;
        });
        return lost;
      },
    };
    const runner = new JobRunner({
      nodeId: 'node',
      leaseMs: 60_000,
      shared: false,
      queue: racing,
      pipelines: { all: () => [pipeline], get: (name) => (name === 'p' ? pipeline : undefined), loadVersion: () => ({ problems: [] }) },
      pool: {} as StepPool,
      jobsDir: tempDir(),
      log: pino({ level: 'silent' }),
      events: { announce() {} } as Announcer,
      concurrency: 2,
      workerThreads: 1,
      services: {} as EngineServices,
      storeEmittedInstance: () => Promise.reject(new Error('no instances here')),
      objectPath: (p) => p,
      jobRecorded() {},
      jobSettled() {},
    });
    open.push(runner);
    jobId = await jobs.createJob({ pipeline: 'p', triggerOn: 'manual', inputs: [], priority: 0, maxAttempts: 2, backoffSeconds: 0 });
    runner.pump();
    await until('the first attempt', async () => (await jobOf(jobId)).status === 'running');

    const renewal = runner.beat();
    gates[0].resolve();
    await renewal;
    gates[1].resolve();
    const ended = await until('the second attempt recorded', async () => {
      const job = await jobOf(jobId);
      return job.status === 'failed' ? job : undefined;
    });
    expect(ended).toMatchObject({ attempts: 2, error: expect.stringContaining('attempt 2 fails') });
  });
});
