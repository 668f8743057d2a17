import { readFileSync } from 'node:fs';
import { dfError } from '../errors.ts';
import { sequenceItems, type DataSetLike } from './dataset-scan.ts';
import { decodeFrames, parsePart10, transferSyntaxOf, type PixelArray } from './pixel-data.ts';

/**
 * One shared model of an image series as a volume: what NIfTI conversion, motion correction and
 * VOI statistics all work on. Geometry is in DICOM patient coordinates (LPS, mm).
 *
 * Voxel order: i (column, along the row direction cosine) fastest, then j (row), then k (slice,
 * in the order of increasing position along the slice normal). Index of (i, j, k) in a frame's
 * data: i + columns * (j + rows * k).
 */

/** A 3D image on a grid: the unit registration and statistics work on. */
export interface Grid {
  /** [columns, rows, slices] */
  dims: [number, number, number];
  /** [column spacing, row spacing, slice spacing] in mm (PixelSpacing is [row, column]: swapped here). */
  spacingMm: [number, number, number];
  /**
   * Voxel index (i, j, k, 1) → patient LPS mm, a 4×4 matrix in row-major order (16 numbers).
   * Columns 0–2 are the direction cosines times the spacing, column 3 the centre of voxel 0.
   */
  affine: Float64Array;
}

export interface FrameTiming {
  /** From the series' reference time (PET: SeriesTime/AcquisitionStart per PS3.3 C.8.9.1), ms. */
  startMs: number;
  durationMs: number;
}

export interface Volume extends Grid {
  /** One Float32Array per frame (length columns × rows × slices), rescale slope/intercept applied. */
  frames: Float32Array[];
  /** One per frame; empty for a static series without timing. */
  timing: FrameTiming[];
  /** Units of the stored values after rescaling (PET: Units (0054,1001), e.g. BQML), if known. */
  units?: string;
  /**
   * The source instances, per frame and slice in voxel order: [frame][k] → SOP Instance UID and
   * file, so a derived series can reference and copy attributes from its originals.
   */
  sources: { sopInstanceUid: string; path: string; frameNumber?: number }[][];
  /** Whether any slice's rescale slope or intercept differ from the others (keep float data). */
  varyingRescale: boolean;
}

// ---------------------------------------------------------------------------------------------
// Loading a series

/** Series-level attributes a consumer may want to carry on (NIfTI sidecar, derived series). */
export interface SeriesInfo {
  modality: string;
  studyInstanceUid?: string;
  seriesInstanceUid: string;
  seriesNumber?: number;
  seriesDescription?: string;
  protocolName?: string;
  manufacturer?: string;
  manufacturerModelName?: string;
  imageType?: string[];
  bodyPartExamined?: string;
  patientPosition?: string;
  /** SeriesDate + SeriesTime as 'YYYY-MM-DDTHH:MM:SS(.ffffff)', when present. */
  seriesDateTime?: string;
  /** The earliest plane's AcquisitionDate + AcquisitionTime (or frame acquisition DT), same form. */
  acquisitionDateTime?: string;
  sliceThicknessMm?: number;
  /** MR */
  /** MRAcquisitionType (0018,0023): 2D or 3D. */
  mrAcquisitionType?: string;
  echoTimeMs?: number;
  repetitionTimeMs?: number;
  flipAngleDeg?: number;
  magneticFieldStrengthT?: number;
  /** CT */
  kvp?: number;
  convolutionKernel?: string;
  /** PET (PS3.3 C.8.9): present when the series is PT. */
  pet?: PetInfo;
}

export interface PetInfo {
  units?: string;
  /** DecayCorrection (0054,1102): NONE, START or ADMIN. */
  decayCorrection?: string;
  /** DecayFactor (0054,1321) of each frame. */
  decayFactors: number[];
  /** FrameReferenceTime (0054,1300) of each frame, ms from the series reference time. */
  frameReferenceTimesMs: number[];
  correctedImage?: string[];
  reconstructionMethod?: string;
  radiopharmaceutical?: string;
  radionuclide?: string;
  /** RadionuclideTotalDose (0018,1074), Bq at injection. */
  injectedDoseBq?: number;
  radionuclideHalfLifeSec?: number;
  /** Injection start relative to the series reference time, s (negative: before the scan). */
  injectionStartSec?: number;
  /** Radiopharmaceutical start, 'YYYY-MM-DDTHH:MM:SS'. */
  injectionDateTime?: string;
  patientWeightKg?: number;
  attenuationCorrectionMethod?: string;
  scatterCorrectionMethod?: string;
}

export interface LoadedVolume extends Volume {
  series: SeriesInfo;
  /** Set when every slice shares one rescale (then stored value = (voxel − intercept) / slope is an integer). */
  rescale?: { slope: number; intercept: number };
}

/** A file to load: its path (a StepInput fits), optionally its bytes already in memory. */
export interface VolumeInput {
  path: string;
  bytes?: Uint8Array;
}

export interface LoadVolumeOptions {
  /** Which series, when the inputs hold several; otherwise several series are an error. */
  seriesInstanceUid?: string;
  signal?: AbortSignal;
  /** Fraction done, 0–1 (files read, then slices decoded). */
  onProgress?: (fraction: number) => void;
}

/** One image plane: a single-frame instance, or one frame of a multi-frame one. */
interface Slice {
  path: string;
  sopInstanceUid: string;
  dataSet: DataSetLike;
  transferSyntaxUid: string;
  /** 0-based frame in its file; frameNumber (1-based) is reported for multi-frame files only. */
  frameIndex: number;
  multiFrame: boolean;
  seriesInstanceUid: string;
  rows: number;
  columns: number;
  /** [row spacing, column spacing] as PixelSpacing holds them. */
  pixelSpacing: [number, number];
  orientation: number[];
  position: number[];
  slope: number;
  intercept: number;
  instanceNumber: number;
  acquisitionMs?: number;
  frameReferenceTimeMs?: number;
  frameDurationMs?: number;
  imageIndex?: number;
  temporalPosition?: number;
  triggerTime?: number;
  echoNumber?: number;
  decayFactor?: number;
  /** Projection of the position on the slice normal, mm. */
  along: number;
}

// Tolerances: positions and cosines are DS strings of up to 16 characters, so rounding is far
// below these; real scanners are within them too.
const ORIENTATION_TOLERANCE = 1e-4;
const POSITION_TOLERANCE_MM = 1e-3;
const SPACING_RELATIVE_TOLERANCE = 0.01;
/** In-plane drift per mm along the normal above which slices are sheared (≈0.06°). */
const TILT_TOLERANCE = 1e-3;

/** Where one plane's pixels are: decoded on demand (see decodePlane). */
export interface VolumePlane {
  path: string;
  dataSet: DataSetLike;
  transferSyntaxUid: string;
  /** 0-based frame in its file. */
  frameIndex: number;
  slope: number;
  intercept: number;
}

/**
 * A series checked to be one regular volume, with its geometry, timing and series attributes,
 * but no voxels yet: `planes[frame][k]` say where each plane's stored values are. A consumer
 * that wants the stored values as they are (NIfTI conversion) reads them from there without
 * a float copy; loadVolume decodes and rescales them all.
 */
export interface VolumePlan extends Omit<LoadedVolume, 'frames'> {
  planes: VolumePlane[][];
}

/**
 * Reads a series of Part 10 files into one volume: grouped into frames (PET time frames,
 * temporal positions, or repeated positions), slices sorted along the normal, spacing, size and
 * orientation checked, pixels decoded (compressed syntaxes too) and rescaled to Float32.
 * Throws DF_ERR_VOLUME_INCONSISTENT with a reason when the images are not one regular volume.
 * CPU-bound and reading synchronously: call it from a worker thread, not the server's event loop.
 */
export async function loadVolume(inputs: (string | VolumeInput)[], options: LoadVolumeOptions = {}): Promise<LoadedVolume> {
  const progress = options.onProgress ?? (() => {});
  const plan = planVolume(inputs, { ...options, onProgress: (f) => progress(0.5 * f) });
  return decodeVolume(plan, { ...options, onProgress: (f) => progress(0.5 + 0.5 * f) });
}

/** The second half of loadVolume: every plane of a plan decoded and rescaled to float32. */
export async function decodeVolume(
  { planes, ...plan }: VolumePlan,
  options: Pick<LoadVolumeOptions, 'signal' | 'onProgress'> = {},
): Promise<LoadedVolume> {
  const progress = options.onProgress ?? (() => {});
  // Pixels: decoded and rescaled one plane at a time into each frame's array.
  const [columns, rows, n] = plan.dims;
  const plane = rows * columns;
  const data: Float32Array[] = [];
  const total = planes.length * n;
  let decoded = 0;
  for (const frame of planes) {
    const out = new Float32Array(plane * n);
    for (let k = 0; k < n; k++) {
      options.signal?.throwIfAborted();
      const s = frame[k];
      rescaleInto(out, k * plane, await decodePlane(s), s.slope, s.intercept);
      progress(++decoded / total);
    }
    data.push(out);
  }
  return { ...plan, frames: data };
}

/** One plane's stored values (a view into the file's bytes when they are native and aligned). */
export async function decodePlane(plane: VolumePlane): Promise<PixelArray> {
  const { frames: pixels, pixel } = await decodeFrames(plane.dataSet, plane.transferSyntaxUid, [plane.frameIndex]);
  if (pixel.samplesPerPixel !== 1)
    throw inconsistent('colour', `${plane.path} has ${pixel.samplesPerPixel} samples per pixel; a volume holds grey values only`);
  return pixels[0];
}

/**
 * The first half of loadVolume: every file read and parsed, the planes grouped into frames,
 * sorted and checked, geometry and series attributes worked out; no pixel decoded.
 */
export function planVolume(inputs: (string | VolumeInput)[], options: LoadVolumeOptions = {}): VolumePlan {
  const files = inputs.map((i) => (typeof i === 'string' ? { path: i } : i));
  if (files.length === 0) throw inconsistent('no-images', 'no images to make a volume of');
  const progress = options.onProgress ?? (() => {});
  // Read synchronously: image files are small and this runs in a worker thread, where each
  // asynchronous read's four thread-pool hops (open, stat, read, close) cost more than the read.
  const parsed = files.map((file, i) => {
    options.signal?.throwIfAborted();
    const dataSet = parsePart10(file.bytes ?? readFileSync(file.path));
    progress((i + 1) / files.length);
    return dataSet;
  });

  let slices = files.flatMap((file, i) => slicesOf(file.path, parsed[i]));
  const seriesUids = [...new Set(slices.map((s) => s.seriesInstanceUid))];
  if (options.seriesInstanceUid !== undefined) {
    slices = slices.filter((s) => s.seriesInstanceUid === options.seriesInstanceUid);
    if (slices.length === 0) throw inconsistent('no-images', `no image of series ${options.seriesInstanceUid} among the inputs`);
  } else if (seriesUids.length > 1) {
    throw inconsistent('mixed-series', `the inputs hold ${seriesUids.length} series (${seriesUids.join(', ')}); load one at a time`, {
      seriesInstanceUids: seriesUids,
    });
  }
  checkSameGrid(slices);
  const sample = slices[0];
  const normal = unit(cross(sample.orientation.slice(0, 3), sample.orientation.slice(3, 6)));
  for (const s of slices) s.along = dot(s.position, normal);

  const frames = groupFrames(slices, sample.dataSet);
  for (const frame of frames) frame.sort((a, b) => a.along - b.along);
  checkFramesAlike(frames);
  // From here on the series' first plane (first frame, lowest along the normal), not the first
  // file given: what a series-level value is taken from must not depend on the input order.
  const first = frames[0][0];
  const sliceStep = checkSpacing(frames[0], normal, first.dataSet);

  const [rowSpacing, columnSpacing] = first.pixelSpacing;
  const rowCosine = first.orientation.slice(0, 3);
  const columnCosine = first.orientation.slice(3, 6);
  const n = frames[0].length;
  const origin = frames[0][0].position;
  const affine = new Float64Array([
    rowCosine[0] * columnSpacing,
    columnCosine[0] * rowSpacing,
    sliceStep[0],
    origin[0],
    rowCosine[1] * columnSpacing,
    columnCosine[1] * rowSpacing,
    sliceStep[1],
    origin[1],
    rowCosine[2] * columnSpacing,
    columnCosine[2] * rowSpacing,
    sliceStep[2],
    origin[2],
    0,
    0,
    0,
    1,
  ]);

  const varyingRescale = slices.some((s) => s.slope !== first.slope || s.intercept !== first.intercept);
  const series = seriesInfo(first, frames, slices);
  return {
    dims: [first.columns, first.rows, n],
    spacingMm: [columnSpacing, rowSpacing, Math.hypot(sliceStep[0], sliceStep[1], sliceStep[2])],
    affine,
    planes: frames.map((frame) =>
      frame.map((s) => ({
        path: s.path,
        dataSet: s.dataSet,
        transferSyntaxUid: s.transferSyntaxUid,
        frameIndex: s.frameIndex,
        slope: s.slope,
        intercept: s.intercept,
      })),
    ),
    timing: frameTiming(frames, first),
    units: series.pet?.units ?? (series.modality === 'CT' ? (text(first.dataSet, 'x00281054') ?? 'HU') : text(first.dataSet, 'x00281054')),
    sources: frames.map((frame) =>
      frame.map((s) => ({ sopInstanceUid: s.sopInstanceUid, path: s.path, ...(s.multiFrame ? { frameNumber: s.frameIndex + 1 } : {}) })),
    ),
    varyingRescale,
    ...(varyingRescale ? {} : { rescale: { slope: first.slope, intercept: first.intercept } }),
    series,
  };
}

/** Stored values → rescaled float32, one plane into its place in the frame. */
function rescaleInto(out: Float32Array, base: number, raw: PixelArray, slope: number, intercept: number): void {
  if (slope === 1 && intercept === 0) {
    out.set(raw, base);
    return;
  }
  const n = raw.length;
  for (let p = 0; p < n; p++) out[base + p] = raw[p] * slope + intercept;
}

/** One frame of a volume as a grid with its voxels: what registration and statistics take. */
export function frameGrid(volume: Volume, frame: number): Grid & { data: Float32Array } {
  const data = volume.frames[frame];
  if (data === undefined) throw new RangeError(`the volume has ${volume.frames.length} frame(s), not ${frame + 1}`);
  return { dims: [...volume.dims], spacingMm: [...volume.spacingMm], affine: volume.affine.slice(), data };
}

/** Voxel index (i, j, k) → patient LPS mm. */
export function voxelToPatient(grid: Grid, i: number, j: number, k: number): [number, number, number] {
  const a = grid.affine;
  return [a[0] * i + a[1] * j + a[2] * k + a[3], a[4] * i + a[5] * j + a[6] * k + a[7], a[8] * i + a[9] * j + a[10] * k + a[11]];
}

/** Patient LPS mm → (fractional) voxel index, through the inverse of the affine. */
export function patientToVoxel(grid: Grid, x: number, y: number, z: number): [number, number, number] {
  const inv = invert4(grid.affine);
  return [
    inv[0] * x + inv[1] * y + inv[2] * z + inv[3],
    inv[4] * x + inv[5] * y + inv[6] * z + inv[7],
    inv[8] * x + inv[9] * y + inv[10] * z + inv[11],
  ];
}

/** Inverse of a row-major 4×4 affine (last row 0 0 0 1). */
export function invert4(m: Float64Array | number[]): Float64Array {
  const [a, b, c, tx, d, e, f, ty, g, h, i, tz] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  if (Math.abs(det) < 1e-12) throw new RangeError('the affine is singular');
  const r = [
    (e * i - f * h) / det,
    (c * h - b * i) / det,
    (b * f - c * e) / det,
    (f * g - d * i) / det,
    (a * i - c * g) / det,
    (c * d - a * f) / det,
    (d * h - e * g) / det,
    (b * g - a * h) / det,
    (a * e - b * d) / det,
  ];
  return new Float64Array([
    r[0],
    r[1],
    r[2],
    -(r[0] * tx + r[1] * ty + r[2] * tz),
    r[3],
    r[4],
    r[5],
    -(r[3] * tx + r[4] * ty + r[5] * tz),
    r[6],
    r[7],
    r[8],
    -(r[6] * tx + r[7] * ty + r[8] * tz),
    0,
    0,
    0,
    1,
  ]);
}

// ---------------------------------------------------------------------------------------------

function inconsistent(reason: string, message: string, details: Record<string, unknown> = {}) {
  return dfError('DF_ERR_VOLUME_INCONSISTENT', message, { details: { reason, ...details } });
}

function text(ds: DataSetLike | undefined, tag: string): string | undefined {
  const v = ds?.string(tag);
  return v === undefined || v === '' ? undefined : v;
}

function numbers(ds: DataSetLike | undefined, tag: string): number[] | undefined {
  const v = ds?.string(tag);
  if (v === undefined || v.trim() === '') return undefined;
  const out = v.split('\\').map((x) => Number(x.trim()));
  return out.some((x) => !Number.isFinite(x)) ? undefined : out;
}

function number(ds: DataSetLike | undefined, tag: string): number | undefined {
  return numbers(ds, tag)?.[0];
}

/** US/SS or IS: binary when the element has a binary VR, a string otherwise. */
function integer(ds: DataSetLike, tag: string): number | undefined {
  const el = ds.elements[tag];
  if (el === undefined || el.length === 0) return undefined;
  if (el.vr === 'IS' || (el.vr === undefined && el.length !== 2)) return number(ds, tag);
  return ds.uint16(tag);
}

/** The first item of a sequence. */
function item(ds: DataSetLike | undefined, tag: string): DataSetLike | undefined {
  return ds === undefined ? undefined : sequenceItems(ds, tag)[0];
}

/** DA + TM → ms since 1970 (UTC arithmetic: only differences matter). */
function dateTimeMs(date: string | undefined, time: string | undefined): number | undefined {
  if (time === undefined || !/^\d{2}/.test(time)) return undefined;
  const t = time.replace(/:/g, '');
  const d = date !== undefined && /^\d{8}$/.test(date) ? date : '19700101';
  const seconds = Number(t.slice(4) || '0');
  return (
    Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)) - 1, Number(d.slice(6, 8)), Number(t.slice(0, 2)), Number(t.slice(2, 4) || '0')) +
    seconds * 1000
  );
}

function dateTimeMsOfDt(dt: string | undefined): number | undefined {
  if (dt === undefined || dt.length < 8) return undefined;
  return dateTimeMs(dt.slice(0, 8), dt.slice(8).replace(/[+-]\d{4}$/, '') || '000000');
}

function isoOf(date: string | undefined, time: string | undefined): string | undefined {
  const ms = dateTimeMs(date, time);
  if (ms === undefined) return undefined;
  const iso = new Date(ms).toISOString().replace('Z', '');
  return date === undefined ? iso.slice(11) : iso;
}

/** A plane's acquisition start as isoOf gives it (time only when the file has no date). */
function acquisitionIso(s: Slice): string | undefined {
  if (s.acquisitionMs === undefined) return undefined;
  const iso = new Date(s.acquisitionMs).toISOString().replace('Z', '');
  // dateTimeMs puts a time without a date on 1970-01-01.
  return iso.startsWith('1970-01-01') ? iso.slice(11) : iso;
}

const TAG = {
  sopInstanceUid: 'x00080018',
  seriesInstanceUid: 'x0020000e',
  rows: 'x00280010',
  columns: 'x00280011',
  pixelSpacing: 'x00280030',
  orientation: 'x00200037',
  position: 'x00200032',
  slope: 'x00281053',
  intercept: 'x00281052',
  sliceThickness: 'x00180050',
  spacingBetweenSlices: 'x00180088',
  numberOfFrames: 'x00280008',
  perFrame: 'x52009230',
  shared: 'x52009229',
} as const;

/** The image planes of one file: one, or one per frame of a multi-frame instance. */
function slicesOf(path: string, ds: DataSetLike): Slice[] {
  const sopInstanceUid = text(ds, TAG.sopInstanceUid) ?? path;
  const seriesInstanceUid = text(ds, TAG.seriesInstanceUid) ?? '';
  const rows = ds.uint16(TAG.rows);
  const columns = ds.uint16(TAG.columns);
  if (!rows || !columns) throw inconsistent('not-an-image', `${path} holds no image (no Rows/Columns)`, { path });
  const transferSyntaxUid = transferSyntaxOf(ds);
  const numberOfFrames = Math.max(1, number(ds, TAG.numberOfFrames) ?? 1);
  const base = {
    path,
    sopInstanceUid,
    dataSet: ds,
    transferSyntaxUid,
    multiFrame: numberOfFrames > 1,
    seriesInstanceUid,
    rows,
    columns,
    instanceNumber: number(ds, 'x00200013') ?? 0,
    along: 0,
  };
  const acquisitionMs = dateTimeMs(text(ds, 'x00080022'), text(ds, 'x00080032')) ?? dateTimeMsOfDt(text(ds, 'x0008002a'));
  if (numberOfFrames === 1 || ds.elements[TAG.perFrame] === undefined) {
    const orientation = numbers(ds, TAG.orientation);
    const position = numbers(ds, TAG.position);
    const pixelSpacing = numbers(ds, TAG.pixelSpacing) ?? numbers(ds, 'x00181164');
    if (orientation?.length !== 6 || position?.length !== 3 || pixelSpacing?.length !== 2) {
      throw inconsistent('no-geometry', `${path} lacks Image Position/Orientation (Patient) or Pixel Spacing`, { path });
    }
    const common = {
      ...base,
      pixelSpacing: pixelSpacing as [number, number],
      orientation,
      slope: number(ds, TAG.slope) ?? 1,
      intercept: number(ds, TAG.intercept) ?? 0,
      acquisitionMs,
      frameReferenceTimeMs: number(ds, 'x00541300'),
      frameDurationMs: number(ds, 'x00181242'),
      imageIndex: integer(ds, 'x00541330'),
      temporalPosition: number(ds, 'x00200100'),
      triggerTime: number(ds, 'x00181060'),
      echoNumber: number(ds, 'x00180086'),
      decayFactor: number(ds, 'x00541321'),
    };
    if (numberOfFrames === 1) return [{ ...common, frameIndex: 0, position }];
    // A multi-frame image without functional groups (NM tomography): planes stacked along the
    // normal by Spacing Between Slices from the first one.
    const spacing = number(ds, TAG.spacingBetweenSlices) ?? number(ds, TAG.sliceThickness);
    if (spacing === undefined)
      throw inconsistent('no-geometry', `${path} has ${numberOfFrames} frames but neither functional groups nor Spacing Between Slices`, {
        path,
      });
    const normal = cross(orientation.slice(0, 3), orientation.slice(3, 6));
    return Array.from({ length: numberOfFrames }, (_, f) => ({
      ...common,
      frameIndex: f,
      position: position.map((p, a) => p + f * spacing * normal[a]),
    }));
  }
  // Enhanced multi-frame (PS3.3 C.7.6.16): per-frame groups, else the shared ones.
  const perFrame = sequenceItems(ds, TAG.perFrame);
  const shared = item(ds, TAG.shared);
  return Array.from({ length: numberOfFrames }, (_, f) => {
    const own = perFrame[f];
    const group = (tag: string) => item(own, tag) ?? item(shared, tag);
    const position = numbers(group('x00209113'), TAG.position);
    const orientation = numbers(group('x00209116'), TAG.orientation);
    const pixelSpacing = numbers(group('x00289110'), TAG.pixelSpacing);
    if (orientation?.length !== 6 || position?.length !== 3 || pixelSpacing?.length !== 2) {
      throw inconsistent('no-geometry', `${path} frame ${f + 1} lacks Plane Position/Orientation or Pixel Measures`, {
        path,
        frameNumber: f + 1,
      });
    }
    const transform = group('x00289145');
    const content = group('x00209111');
    return {
      ...base,
      frameIndex: f,
      pixelSpacing: pixelSpacing as [number, number],
      orientation,
      position,
      slope: number(transform, TAG.slope) ?? 1,
      intercept: number(transform, TAG.intercept) ?? 0,
      acquisitionMs: dateTimeMsOfDt(text(content, 'x00189074')) ?? acquisitionMs,
      frameDurationMs: number(content, 'x00189220'),
      temporalPosition: content?.uint32('x00209128'),
      echoNumber: number(group('x00189114'), 'x00189082'),
    };
  });
}

function checkSameGrid(slices: Slice[]): void {
  const first = slices[0];
  for (const s of slices) {
    if (s.rows !== first.rows || s.columns !== first.columns) {
      throw inconsistent(
        'mixed-sizes',
        `images of different sizes: ${first.columns}×${first.rows} (${first.path}) and ${s.columns}×${s.rows} (${s.path})`,
        { paths: [first.path, s.path] },
      );
    }
    if (s.orientation.some((v, i) => Math.abs(v - first.orientation[i]) > ORIENTATION_TOLERANCE)) {
      throw inconsistent(
        'mixed-orientations',
        `images of different orientations: [${first.orientation.join(', ')}] (${first.path}) and [${s.orientation.join(', ')}] (${s.path})`,
        { paths: [first.path, s.path] },
      );
    }
    if (s.pixelSpacing.some((v, i) => Math.abs(v - first.pixelSpacing[i]) > POSITION_TOLERANCE_MM)) {
      throw inconsistent(
        'mixed-spacing',
        `images with different Pixel Spacing: ${first.pixelSpacing.join('\\')} (${first.path}) and ${s.pixelSpacing.join('\\')} (${s.path})`,
        { paths: [first.path, s.path] },
      );
    }
  }
}

/**
 * Splits the slices into time frames, in time order. PET: by ImageIndex and NumberOfSlices
 * (PS3.3 C.8.9.4.1.9) or Frame Reference Time; enhanced and MR/CT: Temporal Position; otherwise,
 * when positions repeat, by acquisition time, trigger time or echo at each position.
 */
function groupFrames(slices: Slice[], firstDs: DataSetLike): Slice[][] {
  const byKey = (key: (s: Slice) => number | undefined): Slice[][] | undefined => {
    const keys = slices.map(key);
    if (keys.some((k) => k === undefined)) return undefined;
    const distinct = [...new Set(keys as number[])].sort((a, b) => a - b);
    if (distinct.length < 2) return undefined;
    const index = new Map(distinct.map((k, i) => [k, i]));
    const frames: Slice[][] = distinct.map(() => []);
    slices.forEach((s, i) => frames[index.get(keys[i] as number)!].push(s));
    return frames;
  };
  const modality = text(firstDs, 'x00080060');
  const slicesPerFrame = integer(firstDs, 'x00540081');
  const timeSlices = integer(firstDs, 'x00540101');
  if (modality === 'PT' && slicesPerFrame && (timeSlices ?? 1) > 1) {
    const frames = byKey((s) => (s.imageIndex === undefined ? undefined : Math.floor((s.imageIndex - 1) / slicesPerFrame)));
    if (frames) return frames;
  }
  // A key splits the series only if each part then holds every position once.
  const positions = distinctPositions(slices);
  const splits = (frames: Slice[][] | undefined) =>
    frames?.every((f) => f.length === positions && !positionsRepeat(f)) ? frames : undefined;
  const grouped =
    (modality === 'PT' ? splits(byKey((s) => s.frameReferenceTimeMs)) : undefined) ??
    splits(byKey((s) => s.temporalPosition)) ??
    (positionsRepeat(slices)
      ? (splits(byKey((s) => s.acquisitionMs)) ?? splits(byKey((s) => s.triggerTime)) ?? splits(byKey((s) => s.echoNumber)))
      : undefined);
  if (grouped) return grouped;
  if (!positionsRepeat(slices)) return [slices];
  // Same positions again, nothing to tell the repeats apart but their instance numbers.
  const atPosition = new Map<string, Slice[]>();
  for (const s of slices) {
    const key = (Math.round(s.along / POSITION_TOLERANCE_MM) * POSITION_TOLERANCE_MM).toFixed(3);
    atPosition.set(key, [...(atPosition.get(key) ?? []), s]);
  }
  const counts = new Set([...atPosition.values()].map((l) => l.length));
  if (counts.size !== 1) {
    throw inconsistent(
      'duplicate-slices',
      `some slice positions occur ${[...counts].sort().join(' or ')} times, with nothing (time, temporal position, echo) to tell the copies apart`,
    );
  }
  const repeats = [...counts][0];
  return Array.from({ length: repeats }, (_, f) =>
    [...atPosition.values()].map((l) => [...l].sort((a, b) => a.instanceNumber - b.instanceNumber)[f]),
  );
}

function distinctPositions(slices: Slice[]): number {
  return new Set(slices.map((s) => Math.round(s.along / POSITION_TOLERANCE_MM))).size;
}

function positionsRepeat(slices: Slice[]): boolean {
  const seen = new Set<number>();
  for (const s of slices) {
    const key = Math.round(s.along / POSITION_TOLERANCE_MM);
    if (seen.has(key)) return true;
    seen.add(key);
  }
  return false;
}

function checkFramesAlike(frames: Slice[][]): void {
  const reference = frames[0];
  frames.forEach((frame, f) => {
    if (frame.length !== reference.length) {
      throw inconsistent(
        'missing-slice',
        `frame ${f + 1} has ${frame.length} slices, frame 1 has ${reference.length}: a slice is missing or extra`,
        { frame: f + 1, slices: frame.length, expected: reference.length },
      );
    }
    frame.forEach((s, k) => {
      if (Math.hypot(...s.position.map((p, a) => p - reference[k].position[a])) > POSITION_TOLERANCE_MM * 10) {
        throw inconsistent(
          'frames-differ',
          `frame ${f + 1} slice ${k + 1} (${s.path}) is not at the position of frame 1's (${reference[k].path})`,
          { frame: f + 1, slice: k + 1 },
        );
      }
    });
  });
}

/**
 * Checks the slices of a frame are evenly spaced along the normal, with none missing, and
 * stacked straight (no gantry tilt); returns the step between slices in LPS mm.
 */
function checkSpacing(frame: Slice[], normal: number[], ds: DataSetLike): number[] {
  const n = frame.length;
  if (n === 1) {
    const thickness = number(ds, TAG.spacingBetweenSlices) ?? number(ds, TAG.sliceThickness) ?? 1;
    return normal.map((v) => v * thickness);
  }
  const gaps = frame.slice(1).map((s, k) => s.along - frame[k].along);
  const duplicate = gaps.findIndex((g) => g < POSITION_TOLERANCE_MM);
  if (duplicate >= 0) {
    throw inconsistent(
      'duplicate-slices',
      `two slices at the same position (${frame[duplicate].along.toFixed(3)} mm along the normal): ${frame[duplicate].path} and ${frame[duplicate + 1].path}`,
      { paths: [frame[duplicate].path, frame[duplicate + 1].path] },
    );
  }
  const step = Math.min(...gaps);
  const tolerance = Math.max(POSITION_TOLERANCE_MM, SPACING_RELATIVE_TOLERANCE * step);
  gaps.forEach((gap, k) => {
    if (Math.abs(gap - step) <= tolerance) return;
    const multiple = Math.round(gap / step);
    const after = frame[k];
    if (multiple >= 2 && Math.abs(gap - multiple * step) <= tolerance * multiple) {
      throw inconsistent(
        'missing-slice',
        `${multiple - 1} slice(s) missing between ${after.along.toFixed(2)} mm (${after.path}) and ${frame[k + 1].along.toFixed(2)} mm along the normal (spacing ${step.toFixed(3)} mm)`,
        { after: after.path, before: frame[k + 1].path, missing: multiple - 1, spacingMm: step },
      );
    }
    throw inconsistent(
      'uneven-spacing',
      `slices are unevenly spaced: ${gap.toFixed(3)} mm after ${after.path}, ${step.toFixed(3)} mm elsewhere`,
      { after: after.path, gapMm: gap, spacingMm: step },
    );
  });
  // Straight stack: each step is along the normal (a tilted gantry shears it).
  for (let k = 1; k < n; k++) {
    const d = frame[k].position.map((p, a) => p - frame[k - 1].position[a]);
    const along = dot(d, normal);
    const sideways = Math.hypot(...d.map((v, a) => v - along * normal[a]));
    if (sideways > TILT_TOLERANCE * Math.abs(along) + POSITION_TOLERANCE_MM) {
      const tilt = number(ds, 'x00181120');
      const angle = (Math.atan2(sideways, Math.abs(along)) * 180) / Math.PI;
      throw inconsistent(
        'gantry-tilt',
        `slices are sheared by ${angle.toFixed(2)}° (gantry tilt${tilt ? ` ${tilt}°` : ''}): each slice is offset in-plane from the one before; reslice the series first`,
        { angleDeg: angle, gantryDetectorTilt: tilt },
      );
    }
  }
  const last = frame[n - 1].position;
  return frame[0].position.map((p, a) => (last[a] - p) / (n - 1));
}

function frameTiming(frames: Slice[][], first: Slice): FrameTiming[] {
  const ds = first.dataSet;
  const seriesMs = dateTimeMs(text(ds, 'x00080021'), text(ds, 'x00080031'));
  const starts = frames.map((f) => f[0].acquisitionMs);
  const durations = frames.map((f) => f[0].frameDurationMs);
  if (durations.every((d) => d !== undefined)) {
    // PET: ActualFrameDuration, started at its Acquisition Time, counted from the series
    // reference time (PS3.3 C.8.9.1.1.1: Series Date/Time of a PET series is its acquisition start).
    const reference = text(ds, 'x00080060') === 'PT' && seriesMs !== undefined ? seriesMs : starts[0];
    let cumulative = 0;
    const timing = frames.map((_, f) => {
      const startMs = starts[f] !== undefined && reference !== undefined ? starts[f]! - reference : cumulative;
      cumulative = startMs + durations[f]!;
      return { startMs, durationMs: durations[f]! };
    });
    const referenceTimes = frames.map((f) => f[0].frameReferenceTimeMs);
    return referenceTimes.every((r) => r !== undefined) ? checkedFrameTiming(timing, referenceTimes as number[]) : timing;
  }
  if (frames.length < 2 || starts.some((s) => s === undefined)) return [];
  const t0 = starts[0]!;
  return frames.map((_, f) => {
    const startMs = starts[f]! - t0;
    const next = f + 1 < frames.length ? starts[f + 1]! - t0 : startMs + (startMs - (starts[f - 1]! - t0));
    return { startMs, durationMs: next - startMs };
  });
}

/**
 * Frame starts checked against FrameReferenceTime (PS3.3 C.8.9.4.1.5: the frame's reference time
 * from the series reference time, within the frame), because AcquisitionTime cannot be trusted:
 * some scanners write the series start into every frame, and converters that believe it put
 * all frames at 0 s. In order of preference:
 *   1. the starts from AcquisitionTime, when each frame's FrameReferenceTime lies within it;
 *   2. frames back to back from the series start (start = sum of earlier durations), when each
 *      FrameReferenceTime lies within its frame so placed;
 *   3. otherwise each FrameReferenceTime taken as its frame's mid-time.
 */
export function checkedFrameTiming(timing: FrameTiming[], referenceTimesMs: number[]): FrameTiming[] {
  if (referenceTimesMs.length !== timing.length || !referenceTimesMs.every(Number.isFinite)) return timing;
  const durations = timing.map((t) => t.durationMs);
  // 1 ms of slack: the attributes are whole milliseconds (IS/DS) and mid-times may round.
  const consistent = (starts: number[]) => referenceTimesMs.every((r, f) => r >= starts[f] - 1 && r <= starts[f] + durations[f] + 1);
  const given = timing.map((t) => t.startMs);
  const backToBack: number[] = [];
  let sum = 0;
  for (const d of durations) {
    backToBack.push(sum);
    sum += d;
  }
  const starts = consistent(given) ? given : consistent(backToBack) ? backToBack : referenceTimesMs.map((r, f) => r - durations[f] / 2);
  return starts.map((startMs, f) => ({ startMs, durationMs: durations[f] }));
}

function seriesInfo(first: Slice, frames: Slice[][], slices: Slice[]): SeriesInfo {
  const ds = first.dataSet;
  // The series' acquisition began with its earliest plane (a PET's first frame, an MR's first
  // slice in time), whichever file that is.
  let earliest = first;
  for (const s of slices)
    if (s.acquisitionMs !== undefined && (earliest.acquisitionMs === undefined || s.acquisitionMs < earliest.acquisitionMs)) earliest = s;
  const modality = text(ds, 'x00080060') ?? 'OT';
  const info: SeriesInfo = {
    modality,
    studyInstanceUid: text(ds, 'x0020000d'),
    seriesInstanceUid: first.seriesInstanceUid,
    seriesNumber: number(ds, 'x00200011'),
    seriesDescription: text(ds, 'x0008103e'),
    protocolName: text(ds, 'x00181030'),
    manufacturer: text(ds, 'x00080070'),
    manufacturerModelName: text(ds, 'x00081090'),
    imageType: text(ds, 'x00080008')?.split('\\'),
    bodyPartExamined: text(ds, 'x00180015'),
    patientPosition: text(ds, 'x00185100'),
    seriesDateTime: isoOf(text(ds, 'x00080021'), text(ds, 'x00080031')),
    acquisitionDateTime: acquisitionIso(earliest),
    sliceThicknessMm: number(ds, TAG.sliceThickness),
    mrAcquisitionType: text(ds, 'x00180023'),
    echoTimeMs: number(ds, 'x00180081'),
    repetitionTimeMs: number(ds, 'x00180080'),
    flipAngleDeg: number(ds, 'x00181314'),
    magneticFieldStrengthT: number(ds, 'x00180087'),
    kvp: number(ds, 'x00180060'),
    convolutionKernel: text(ds, 'x00181210'),
  };
  if (modality === 'PT') {
    const drug = item(ds, 'x00540016');
    const seriesMs = dateTimeMs(text(ds, 'x00080021'), text(ds, 'x00080031'));
    const injectionMs = dateTimeMsOfDt(text(drug, 'x00181078')) ?? dateTimeMs(text(ds, 'x00080021'), text(drug, 'x00181072'));
    const nuclide = item(drug, 'x00540300');
    const drugCode = item(drug, 'x00540304');
    info.pet = {
      units: text(ds, 'x00541001'),
      decayCorrection: text(ds, 'x00541102'),
      decayFactors: frames.map((f) => f[0].decayFactor).filter((v): v is number => v !== undefined),
      frameReferenceTimesMs: frames.map((f) => f[0].frameReferenceTimeMs).filter((v): v is number => v !== undefined),
      correctedImage: text(ds, 'x00280051')?.split('\\'),
      reconstructionMethod: text(ds, 'x00541103'),
      radiopharmaceutical: text(drug, 'x00180031') ?? text(drugCode, 'x00080104'),
      radionuclide: text(nuclide, 'x00080104'),
      injectedDoseBq: number(drug, 'x00181074'),
      radionuclideHalfLifeSec: number(drug, 'x00181075'),
      injectionStartSec: injectionMs !== undefined && seriesMs !== undefined ? (injectionMs - seriesMs) / 1000 : undefined,
      injectionDateTime: injectionMs === undefined ? undefined : new Date(injectionMs).toISOString().replace('Z', ''),
      patientWeightKg: number(ds, 'x00101030'),
      attenuationCorrectionMethod: text(ds, 'x00541101'),
      scatterCorrectionMethod: text(ds, 'x00541105'),
    };
  }
  return info;
}

function cross(a: number[], b: number[]): number[] {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function dot(a: number[], b: number[]): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

function unit(v: number[]): number[] {
  const length = Math.hypot(v[0], v[1], v[2]);
  return v.map((x) => x / length);
}
