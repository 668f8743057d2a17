import { closeSync, createWriteStream, openSync, writeSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { LoadedVolume, Volume } from './volume.ts';

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
 * The NIfTI (RAS) voxel-to-world matrix, row-major 4×4, for the stored (row-flipped) layout:
 * voxel (i, j', k) is the volume's (i, rows − 1 − j', k).
 */
export function niftiAffine(volume: Pick<Volume, 'affine' | 'dims'>): Float64Array {
  const a = volume.affine;
  const rows = volume.dims[1];
  const out = new Float64Array(16);
  for (let r = 0; r < 3; r++) {
    const sign = r < 2 ? -1 : 1;
    out[r * 4 + 0] = sign * a[r * 4 + 0];
    out[r * 4 + 1] = -sign * a[r * 4 + 1];
    out[r * 4 + 2] = sign * a[r * 4 + 2];
    out[r * 4 + 3] = sign * (a[r * 4 + 3] + (rows - 1) * a[r * 4 + 1]);
  }
  out[15] = 1;
  return out;
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

/** The whole .nii file (header, extension flag, voxels) in memory. */
export function encodeNifti(volume: Volume & { rescale?: { slope: number; intercept: number } }, options: NiftiOptions = {}): Buffer {
  return Buffer.concat([...niftiChunks(volume, options)]);
}

/**
 * The .nii file as chunks: the 352-byte header, then one chunk per frame (so a writer never
 * holds a second copy of the whole volume). With `reuseChunk` every frame comes in the same
 * buffer: for a consumer that is done with a chunk before asking for the next.
 */
export function* niftiChunks(volume: Volume & { rescale?: { slope: number; intercept: number } }, options: NiftiOptions = {}, reuseChunk = false): Generator<Buffer> {
  const encoding = options.encoding ?? chooseEncoding(volume);
  const [nx, ny, nz] = volume.dims;
  const bytesPer = encoding.datatype === 'uint8' || encoding.datatype === 'int8' ? 1 : encoding.datatype === 'int16' || encoding.datatype === 'uint16' ? 2 : 4;
  const header = Buffer.alloc(VOX_OFFSET);
  writeHeader(header, volume, encoding, options.description);
  yield header;
  const { sclSlope, sclInter } = encoding;
  const scaled = encoding.datatype !== 'float32' && (sclSlope !== 1 || sclInter !== 0);
  let chunk: Buffer | undefined;
  for (const frame of volume.frames) {
    // Every byte is written below: no need to zero it first.
    if (chunk === undefined || !reuseChunk) chunk = Buffer.allocUnsafeSlow(nx * ny * nz * bytesPer);
    const view = typedView(chunk, encoding.datatype);
    if (encoding.datatype === 'float32') flipRows(view as Float32Array, frame, nx, ny, nz);
    else if (!scaled) flipRows(view, frame, nx, ny, nz);
    else {
      let o = 0;
      for (let k = 0; k < nz; k++) {
        for (let jStored = 0; jStored < ny; jStored++) {
          const from = nx * (ny - 1 - jStored + ny * k);
          for (let i = 0; i < nx; i++) view[o + i] = Math.round((frame[from + i] - sclInter) / sclSlope);
          o += nx;
        }
      }
    }
    yield chunk;
  }
}

/** Copies a frame with its rows in reverse order in each slice (dcm2niix's layout). */
function flipRows(to: Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Float32Array, from: Float32Array, nx: number, ny: number, nz: number): void {
  // Row by row with set(): a native copy (and conversion, for the integer types, whose values
  // chooseEncoding has checked to be exact) instead of an element loop over mixed array types.
  let o = 0;
  for (let k = 0; k < nz; k++) {
    for (let jStored = 0; jStored < ny; jStored++) {
      const start = nx * (ny - 1 - jStored + ny * k);
      to.set(from.subarray(start, start + nx), o);
      o += nx;
    }
  }
}

/** Writes a .nii or .nii.gz file (whole, through a temporary name, so a rerun never leaves half a file). */
export async function writeNifti(volume: Volume & { rescale?: { slope: number; intercept: number } }, filePath: string, options: NiftiOptions = {}): Promise<void> {
  const gzip = options.gzip ?? filePath.endsWith('.gz');
  const partial = `${filePath}.partial`;
  try {
    if (gzip) {
      await pipeline(Readable.from(niftiChunks(volume, options), { objectMode: false }), createGzip({ level: options.gzipLevel ?? 6 }), createWriteStream(partial));
    } else {
      // Plain writes, one per frame: a stream's round trips cost more than the copy (this runs in a worker).
      const fd = openSync(partial, 'w');
      try {
        for (const chunk of niftiChunks(volume, options, true)) writeSync(fd, chunk);
      } finally {
        closeSync(fd);
      }
    }
    await rename(partial, filePath);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}

function typedView(bytes: Buffer, datatype: NiftiDatatype): Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Float32Array {
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

function writeHeader(out: Buffer, volume: Volume, encoding: NiftiEncoding, description = ''): void {
  const [nx, ny, nz] = volume.dims;
  const nt = volume.frames.length;
  const h = new DataView(out.buffer, out.byteOffset, VOX_OFFSET);
  const bitpix = { uint8: 8, int8: 8, int16: 16, uint16: 16, int32: 32, float32: 32 }[encoding.datatype];
  const sform = niftiAffine(volume);
  const { quaternion, offset, qfac, spacing } = qform(sform);

  h.setInt32(0, HEADER_BYTES, true);
  out[38] = 'r'.charCodeAt(0); // regular
  const dims = [nt > 1 ? 4 : 3, nx, ny, nz, nt, 1, 1, 1];
  dims.forEach((d, i) => h.setInt16(40 + 2 * i, d, true));
  h.setInt16(70, NIFTI_DATATYPE[encoding.datatype], true);
  h.setInt16(72, bitpix, true);
  // pixdim[4]: the time between frame starts (dcm2niix's "TR" for dynamic series), s.
  const timing = volume.timing;
  const frameStepSec = timing.length > 1 ? (timing[1].startMs - timing[0].startMs) / 1000 : timing.length === 1 ? timing[0].durationMs / 1000 : 0;
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
export function qform(affine: Float64Array): { quaternion: [number, number, number]; offset: [number, number, number]; qfac: number; spacing: [number, number, number] } {
  const col = (c: number) => [affine[c], affine[4 + c], affine[8 + c]];
  const spacing = [0, 1, 2].map((c) => Math.hypot(...col(c))) as [number, number, number];
  const r = [0, 1, 2].map((c) => col(c).map((v) => v / spacing[c]));
  // r[c] is column c; the determinant's sign says whether the third axis is mirrored.
  const det = r[0][0] * (r[1][1] * r[2][2] - r[2][1] * r[1][2]) - r[1][0] * (r[0][1] * r[2][2] - r[2][1] * r[0][2]) + r[2][0] * (r[0][1] * r[1][2] - r[1][1] * r[0][2]);
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
const PET_UNITS: Record<string, string> = { BQML: 'Bq/mL', CNTS: 'counts', GML: 'g/mL', PROPCNTS: 'propcounts', MGMINML: 'mg/min/mL', UMOLMINML: 'umol/min/mL', NONE: 'unitless', PERCENT: '%' };

const round = (v: number, digits = 6) => Number(v.toFixed(digits));

/**
 * The JSON sidecar in the BIDS style (PET-BIDS for PET): times in seconds, keys as BIDS names
 * them, plus the DICOM-named keys dcm2niix writes, so tools reading either find theirs.
 */
export function bidsSidecar(volume: LoadedVolume, software: { name: string; version: string } = { name: 'dicomflow', version: '0' }): Record<string, unknown> {
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
      DecayCorrectionFactor: pet.decayFactors.length === volume.frames.length ? pet.decayFactors : undefined,
      ReconMethodName: pet.reconstructionMethod,
      AttenuationCorrection: pet.attenuationCorrectionMethod,
      ScatterCorrectionMethod: pet.scatterCorrectionMethod,
      // dcm2niix's DICOM-named keys.
      Radiopharmaceutical: pet.radiopharmaceutical,
      RadionuclideTotalDose: pet.injectedDoseBq,
      RadionuclideHalfLife: pet.radionuclideHalfLifeSec,
      DecayCorrection: pet.decayCorrection,
      FrameReferenceTime: pet.frameReferenceTimesMs.length === volume.frames.length ? pet.frameReferenceTimesMs.map((t) => round(t / 1000)) : undefined,
    });
  }
  sidecar.ConversionSoftware = software.name;
  sidecar.ConversionSoftwareVersion = software.version;
  return Object.fromEntries(Object.entries(sidecar).filter(([, v]) => v !== undefined));
}

function orientationOf(volume: Volume): number[] {
  const a = volume.affine;
  const row = [a[0], a[4], a[8]].map((v) => v / volume.spacingMm[0]);
  const column = [a[1], a[5], a[9]].map((v) => v / volume.spacingMm[1]);
  return [...row, ...column].map((v) => round(v, 8));
}
