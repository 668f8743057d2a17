// Issue 8, hostile input (the CI run): generated malformed PDUs and datasets at the DIMSE port of
// a real server process, then hostile files through `dicomflow import` and the watch folder. The
// long run is `npm run proof` (node test/fuzz/run.ts, thousands of cases).
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDimseFuzz } from './dimse-fuzz.ts';
import { runFileFuzz } from './file-fuzz.ts';
import { startFuzzServer, type FuzzServer } from './harness.ts';
import { DIMSE_REGRESSIONS } from './regressions.ts';

const SEED = Number(process.env.DF_FUZZ_SEED ?? 20261123);
let server: FuzzServer;

beforeAll(async () => {
  server = await startFuzzServer();
});
afterAll(async () => {
  await server?.stop();
  if (server) fs.rmSync(server.root, { recursive: true, force: true });
});

describe('fuzzing the DIMSE port', () => {
  it('replays the cases that once found bugs', async () => {
    for (const seed of new Set(DIMSE_REGRESSIONS.map((r) => r.seed))) {
      const report = await runDimseFuzz(server, {
        seed,
        cases: 0,
        only: DIMSE_REGRESSIONS.filter((r) => r.seed === seed).map((r) => r.index),
      });
      expect(report.findings).toEqual([]);
    }
  }, 60_000);

  it(`survives 250 generated cases (seed ${SEED}): answers every one, stays up, keeps acknowledged objects once and nothing else`, async () => {
    const report = await runDimseFuzz(server, { seed: SEED, cases: 250, batch: 50 });
    expect(report.findings).toEqual([]);
    expect(report).toMatchObject({ cases: 250, crashes: 0, lost: 0, duplicated: 0, refusedButIndexed: 0, filesOutsideRoots: [] });
    // The generator must reach the parser's corners, not only its front door.
    expect(report.answers.response).toBeGreaterThan(50);
    expect(report.answers.aborted).toBeGreaterThan(20);
    expect(report.acknowledged).toBeGreaterThan(10);
  }, 90_000);
});

describe('fuzzing the file ways in', () => {
  it(`imports or refuses with a DF_ERR code each of 120 hostile files (seed ${SEED}), through import and the watch folder`, async () => {
    const report = await runFileFuzz(server, { seed: SEED, files: 120, batch: 60 });
    expect(report.findings).toEqual([]);
    expect(report).toMatchObject({ files: 120, crashes: 0, filesOutsideRoots: [] });
    expect(report.refused).toBeGreaterThan(20);
    expect(report.imported).toBeGreaterThan(10);
  }, 90_000);
});
