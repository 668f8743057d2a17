import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import dicomParser from 'dicom-parser';
import { ctSeries, mrSeries, petSeries } from '../../test/fixtures/builder.ts';
import { voiPetSeries } from '../../test/fixtures/voi.ts';
import { compressSeries, enhancedMrSeries, gantryTiltCtSeries, obliqueMrSeries } from '../../test/fixtures/volumes.ts';
import { isDfError } from '../errors.ts';
import { frameGrid, loadVolume, patientToVoxel, voxelToPatient } from './volume.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-volume-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** The stored pixels of a native file, as the fixture wrote them. */
function storedPixels(file: string): Int16Array | Uint16Array {
  const ds = dicomParser.parseDicom(fs.readFileSync(file));
  const el = ds.elements.x7fe00010;
  const bytes = new Uint8Array(ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length));
  return ds.uint16('x00280103') === 1 ? new Int16Array(bytes.buffer) : new Uint16Array(bytes.buffer);
}

async function rejection(promise: Promise<unknown>): Promise<{ reason: unknown; message: string }> {
  try {
    await promise;
  } catch (err) {
    expect(isDfError(err, 'DF_ERR_VOLUME_INCONSISTENT'), String(err)).toBe(true);
    return { reason: (err as { details?: { reason?: unknown } }).details?.reason, message: (err as Error).message };
  }
  throw new Error('expected loadVolume to fail');
}

describe('loadVolume', () => {
  it('reads a CT series in shuffled order: slices sorted along the normal, HU rescaled, LPS affine', async () => {
    const ct = await ctSeries(path.join(root, 'ct'), { slices: 5, rows: 24, cols: 20, pixelSpacingMm: [0.8, 0.7], sliceThicknessMm: 2 });
    const shuffled = [3, 0, 4, 1, 2].map((i) => ct.files[i]);
    const volume = await loadVolume(shuffled);
    expect(volume.dims).toEqual([20, 24, 5]);
    expect(volume.spacingMm).toEqual([0.7, 0.8, 2]);
    const origin = ct.instances[0].imagePositionPatient!;
    expect(Array.from(volume.affine)).toEqual([0.7, 0, 0, origin[0], 0, 0.8, 0, origin[1], 0, 0, 2, origin[2], 0, 0, 0, 1]);
    expect(volume.sources[0].map((s) => s.path)).toEqual(ct.files);
    expect(volume.varyingRescale).toBe(false);
    expect(volume.rescale).toEqual({ slope: 1, intercept: -1024 });
    expect(volume.units).toBe('HU');
    expect(volume.timing).toEqual([]);
    const stored = storedPixels(ct.files[3]);
    const plane = 20 * 24;
    expect(Array.from(volume.frames[0].subarray(3 * plane, 4 * plane))).toEqual(Array.from(stored, (v) => v - 1024));
    // The affine and its inverse agree on a voxel's place.
    expect(voxelToPatient(volume, 2, 3, 4)).toEqual([origin[0] + 1.4, origin[1] + 2.4000000000000004, origin[2] + 8]);
    expect(patientToVoxel(volume, ...voxelToPatient(volume, 2, 3, 4)).map((v) => Number(v.toFixed(9)))).toEqual([2, 3, 4]);
    expect(frameGrid(volume, 0).data).toBe(volume.frames[0]);
  });

  it('reads a dynamic PET series as frames with start times and durations, float values per slice slope', async () => {
    const pet = await petSeries(path.join(root, 'pet'), { slices: 4, rows: 16, cols: 16, frameDurationsSec: [10, 10, 30] });
    const volume = await loadVolume([...pet.files].reverse());
    expect(volume.frames).toHaveLength(3);
    expect(volume.timing).toEqual([
      { startMs: 0, durationMs: 10_000 },
      { startMs: 10_000, durationMs: 10_000 },
      { startMs: 20_000, durationMs: 30_000 },
    ]);
    expect(volume.varyingRescale).toBe(true);
    expect(volume.rescale).toBeUndefined();
    expect(volume.units).toBe('BQML');
    expect(volume.series.pet).toMatchObject({
      decayCorrection: 'START',
      radionuclideHalfLifeSec: 6586.2,
      injectedDoseBq: 370e6,
      injectionStartSec: 0,
      frameReferenceTimesMs: [5000, 15000, 35000],
    });
    const instance = pet.instances[2 * 4 + 1]; // frame 3, second slice
    const stored = storedPixels(instance.file);
    const values = volume.frames[2].subarray(256, 512);
    stored.forEach((v, i) => expect(values[i]).toBe(Math.fround(v * instance.rescaleSlope!)));
    expect(volume.sources[2][1]).toEqual({ sopInstanceUid: instance.sopInstanceUid, path: instance.file });
  });

  it('takes PET frame starts from FrameReferenceTime and ActualFrameDuration when AcquisitionTime holds the series start in every frame', async () => {
    const dir = path.join(root, 'pet-acq-time');
    const series = await voiPetSeries(dir);
    const volume = await loadVolume(series.files);
    expect(volume.timing.map((t) => t.startMs)).toEqual([0, 30000, 60000, 120000]);
    expect(volume.timing.map((t) => t.durationMs)).toEqual([30000, 30000, 60000, 120000]);
  });

  it('decodes compressed series (JPEG lossless, JPEG-LS, RLE, JPEG 2000) to the same voxels', async () => {
    const mr = await mrSeries(path.join(root, 'mr'), { slices: 3, rows: 16, cols: 16 });
    const native = await loadVolume(mr.files);
    for (const kind of ['jpeg-lossless', 'jpeg-ls', 'rle', 'jpeg2000'] as const) {
      const compressed = await compressSeries(mr, kind, path.join(root, `mr-${kind}`));
      const volume = await loadVolume(compressed.files);
      expect(Array.from(volume.frames[0]), kind).toEqual(Array.from(native.frames[0]));
    }
  });

  it('reads an oblique series with the plane normal as the slice axis', async () => {
    const mr = await obliqueMrSeries(path.join(root, 'oblique'), 20, { slices: 4 });
    const volume = await loadVolume(mr.files);
    const a = volume.affine;
    expect(volume.spacingMm.map((v) => Number(v.toFixed(4)))).toEqual([2, 2, 4]);
    expect([a[2], a[6], a[10]].map((v) => Number(v.toFixed(3)))).toEqual([
      0,
      Number((-4 * Math.sin(Math.PI / 9)).toFixed(3)),
      Number((4 * Math.cos(Math.PI / 9)).toFixed(3)),
    ]);
  });

  it('reads an enhanced multi-frame object: frames by temporal position, planes by position, shared rescale', async () => {
    const mr = await enhancedMrSeries(path.join(root, 'enhanced', 'MR.dcm'));
    const volume = await loadVolume([mr.file]);
    expect(volume.dims).toEqual([5, 4, 3]);
    expect(Array.from(volume.affine)).toEqual([1.5, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1]);
    expect(volume.timing).toEqual([
      { startMs: 0, durationMs: 60_000 },
      { startMs: 60_000, durationMs: 60_000 },
    ]);
    // Slices were stored top down: the lowest plane of time 1 is stored frame 3.
    expect(volume.sources.map((f) => f.map((s) => s.frameNumber))).toEqual([
      [3, 2, 1],
      [6, 5, 4],
    ]);
    expect([volume.frames[0][0], volume.frames[1][7]]).toEqual([200 * 2 - 5, (500 + 7) * 2 - 5]);
  });

  it('refuses a series with a slice missing, naming where', async () => {
    const ct = await ctSeries(path.join(root, 'missing'), { slices: 6, rows: 8, cols: 8 });
    const { reason, message } = await rejection(loadVolume(ct.files.filter((_, i) => i !== 3)));
    expect(reason).toBe('missing-slice');
    expect(message).toContain('1 slice(s) missing between');
    expect(message).toContain(path.basename(ct.files[2]));
  });

  it('refuses a dynamic series whose frames hold different numbers of slices', async () => {
    const pet = await petSeries(path.join(root, 'pet-missing'), { slices: 3, rows: 8, cols: 8, frameDurationsSec: [10, 10] });
    const { reason } = await rejection(loadVolume(pet.files.slice(0, -1)));
    expect(reason).toBe('missing-slice');
  });

  it('refuses mixed orientations', async () => {
    const ct = await ctSeries(path.join(root, 'mixed'), {
      slices: 4,
      rows: 8,
      cols: 8,
      extra: (i) => (i === 2 ? { ImageOrientationPatient: [1, 0, 0, 0, 0.98480775, 0.17364818] } : {}),
    });
    const { reason, message } = await rejection(loadVolume(ct.files));
    expect(reason).toBe('mixed-orientations');
    expect(message).toContain(path.basename(ct.files[2]));
  });

  it('refuses a gantry-tilted series, giving the angle', async () => {
    const ct = await gantryTiltCtSeries(path.join(root, 'tilt'), 12);
    const { reason, message } = await rejection(loadVolume(ct.files));
    expect(reason).toBe('gantry-tilt');
    expect(message).toContain('12.00°');
  });

  it('refuses uneven spacing, two series at once and duplicate positions', async () => {
    const uneven = await ctSeries(path.join(root, 'uneven'), {
      slices: 4,
      rows: 8,
      cols: 8,
      extra: (i) => (i === 3 ? { ImagePositionPatient: [-84, -84, 4.1] } : {}),
    });
    expect((await rejection(loadVolume(uneven.files))).reason).toBe('uneven-spacing');
    const other = await ctSeries(path.join(root, 'other'), { slices: 2, rows: 8, cols: 8, seriesNumber: 9 });
    expect((await rejection(loadVolume([...uneven.files, ...other.files]))).reason).toBe('mixed-series');
    expect((await loadVolume([...uneven.files, ...other.files], { seriesInstanceUid: other.seriesInstanceUid })).dims).toEqual([8, 8, 2]);
    const duplicate = await ctSeries(path.join(root, 'dup'), {
      slices: 3,
      rows: 8,
      cols: 8,
      extra: (i) => (i === 2 ? { ImagePositionPatient: [-157.5, -157.5, 0] } : {}),
    });
    expect((await rejection(loadVolume(duplicate.files))).reason).toBe('duplicate-slices');
  });
});
