// dicomflow's NIfTI against dcm2niix's on the same generated series: both files read back with
// nifti-reader-js, voxel values equal within float rounding, affines within 1e-3 mm.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as niftiReader from 'nifti-reader-js';
import { afterAll, describe, expect, it } from 'vitest';
import { bidsSidecar, writeNifti } from '../../core/dicom/nifti.ts';
import { loadVolume } from '../../core/dicom/volume.ts';
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
  const qform = [header.quatern_b, header.quatern_c, header.quatern_d, header.qoffset_x, header.qoffset_y, header.qoffset_z, header.pixDims[0]];
  return { dims: header.dims.slice(0, header.dims[0] + 1), datatype: header.datatypeCode, affine: header.affine, pixdim: header.pixDims, qform, values };
}

async function dcm2niix(series: BuiltSeries, out: string, gzip: boolean): Promise<{ nifti: string; sidecar: Record<string, unknown> }> {
  fs.mkdirSync(out, { recursive: true });
  await run('dcm2niix', ['-z', gzip ? 'y' : 'n', '-b', 'y', '-f', 'ref', '-o', out, series.dir], { timeout: 120_000 });
  const nifti = fs.readdirSync(out).filter((f) => /\.nii(\.gz)?$/.test(f));
  expect(nifti, `dcm2niix wrote ${nifti.join(', ')}`).toHaveLength(1);
  const sidecar = JSON.parse(fs.readFileSync(path.join(out, nifti[0].replace(/\.nii(\.gz)?$/, '.json')), 'utf8'));
  return { nifti: path.join(out, nifti[0]), sidecar };
}

async function compare(name: string, series: BuiltSeries, gzip = true) {
  const reference = await dcm2niix(series, path.join(root, `${name}-dcm2niix`), gzip);
  const volume = await loadVolume(series.files);
  const ours = path.join(root, `${name}.nii${gzip ? '.gz' : ''}`);
  await writeNifti(volume, ours);
  const a = readNifti(ours);
  const b = readNifti(reference.nifti);
  expect(a.dims, 'dims').toEqual(b.dims);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(Math.abs(a.affine[r][c] - b.affine[r][c]), `affine[${r}][${c}]`).toBeLessThan(1e-3);
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
  return { volume, ours: a, reference: b, referenceSidecar: reference.sidecar };
}

describe.skipIf(!hasTool('dcm2niix'))('NIfTI like dcm2niix', () => {
  it('CT: int16 with scl_inter −1024, same affine and voxels (.nii.gz)', async () => {
    const ct = await ctSeries(path.join(root, 'ct'), { slices: 12, rows: 64, cols: 48, pixelSpacingMm: [0.9, 0.75], sliceThicknessMm: 1.5 });
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

  it('static PET: float32 because each slice has its own slope', async () => {
    const pet = await petSeries(path.join(root, 'pet-static'), { slices: 10, rows: 32, cols: 32, seriesType: 'STATIC', frameDurationsSec: [600] });
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
    expect(sidecar).toMatchObject({ Units: 'Bq/mL', DecayCorrection: 'START', ImageDecayCorrected: true, TracerName: 'Fluorodeoxyglucose', InjectedRadioactivity: 370, InjectedRadioactivityUnits: 'MBq' });
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
