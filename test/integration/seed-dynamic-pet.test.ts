// PMOD's processing seed as shipped in pipelines/seed-dynamic-pet.json, end to end through the
// real server: a dynamic brain PET sent with storescu → motion correction → VOI statistics with
// the example label map on the corrected frames → the corrected series filed into Import.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/app.ts';
import { dynamicPetWithKnownMotion } from '../fixtures/dynamic-brain-phantom.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const servers: RunningServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

describe('seed: dynamic brain PET', () => {
  it('corrects motion, computes TACs in the example label map’s regions, and files the corrected series', async () => {
    const pipelines = tempDir('df-seed-pet-pipelines-');
    const seed = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../pipelines/seed-dynamic-pet.json'), 'utf8'));
    // As an operator would: enable it; quicker here, on a small phantom.
    seed.enabled = true;
    seed.trigger.stableSeconds = 1;
    Object.assign(seed.steps[0].options, { startSec: 0, reference: { kind: 'sum-late', lateFrames: 2 }, fwhmMm: 8, levels: 2 });
    fs.writeFileSync(path.join(pipelines, 'seed.json'), JSON.stringify(seed));
    // The store-received default files the originals into Import too, as on a fresh install.
    const s = await startTestServer({ pipelinesDir: pipelines, engine: { workerThreads: 2 } });
    servers.push(s);
    expect([...s.pipelines.problems(), ...s.pipelines.warnings()]).toEqual([]);

    const { series } = await dynamicPetWithKnownMotion(path.join(tempDir(), 'pet'), {
      grid: { dims: [32, 32, 16], spacingMm: [6, 6, 6.4] },
      frameDurationsSec: [120, 300, 300],
      motion: [
        [2, -1, 1, 2, 0, -1],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
      ],
    });
    const sent = await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...series.files]);
    expect(sent.code, sent.stderr).toBe(0);

    const job = await until(
      'the seed job',
      async () => (await s.jobs.listJobs({ pipeline: seed.name })).find((j) => j.status === 'succeeded' || j.status === 'failed'),
      90_000,
    );
    const detail = (await s.jobs.getJob(job.id))!;
    expect(detail.status, JSON.stringify(detail.steps?.map((st) => [st.id, st.status, st.error]))).toBe('succeeded');
    const [moco, voi, store] = detail.steps!;
    expect([moco.id, voi.id, store.id]).toEqual(['motion-correction', 'voi-stats', 'store']);

    // Motion: the first frame's known 2 mm shift along x is found.
    const motion = JSON.parse(fs.readFileSync(moco.outputs.find((o) => o.path?.endsWith('motion.json'))!.path!, 'utf8'));
    expect(motion.frames[0].translationMm[0]).toBeCloseTo(2, 0);

    // VOI statistics on the corrected frames, one curve per labelled region the grid covers.
    const rows = voi.outputs.find((o) => o.kind === 'table')!.rows as { voi: string; frame: number; voxels: number; mean: number }[];
    for (const region of ['cortex', 'white-matter', 'striatum-right', 'striatum-left', 'cerebellum']) {
      const frames = rows.filter((r) => r.voi === region);
      expect(
        frames.map((r) => r.frame),
        region,
      ).toEqual([1, 2, 3]);
      expect(
        frames.every((r) => r.voxels > 0 && r.mean > 0),
        region,
      ).toBe(true);
    }
    expect(voi.outputs.map((o) => (o.path ? path.basename(o.path) : o.name)).sort()).toEqual(
      expect.arrayContaining(['tac.tac', 'tac.png', 'tac.svg', 'voi-stats.csv', 'voi-stats.json']),
    );

    // The corrected series is in Import beside the original, created by the pipeline.
    const emitted = moco.outputs.filter((o) => o.kind === 'instance').map((o) => o.sopInstanceUid!);
    expect(emitted).toHaveLength(series.files.length);
    const filed = await s.index.instances('Import', { sopInstanceUids: emitted });
    expect(filed).toHaveLength(emitted.length);
    expect(new Set(filed.map((r) => r.series.SeriesInstanceUID)).size).toBe(1);
    expect(filed[0].series.SeriesInstanceUID).not.toBe(series.seriesInstanceUid);
    expect(filed[0].createdBy).toBe(`pipeline ${seed.name}`);
    expect(await s.index.series('Import', { seriesInstanceUids: [series.seriesInstanceUid] })).toHaveLength(1);
  }, 120_000);
});
