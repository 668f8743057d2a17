import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import * as niftiReader from 'nifti-reader-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePart10 } from '../../core/dicom/pixel-data.ts';
import { isDfError } from '../../core/errors.ts';
import { createStepContext, type StepContextSeed } from '../../core/jobs/step-context.ts';
import { loadPipeline } from '../../core/pipeline/load.ts';
import type { StepInput } from '../../core/plugin.ts';
import { PluginRegistry, type RegisteredPlugin } from '../../core/plugin-registry.ts';
import { ctSeries, petSeries, type BuiltSeries } from '../../test/fixtures/builder.ts';
import { compressSeries } from '../../test/fixtures/volumes.ts';
import { createStepPool } from '../../workers/pool.ts';
import plugin from './index.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-convert-nifti-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let registered: RegisteredPlugin;
let ct: BuiltSeries;
let pet: BuiltSeries;

function stepInputs(series: BuiltSeries): StepInput[] {
  return series.files.map((file, i) => ({
    arrivalId: `${series.seriesInstanceUid}-${i}`,
    objectId: `object-${series.seriesInstanceUid}-${i}`,
    path: file,
    sopClassUid: series.sopClassUid,
    sopInstanceUid: series.sopInstanceUids[i],
    seriesInstanceUid: series.seriesInstanceUid,
    studyInstanceUid: series.studyInstanceUid,
    attributes: { Modality: series.modality, PatientID: series.patientId, StudyDate: series.studyDate },
    source: 'network',
    receivedAt: new Date().toISOString(),
  }));
}

function seed(name: string, inputs: StepInput[]): StepContextSeed {
  const jobDir = path.join(root, 'jobs', name);
  return {
    job: {
      id: name,
      pipeline: 'nifti',
      pipelineVersion: '0123456789abcdef',
      database: 'default',
      attempt: 1,
      trigger: { on: 'series', callingAeTitles: [], peerAddresses: [] },
    },
    node: { name: 'test-node' },
    step: { id: 'convert-nifti', index: 0 },
    inputs,
    previousOutputs: [],
    scratchDir: path.join(jobDir, 'scratch'),
    outputDir: path.join(jobDir, 'outputs'),
  };
}

type Options = { gzip: boolean; fileName: string; sidecar: boolean; onInconsistent: 'fail' | 'skip'; folder?: string };

function options(given: Record<string, unknown>): Options {
  const o = structuredClone(given);
  expect(registered.validateOptions(o), JSON.stringify(registered.validateOptions.errors)).toBe(true);
  return o as Options;
}

function niftiDims(file: string): number[] {
  const bytes = fs.readFileSync(file);
  let data: ArrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  if (niftiReader.isCompressed(data)) data = niftiReader.decompress(data) as ArrayBuffer;
  const header = niftiReader.readHeader(data);
  return header.dims.slice(1, header.dims[0] + 1);
}

beforeAll(async () => {
  const registry = new PluginRegistry();
  registry.register(plugin, new URL('./index.ts', import.meta.url).href);
  registered = registry.resolve('convert-nifti@1')!;
  ct = await ctSeries(path.join(root, 'ct'), { slices: 5, rows: 16, cols: 16, seriesNumber: 2, seriesDescription: 'Chest/abd 2.5' });
  pet = await petSeries(path.join(root, 'pet'), {
    slices: 4,
    rows: 16,
    cols: 16,
    seriesNumber: 7,
    frameDurationsSec: [30, 30, 60],
    studyUid: ct.studyInstanceUid,
  });
});

describe('convert-nifti', () => {
  it('writes one .nii.gz and one sidecar per series, named from the pattern, the same on a rerun', async () => {
    const inputs = [...stepInputs(ct), ...stepInputs(pet), stepInputs(pet)[0]];
    const runOnce = async () => {
      const progress: number[] = [];
      const { ctx, effects } = createStepContext(seed('both', inputs), new AbortController().signal, (f) => progress.push(f));
      await plugin.run(ctx, options({}));
      expect(progress.at(-1)).toBe(1);
      return effects;
    };
    const effects = await runOnce();
    const out = seed('both', inputs).outputDir;
    const files = effects.outputs.map((o) => path.relative(out, o.path!)).sort();
    expect(files).toEqual(['CT_2_Chest_abd_2.5.json', 'CT_2_Chest_abd_2.5.nii.gz', 'PT_7_Dynamic_FDG.json', 'PT_7_Dynamic_FDG.nii.gz']);
    expect(niftiDims(path.join(out, 'CT_2_Chest_abd_2.5.nii.gz'))).toEqual([16, 16, 5]);
    expect(niftiDims(path.join(out, 'PT_7_Dynamic_FDG.nii.gz'))).toEqual([16, 16, 4, 3]);
    const sidecar = JSON.parse(fs.readFileSync(path.join(out, 'PT_7_Dynamic_FDG.json'), 'utf8'));
    expect(sidecar).toMatchObject({
      Modality: 'PT',
      FrameTimesStart: [0, 30, 60],
      FrameDuration: [30, 30, 60],
      Units: 'Bq/mL',
      ConversionSoftware: 'dicomflow convert-nifti',
    });
    const first = fs.readFileSync(path.join(out, 'PT_7_Dynamic_FDG.nii.gz'));
    await runOnce();
    expect(fs.readFileSync(path.join(out, 'PT_7_Dynamic_FDG.nii.gz')).equals(first)).toBe(true);
    expect(fs.readdirSync(out).some((f) => f.endsWith('.partial'))).toBe(false);
  });

  it('takes series-level times from the earliest frame, whatever order the files come in', async () => {
    // Every frame's files carry that frame's AcquisitionDate/Time: the series began with the earliest.
    const stamps = pet.files.map((file) => {
      const ds = parsePart10(fs.readFileSync(file));
      return `${ds.string('x00080022')}${ds.string('x00080032')}`;
    });
    const earliest = [...stamps].sort()[0];
    expect(stamps[stamps.length - 1] > earliest).toBe(true);
    const expected = `${earliest.slice(0, 4)}-${earliest.slice(4, 6)}-${earliest.slice(6, 8)}T${earliest.slice(8, 10)}:${earliest.slice(10, 12)}:${earliest.slice(12, 14)}`;
    const sidecars = [];
    for (const [name, inputs] of [
      ['in-order', stepInputs(pet)],
      ['reversed', stepInputs(pet).reverse()],
      ['last-frame-first', [...stepInputs(pet).slice(8), ...stepInputs(pet).slice(0, 8)]],
    ] as const) {
      const { ctx } = createStepContext(seed(`order-${name}`, [...inputs]), new AbortController().signal, () => {});
      await plugin.run(ctx, options({ gzip: false }));
      const sidecar = JSON.parse(fs.readFileSync(path.join(seed(`order-${name}`, []).outputDir, 'PT_7_Dynamic_FDG.json'), 'utf8'));
      expect(sidecar.AcquisitionDateTime, name).toMatch(new RegExp(`^${expected}(\\.0+)?$`));
      sidecars.push(sidecar);
    }
    expect(sidecars[1]).toEqual(sidecars[0]);
    expect(sidecars[2]).toEqual(sidecars[0]);
  });

  it('writes into a configured folder, file names free of anything a DICOM value could steer', async () => {
    const folder = path.join(root, 'nifti-folder');
    const hostile = { ...stepInputs(pet)[0], attributes: { ...stepInputs(pet)[0].attributes, PatientID: '../../etc/x' } };
    const inputs = [hostile, ...stepInputs(pet).slice(1)];
    const { ctx, effects } = createStepContext(seed('folder', inputs), new AbortController().signal, () => {});
    await plugin.run(ctx, options({ folder, fileName: '{PatientID}_{SeriesNumber}', sidecar: false }));
    expect(effects.outputs.map((o) => o.path)).toEqual([path.join(folder, 'etc_x_7.nii.gz')]);
    expect(fs.readdirSync(folder)).toEqual(['etc_x_7.nii.gz']);
  });

  it('fails on a series that is not a volume, or skips it with a warning when asked', async () => {
    const inputs = [...stepInputs(ct).filter((_, i) => i !== 2), ...stepInputs(pet)];
    const failing = createStepContext(seed('fail', inputs), new AbortController().signal, () => {});
    const error = await Promise.resolve(plugin.run(failing.ctx, options({}))).catch((err: unknown) => err);
    expect(isDfError(error, 'DF_ERR_VOLUME_INCONSISTENT'), String(error)).toBe(true);

    const skipping = createStepContext(seed('skip', inputs), new AbortController().signal, () => {});
    await plugin.run(
      skipping.ctx,
      options({ onInconsistent: 'skip', gzip: false, sidecar: false, fileName: '{PatientID}_{SeriesNumber}' }),
    );
    expect(skipping.effects.outputs.map((o) => path.basename(o.path!))).toEqual([`${pet.patientId}_7.nii`]);
    expect(skipping.effects.log.find((l) => l.level === 'warn')?.message).toContain('slice(s) missing');
  });

  it('runs in the worker pool, decoding a compressed series there', async () => {
    const rle = await compressSeries(ct, 'rle', path.join(root, 'ct-rle'));
    const pool = createStepPool({ threads: 1 });
    const { port1, port2 } = new MessageChannel();
    try {
      const result = await pool.run(
        {
          moduleUrl: registered.moduleUrl,
          pluginName: 'convert-nifti',
          pluginVersion: '1.0.0',
          options: options({ sidecar: false }),
          seed: seed('worker', stepInputs(rle)),
          port: port2,
        },
        { signal: new AbortController().signal, transferList: [port2] },
      );
      expect(result.failure).toBeUndefined();
      expect(result.outputs.map((o: { path?: string }) => path.basename(o.path!))).toEqual(['CT_2_Chest_abd_2.5.nii.gz']);
    } finally {
      port1.close();
      await pool.destroy();
    }
  });

  it('the README’s pipeline loads, and a bad option is refused with its pointer', () => {
    const registry = new PluginRegistry();
    registry.register(plugin, registered.moduleUrl);
    const readme = fs.readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    const snippet = /## Pipeline snippet[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)![1];
    const loaded = loadPipeline(snippet, 'nifti.json', registry, { databases: ['Import'] });
    expect(loaded.problems).toEqual([]);
    const bad = JSON.stringify({
      name: 'nifti',
      trigger: { on: 'series' },
      steps: [{ plugin: 'convert-nifti', options: { onInconsistent: 'ignore' } }],
    });
    const { problems } = loadPipeline(bad, 'nifti.json', registry, { databases: ['Import'] });
    expect(problems.map((p) => p.pointer)).toEqual(['/steps/0/options/onInconsistent']);
  });
});
