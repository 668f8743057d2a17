import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { storescu } from '../../test/helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../../test/helpers/server.ts';
import { until } from '../../test/helpers/wait.ts';
import { dynamicPetWithKnownMotion } from '../../test/fixtures/dynamic-brain-phantom.ts';

const servers: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

describe('motion-correction in a pipeline', () => {
  it('corrects a dynamic PET series sent over DIMSE and the engine stores the derived series', async () => {
    const pipelines = tempDir('df-moco-pipelines-');
    fs.writeFileSync(
      path.join(pipelines, 'moco.json'),
      JSON.stringify({
        name: 'moco',
        trigger: {
          on: 'series',
          stableSeconds: 1,
          when: { attributes: { Modality: { equals: 'PT' }, SeriesType: { includes: 'DYNAMIC' } } },
        },
        steps: [{ plugin: 'motion-correction', options: { reference: { kind: 'sum-late', lateFrames: 2 }, fwhmMm: 8, levels: 2 } }],
      }),
    );
    const s = await startTestServer({ pipelinesDir: pipelines, defaultPipeline: false, engine: { workerThreads: 2 } });
    servers.push(s);
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
    expect(sent.code).toBe(0);
    const job = await until(
      'the motion-correction job',
      async () => (await s.jobs.listJobs({ pipeline: 'moco' })).find((j) => j.status === 'succeeded' || j.status === 'failed'),
      60_000,
    );
    const detail = (await s.jobs.getJob(job.id))!;
    expect(job.status, JSON.stringify(detail.steps?.[0]?.log?.slice(-5))).toBe('succeeded');
    const outputs = detail.steps![0].outputs;
    const instances = outputs.filter((o) => o.kind === 'instance');
    expect(instances).toHaveLength(series.files.length);
    // Stored by the engine as pipeline output: each has its SOP Instance UID, none is a source's.
    expect(instances.every((o) => typeof o.sopInstanceUid === 'string' && !series.sopInstanceUids.includes(o.sopInstanceUid))).toBe(true);
    expect(
      outputs
        .filter((o) => o.kind === 'file')
        .map((o) => path.basename(o.path!))
        .sort(),
    ).toEqual(['motion-corrected.json', 'motion-corrected.nii.gz', 'motion.csv', 'motion.json', 'motion.png', 'motion.svg']);
    const motion = JSON.parse(fs.readFileSync(outputs.find((o) => o.path?.endsWith('motion.json'))!.path!, 'utf8'));
    expect(motion.frames[0].translationMm[0]).toBeCloseTo(2, 0);
    // The derived series does not fire the pipeline again (pipeline output is not an arrival for
    // triggers): once every arrival is processed, no trigger group is open and one job ran.
    const unprocessed = async () =>
      Number((await s.index.connection.get<{ n: number }>('SELECT count(*) AS n FROM arrivals WHERE processed_at IS NULL'))!.n);
    await until('every arrival processed', async () => (await unprocessed()) === 0);
    await s.engine.idle();
    expect(await s.jobStores.groups.nextGroupFireAt()).toBeUndefined();
    expect(await s.jobs.listJobs({ pipeline: 'moco' })).toHaveLength(1);
  }, 90_000);
});
