// Issue 9, crash safety of a cluster, the CI cut of the fault injection (the long run is in
// `npm run proof`): two nodes share one PostgreSQL index and one data directory; three senders
// push their studies to both while the pipelines store, file into a DICOMDIR, route to a
// storescp and render each stable series in the worker pool. Three times a random node is
// SIGKILLed at a seeded random moment, stays down a while (its jobs are taken over once their
// 3 s lease runs out, or requeued by its restart) and restarts under its name. The seed is
// printed: DF_CRASH_SEED=<seed> replays a failure. Runs in the postgres test project only.
import { describe, expect, it } from 'vitest';
import { hasTool } from '../helpers/dcmtk.ts';
import { freshPostgresDatabase } from '../helpers/test-index.ts';
import { runCrashProof } from '../proof/crash-harness.ts';

const seed = Number(process.env.DF_CRASH_SEED ?? Date.now() % 1_000_000);

describe.skipIf(!hasTool('storescu') || !hasTool('storescp') || !hasTool('dcmdump') || !hasTool('dciodvfy'))(
  'kill -9 of any node of a cluster while senders push and pipelines run (issue 9)',
  () => {
    it(`keeps every acknowledged object, takes the killed nodes' jobs over and ends every job across 3 kills (seed ${seed})`, async () => {
      const lines: string[] = [];
      const figures = await runCrashProof({
        killPoints: 3,
        senders: 3,
        seed,
        instancesPerSender: 120,
        cluster: { nodes: ['node-a', 'node-b'], leaseSeconds: 3, indexUrl: await freshPostgresDatabase() },
        log: (line) => lines.push(line),
      });
      const context = `seed ${seed} (replay: DF_CRASH_SEED=${seed})\n${lines.join('\n')}\nfigures: ${JSON.stringify({ ...figures, problems: undefined })}`;
      expect(figures.problems, context).toEqual([]);
      expect(figures.killsSurvived, context).toBe(3);
      expect(figures.objectsAcknowledged, context).toBe(360);
      expect(figures, context).toMatchObject({ lost: 0, duplicatedInIndex: 0, corrupt: 0 });
      expect(figures.jobs, context).toMatchObject({ failed: 0, stuck: 0, interruptedCompleted: figures.jobs.interrupted });
      expect(figures.triggers, context).toMatchObject({
        seriesRefired: 0,
        instanceJobsTwice: 0,
        seriesJobs: figures.triggers.seriesGroupsFired,
      });
      expect(figures.outbox.delivered, context).toBe(figures.outbox.owed);
      expect(figures.dicomdir, context).toMatchObject({ valid: true, listed: 360, missing: 0 });
      expect(figures.workerStep.missing, context).toBe(0);
    }, 150_000);
  },
);
