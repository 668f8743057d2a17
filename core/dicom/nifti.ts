import { closeSync, openSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { writeAll, writeGzip } from './parallel-gzip.ts';
import { imagePixelModule, type PixelArray } from './pixel-data.ts';
import { decodePlane, decodeVolume, type LoadedVolume, type Volume, type VolumePlan } from './volume.ts';

/**
 * NIfTI-1 single files (.nii, .nii.gz) from a volume, laid out as dcm2niix lays them out so the
 * two are interchangeable: rows flipped (the first stored row is the image's last, PS3.3's
 * "bottom"), slices in increasing position along the normal, frames last. The affine is the
 * volume's LPS one turned to RAS (NIfTI's world: diag(−1, −1, 1) · LPS), written both as sform
 * and as qform (code 1, scanner anatomical).
 */

export const NIFTI_DATATYPE = { uint8: 2, int16: 4, int32: 8, float32: 16, int8: 256, uint16: 512 } as const;
export type NiftiDatatype = keyof typeof NIFTI_DATATYPE;

const HEADER_BYTES = 348;
const VOX_OFFSET = 352; // header + the 4-byte extension flag (no extensions)
const XYZT_MM_SEC = 2 | 8;

export interface NiftiEncoding {
  datatype: NiftiDatatype;
  /** Stored value × sclSlope + sclInter = voxel value (exactly, for integer types). */
  sclSlope: number;
  sclInter: number;
}

const RANGES: [NiftiDatatype, number, number][] = [
  ['int16', -32768, 32767],
  ['uint16', 0, 65535],
  ['int32', -2147483648, 2147483647],
];

/**
 * The smallest data type that holds every voxel without loss: integer stored values with the
 * series' common rescale (as the DICOM stored them) when that reproduces each float32 voxel
 * exactly, else float32 (rescale varying per slice, non-integer values).
 */
export function chooseEncoding(volume: Volume & { rescale?: { slope: number; intercept: number } }): NiftiEncoding {
  const float32: NiftiEncoding = { datatype: 'float32', sclSlope: 1, sclInter: 0 };
  const { slope, intercept } = volume.varyingRescale ? { slope: 0, intercept: 0 } : (volume.rescale ?? { slope: 1, intercept: 0 });
  if (slope === 0) return float32;
  let min = Infinity;
  let max = -Infinity;
  for (const frame of volume.frames) {
    for (let i = 0; i < frame.length; i++) {
      const v = frame[i];
      const stored = Math.round((v - intercept) / slope);
      if (Math.fround(stored * slope + intercept) !== v) return float32;
      if (stored < min) min = stored;
      if (stored > max) max = stored;
    }
  }
  const fit = RANGES.find(([, lo, hi]) => min >= lo && max <= hi);
  return fit === undefined ? float32 : { datatype: fit[0], sclSlope: slope, sclInter: intercept };
}

/**
 * How the volume's voxels are laid out in the file: file axis a runs along the volume's axis
 * `axes[a]` (0 columns, 1 rows, 2 slices), backwards when `reversed[a]`.
 */
export interface NiftiLayout {
  axes: [number, number, number];
  reversed: [boolean, boolean, boolean];
}

/** dcm2niix's usual layout (nii_flipY): rows in reverse order, columns and slices as they are. */
export const ROWS_FLIPPED: NiftiLayout = { axes: [0, 1, 2], reversed: [false, true, false] };
const AS_STORED: NiftiLayout = { axes: [0, 1, 2], reversed: [false, false, false] };

/**
 * The layout dcm2niix (v1.0.2022x, default `-x n`) writes a volume in. Rows flipped, except for a
 * 3D MR acquisition (MRAcquisitionType 3D) of one time point, which it turns to the orthogonal
 * orientation nearest RAS instead (nii_ortho.cpp, nii_setOrtho): the corner of the volume
 * nearest the most left-posterior-inferior point becomes voxel 0, and the axes are permuted so
 * the matrix is as close to a positive diagonal as possible. An already canonical volume, or
 * one whose best permutation is the identity without flips, keeps DICOM's row order.
 */
export function niftiLayout(
  volume: Pick<Volume, 'affine' | 'dims'> & { series?: { mrAcquisitionType?: string } },
  frameCount: number,
): NiftiLayout {
  const threeD = volume.series?.mrAcquisitionType?.toUpperCase().startsWith('3D') === true;
  if (!threeD || volume.dims[2] < 2 || frameCount > 1) return ROWS_FLIPPED;
  const ras = niftiAffine(volume, AS_STORED);
  const m = (r: number, c: number) => ras[r * 4 + c];
  let canonical = true;
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) if (r === c ? m(r, c) <= 0 : m(r, c) !== 0) canonical = false;
  if (canonical) return AS_STORED;
  // minCornerFlip: of the 8 corners, the one nearest the per-axis minimum of all of them.
  const corners = Array.from({ length: 8 }, (_, n) => {
    const flips = [n & 1, n & 2, n & 4].map(Boolean) as [boolean, boolean, boolean];
    const voxel = flips.map((f, a) => (f ? volume.dims[a] - 1 : 0));
    return { flips, world: [0, 1, 2].map((r) => m(r, 0) * voxel[0] + m(r, 1) * voxel[1] + m(r, 2) * voxel[2] + m(r, 3)) };
  });
  const min = [0, 1, 2].map((r) => Math.min(...corners.map((c) => c.world[r])));
  let nearest = corners[0];
  for (const c of corners)
    if (Math.hypot(...c.world.map((v, r) => v - min[r])) < Math.hypot(...nearest.world.map((v, r) => v - min[r]))) nearest = c;
  // getBestOrient: the axis permutation (with those flips) that maximises trace(R · P).
  const permutations: [number, number, number][] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [2, 0, 1],
    [1, 2, 0],
    [2, 1, 0],
  ];
  let best: [number, number, number] = [0, 1, 2];
  let bestScore = 0;
  for (const axes of permutations) {
    // File axis a is volume axis axes[a]; P[axes[a]][a] = ±1.
    const score = [0, 1, 2].reduce((sum, a) => sum + m(a, axes[a]) * (nearest.flips[axes[a]] ? -1 : 1), 0);
    if (score > bestScore) [best, bestScore] = [axes, score];
  }
  const reversed = best.map((axis) => nearest.flips[axis]) as [boolean, boolean, boolean];
  if (best.join() === '0,1,2' && !reversed.some(Boolean)) return AS_STORED;
  return { axes: best, reversed };
}

/**
 * The NIfTI (RAS) voxel-to-world matrix, row-major 4×4, of the volume written in `layout`
 * (NIfTI's world is diag(−1, −1, 1) · LPS).
 */
export function niftiAffine(volume: Pick<Volume, 'affine' | 'dims'>, layout: NiftiLayout = ROWS_FLIPPED): Float64Array {
  const a = volume.affine;
  const out = new Float64Array(16);
  for (let r = 0; r < 3; r++) {
    const sign = r < 2 ? -1 : 1;
    // File voxel 0 is the volume voxel at the far end of every reversed axis.
    let origin = a[r * 4 + 3];
    for (let axis = 0; axis < 3; axis++)
      if (layout.reversed[layout.axes.indexOf(axis)]) origin += (volume.dims[axis] - 1) * a[r * 4 + axis];
    for (let c = 0; c < 3; c++) out[r * 4 + c] = sign * (layout.reversed[c] ? -1 : 1) * a[r * 4 + layout.axes[c]];
    out[r * 4 + 3] = sign * origin;
  }
  out[15] = 1;
  return out;
}

function fileDims(dims: [number, number, number], layout: NiftiLayout): [number, number, number] {
  return layout.axes.map((axis) => dims[axis]) as [number, number, number];
}

export interface NiftiOptions {
  /** Write .nii.gz; default: when the file name ends with .gz. */
  gzip?: boolean;
  /** gzip level 1–9; default 6 (dcm2niix's). */
  gzipLevel?: number;
  /** descrip field, up to 79 characters. */
  description?: string;
  /** Force a data type (a wider one than needed, or float32 for tools that want it). */
  encoding?: NiftiEncoding;
}

type Volumeish = Volume & { rescale?: { slope: number; intercept: number }; series?: { mrAcquisitionType?: string } };
type OutArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Float32Array;

const BYTES_PER: Record<NiftiDatatype, number> = { uint8: 1, int8: 1, int16: 2, uint16: 2, int32: 4, float32: 4 };

/** The whole .nii file (header, extension flag, voxels) in memory. */
export function encodeNifti(volume: Volumeish, options: NiftiOptions = {}): Buffer {
  return Buffer.concat([...niftiChunks(volume, options)]);
}

/**
 * The .nii file as chunks: the 352-byte header, then one chunk per frame (so a writer never
 * holds a second copy of the whole volume).
 */
export function* niftiChunks(volume: Volumeish, options: NiftiOptions = {}): Generator<Buffer> {
  const encoding = options.encoding ?? chooseEncoding(volume);
  const layout = niftiLayout(volume, volume.frames.length);
  const [nx, ny, nz] = volume.dims;
  const header = Buffer.alloc(VOX_OFFSET);
  writeHeader(header, volume, volume.frames.length, layout, encoding, options.description);
  yield header;
  const { sclSlope, sclInter } = encoding;
  const scaled = encoding.datatype !== 'float32' && (sclSlope !== 1 || sclInter !== 0);
  for (const frame of volume.frames) {
    // Every byte is written below: no need to zero it first.
    const chunk = Buffer.allocUnsafeSlow(nx * ny * nz * BYTES_PER[encoding.datatype]);
    const view = typedView(chunk, encoding.datatype);
    const source = scaled ? frame.map((v) => Math.round((v - sclInter) / sclSlope)) : frame;
    reorder(view, source, volume.dims, layout);
    yield chunk;
  }
}

/** Copies a frame into the file's voxel order. */
function reorder(to: OutArray, from: Float32Array, dims: [number, number, number], layout: NiftiLayout): void {
  const [nx, ny] = dims;
  const stride = [1, nx, nx * ny];
  const [n0, n1, n2] = fileDims(dims, layout);
  // Start and step, in the source, of each file axis.
  const step = layout.axes.map((axis, a) => (layout.reversed[a] ? -stride[axis] : stride[axis]));
  let start = 0;
  layout.axes.forEach((axis, a) => {
    if (layout.reversed[a]) start += (dims[axis] - 1) * stride[axis];
  });
  let o = 0;
  if (step[0] === 1) {
    // Whole rows with set(): a native copy (and conversion, for the integer types, whose values
    // chooseEncoding has checked to be exact) instead of an element loop over mixed array types.
    for (let c = 0; c < n2; c++) {
      for (let b = 0; b < n1; b++) {
        const s = start + c * step[2] + b * step[1];
        to.set(from.subarray(s, s + n0), o);
        o += n0;
      }
    }
    return;
  }
  for (let c = 0; c < n2; c++) {
    for (let b = 0; b < n1; b++) {
      let s = start + c * step[2] + b * step[1];
      for (let a = 0; a < n0; a++, s += step[0]) to[o++] = from[s];
    }
  }
}

/** Writes a .nii or .nii.gz file (whole, through a temporary name, so a rerun never leaves half a file). */
export async function writeNifti(volume: Volumeish, filePath: string, options: NiftiOptions = {}): Promise<void> {
  await writeChunks(filePath, niftiChunks(volume, options), options);
}

/**
 * Writes the chunks to a .nii or, gzipped, to a .nii.gz, through a temporary name. gzip: the
 * chunks are deflated in parallel on libuv's thread pool, as pigz does (see parallel-gzip.ts).
 */
export async function writeChunks(
  filePath: string,
  chunks: Iterable<Buffer> | AsyncIterable<Buffer>,
  options: Pick<NiftiOptions, 'gzip' | 'gzipLevel'> = {},
): Promise<void> {
  const gzip = options.gzip ?? filePath.endsWith('.gz');
  const partial = `${filePath}.partial`;
  const fd = openSync(partial, 'w');
  try {
    try {
      if (gzip) await writeGzip(fd, chunks, options.gzipLevel ?? 6);
      else for await (const chunk of chunks) writeAll(fd, chunk);
    } finally {
      closeSync(fd);
    }
    await rename(partial, filePath);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}

function typedView(bytes: Buffer, datatype: NiftiDatatype): OutArray {
  // allocUnsafeSlow gives a buffer of its own, aligned at offset 0.
  const { buffer, byteOffset, byteLength } = bytes;
  switch (datatype) {
    case 'uint8':
      return new Uint8Array(buffer, byteOffset, byteLength);
    case 'int8':
      return new Int8Array(buffer, byteOffset, byteLength);
    case 'int16':
      return new Int16Array(buffer, byteOffset, byteLength / 2);
    case 'uint16':
      return new Uint16Array(buffer, byteOffset, byteLength / 2);
    case 'int32':
      return new Int32Array(buffer, byteOffset, byteLength / 4);
    case 'float32':
      return new Float32Array(buffer, byteOffset, byteLength / 4);
  }
}

function writeHeader(
  out: Buffer,
  volume: Pick<Volume, 'affine' | 'dims' | 'timing'>,
  nt: number,
  layout: NiftiLayout,
  encoding: NiftiEncoding,
  description = '',
): void {
  const [nx, ny, nz] = fileDims(volume.dims, layout);
  const h = new DataView(out.buffer, out.byteOffset, VOX_OFFSET);
  const bitpix = 8 * BYTES_PER[encoding.datatype];
  const sform = niftiAffine(volume, layout);
  const { quaternion, offset, qfac, spacing } = qform(sform);

  h.setInt32(0, HEADER_BYTES, true);
  out[38] = 'r'.charCodeAt(0); // regular
  const dims = [nt > 1 ? 4 : 3, nx, ny, nz, nt, 1, 1, 1];
  dims.forEach((d, i) => h.setInt16(40 + 2 * i, d, true));
  h.setInt16(70, NIFTI_DATATYPE[encoding.datatype], true);
  h.setInt16(72, bitpix, true);
  // pixdim[4]: the time between frame starts (dcm2niix's "TR" for dynamic series), s.
  const timing = volume.timing;
  const frameStepSec =
    timing.length > 1 ? (timing[1].startMs - timing[0].startMs) / 1000 : timing.length === 1 ? timing[0].durationMs / 1000 : 0;
  const pixdim = [qfac, spacing[0], spacing[1], spacing[2], nt > 1 ? frameStepSec : 0, 0, 0, 0];
  pixdim.forEach((p, i) => h.setFloat32(76 + 4 * i, p, true));
  h.setFloat32(108, VOX_OFFSET, true);
  h.setFloat32(112, encoding.sclSlope, true);
  h.setFloat32(116, encoding.sclInter, true);
  h.setInt16(120, nz - 1, true); // slice_end
  out[123] = XYZT_MM_SEC;
  h.setFloat32(136, timing.length > 0 ? timing[0].startMs / 1000 : 0, true); // toffset
  out.write(description.slice(0, 79), 148, 'latin1');
  h.setInt16(252, 1, true); // qform_code: scanner anatomical
  h.setInt16(254, 1, true); // sform_code
  quaternion.forEach((q, i) => h.setFloat32(256 + 4 * i, q, true));
  offset.forEach((q, i) => h.setFloat32(268 + 4 * i, q, true));
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) h.setFloat32(280 + 16 * r + 4 * c, sform[r * 4 + c], true);
  out.write('n+1\0', 344, 'latin1');
}

/** NIfTI quaternion parameters of an affine (nifti1_io.c's nifti_mat44_to_quatern). */
export function qform(affine: Float64Array): {
  quaternion: [number, number, number];
  offset: [number, number, number];
  qfac: number;
  spacing: [number, number, number];
} {
  const col = (c: number) => [affine[c], affine[4 + c], affine[8 + c]];
  const spacing = [0, 1, 2].map((c) => Math.hypot(...col(c))) as [number, number, number];
  const r = [0, 1, 2].map((c) => col(c).map((v) => v / spacing[c]));
  // r[c] is column c; the determinant's sign says whether the third axis is mirrored.
  const det =
    r[0][0] * (r[1][1] * r[2][2] - r[2][1] * r[1][2]) -
    r[1][0] * (r[0][1] * r[2][2] - r[2][1] * r[0][2]) +
    r[2][0] * (r[0][1] * r[1][2] - r[1][1] * r[0][2]);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) r[2] = r[2].map((v) => -v);
  const m = (row: number, column: number) => r[column][row];
  let a = m(0, 0) + m(1, 1) + m(2, 2) + 1;
  let b: number;
  let c: number;
  let d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (m(2, 1) - m(1, 2))) / a;
    c = (0.25 * (m(0, 2) - m(2, 0))) / a;
    d = (0.25 * (m(1, 0) - m(0, 1))) / a;
  } else {
    const xd = 1 + m(0, 0) - (m(1, 1) + m(2, 2));
    const yd = 1 + m(1, 1) - (m(0, 0) + m(2, 2));
    const zd = 1 + m(2, 2) - (m(0, 0) + m(1, 1));
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (m(0, 1) + m(1, 0))) / b;
      d = (0.25 * (m(0, 2) + m(2, 0))) / b;
      a = (0.25 * (m(2, 1) - m(1, 2))) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (m(0, 1) + m(1, 0))) / c;
      d = (0.25 * (m(1, 2) + m(2, 1))) / c;
      a = (0.25 * (m(0, 2) - m(2, 0))) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (m(0, 2) + m(2, 0))) / d;
      c = (0.25 * (m(1, 2) + m(2, 1))) / d;
      a = (0.25 * (m(1, 0) - m(0, 1))) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { quaternion: [b, c, d], offset: [affine[3], affine[7], affine[11]], qfac, spacing };
}

// ---------------------------------------------------------------------------------------------
// BIDS sidecar

// PET-BIDS units (BIDS appendix "Units") of the DICOM Units (0054,1001) values.
const PET_UNITS: Record<string, string> = {
  BQML: 'Bq/mL',
  CNTS: 'counts',
  GML: 'g/mL',
  PROPCNTS: 'propcounts',
  MGMINML: 'mg/min/mL',
  UMOLMINML: 'umol/min/mL',
  NONE: 'unitless',
  PERCENT: '%',
};

const round = (v: number, digits = 6) => Number(v.toFixed(digits));

/**
 * The JSON sidecar in the BIDS style (PET-BIDS for PET): times in seconds, keys as BIDS names
 * them, plus the DICOM-named keys dcm2niix writes, so tools reading either find theirs.
 */
export function bidsSidecar(
  volume: Omit<LoadedVolume, 'frames'>,
  software: { name: string; version: string } = { name: 'dicomflow', version: '0' },
): Record<string, unknown> {
  const s = volume.series;
  const sidecar: Record<string, unknown> = {
    Modality: s.modality,
    Manufacturer: s.manufacturer,
    ManufacturersModelName: s.manufacturerModelName,
    BodyPartExamined: s.bodyPartExamined,
    PatientPosition: s.patientPosition,
    SeriesDescription: s.seriesDescription,
    ProtocolName: s.protocolName,
    ImageType: s.imageType,
    SeriesNumber: s.seriesNumber,
    SeriesInstanceUID: s.seriesInstanceUid,
    StudyInstanceUID: s.studyInstanceUid,
    AcquisitionDateTime: s.acquisitionDateTime,
    SliceThickness: s.sliceThicknessMm,
    SpacingBetweenSlices: round(volume.spacingMm[2]),
    ImageOrientationPatientDICOM: orientationOf(volume),
    EchoTime: s.echoTimeMs === undefined ? undefined : s.echoTimeMs / 1000,
    RepetitionTime: s.repetitionTimeMs === undefined ? undefined : s.repetitionTimeMs / 1000,
    FlipAngle: s.flipAngleDeg,
    MagneticFieldStrength: s.magneticFieldStrengthT,
    KVP: s.kvp,
    ConvolutionKernel: s.convolutionKernel,
    Units: s.pet?.units === undefined ? volume.units : (PET_UNITS[s.pet.units] ?? s.pet.units),
  };
  if (volume.timing.length > 0) {
    sidecar.FrameTimesStart = volume.timing.map((t) => round(t.startMs / 1000));
    sidecar.FrameDuration = volume.timing.map((t) => round(t.durationMs / 1000));
  }
  const pet = s.pet;
  if (pet !== undefined) {
    const decayCorrected = pet.decayCorrection !== undefined && pet.decayCorrection !== 'NONE';
    Object.assign(sidecar, {
      TimeZero: /\d\d:\d\d:\d\d/.exec(s.seriesDateTime ?? '')?.[0],
      ScanStart: 0,
      InjectionStart: pet.injectionStartSec,
      TracerName: pet.radiopharmaceutical,
      TracerRadionuclide: pet.radionuclide?.replace(/\^/g, ''),
      InjectedRadioactivity: pet.injectedDoseBq === undefined ? undefined : round(pet.injectedDoseBq / 1e6),
      InjectedRadioactivityUnits: pet.injectedDoseBq === undefined ? undefined : 'MBq',
      BodyWeight: pet.patientWeightKg,
      BodyWeightUnits: pet.patientWeightKg === undefined ? undefined : 'kg',
      ImageDecayCorrected: decayCorrected,
      // START: to the scan start (TimeZero); ADMIN: to the injection.
      ImageDecayCorrectionTime: pet.decayCorrection === 'START' ? 0 : pet.decayCorrection === 'ADMIN' ? pet.injectionStartSec : undefined,
      DecayCorrectionFactor: pet.decayFactors.length === volume.sources.length ? pet.decayFactors : undefined,
      ReconMethodName: pet.reconstructionMethod,
      AttenuationCorrection: pet.attenuationCorrectionMethod,
      ScatterCorrectionMethod: pet.scatterCorrectionMethod,
      // dcm2niix's DICOM-named keys.
      Radiopharmaceutical: pet.radiopharmaceutical,
      RadionuclideTotalDose: pet.injectedDoseBq,
      RadionuclideHalfLife: pet.radionuclideHalfLifeSec,
      DecayCorrection: pet.decayCorrection,
      FrameReferenceTime:
        pet.frameReferenceTimesMs.length === volume.sources.length ? pet.frameReferenceTimesMs.map((t) => round(t / 1000)) : undefined,
    });
  }
  sidecar.ConversionSoftware = software.name;
  sidecar.ConversionSoftwareVersion = software.version;
  return Object.fromEntries(Object.entries(sidecar).filter(([, v]) => v !== undefined));
}

function orientationOf(volume: Pick<Volume, 'affine' | 'spacingMm'>): number[] {
  const a = volume.affine;
  const row = [a[0], a[4], a[8]].map((v) => v / volume.spacingMm[0]);
  const column = [a[1], a[5], a[9]].map((v) => v / volume.spacingMm[1]);
  return [...row, ...column].map((v) => round(v, 8));
}

// ---------------------------------------------------------------------------------------------
// A series straight from its files

/**
 * The encoding a series' stored values go into the file with, unchanged: int16 with the common
 * rescale (16-bit signed data, or unsigned with at most 15 bits stored), or float32 with each
 * plane's own rescale applied. undefined where only the decoded values tell (8-bit data,
 * unsigned data using all 16 bits): those go through chooseEncoding.
 */
function storedEncoding(plan: VolumePlan): NiftiEncoding | undefined {
  if (plan.varyingRescale) return { datatype: 'float32', sclSlope: 1, sclInter: 0 };
  const { slope, intercept } = plan.rescale ?? { slope: 1, intercept: 0 };
  if (slope === 0) return undefined;
  const pixel = imagePixelModule(plan.planes[0][0].dataSet);
  const fits16 = pixel.samplesPerPixel === 1 && pixel.bitsAllocated === 16 && (pixel.pixelRepresentation === 1 || pixel.bitsStored <= 15);
  return fits16 ? { datatype: 'int16', sclSlope: slope, sclInter: intercept } : undefined;
}

const CHUNK_BYTES = 4 << 20;

/**
 * One plane's stored values into the output at `at`, rows reversed when asked; with `rescale`,
 * as float32 stored × slope + intercept (as loadVolume computes it, so both give the same
 * values). A plain function: the generator calling it is never optimised, this is.
 */
function copyPlane(
  to: OutArray,
  at: number,
  raw: PixelArray,
  nx: number,
  ny: number,
  flipRows: boolean,
  rescale: { slope: number; intercept: number } | undefined,
): void {
  for (let y = 0; y < ny; y++) {
    const from = (flipRows ? ny - 1 - y : y) * nx;
    const o = at + y * nx;
    if (rescale === undefined) {
      to.set(raw.subarray(from, from + nx), o);
      continue;
    }
    const { slope, intercept } = rescale;
    for (let x = 0; x < nx; x++) to[o + x] = raw[from + x] * slope + intercept;
  }
}

/**
 * Writes a planned series (planVolume) as NIfTI in dcm2niix's layout, each plane's stored values
 * copied from its file straight into the file's voxel order: no float32 volume in between, and
 * memory for a few MiB of output at a time. A layout that permutes the axes (a reoriented 3D MR)
 * or data whose type depends on its values is decoded as a volume first (writeNifti).
 * Returns the encoding written.
 */
export async function writeSeriesNifti(
  plan: VolumePlan,
  filePath: string,
  options: NiftiOptions & { onProgress?: (fraction: number) => void; signal?: AbortSignal } = {},
): Promise<NiftiEncoding> {
  const nt = plan.planes.length;
  const layout = niftiLayout(plan, nt);
  const encoding = options.encoding ?? storedEncoding(plan);
  if (encoding === undefined || layout.axes.join() !== '0,1,2' || layout.reversed[0]) {
    const volume = await decodeVolume(plan, options);
    const chosen = options.encoding ?? chooseEncoding(volume);
    await writeNifti(volume, filePath, { ...options, encoding: chosen });
    return chosen;
  }
  const gzip = options.gzip ?? filePath.endsWith('.gz');
  await writeChunks(filePath, planChunks(plan, layout, encoding, options, !gzip), options);
  return encoding;
}

async function* planChunks(
  plan: VolumePlan,
  layout: NiftiLayout,
  encoding: NiftiEncoding,
  options: NiftiOptions & { onProgress?: (fraction: number) => void; signal?: AbortSignal },
  reuseChunk: boolean,
): AsyncGenerator<Buffer> {
  const [nx, ny, nz] = plan.dims;
  const header = Buffer.alloc(VOX_OFFSET);
  writeHeader(header, plan, plan.planes.length, layout, encoding, options.description);
  yield header;
  const sliceBytes = nx * ny * BYTES_PER[encoding.datatype];
  const slicesPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / sliceBytes));
  const total = plan.planes.length * nz;
  let chunk: Buffer | undefined;
  let view: OutArray | undefined;
  let filled = 0;
  let done = 0;
  for (const frame of plan.planes) {
    for (let z = 0; z < nz; z++) {
      options.signal?.throwIfAborted();
      if (chunk === undefined || view === undefined) {
        chunk = reuseChunk && chunk !== undefined ? chunk : Buffer.allocUnsafeSlow(slicesPerChunk * sliceBytes);
        view = typedView(chunk, encoding.datatype);
      }
      const plane = frame[layout.reversed[2] ? nz - 1 - z : z];
      copyPlane(
        view,
        filled * nx * ny,
        await decodePlane(plane),
        nx,
        ny,
        layout.reversed[1],
        encoding.datatype === 'float32' ? plane : undefined,
      );
      options.onProgress?.(++done / total);
      if (++filled === slicesPerChunk) {
        yield chunk;
        filled = 0;
        if (!reuseChunk) chunk = undefined;
        view = reuseChunk ? view : undefined;
      }
    }
  }
  if (filled > 0 && chunk !== undefined) yield chunk.subarray(0, filled * sliceBytes);
}
