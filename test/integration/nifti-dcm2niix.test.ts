// dicomflow's NIfTI against dcm2niix's on the same generated series: both files read back with
// nifti-reader-js, the raw voxel arrays in the same order and equal within float rounding, same
// data type, sform and qform within 1e-3 mm: the same layout, not only the same image in space.
// Both writers are checked: the step's (planVolume + writeSeriesNifti, files in shuffled order)
// and writeNifti of a loaded volume.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as niftiReader from 'nifti-reader-js';
import { afterAll, describe, expect, it } from 'vitest';
import { bidsSidecar, writeNifti, writeSeriesNifti } from '../../core/dicom/nifti.ts';
import { loadVolume, planVolume } from '../../core/dicom/volume.ts';
import { ctSeries, mrSeries, petSeries, type BuiltSeries } from '../fixtures/builder.ts';
import { compressSeries, obliqueMrSeries } from '../fixtures/volumes.ts';
import { hasTool } from '../helpers/dcmtk.ts';

const run = promisify(execFile);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-nifti-dcm2niix-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

interface ReadNifti {
  dims: number[];
  datatype: number;
  affine: number[][];
  pixdim: number[];
  /** quatern_b, c, d, qoffset_x, y, z and qfac (pixdim[0]). */
  qform: number[];
  values: Float64Array;
}

/** A .nii or .nii.gz read with nifti-reader-js, voxel values with scl_slope/scl_inter applied. */
function readNifti(file: string): ReadNifti {
  const bytes = fs.readFileSync(file);
  let data: ArrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  if (niftiReader.isCompressed(data)) data = niftiReader.decompress(data) as ArrayBuffer;
  expect(niftiReader.isNIFTI1(data)).toBe(true);
  const header = niftiReader.readHeader(data) as niftiReader.NIFTI1;
  const image = niftiReader.readImage(header, data);
  const typed = {
    2: () => new Uint8Array(image),
    4: () => new Int16Array(image),
    8: () => new Int32Array(image),
    16: () => new Float32Array(image),
    512: () => new Uint16Array(image),
    768: () => new Uint32Array(image),
  }[header.datatypeCode as 2 | 4 | 8 | 16 | 512 | 768]();
  const slope = header.scl_slope === 0 ? 1 : header.scl_slope;
  const values = Float64Array.from(typed, (v) => v * slope + header.scl_inter);
  const qform = [
    header.quatern_b,
    header.quatern_c,
    header.quatern_d,
    header.qoffset_x,
    header.qoffset_y,
    header.qoffset_z,
    header.pixDims[0],
  ];
  return {
    dims: header.dims.slice(0, header.dims[0] + 1),
    datatype: header.datatypeCode,
    affine: header.affine,
    pixdim: header.pixDims,
    qform,
    values,
  };
}

async function dcm2niix(series: BuiltSeries, out: string, gzip: boolean): Promise<{ nifti: string; sidecar: Record<string, unknown> }> {
  fs.mkdirSync(out, { recursive: true });
  await run('dcm2niix', ['-z', gzip ? 'y' : 'n', '-b', 'y', '-f', 'ref', '-o', out, series.dir], { timeout: 120_000 });
  const nifti = fs.readdirSync(out).filter((f) => /\.nii(\.gz)?$/.test(f));
  expect(nifti, `dcm2niix wrote ${nifti.join(', ')}`).toHaveLength(1);
  const sidecar = JSON.parse(fs.readFileSync(path.join(out, nifti[0].replace(/\.nii(\.gz)?$/, '.json')), 'utf8'));
  return { nifti: path.join(out, nifti[0]), sidecar };
}

/** The files in a fixed scrambled order (reversed halves interleaved): no converter may rely on input order. */
function shuffled(files: string[]): string[] {
  const reversed = [...files].reverse();
  const half = Math.ceil(reversed.length / 2);
  return reversed.slice(0, half).flatMap((f, i) => (reversed[half + i] === undefined ? [f] : [f, reversed[half + i]]));
}

async function compare(name: string, series: BuiltSeries, gzip = true) {
  const reference = await dcm2niix(series, path.join(root, `${name}-dcm2niix`), gzip);
  const b = readNifti(reference.nifti);
  const volume = await loadVolume(series.files);
  const ours = path.join(root, `${name}.nii${gzip ? '.gz' : ''}`);
  await writeNifti(volume, ours);
  const step = path.join(root, `${name}-step.nii${gzip ? '.gz' : ''}`);
  await writeSeriesNifti(planVolume(shuffled(series.files)), step);
  const fromStep = sameAsReference(readNifti(step), b);
  const a = sameAsReference(readNifti(ours), b);
  expect(fromStep.datatype).toBe(a.datatype);
  return { volume, ours: a, reference: b, referenceSidecar: reference.sidecar };
}

function sameAsReference(a: ReadNifti, b: ReadNifti): ReadNifti {
  expect(a.datatype, 'data type').toBe(b.datatype);
  expect(a.dims, 'dims').toEqual(b.dims);
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++) expect(Math.abs(a.affine[r][c] - b.affine[r][c]), `affine[${r}][${c}]`).toBeLessThan(1e-3);
  a.qform.forEach((v, i) => expect(Math.abs(v - b.qform[i]), `qform parameter ${i}: ${a.qform} vs ${b.qform}`).toBeLessThan(1e-3));
  expect(a.pixdim.slice(1, 4).map((v) => v.toFixed(4))).toEqual(b.pixdim.slice(1, 4).map((v) => v.toFixed(4)));
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < a.values.length; i++) {
    const error = Math.abs(a.values[i] - b.values[i]) / Math.max(1, Math.abs(b.values[i]));
    if (error > worst) [worst, worstAt] = [error, i];
  }
  // Float32 rounding: both compute stored × slope + intercept, each in its own order.
  expect(worst, `worst relative difference at voxel ${worstAt}: ${a.values[worstAt]} vs ${b.values[worstAt]}`).toBeLessThan(1e-6);
  return a;
}

/** An MR series with the given row and column cosines (LPS), slices stacked along their normal. */
function orientedMrSeries(
  dir: string,
  row: number[],
  column: number[],
  acquisition: '2D' | '3D',
  options: { slices?: number; rows?: number; cols?: number } = {},
): Promise<BuiltSeries> {
  const { slices = 6, rows = 10, cols = 12 } = options;
  const normal = [
    row[1] * column[2] - row[2] * column[1],
    row[2] * column[0] - row[0] * column[2],
    row[0] * column[1] - row[1] * column[0],
  ];
  // Instance numbers against the normal: the files' order is not the slices' order.
  return mrSeries(dir, {
    slices,
    rows,
    cols,
    pixelSpacingMm: [1.5, 1.25],
    sliceSpacingMm: 3,
    extra: (index) => ({
      MRAcquisitionType: acquisition,
      ImageOrientationPatient: [...row, ...column],
      ImagePositionPatient: normal.map((n, a) => Number((n * (slices - 1 - index) * 3 + [12, -40, 25][a]).toFixed(4))),
    }),
  });
}

describe.skipIf(!hasTool('dcm2niix'))('NIfTI like dcm2niix', () => {
  it('CT: int16 with scl_inter −1024, same affine and voxels (.nii.gz)', async () => {
    const ct = await ctSeries(path.join(root, 'ct'), {
      slices: 12,
      rows: 64,
      cols: 48,
      pixelSpacingMm: [0.9, 0.75],
      sliceThicknessMm: 1.5,
    });
    const { ours } = await compare('ct', ct);
    expect(ours.datatype).toBe(4);
  });

  it('MR: 12-bit unsigned, uncompressed .nii', async () => {
    const mr = await mrSeries(path.join(root, 'mr'), { slices: 9, rows: 48, cols: 48 });
    await compare('mr', mr, false);
  });

  it('oblique MR (25° about left–right): the qform/sform rotation matches', async () => {
    const mr = await obliqueMrSeries(path.join(root, 'oblique'), 25, { slices: 10, rows: 40, cols: 36 });
    await compare('oblique', mr);
  });

  // dcm2niix flips the rows of every series, except a 3D MR acquisition, which it turns to the
  // orthogonal orientation nearest RAS (nii_setOrtho): x flipped for axial planes, axes permuted
  // for sagittal and coronal ones.
  const planes: Record<string, [number[], number[]]> = {
    axial: [
      [1, 0, 0],
      [0, 1, 0],
    ],
    sagittal: [
      [0, 1, 0],
      [0, 0, -1],
    ],
    coronal: [
      [1, 0, 0],
      [0, 0, -1],
    ],
    'sagittal, rows to the front': [
      [0, -1, 0],
      [0, 0, -1],
    ],
    'axial seen from below': [
      [-1, 0, 0],
      [0, 1, 0],
    ],
    'axial, RAS already': [
      [-1, 0, 0],
      [0, -1, 0],
    ],
    oblique: [
      [0.866025, 0.5, 0],
      // biome-ignore lint/suspicious/noApproximativeNumericConstant: an oblique MR's direction cosines as the scanner writes them
      [-0.353553, 0.612372, -0.707107],
    ],
  };
  for (const acquisition of ['2D', '3D'] as const) {
    it(`${acquisition} MR in every orientation: the raw array and sform are dcm2niix’s`, async () => {
      for (const [plane, [row, column]] of Object.entries(planes)) {
        const name = `mr-${acquisition}-${plane.replace(/\W+/g, '-')}`;
        const mr = await orientedMrSeries(path.join(root, name), row, column, acquisition);
        const { ours, reference } = await compare(name, mr, false);
        expect(ours.dims, plane).toEqual(reference.dims);
      }
    });
  }

  it('static PET: float32 because each slice has its own slope', async () => {
    const pet = await petSeries(path.join(root, 'pet-static'), {
      slices: 10,
      rows: 32,
      cols: 32,
      seriesType: 'STATIC',
      frameDurationsSec: [600],
    });
    const { ours } = await compare('pet-static', pet);
    expect(ours.datatype).toBe(16);
  });

  it('dynamic PET: 4D, frames in time order, frame durations as dcm2niix reports them', async () => {
    const pet = await petSeries(path.join(root, 'pet-dynamic'), { slices: 8, rows: 32, cols: 32, frameDurationsSec: [10, 10, 20, 30, 60] });
    const { volume, ours, referenceSidecar } = await compare('pet-dynamic', pet);
    expect(ours.dims).toEqual([4, 32, 32, 8, 5]);
    const sidecar = bidsSidecar(volume);
    expect(sidecar.FrameDuration).toEqual(referenceSidecar.FrameDuration);
    expect(sidecar.FrameTimesStart).toEqual([0, 10, 20, 40, 70]);
    expect(sidecar).toMatchObject({
      Units: 'Bq/mL',
      DecayCorrection: 'START',
      ImageDecayCorrected: true,
      TracerName: 'Fluorodeoxyglucose',
      InjectedRadioactivity: 370,
      InjectedRadioactivityUnits: 'MBq',
    });
    if (referenceSidecar.FrameReferenceTime !== undefined) expect(sidecar.FrameReferenceTime).toEqual(referenceSidecar.FrameReferenceTime);
  });

  it('compressed series (JPEG lossless, RLE, JPEG 2000) give dcm2niix’s voxels', async () => {
    const ct = await ctSeries(path.join(root, 'ct-src'), { slices: 6, rows: 32, cols: 32 });
    for (const kind of ['jpeg-lossless', 'rle', 'jpeg2000'] as const) {
      const compressed = await compressSeries(ct, kind, path.join(root, `ct-${kind}`));
      await compare(`ct-${kind}`, compressed);
    }
  });
});
