import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStepContext, type StepContextSeed } from '../../core/jobs/step-context.ts';
import { loadPipeline } from '../../core/pipeline/load.ts';
import type { StepInput } from '../../core/plugin.ts';
import { PluginRegistry, type RegisteredPlugin } from '../../core/plugin-registry.ts';
import { compress, newUid, SopClass, writePart10 } from '../../test/fixtures/builder.ts';
import { greyImage, knownPalette, paletteColourImage } from '../../test/fixtures/display.ts';
import { createStepPool } from '../../workers/pool.ts';
import plugin, { type ImageRow } from './index.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-convert-image-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let registered: RegisteredPlugin;
// Stored values with RescaleIntercept −1024 (HU −160, 0, 40, 140, 240, 241, −1024, 3071) and window 40/400.
const ctStored = [864, 1024, 1064, 1164, 1264, 1265, 0, 4095];
const ctGrey = [0, 102, 128, 192, 255, 255, 0, 255];
const files: Record<string, string> = {};
const uids: Record<string, string> = {};

function inputOf(name: string, sopInstanceUid = uids[name]): StepInput {
  return {
    arrivalId: `arrival-${name}`,
    objectId: `object-${name}`,
    path: files[name],
    sopClassUid: SopClass.SecondaryCaptureImageStorage,
    sopInstanceUid,
    seriesInstanceUid: '1.2.3',
    studyInstanceUid: '1.2',
    attributes: { Modality: 'CT', SeriesNumber: '3', SeriesDescription: 'known values' },
    source: 'network',
    receivedAt: new Date().toISOString(),
  };
}

beforeAll(async () => {
  const registry = new PluginRegistry();
  registry.register(plugin, new URL('./index.ts', import.meta.url).href);
  registered = registry.resolve('convert-image@1')!;
  const grey = (name: string, extra: Partial<Parameters<typeof greyImage>[1]> = {}) => {
    uids[name] = newUid();
    return greyImage(path.join(root, 'in', `${name}.dcm`), {
      rows: 2,
      cols: 4,
      frames: [ctStored],
      bitsStored: 12,
      rescaleSlope: 1,
      rescaleIntercept: -1024,
      window: { center: 40, width: 400 },
      extra: { SOPInstanceUID: uids[name] },
      ...extra,
    });
  };
  files.ct = await grey('ct');
  files.mono1 = await grey('mono1', { photometric: 'MONOCHROME1' });
  files.frames = await grey('frames', { frames: [ctStored, ctStored.map((v) => v + 100), ctStored.map((v) => v + 200)] });
  files.palette = await paletteColourImage(path.join(root, 'in', 'palette.dcm'), 1, 4, [0, 1, 128, 255]);
  uids.palette = 'palette-uid-from-the-test';
  files.ctJpegLs = (await compress(files.ct, 'jpeg-ls', path.join(root, 'in', 'ct-jls.dcm'))).file;
  uids.ctJpegLs = uids.ct;
  // A structured report: no pixels.
  uids.sr = newUid();
  files.sr = path.join(root, 'in', 'sr.dcm');
  await writePart10(files.sr, { SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.11', SOPInstanceUID: uids.sr, Modality: 'SR', PatientID: 'X' });
});

function seed(name: string, inputs: StepInput[]): StepContextSeed {
  const jobDir = path.join(root, 'jobs', name);
  return {
    job: {
      id: name,
      pipeline: 'images',
      pipelineVersion: '0123456789abcdef',
      database: 'default',
      attempt: 1,
      trigger: { on: 'series', callingAeTitles: [], peerAddresses: [] },
    },
    node: { name: 'test-node' },
    step: { id: 'convert-image', index: 0 },
    inputs,
    previousOutputs: [],
    scratchDir: path.join(jobDir, 'scratch'),
    outputDir: path.join(jobDir, 'outputs'),
  };
}

function options(given: Record<string, unknown>): any {
  const o = structuredClone(given);
  expect(registered.validateOptions(o), JSON.stringify(registered.validateOptions.errors)).toBe(true);
  return o;
}

async function run(name: string, inputs: StepInput[], given: Record<string, unknown>) {
  const { ctx, effects } = createStepContext(seed(name, inputs), new AbortController().signal, () => {});
  await plugin.run(ctx, options(given));
  const table = effects.outputs.find((o) => o.kind === 'table')!;
  return { effects, rows: table.rows as ImageRow[], outputDir: seed(name, inputs).outputDir };
}

/** The file's samples as stored: sharp would turn a grey file into sRGB unless told to keep it grey. */
const rawOf = async (file: string, depth?: 'ushort') => {
  const { channels } = await sharp(file).metadata();
  const image = channels === 1 ? sharp(file).toColourspace(depth ? 'grey16' : 'b-w') : sharp(file);
  const { data, info } = await image.raw(depth ? { depth } : undefined).toBuffer({ resolveWithObject: true });
  return { values: depth ? [...new Uint16Array(data.buffer, data.byteOffset, data.length / 2)] : [...data], info };
};

describe('convert-image', () => {
  it('writes PNG files whose grey levels are the display pipeline’s (window, MONOCHROME1, palette colour)', async () => {
    const { effects, rows, outputDir } = await run('png', [inputOf('ct'), inputOf('mono1'), inputOf('palette')], { format: 'png' });
    expect(rows.map((r) => path.basename(r.file))).toEqual([
      `${uids.ct}.png`,
      `${uids.mono1}.png`,
      expect.stringMatching(/^[0-9a-f]{32}\.png$/),
    ]);
    expect(rows.every((r) => path.dirname(r.file) === outputDir)).toBe(true);
    expect(effects.outputs.filter((o) => o.kind === 'file').map((o) => o.path)).toEqual(rows.map((r) => r.file));
    const ct = await rawOf(rows[0].file);
    expect(ct.info).toMatchObject({ width: 4, height: 2, channels: 1 });
    expect(ct.values).toEqual(ctGrey);
    expect((await rawOf(rows[1].file)).values).toEqual(ctGrey.map((v) => 255 - v));
    const palette = await rawOf(rows[2].file);
    expect(palette.info.channels).toBe(3);
    expect(palette.values).toEqual([0, 1, 128, 255].flatMap(knownPalette));
    expect(rows[0]).toMatchObject({
      sopInstanceUid: uids.ct,
      frame: 1,
      numberOfFrames: 1,
      width: 4,
      height: 2,
      bitDepth: 8,
      windowCenter: 40,
      windowWidth: 400,
      windowSource: 'object',
    });
    expect(rows[2]).toMatchObject({ windowCenter: null, windowSource: null });
  });

  it('writes one-channel JPEGs by default and passes over objects without pixels', async () => {
    const { effects, rows } = await run('jpeg', [inputOf('ct'), inputOf('sr')], {});
    expect(rows).toHaveLength(1);
    const bytes = fs.readFileSync(rows[0].file);
    expect(bytes.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
    expect(await sharp(bytes).metadata()).toMatchObject({ format: 'jpeg', width: 4, height: 2, channels: 1 });
    expect(effects.log.map((l) => l.message)).toContain(`${uids.sr}: not an image, skipped`);
  });

  it('writes 16-bit PNG for monochrome images when asked, and applies a preset window', async () => {
    const { rows } = await run('png16', [inputOf('ct')], { format: 'png', pngBitDepth: 16, window: 'lung' });
    expect((await sharp(rows[0].file).metadata()).depth).toBe('ushort');
    // Lung −600/1500 over 0…65535: ((HU + 600.5)/1499 + 0.5)·65535 for HU −160 and 0.
    const { values } = await rawOf(rows[0].file, 'ushort');
    expect(values.slice(0, 2)).toEqual([Math.round((440.5 / 1499 + 0.5) * 65535), Math.round((600.5 / 1499 + 0.5) * 65535)]);
    expect(rows[0]).toMatchObject({ bitDepth: 16, windowCenter: -600, windowWidth: 1500, windowSource: 'lung' });
  });

  it('writes the middle frame of a multi-frame object, or every frame', async () => {
    const middle = await run('middle', [inputOf('frames')], { format: 'png', frames: 'middle' });
    expect(middle.rows.map((r) => [path.basename(r.file), r.frame, r.numberOfFrames])).toEqual([[`${uids.frames}-F0002.png`, 2, 3]]);
    // Frame 2 holds stored values + 100: HU −60 → ((−60−39.5)/399+0.5)·255 = 63.9.
    expect((await rawOf(middle.rows[0].file)).values[0]).toBe(64);
    const all = await run('all', [inputOf('frames')], { format: 'png' });
    expect(all.rows.map((r) => r.frame)).toEqual([1, 2, 3]);
  });

  it('writes into a named folder with safe names, whatever the SOP Instance UID holds', async () => {
    const folder = path.join(root, 'export', 'jpeg');
    const { rows } = await run('folder', [inputOf('ct', '../../../etc/passwd'), inputOf('mono1')], { folder });
    expect(rows.map((r) => path.dirname(r.file))).toEqual([folder, folder]);
    expect(path.basename(rows[0].file)).toMatch(/^[0-9a-f]{32}\.jpg$/);
    expect(fs.readdirSync(folder).sort()).toEqual([path.basename(rows[0].file), `${uids.mono1}.jpg`].sort());
    // A second attempt overwrites the same files.
    await run('folder', [inputOf('ct', '../../../etc/passwd'), inputOf('mono1')], { folder });
    expect(fs.readdirSync(folder)).toHaveLength(2);
  });

  it('runs in the worker pool, decoding JPEG-LS there to the same pixels as the uncompressed original', async () => {
    const pool = createStepPool({ threads: 1 });
    const { port1, port2 } = new MessageChannel();
    try {
      const result = await pool.run(
        {
          moduleUrl: registered.moduleUrl,
          pluginName: 'convert-image',
          pluginVersion: '1.0.0',
          options: options({ format: 'png' }),
          seed: seed('worker', [inputOf('ctJpegLs')]),
          port: port2,
        },
        { signal: new AbortController().signal, transferList: [port2] },
      );
      expect(result.failure).toBeUndefined();
      const file = result.outputs.find((o: { kind: string }) => o.kind === 'file')!.path!;
      expect((await rawOf(file)).values).toEqual(ctGrey);
    } finally {
      port1.close();
      await pool.destroy();
    }
  });

  it('a pipeline with an unknown window preset is refused when it loads', () => {
    const registry = new PluginRegistry();
    registry.register(plugin, registered.moduleUrl);
    const text = JSON.stringify(
      { name: 'jpeg', trigger: { on: 'series' }, steps: [{ plugin: 'convert-image', options: { window: 'lungs' } }] },
      null,
      2,
    );
    const { pipeline, problems } = loadPipeline(text, 'jpeg.json', registry, { databases: ['Import'] });
    expect(pipeline).toBeUndefined();
    expect(problems.map((p) => p.pointer)).toContain('/steps/0/options/window');
  });
});
