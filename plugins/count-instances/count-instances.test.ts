import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStepContext, type StepContextSeed } from '../../core/jobs/step-context.ts';
import { loadPipeline } from '../../core/pipeline/load.ts';
import type { StepInput } from '../../core/plugin.ts';
import { PluginRegistry, type RegisteredPlugin } from '../../core/plugin-registry.ts';
import { ctSeries, mrSeries, type BuiltSeries } from '../../test/fixtures/builder.ts';
import { createStepPool } from '../../workers/pool.ts';
import plugin from './index.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-count-instances-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let registered: RegisteredPlugin;
let ct: BuiltSeries;
let mr: BuiltSeries;
let inputs: StepInput[];

/** The inputs a job would get: one per arrival, here a CT series, an MR series and a CT slice sent twice. */
function stepInputs(series: BuiltSeries, description: string): StepInput[] {
  return series.files.map((file, i) => ({
    arrivalId: `${series.modality}-${i}`,
    objectId: `object-${series.modality}-${i}`,
    path: file,
    sopClassUid: series.sopClassUid,
    sopInstanceUid: series.sopInstanceUids[i],
    seriesInstanceUid: series.seriesInstanceUid,
    studyInstanceUid: series.studyInstanceUid,
    attributes: { Modality: series.modality, SeriesDescription: description, SeriesNumber: String(series.seriesNumber) },
    source: 'network',
    callingAeTitle: 'MODALITY',
    receivedAt: new Date().toISOString(),
  }));
}

beforeAll(async () => {
  const registry = new PluginRegistry();
  // The engine's own registration checks (name, version, kinds, options schema) must pass.
  registry.register(plugin, new URL('./index.ts', import.meta.url).href);
  registered = registry.resolve('count-instances@1')!;
  ct = await ctSeries(path.join(root, 'ct'), { slices: 3, rows: 16, cols: 16, seriesNumber: 2, seriesDescription: 'Axial "thin"' });
  mr = await mrSeries(path.join(root, 'mr'), {
    slices: 2,
    rows: 16,
    cols: 16,
    seriesNumber: 5,
    studyUid: ct.studyInstanceUid,
    seriesDescription: 't2',
  });
  const again = { ...stepInputs(ct, 'Axial "thin"')[0], arrivalId: 'CT-again', objectId: 'object-CT-again' };
  inputs = [...stepInputs(ct, 'Axial "thin"'), ...stepInputs(mr, 't2'), again];
});

function seed(name: string): StepContextSeed {
  const jobDir = path.join(root, 'jobs', name);
  return {
    job: {
      id: name,
      pipeline: 'count',
      pipelineVersion: '0123456789abcdef',
      database: 'default',
      attempt: 1,
      trigger: { on: 'study', uid: ct.studyInstanceUid, callingAeTitles: ['MODALITY'], peerAddresses: [] },
    },
    node: { name: 'test-node' },
    step: { id: 'count-instances', index: 0 },
    inputs,
    previousOutputs: [],
    scratchDir: path.join(jobDir, 'scratch'),
    outputDir: path.join(jobDir, 'outputs'),
  };
}

/** Options as a pipeline would pass them: checked against the plugin's schema, defaults filled. */
function options(given: Record<string, unknown>): { table: string; csv: boolean } {
  const o = structuredClone(given);
  expect(registered.validateOptions(o), JSON.stringify(registered.validateOptions.errors)).toBe(true);
  return o as { table: string; csv: boolean };
}

const bytes = (s: BuiltSeries) => s.files.reduce((sum, f) => sum + fs.statSync(f).size, 0);

function expectedRows() {
  return [
    { series: ct, description: 'Axial "thin"', arrivals: 4 },
    { series: mr, description: 't2', arrivals: 2 },
  ]
    .map(({ series, description, arrivals }) => ({
      studyInstanceUid: series.studyInstanceUid,
      seriesInstanceUid: series.seriesInstanceUid,
      seriesNumber: String(series.seriesNumber),
      modality: series.modality,
      seriesDescription: description,
      instances: series.files.length,
      arrivals,
      bytes: bytes(series),
    }))
    .sort((a, b) => a.seriesInstanceUid.localeCompare(b.seriesInstanceUid));
}

describe('count-instances', () => {
  it('emits one row per series, counting distinct instances and every arrival', async () => {
    const progress: number[] = [];
    const { ctx, effects } = createStepContext(seed('table'), new AbortController().signal, (f) => progress.push(f));
    await plugin.run(ctx, options({}));
    expect(effects.outputs).toEqual([
      { kind: 'table', name: 'instances-per-series', rows: expectedRows(), description: 'Instances per series' },
    ]);
    expect(effects.log.map((l) => l.message)).toEqual(['6 input(s) in 2 series']);
    expect(progress.at(-1)).toBe(1);
    // Nothing written when no CSV is asked for.
    expect(fs.existsSync(seed('table').outputDir)).toBe(false);
  });

  it('writes the CSV file in the output directory, the same on a second attempt', async () => {
    const opts = options({ table: 'series-counts', csv: true });
    const run = async () => {
      const { ctx, effects } = createStepContext(seed('csv'), new AbortController().signal, () => {});
      await plugin.run(ctx, opts);
      return effects.outputs;
    };
    const first = await run();
    const file = path.join(seed('csv').outputDir, 'series-counts.csv');
    expect(first.map((o) => [o.kind, o.name ?? o.path])).toEqual([
      ['table', 'series-counts'],
      ['file', file],
    ]);
    const text = fs.readFileSync(file, 'utf8');
    const [header, ...lines] = text.trimEnd().split('\r\n');
    expect(header).toBe('studyInstanceUid,seriesInstanceUid,seriesNumber,modality,seriesDescription,instances,arrivals,bytes');
    const ctLine = lines.find((l) => l.includes(ct.seriesInstanceUid))!;
    expect(ctLine).toBe(`"${ct.studyInstanceUid}","${ct.seriesInstanceUid}","2","CT","Axial ""thin""",3,4,${bytes(ct)}`);
    // Idempotent: a rerun after a crash overwrites, never appends.
    await run();
    expect(fs.readFileSync(file, 'utf8')).toBe(text);
  });

  it('runs in the worker pool as the engine runs it', async () => {
    const pool = createStepPool({ threads: 1 });
    const { port1, port2 } = new MessageChannel();
    // Messages from the worker arrive on their own schedule, maybe after the task's result:
    // wait for the progress report itself rather than look once the task ended.
    const progressed = new Promise<void>((resolve) => port1.on('message', (m: { type: string }) => m.type === 'progress' && resolve()));
    try {
      const result = await pool.run(
        {
          moduleUrl: registered.moduleUrl,
          pluginName: 'count-instances',
          pluginVersion: '1.0.0',
          options: options({}),
          seed: seed('worker'),
          port: port2,
        },
        { signal: new AbortController().signal, transferList: [port2] },
      );
      expect(result.failure).toBeUndefined();
      expect(result.outputs).toEqual([
        { kind: 'table', name: 'instances-per-series', rows: expectedRows(), description: 'Instances per series' },
      ]);
      await progressed;
    } finally {
      port1.close();
      await pool.destroy();
    }
  });

  it('a pipeline with a bad table name is refused when it loads, with the option’s pointer', () => {
    const registry = new PluginRegistry();
    registry.register(plugin, registered.moduleUrl);
    const text = JSON.stringify(
      { name: 'count', trigger: { on: 'series' }, steps: [{ plugin: 'count-instances', options: { table: 'Per Series' } }] },
      null,
      2,
    );
    const { pipeline, problems } = loadPipeline(text, 'count.json', registry, { databases: ['Import'] });
    expect(pipeline).toBeUndefined();
    expect(problems.map((p) => [p.pointer, p.message])).toEqual([['/steps/0/options/table', 'must match pattern "^[a-z0-9][a-z0-9-]*$"']]);
  });
});
