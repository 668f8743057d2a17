import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStepContext, type StepContextSeed } from '../../core/jobs/step-context.ts';
import { loadPipeline } from '../../core/pipeline/load.ts';
import type { StepInput, StepOutput } from '../../core/plugin.ts';
import { PluginRegistry, type RegisteredPlugin } from '../../core/plugin-registry.ts';
import {
  PET_SOP_CLASS,
  SEG_SOP_CLASS,
  VOI_GRID,
  VOI_LABEL_TABLE,
  VOI_TRUTH,
  voiLabelMapNifti,
  voiPetSeries,
  voiSegmentation,
  voiTruthValue,
  type IndexBox,
  type VoiPetSeries,
} from '../../test/fixtures/voi.ts';
import { createStepPool } from '../../workers/pool.ts';
import plugin from './index.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-voi-stats-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let registered: RegisteredPlugin;
let pet: VoiPetSeries;
let petInputs: StepInput[];
let segInput: StepInput;
const labelMap = path.join(root, 'atlas', 'labels.nii.gz');
const labelTable = path.join(root, 'atlas', 'labels.txt');

function input(file: string, sopClassUid: string, sopInstanceUid: string, seriesInstanceUid: string, modality: string): StepInput {
  return {
    arrivalId: `arrival-${sopInstanceUid}`,
    objectId: `object-${sopInstanceUid}`,
    path: file,
    sopClassUid,
    sopInstanceUid,
    seriesInstanceUid,
    studyInstanceUid: pet.studyInstanceUid,
    attributes: { Modality: modality },
    source: 'network',
    receivedAt: new Date().toISOString(),
  };
}

beforeAll(async () => {
  const registry = new PluginRegistry();
  registry.register(plugin, new URL('./index.ts', import.meta.url).href);
  registered = registry.resolve('voi-stats@1')!;
  pet = await voiPetSeries(path.join(root, 'pet'));
  petInputs = pet.files.map((f, n) => input(f, PET_SOP_CLASS, pet.sopInstanceUids[n], pet.seriesInstanceUid, 'PT'));
  await voiLabelMapNifti(labelMap);
  fs.writeFileSync(labelTable, VOI_LABEL_TABLE);
  const seg = await voiSegmentation(path.join(root, 'seg.dcm'), pet);
  segInput = input(path.join(root, 'seg.dcm'), SEG_SOP_CLASS, seg.sopInstanceUid, 'seg-series', 'SEG');
});

function seed(name: string, inputs: StepInput[], previousOutputs: StepOutput[] = []): StepContextSeed {
  const jobDir = path.join(root, 'jobs', name);
  return {
    job: {
      id: name,
      pipeline: 'dynamic-pet',
      pipelineVersion: '0123456789abcdef',
      database: 'default',
      attempt: 1,
      trigger: { on: 'series', uid: pet.seriesInstanceUid, callingAeTitles: ['SCANNER'], peerAddresses: [] },
    },
    node: { name: 'test-node' },
    step: { id: 'voi-stats', index: 0 },
    inputs,
    previousOutputs,
    scratchDir: path.join(jobDir, 'scratch'),
    outputDir: path.join(jobDir, 'outputs'),
  };
}

function options(given: Record<string, unknown>): any {
  const o = structuredClone(given);
  expect(registered.validateOptions(o), JSON.stringify(registered.validateOptions.errors)).toBe(true);
  return o;
}

const [x0, y0, z0] = VOI_GRID.originMm;
/** The cold region as a box in patient mm: its outer voxel centres ± half a voxel. */
const coldBoxMm = {
  kind: 'box',
  name: 'cold box',
  cornerMm: [x0 + 15 * 2 - 1, y0 + 10 * 2.5 - 1.25, z0 + 2 * 3 - 1.5],
  oppositeCornerMm: [x0 + 19 * 2 + 1, y0 + 15 * 2.5 + 1.25, z0 + 5 * 3 + 1.5],
};
/** A 4 mm sphere at the centre of hot voxel (7, 6, 5): 2 mm columns, so 3 voxels across in x. */
const hotSphereMm = { kind: 'sphere', name: 'hot ball', centerMm: [x0 + 7 * 2, y0 + 6 * 2.5, z0 + 5 * 3], radiusMm: 4 };
const allVois = { labelMap: { path: labelMap, labelTable }, shapes: [hotSphereMm, coldBoxMm] };

/** Statistics straight from the fixture's truth, over an index box (independent of any VOI code). */
function truthStats(box: IndexBox, f: number) {
  const values: number[] = [];
  for (let k = box.k[0]; k <= box.k[1]; k++)
    for (let j = box.j[0]; j <= box.j[1]; j++) for (let i = box.i[0]; i <= box.i[1]; i++) values.push(voiTruthValue(f, i, j, k));
  values.sort((a, b) => a - b);
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const median = n % 2 ? values[(n - 1) / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return { voxels: n, volumeMl: n * VOI_GRID.voxelMl, mean, sd, min: values[0], max: values[n - 1], median };
}

// SUV by hand: dose decayed from injection to the series start (DecayCorrection START), 600 s.
const decayedDose = VOI_TRUTH.injectedDoseBq * 2 ** (-VOI_TRUTH.injectionToSeriesSec / VOI_TRUTH.halfLifeSec);
const suvbwFactor = (VOI_TRUTH.patientWeightKg * 1000) / decayedDose;
const leanBodyMass = (9270 * 72.5) / (6680 + 216 * (72.5 / 1.76 ** 2)); // Janmahasatian, male
const close = (actual: number, expected: number) => expect(Math.abs(actual - expected) / Math.abs(expected)).toBeLessThan(1e-9);

describe('voi-stats', () => {
  let outputs: StepOutput[];
  let report: any;
  const out = (name: string) => path.join(seed('all', []).outputDir, name);

  beforeAll(async () => {
    const { ctx, effects } = createStepContext(seed('all', [...petInputs, segInput]), new AbortController().signal, () => {});
    await plugin.run(ctx, options(allVois));
    outputs = effects.outputs;
    report = JSON.parse(fs.readFileSync(out('voi-stats.json'), 'utf8'));
  });

  it('emits CSV, JSON, PMOD TAC, SVG and PNG plots and a table', () => {
    expect(outputs.map((o) => (o.kind === 'file' ? path.basename(o.path!) : `table ${o.name}`))).toEqual([
      'voi-stats.csv',
      'voi-stats.json',
      'tac.tac',
      'tac.svg',
      'tac.png',
      'table voi-stats',
    ]);
    expect(report.vois.map((v: any) => [v.name, v.source, v.label ?? null])).toEqual([
      ['hot-sphere', 'label-map', 1],
      ['cold-gradient', 'label-map', 2],
      ['hot ball', 'sphere', null],
      ['cold box', 'box', null],
      ['hot', 'seg', 1],
      ['cold', 'seg', 2],
    ]);
  });

  it('takes frame start, end and mid-times from the frame timing, not AcquisitionTime', () => {
    // The fixture's AcquisitionTime is the series start in every frame.
    expect(report.frames.map((t: any) => [t.startS, t.endS, t.midS])).toEqual([
      [0, 30, 15],
      [30, 60, 45],
      [60, 120, 90],
      [120, 240, 180],
    ]);
  });

  it('gives every VOI source the exact statistics of its region', () => {
    const byName = Object.fromEntries(report.vois.map((v: any) => [v.name, v]));
    for (const [name, box] of [
      ['hot-sphere', VOI_TRUTH.hot.box],
      ['hot', VOI_TRUTH.hot.box],
      ['cold-gradient', VOI_TRUTH.cold.box],
      ['cold', VOI_TRUTH.cold.box],
      ['cold box', VOI_TRUTH.cold.box],
    ] as const) {
      VOI_TRUTH.frameDurationsSec.forEach((_, f) => {
        const truth = truthStats(box, f);
        const got = byName[name].frames[f];
        expect([got.voxels, got.mean, got.min, got.max, got.median], `${name} frame ${f + 1}`).toEqual([
          truth.voxels,
          truth.mean,
          truth.min,
          truth.max,
          truth.median,
        ]);
        expect(got.volumeMl).toBeCloseTo(truth.volumeMl, 12);
        if (truth.sd === 0) expect(got.sd).toBe(0);
        else close(got.sd, truth.sd);
      });
    }
    expect(byName['hot-sphere'].volumeMl).toBeCloseTo(4.32, 12); // 8 × 6 × 6 voxels of 15 mm³
    expect(byName['cold-gradient'].volumeMl).toBeCloseTo(1.8, 12);
    // The 4 mm ball: offsets (2a, 2.5b, 3c) mm with 4a² + 6.25b² + 9c² ≤ 16. In its own slice:
    // 5 along the row, 3 in each neighbouring row; in the slices either side: 3 along the row and
    // 1 in each neighbouring row (9 + 6.25 ≤ 16).
    expect(byName['hot ball'].voxels).toBe(5 + 2 * 3 + 2 * (3 + 2));
    expect(byName['hot ball'].frames.map((s: any) => s.mean)).toEqual(VOI_TRUTH.hot.values);
  });

  it('computes SUVbw, SUVlbm, SUVmax and SUVpeak against a hand computation with decay', () => {
    expect(report.suv).toMatchObject({
      decayCorrection: 'START',
      injectedDoseBq: 350e6,
      halfLifeSec: 6586.2,
      injectionToSeriesSec: 600,
      patientWeightKg: 72.5,
      patientSizeM: 1.76,
      patientSex: 'M',
      lbmFormula: 'janmahasatian',
    });
    close(report.suv.leanBodyMassKg, leanBodyMass);
    const hot = report.vois.find((v: any) => v.name === 'hot-sphere');
    VOI_TRUTH.hot.values.forEach((value, f) => {
      // The hot region is 16 × 15 × 18 mm: a 1 cm³ sphere fits inside, so SUVpeak = SUVmax = SUVmean.
      for (const key of ['mean', 'max', 'peak']) {
        close(hot.frames[f].suvbw[key], value * suvbwFactor);
        close(hot.frames[f].suvlbm[key], (value * leanBodyMass * 1000) / decayedDose);
      }
    });
    // Last frame, by hand: 12000 Bq/ml × 72 500 g / (350 MBq × 2^(−600/6586.2)).
    close(hot.frames[3].suvbw.mean, (12000 * 72500) / (350e6 * 0.5 ** (600 / 6586.2)));
    const cold = report.vois.find((v: any) => v.name === 'cold-gradient');
    // The cold region is smaller than the sphere, which then averages in the background.
    VOI_TRUTH.cold.base.forEach((base, f) => {
      close(cold.frames[f].suvbw.max, (base + 4 * VOI_TRUTH.cold.step[f]) * suvbwFactor);
      expect(cold.frames[f].peak).toBeLessThan(cold.frames[f].min);
      expect(cold.frames[f].peak).toBeGreaterThan(VOI_TRUTH.background[f]);
    });
  });

  it('writes the PMOD TAC table in kBq/cc and a CSV row per VOI and frame', () => {
    expect(fs.readFileSync(out('tac.tac'), 'utf8')).toBe(
      'start[seconds]\tend[kBq/cc]\thot-sphere\tcold-gradient\thot ball\tcold box\thot\tcold\n' +
        '0\t30\t1\t0.52\t1\t0.52\t1\t0.52\n30\t60\t4\t0.84\t4\t0.84\t4\t0.84\n60\t120\t9\t1.08\t9\t1.08\t9\t1.08\n120\t240\t12\t1.2\t12\t1.2\t12\t1.2\n',
    );
    const [header, ...lines] = fs.readFileSync(out('voi-stats.csv'), 'utf8').trimEnd().split('\r\n');
    expect(header).toBe(
      'voi,source,label,frame,startS,endS,midS,voxels,volumeMl,mean,sd,min,max,median,peak,suvbwMean,suvbwMax,suvbwPeak,suvlbmMean,suvlbmMax,suvlbmPeak',
    );
    expect(lines.length).toBe(6 * 4);
    const cells = lines[4 * 1 + 3].split(','); // cold-gradient, frame 4
    expect(cells.slice(0, 10)).toEqual(['"cold-gradient"', '"label-map"', '2', '4', '120', '240', '180', '120', '1.8', '1200']);
    const table = outputs.find((o) => o.kind === 'table')!;
    expect(table.rows!.length).toBe(24);
    expect(table.rows![7]).toMatchObject({ voi: 'cold-gradient', frame: 4, mean: 1200, median: 1200, min: 1100, max: 1300 });
  });

  it('plots the curves as SVG and PNG', async () => {
    const svg = fs.readFileSync(out('tac.svg'), 'utf8');
    for (const name of [
      'hot-sphere',
      'cold-gradient',
      'hot ball',
      'cold box',
      'Mean activity concentration (kBq/ml)',
      'frame mid-time (min)',
    ])
      expect(svg).toContain(name);
    const meta = await sharp(fs.readFileSync(out('tac.png'))).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 800, 500]);
  });

  it('writes the same files on a second attempt (idempotent)', async () => {
    const before = ['voi-stats.csv', 'voi-stats.json', 'tac.tac', 'tac.svg'].map((n) => fs.readFileSync(out(n), 'utf8'));
    const { ctx } = createStepContext(seed('all', [...petInputs, segInput]), new AbortController().signal, () => {});
    await plugin.run(ctx, options(allVois));
    expect(['voi-stats.csv', 'voi-stats.json', 'tac.tac', 'tac.svg'].map((n) => fs.readFileSync(out(n), 'utf8'))).toEqual(before);
  });

  it('works on the instances an earlier step emitted (a corrected series), ignoring the inputs', async () => {
    const previous: StepOutput[] = pet.files.map((f, n) => ({ kind: 'instance', path: f, sopInstanceUid: pet.sopInstanceUids[n] }));
    const { ctx, effects } = createStepContext(seed('previous', [segInput], previous), new AbortController().signal, () => {});
    await plugin.run(ctx, options({ segmentations: true }));
    const rows = effects.outputs.find((o) => o.kind === 'table')!.rows!;
    expect(rows.map((r) => `${r.voi}:${r.frame}:${r.mean}`)).toEqual(
      ['hot', 'cold'].flatMap((v) =>
        [1, 2, 3, 4].map(
          (f) => `${v}:${f}:${v === 'hot' ? VOI_TRUTH.hot.values[f - 1] : VOI_TRUTH.cold.base[f - 1] + 2 * VOI_TRUTH.cold.step[f - 1]}`,
        ),
      ),
    );
  });

  it('skips a SEG of another frame of reference, and one of another study', async () => {
    const elsewhere = path.join(root, 'seg-other-for.dcm');
    const other = await voiSegmentation(elsewhere, { ...pet, frameOfReferenceUid: '2.25.1234' });
    const otherStudy = { ...segInput, studyInstanceUid: '2.25.999' };
    const { ctx, effects } = createStepContext(
      seed('other-for', [...petInputs, input(elsewhere, SEG_SOP_CLASS, other.sopInstanceUid, 'x', 'SEG'), otherStudy]),
      new AbortController().signal,
      () => {},
    );
    await plugin.run(ctx, options({ shapes: [hotSphereMm] }));
    expect(effects.log.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      expect.stringMatching(/in another frame of reference \(2\.25\.1234\).*skipped/),
    ]);
    expect(new Set(effects.outputs.find((o) => o.kind === 'table')!.rows!.map((r) => r.voi))).toEqual(new Set(['hot ball']));
  });

  it('fails with DF_ERR_VOI_INVALID when there is no VOI, or no PET', async () => {
    const run = (inputs: StepInput[]) =>
      plugin.run(createStepContext(seed('none', inputs), new AbortController().signal, () => {}).ctx, options({}));
    await expect(run(petInputs)).rejects.toThrow(/DF_ERR_VOI_INVALID: no VOIs/);
    await expect(run([segInput])).rejects.toThrow(/DF_ERR_VOI_INVALID: no PET image/);
  });

  it('runs in the worker pool as the engine runs it', async () => {
    const pool = createStepPool({ threads: 1 });
    const { port1, port2 } = new MessageChannel();
    // Messages from the worker arrive on their own schedule, maybe after the task's result.
    const progressed = new Promise<void>((resolve) => port1.on('message', (m: { type: string }) => m.type === 'progress' && resolve()));
    try {
      const result = await pool.run(
        {
          moduleUrl: registered.moduleUrl,
          pluginName: 'voi-stats',
          pluginVersion: '1.0.0',
          options: options(allVois),
          seed: seed('worker', [...petInputs, segInput]),
          port: port2,
        },
        { signal: new AbortController().signal, transferList: [port2] },
      );
      expect(result.failure).toBeUndefined();
      expect(result.outputs.filter((o: StepOutput) => o.kind === 'file').length).toBe(5);
      await progressed;
    } finally {
      port1.close();
      await pool.destroy();
    }
    expect(fs.readFileSync(path.join(seed('worker', []).outputDir, 'tac.tac'), 'utf8')).toBe(fs.readFileSync(out('tac.tac'), 'utf8'));
  });

  it('a pipeline with a malformed shape is refused when it loads, with the option’s pointer', () => {
    const registry = new PluginRegistry();
    registry.register(plugin, registered.moduleUrl);
    const text = JSON.stringify(
      {
        name: 'tac',
        trigger: { on: 'series' },
        steps: [{ plugin: 'voi-stats', options: { shapes: [{ kind: 'sphere', name: 'x', centerMm: [0, 0] }] } }],
      },
      null,
      2,
    );
    const { pipeline, problems } = loadPipeline(text, 'tac.json', registry, { databases: ['Import'] });
    expect(pipeline).toBeUndefined();
    expect(problems.some((p) => p.pointer.startsWith('/steps/0/options/shapes/0'))).toBe(true);
  });
});
