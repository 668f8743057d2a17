// Issue 8, crash safety, the CI cut of the fault injection (the long run is in `npm run proof`):
// three senders push their studies while the pipelines store, file into a DICOMDIR, route to a
// storescp and render JPEGs in the worker pool; the server is SIGKILLed five times at seeded
// random moments and restarted. The seed is printed: DF_CRASH_SEED=<seed> replays a failure.
import { describe, expect, it } from 'vitest';
import { hasTool } from '../helpers/dcmtk.ts';
import { runCrashProof } from '../proof/crash-harness.ts';

const seed = Number(process.env.DF_CRASH_SEED ?? Date.now() % 1_000_000);

describe.skipIf(!hasTool('storescu') || !hasTool('storescp') || !hasTool('dcmdump') || !hasTool('dciodvfy'))(
  'kill -9 while senders push and pipelines run (issue 8)',
  () => {
    it(`keeps every acknowledged object, the DICOMDIR, the outbox and the jobs whole across 5 kills (seed ${seed})`, async () => {
      const lines: string[] = [];
      const figures = await runCrashProof({ killPoints: 5, senders: 3, seed, instancesPerSender: 120, log: (line) => lines.push(line) });
      const context = `seed ${seed} (replay: DF_CRASH_SEED=${seed})\n${lines.join('\n')}\nfigures: ${JSON.stringify({ ...figures, problems: undefined })}`;
      expect(figures.problems, context).toEqual([]);
      expect(figures.killsSurvived, context).toBe(5);
      expect(figures.objectsAcknowledged, context).toBe(360);
      expect(figures).toMatchObject({ lost: 0, duplicatedInIndex: 0, corrupt: 0 });
      expect(figures.jobs.interruptedCompleted).toBe(figures.jobs.interrupted);
      expect(figures.outbox.delivered).toBe(figures.outbox.owed);
      expect(figures.dicomdir).toMatchObject({ valid: true, listed: 360, missing: 0 });
    }, 150_000);
  },
);
