import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import dcmjsImaging from 'dcmjs-imaging';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress, ctSeries, newUid, secondaryCaptureRgb, SopClass, writePart10 } from '../../test/fixtures/builder.ts';
import { colourImage, greyImage, knownPalette, paletteColourImage } from '../../test/fixtures/display.ts';
import { applyWindow, readDisplayImage, renderFrame, type RenderOptions } from './render.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'df-render-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const render = (file: string, options: RenderOptions = {}, frame = 0) =>
  renderFrame(readDisplayImage(fs.readFileSync(file)), frame, options);
const grey = async (file: string, options: RenderOptions = {}, frame = 0) => [...(await render(file, options, frame)).pixels];

// A CT-like ramp: stored values with RescaleIntercept −1024, i.e. HU −160, 0, 40, 140, 240, 241, −1024, 3071.
const ctStored = [864, 1024, 1064, 1164, 1264, 1265, 0, 4095];
const ct = (name: string, extra: Partial<Parameters<typeof greyImage>[1]> = {}) =>
  greyImage(path.join(tmp, `${name}.dcm`), {
    rows: 2,
    cols: 4,
    frames: [ctStored],
    bitsStored: 12,
    rescaleSlope: 1,
    rescaleIntercept: -1024,
    window: { center: 40, width: 400 },
    modality: 'CT',
    ...extra,
  });

describe('grayscale pipeline, by value', () => {
  it('applies rescale then the object’s window with the LINEAR function of PS3.3 C.11.2.1.2.1', async () => {
    // Window 40/400 spans HU (−160, 239]: −160 → 0; 0 → ((0−39.5)/399+0.5)·255 = 102.26; 40 → 127.82; 140 → 191.73.
    expect(await grey(await ct('mono2'))).toEqual([0, 102, 128, 192, 255, 255, 0, 255]);
  });

  it('MONOCHROME1 shows the same values inverted (minimum white)', async () => {
    expect(await grey(await ct('mono1', { photometric: 'MONOCHROME1' }))).toEqual([255, 153, 127, 63, 0, 0, 255, 0]);
  });

  it('a named preset and an explicit window replace the object’s', async () => {
    const file = await ct('presets');
    // lung −600/1500: HU −160 → ((−160+600.5)/1499+0.5)·255 = 202.43; HU 0 → 229.65.
    expect((await grey(file, { window: 'lung' })).slice(0, 2)).toEqual([202, 230]);
    // bone 400/1800: HU 0 → ((0−399.5)/1799+0.5)·255 = 70.87.
    expect((await grey(file, { window: 'bone' }))[1]).toBe(71);
    expect((await grey(file, { window: { center: 0, width: 2 } })).slice(0, 3)).toEqual([0, 255, 255]);
    expect((await render(file, { window: 'lung' })).window).toEqual({ center: -600, width: 1500, function: 'LINEAR', source: 'lung' });
  });

  it('min-max maps the darkest pixel to 0 and the brightest to 255; auto ignores the extreme 0.5 %', async () => {
    expect(await grey(await ct('minmax'), { window: 'min-max' })).toEqual([
      // HU range −1024…3071 over 4096 levels: (HU+1024)·255/4095.
      ...ctStored.map((s) => Math.round((s * 255) / 4095)),
    ]);
    const values = Array.from({ length: 1000 }, (_, i) => (i === 0 ? 0 : i === 999 ? 4000 : 1000 + i));
    const auto = await render(await greyImage(path.join(tmp, 'auto.dcm'), { rows: 10, cols: 100, frames: [values] }), { window: 'auto' });
    // The 0.5th and 99.5th percentiles are 1005 and 1994: the outliers 0 and 4000 do not stretch the window.
    expect(auto.window).toMatchObject({ center: (1005 + 1994 + 1) / 2, width: 1994 - 1005 + 1, source: 'auto' });
    expect(auto.pixels[5]).toBe(0);
    expect(auto.pixels[994]).toBe(255);
  });

  it('"object" without a window falls back to auto, and uses the VOI LUT Sequence when there is one', async () => {
    const noWindow = await greyImage(path.join(tmp, 'nowindow.dcm'), { rows: 1, cols: 3, frames: [[0, 50, 100]] });
    expect((await render(noWindow)).window?.source).toBe('auto');
    // VOI LUT: stored 10…13 → 0, 100, 200, 255 (8 bits), clamped outside its range.
    const voi = await greyImage(path.join(tmp, 'voilut.dcm'), {
      rows: 1,
      cols: 6,
      frames: [[0, 10, 11, 12, 13, 99]],
      voiLut: { first: 10, bits: 8, data: [0, 100, 200, 255] },
    });
    expect(await grey(voi)).toEqual([0, 0, 100, 200, 255, 255]);
    expect((await render(voi)).window).toBeUndefined();
  });

  it('applies a Modality LUT Sequence before the window', async () => {
    const file = await greyImage(path.join(tmp, 'modlut.dcm'), {
      rows: 1,
      cols: 4,
      frames: [[0, 1, 2, 3]],
      modalityLut: { first: 0, bits: 16, data: [0, 1000, 2000, 3000] },
      window: { center: 1500, width: 3001, function: 'LINEAR_EXACT' },
    });
    // LINEAR_EXACT: ((x − 1500)/3001 + 0.5)·255 for 0, 1000, 2000, 3000.
    expect(await grey(file)).toEqual([0, 85, 170, 255].map((_, i) => Math.round(((i * 1000 - 1500) / 3001 + 0.5) * 255)));
  });

  it('keeps fractional rescaled values (a PET slope): no truncation to integers', async () => {
    const file = await greyImage(path.join(tmp, 'slope.dcm'), {
      rows: 1,
      cols: 5,
      frames: [[0, 500, 1000, 1500, 2000]],
      rescaleSlope: 0.001,
      window: { center: 1, width: 2, function: 'LINEAR_EXACT' },
    });
    // 0, 0.5, 1, 1.5, 2 → ((x−1)/2+0.5)·255. Truncated to 0, 0, 1, 1, 2 they would give 0, 0, 128, 128, 255.
    expect(await grey(file)).toEqual([0, 64, 128, 191, 255]);
  });

  it('SIGMOID follows C.11.2.1.3.1', () => {
    expect(applyWindow(40, { center: 40, width: 400, function: 'SIGMOID', source: 'object' }, 255)).toBe(128);
    expect(applyWindow(240, { center: 40, width: 400, function: 'SIGMOID', source: 'object' }, 255)).toBe(
      Math.round(255 / (1 + Math.exp(-2))),
    );
  });

  it('renders 16 bits per sample for 16-bit PNG output', async () => {
    // ((HU−39.5)/399+0.5)·65535 for HU 0, 40, 140: 26279.7, 32849.6, 49274.4.
    expect((await grey(await ct('sixteen'), { bitDepth: 16 })).slice(0, 4)).toEqual([0, 26280, 32850, 49274]);
  });

  it('signed stored values are sign-extended from Bits Stored', async () => {
    // 12 bits stored, signed: 0xFFF is −1; written as 16-bit words with only the low 12 bits meaningful.
    const file = await greyImage(path.join(tmp, 'signed.dcm'), {
      rows: 1,
      cols: 3,
      frames: [[-2048, -1, 2047]],
      signed: true,
      bitsStored: 12,
      window: { center: 0, width: 4096, function: 'LINEAR_EXACT' },
    });
    // −1 → ((−1/4096)+0.5)·255 = 127.4; read as unsigned 4095 it would be 255.
    expect(await grey(file)).toEqual([0, 127, 255]);
  });

  it('renders each frame of a multi-frame object', async () => {
    const file = await greyImage(path.join(tmp, 'frames.dcm'), {
      rows: 1,
      cols: 2,
      frames: [
        [0, 10],
        [20, 30],
        [40, 50],
      ],
      window: { center: 25.5, width: 51 },
    });
    const image = readDisplayImage(fs.readFileSync(file));
    expect(image.numberOfFrames).toBe(3);
    expect(await Promise.all([0, 1, 2].map(async (f) => [...(await renderFrame(image, f)).pixels]))).toEqual([
      [0, 51],
      [102, 153],
      [204, 255],
    ]);
    // Compressed, each frame is its own fragment (or frames are found from the offset table).
    for (const kind of ['jpeg-ls', 'rle'] as const) {
      const compressed = readDisplayImage(fs.readFileSync((await compress(file, kind, path.join(tmp, `frames-${kind}.dcm`))).file));
      expect(await Promise.all([0, 1, 2].map(async (f) => [...(await renderFrame(compressed, f)).pixels]))).toEqual([
        [0, 51],
        [102, 153],
        [204, 255],
      ]);
    }
  });

  it('takes rescale and window per frame from the functional groups of an enhanced multi-frame object', async () => {
    const file = await greyImage(path.join(tmp, 'enhanced.dcm'), {
      rows: 1,
      cols: 2,
      frames: [
        [0, 100],
        [0, 100],
      ],
      extra: {
        SharedFunctionalGroupsSequence: [
          { PixelValueTransformationSequence: [{ RescaleIntercept: 0, RescaleSlope: 1, RescaleType: 'US' }] },
        ],
        PerFrameFunctionalGroupsSequence: [
          { FrameVOILUTSequence: [{ WindowCenter: 50.5, WindowWidth: 101 }] },
          {
            PixelValueTransformationSequence: [{ RescaleIntercept: -100, RescaleSlope: 2, RescaleType: 'US' }],
            FrameVOILUTSequence: [{ WindowCenter: 0.5, WindowWidth: 201 }],
          },
        ],
      },
    });
    const image = readDisplayImage(fs.readFileSync(file));
    // Frame 1: 0 → 0, 100 → 255. Frame 2: values −100 and 100 in a window of −100…100.
    expect([...(await renderFrame(image, 0)).pixels]).toEqual([0, 255]);
    expect([...(await renderFrame(image, 1)).pixels]).toEqual([0, 255]);
    expect((await renderFrame(image, 1)).window).toMatchObject({ center: 0.5, width: 201 });
  });
});

describe('native layouts read here', () => {
  const header = (extra: Record<string, unknown>) => ({
    SOPClassUID: SopClass.SecondaryCaptureImageStorage,
    SOPInstanceUID: newUid(),
    Modality: 'OT',
    PixelRepresentation: 0,
    ...extra,
  });

  it('unpacks bit-packed frames (Bits Allocated 1), a frame starting inside a byte', async () => {
    // Frames [1,0,1,1,0,0,0,1,1,0] and [0,1,1,0,1,0,0,0,0,1], least significant bit first (PS3.5 8.1.1).
    const file = path.join(tmp, 'bits.dcm');
    await writePart10(
      file,
      header({
        NumberOfFrames: 2,
        SamplesPerPixel: 1,
        PhotometricInterpretation: 'MONOCHROME2',
        Rows: 1,
        Columns: 10,
        BitsAllocated: 1,
        BitsStored: 1,
        HighBit: 0,
        PixelData: new Uint8Array([0x8d, 0x59, 0x08]),
        _vrMap: { PixelData: 'OB' },
      }),
    );
    const image = readDisplayImage(fs.readFileSync(file));
    const frames = await Promise.all(
      [0, 1].map(async (f) => [...(await renderFrame(image, f, { window: 'min-max' })).pixels].map((v) => v / 255)),
    );
    expect(frames).toEqual([
      [1, 0, 1, 1, 0, 0, 0, 1, 1, 0],
      [0, 1, 1, 0, 1, 0, 0, 0, 0, 1],
    ]);
  });

  it('converts YBR_FULL_422 kept uncompressed (Y1 Y2 Cb Cr per pair of pixels)', async () => {
    const file = path.join(tmp, 'ybr422.dcm');
    await writePart10(
      file,
      header({
        SamplesPerPixel: 3,
        PhotometricInterpretation: 'YBR_FULL_422',
        PlanarConfiguration: 0,
        Rows: 1,
        Columns: 2,
        BitsAllocated: 8,
        BitsStored: 8,
        HighBit: 7,
        PixelData: new Uint8Array([76, 128, 85, 255]),
      }),
    );
    // (76, 85, 255) is red; (128, 85, 255) → R 306 (clipped), G 52.1, B 51.8.
    expect([...(await render(file)).pixels]).toEqual([254, 0, 0, 255, 52, 52]);
  });
});

describe('colour pipelines', () => {
  it('maps PALETTE COLOR through its red, green and blue LUTs (16-bit entries to 8 bits)', async () => {
    const values = [0, 1, 128, 255];
    const rgb = await render(await paletteColourImage(path.join(tmp, 'palette.dcm'), 1, 4, values));
    expect(rgb.channels).toBe(3);
    expect([...rgb.pixels]).toEqual(values.flatMap(knownPalette));
  });

  it('keeps RGB as it is, interleaved or planar', async () => {
    const triples: [number, number, number][] = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [10, 20, 30],
    ];
    for (const planar of [0, 1] as const) {
      expect([...(await render(await colourImage(path.join(tmp, `rgb${planar}.dcm`), 2, 2, triples, 'RGB', planar))).pixels]).toEqual(
        triples.flat(),
      );
    }
  });

  it('converts YBR_FULL to RGB (PS3.3 C.7.6.3.1.2)', async () => {
    // Pure red is (Y, Cb, Cr) = (76, 85, 255); mid grey is (128, 128, 128).
    const file = await colourImage(
      path.join(tmp, 'ybr.dcm'),
      1,
      2,
      [
        [76, 85, 255],
        [128, 128, 128],
      ],
      'YBR_FULL',
    );
    expect([...(await render(file)).pixels]).toEqual([254, 0, 0, 128, 128, 128]);
  });
});

describe('compressed transfer syntaxes render as the uncompressed original', () => {
  let ctFile: string;
  let scFile: string;
  beforeAll(async () => {
    ctFile = (await ctSeries(path.join(tmp, 'ct'), { slices: 1, rows: 64, cols: 64 })).files[0];
    scFile = (await secondaryCaptureRgb(path.join(tmp, 'sc'), { rows: 64, cols: 64 })).files[0];
  });

  for (const kind of ['jpeg-lossless', 'jpeg-ls', 'rle'] as const) {
    it(`CT, ${kind}: identical pixels`, async () => {
      const compressed = (await compress(ctFile, kind, path.join(tmp, `ct-${kind}.dcm`))).file;
      expect(readDisplayImage(fs.readFileSync(compressed)).transferSyntaxUid).not.toBe('1.2.840.10008.1.2.1');
      for (const window of ['object', 'lung', 'auto'] as const)
        expect((await render(compressed, { window })).pixels).toEqual((await render(ctFile, { window })).pixels);
    });
  }

  it('RGB, RLE: identical; JPEG baseline (lossy, stored as YBR_FULL_422): within a few levels', async () => {
    const rle = (await compress(scFile, 'rle', path.join(tmp, 'sc-rle.dcm'))).file;
    expect((await render(rle)).pixels).toEqual((await render(scFile)).pixels);
    const jpeg = (await compress(scFile, 'jpeg-baseline', path.join(tmp, 'sc-jpeg.dcm'))).file;
    expect(readDisplayImage(fs.readFileSync(jpeg)).photometricInterpretation).toBe('YBR_FULL_422');
    const a = (await render(scFile)).pixels;
    const b = (await render(jpeg)).pixels;
    let sum = 0;
    for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
    expect(sum / a.length).toBeLessThan(6);
  });

  it('agrees with dcmjs-imaging’s renderer on a CT slice with the object’s window (±1 level)', async () => {
    const bytes = fs.readFileSync(ctFile);
    const theirs = new Uint8Array(new dcmjsImaging.DicomImage(Uint8Array.prototype.slice.call(bytes).buffer).render().pixels);
    const ours = (await render(ctFile)).pixels;
    let worst = 0;
    for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - theirs[4 * i]));
    expect(worst).toBeLessThanOrEqual(1);
  });
});
