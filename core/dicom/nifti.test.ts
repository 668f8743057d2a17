// The step's writer (planVolume + writeSeriesNifti: stored values straight from the files) and
// the volume writer (loadVolume + writeNifti) give the same file for every kind of series, on
// the direct path and on the paths that decode a volume first. (Equality with dcm2niix is
// test/integration/nifti-dcm2niix.test.ts.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { mrSeries, petSeries } from '../../test/fixtures/builder.ts';
import { compressSeries, enhancedMrSeries } from '../../test/fixtures/volumes.ts';
import { writeNifti, writeSeriesNifti } from './nifti.ts';
import { loadVolume, planVolume } from './volume.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-nifti-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function bothWriters(name: string, files: string[], gzip = false): Promise<{ datatype: string; bytes: Buffer }> {
  const ext = gzip ? '.nii.gz' : '.nii';
  const step = path.join(root, `${name}-step${ext}`);
  const volume = path.join(root, `${name}-volume${ext}`);
  const { datatype } = await writeSeriesNifti(planVolume([...files].reverse()), step);
  await writeNifti(await loadVolume(files), volume);
  const read = (file: string) => (gzip ? gunzipSync(fs.readFileSync(file)) : fs.readFileSync(file));
  const bytes = read(step);
  expect(bytes.equals(read(volume)), `${name}: the two writers differ`).toBe(true);
  expect(fs.readdirSync(root).some((f) => f.endsWith('.partial'))).toBe(false);
  return { datatype, bytes };
}

describe('writeSeriesNifti', () => {
  it('writes what writeNifti writes: int16 with a common rescale, float32 with per-slice slopes, 4D', async () => {
    const mr = await mrSeries(path.join(root, 'mr'), { slices: 5, rows: 12, cols: 10 });
    expect((await bothWriters('mr', mr.files)).datatype).toBe('int16');
    const pet = await petSeries(path.join(root, 'pet'), { slices: 4, rows: 8, cols: 8, frameDurationsSec: [30, 60, 120] });
    const written = await bothWriters('pet', pet.files, true);
    expect(written.datatype).toBe('float32');
    expect(written.bytes.readInt16LE(40)).toBe(4); // dim[0]: 4D
  });

  it('reads the planes of an enhanced multi-frame object and of a compressed series', async () => {
    const enhanced = await enhancedMrSeries(path.join(root, 'enhanced', 'MR.dcm'));
    expect((await bothWriters('enhanced', [enhanced.file])).datatype).toBe('int16');
    const mr = await mrSeries(path.join(root, 'mr-src'), { slices: 3, rows: 16, cols: 16 });
    await bothWriters('rle', (await compressSeries(mr, 'rle', path.join(root, 'mr-rle'))).files);
  });

  it('decodes a volume first where the layout or the data type needs it: a 3D MR, unsigned data using all 16 bits', async () => {
    const sagittal = await mrSeries(path.join(root, 'mr-3d'), {
      slices: 4,
      rows: 10,
      cols: 12,
      extra: (index) => ({
        MRAcquisitionType: '3D',
        ImageOrientationPatient: [0, 1, 0, 0, 0, -1],
        ImagePositionPatient: [index * 2, -30, 40],
      }),
    });
    const { bytes } = await bothWriters('mr-3d', sagittal.files);
    // Turned to the orientation nearest RAS: 4 sagittal slices become the x axis.
    expect([bytes.readInt16LE(42), bytes.readInt16LE(44), bytes.readInt16LE(46)]).toEqual([4, 12, 10]);
    const full = await mrSeries(path.join(root, 'mr-16'), { slices: 3, rows: 8, cols: 8, extra: { BitsStored: 16, HighBit: 15 } });
    expect((await bothWriters('mr-16', full.files)).datatype).toBe('int16');
  });
});
