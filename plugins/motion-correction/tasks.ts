import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bidsSidecar, writeNifti } from '../../core/dicom/nifti.ts';
import { loadVolume, type FrameTiming, type SeriesInfo, type Volume } from '../../core/dicom/volume.ts';
import { dfError } from '../../core/errors.ts';
import { motionInPatientSpace, motionParameters } from './registration/patient-space.ts';
import { chooseReferenceFrames, combineFrames, type ReferenceSpec } from './registration/reference.ts';
import { combine, type FilePrediction, GramAccumulator, predictions, type Prediction } from './registration/predicted-reference.ts';
import {
  prepareReference,
  registerFrame,
  resolvedFwhmMm,
  resolvedLevels,
  type LevelReport,
  type PreparedReference,
  type RegistrationResult,
  type RigidRegistrationOptions,
} from './registration/register.ts';
import { firstPass, predictionMask, secondPass, smoothedCorrected } from './registration/register-series.ts';
import { resampleTrilinear } from './registration/resample.ts';
import { rigidMatrix } from './registration/rigid.ts';
import { writeDerivedFrame, type DerivedSeriesSpec } from './derived-series.ts';
import { writeMotionPlot } from './motion-plot.ts';
import { frameTimesSec } from './frame-times.ts';

/**
 * The motion-correction step's work, as functions the worker pool runs (ctx.runTask): load the
 * series and build the reference once, then one task per frame (register, resample, write its
 * derived instances), then the summary files. With a predicted reference per frame
 * (registration/register-series.ts) the registration takes two rounds of frame tasks: the first
 * pass per frame, one task predicting every frame's reference from the others, then the
 * second pass with the resampling and writing. Frames travel between tasks as raw float32 files
 * in the step's scratch directory, so no task holds the whole series but the first: the fit of
 * the predictions reads the frames in blocks, and each frame's task adds up its own prediction
 * from the other frames' files, one at a time.
 */

export interface GridData {
  dims: [number, number, number];
  spacingMm: [number, number, number];
  affine: number[];
}

export interface PrepareSeriesArg {
  files: string[];
  scratchDir: string;
  reference: ReferenceSpec;
  startSec: number;
  registration: RigidRegistrationOptions;
}

export interface PreparedSeries {
  grid: GridData;
  timing: FrameTiming[];
  frameFiles: string[];
  referenceFile: string;
  referenceDescription: string;
  referenceFrames: number[];
  /** Per frame: registered (false: before the start time, copied as it is). */
  register: boolean[];
  sources: Volume['sources'];
  series: SeriesInfo;
  units?: string;
  /** The step's registration options with "auto" resolved from this series' grid and reference. */
  registration: RigidRegistrationOptions;
}

/** Loads the series, writes its frames and the reference to scratch; a static series is only named. */
export async function prepareSeries(arg: PrepareSeriesArg): Promise<PreparedSeries | { static: true; seriesInstanceUid: string }> {
  const volume = await loadVolume(arg.files);
  const frameCount = volume.frames.length;
  if (frameCount < 2) return { static: true, seriesInstanceUid: volume.series.seriesInstanceUid };
  const choice = chooseReferenceFrames(arg.reference, volume.timing, frameCount);
  if ('problem' in choice) throw dfError('DF_ERR_MOTION_CORRECTION', choice.problem);
  const dir = path.join(arg.scratchDir, 'frames');
  await mkdir(dir, { recursive: true });
  const frameFiles = await Promise.all(
    volume.frames.map(async (frame, f) => {
      const file = path.join(dir, `frame-${String(f + 1).padStart(4, '0')}.f32`);
      await writeFile(file, new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength));
      return file;
    }),
  );
  const reference = combineFrames(
    choice.frames.map((f) => volume.frames[f]),
    choice.weights,
  );
  const referenceFile = path.join(dir, 'reference.f32');
  await writeFile(referenceFile, new Uint8Array(reference.buffer));
  const register = volume.frames.map((_, f) => (volume.timing[f] === undefined ? true : volume.timing[f].startMs >= arg.startSec * 1000));
  return {
    grid: { dims: volume.dims, spacingMm: volume.spacingMm, affine: Array.from(volume.affine) },
    timing: volume.timing,
    frameFiles,
    referenceFile,
    referenceDescription: choice.description,
    referenceFrames: choice.frames,
    register,
    sources: volume.sources,
    series: volume.series,
    ...(volume.units === undefined ? {} : { units: volume.units }),
    registration: {
      ...arg.registration,
      fwhmMm: resolvedFwhmMm(arg.registration, reference, volume.dims, volume.spacingMm),
      levels: resolvedLevels(arg.registration, volume.dims),
    },
  };
}

export interface FirstPassArg {
  frameFile: string;
  referenceFile: string;
  grid: GridData;
  registration: RigidRegistrationOptions;
  /** Where the smoothed frame goes, and the smoothed frame in the reference's pose (when plausible). */
  smoothedFile: string;
  smoothedCorrectedFile: string;
}

export interface FirstPassResult {
  result: RegistrationResult;
  /** The smoothed corrected frame was written (the first pass is plausible). */
  corrected: boolean;
  seconds: number;
}

/** The first of two passes for one frame: registered to the series' reference. */
export async function firstPassFrame(arg: FirstPassArg): Promise<FirstPassResult> {
  const started = performance.now();
  const frame = await readFloat32(arg.frameFile);
  const prepared = await seriesReference(arg.referenceFile, arg.grid, arg.registration);
  const pass = firstPass(prepared, frame);
  await writeFloat32(arg.smoothedFile, pass.smoothedFrame);
  const moved = smoothedCorrected(prepared, pass);
  if (moved !== undefined) await writeFloat32(arg.smoothedCorrectedFile, moved);
  return { result: pass.result, corrected: moved !== undefined, seconds: (performance.now() - started) / 1000 };
}

export interface PredictReferencesArg {
  referenceFile: string;
  maskFraction: number;
  /** Per frame, its smoothed corrected file, or null when it has none. */
  smoothedCorrectedFiles: (string | null)[];
}

// Voxels read per frame file at a time while fitting the predictions (1 MB per frame).
const FIT_BLOCK_VOXELS = 1 << 18;

/**
 * Per frame, how the other frames' first passes predict its reference (registration/
 * predicted-reference.ts), or null. The Gram matrix is gathered over blocks of voxels read from
 * the frames' files, so memory stays at a block per frame whatever the series' size.
 */
export async function predictFrameReferences(arg: PredictReferencesArg): Promise<(Prediction | null)[]> {
  const mask = predictionMask(await readFloat32(arg.referenceFile), arg.maskFraction);
  const files = arg.smoothedCorrectedFiles.flatMap((file) => (file === null ? [] : [file]));
  const gram = new GramAccumulator(files.length);
  const fds = files.map((file) => openSync(file, 'r'));
  try {
    const blocks = files.map(() => new Float32Array(FIT_BLOCK_VOXELS));
    const offsets = new Uint32Array(FIT_BLOCK_VOXELS);
    for (let q = 0, start = 0; q < mask.length; start += FIT_BLOCK_VOXELS) {
      const end = start + FIT_BLOCK_VOXELS;
      let inBlock = 0;
      for (; q < mask.length && mask[q] < end; q++) offsets[inBlock++] = mask[q] - start;
      if (inBlock === 0) continue;
      // Up to the block's last masked voxel: a frame file ends with the volume.
      const voxels = offsets[inBlock - 1] + 1;
      fds.forEach((fd, i) => readExactly(fd, new Uint8Array(blocks[i].buffer, 0, 4 * voxels), 4 * start));
      gram.add(blocks, offsets.subarray(0, inBlock));
    }
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  return predictions(
    arg.smoothedCorrectedFiles.map((file) => file !== null),
    gram.matrix(),
  ).map((prediction) => prediction ?? null);
}

function readExactly(fd: number, into: Uint8Array, position: number): void {
  for (let done = 0; done < into.length; ) {
    const read = readSync(fd, into, done, into.length - done, position + done);
    if (read === 0) throw dfError('DF_ERR_MOTION_CORRECTION', `a frame's scratch file ended early (at ${position + done} bytes)`);
    done += read;
  }
}

export interface CorrectFrameArg {
  frame: number;
  register: boolean;
  frameFile: string;
  referenceFile: string;
  correctedFile: string;
  grid: GridData;
  registration: RigidRegistrationOptions;
  /**
   * The frame's first pass (firstPassFrame) and how to predict its reference from the other
   * frames' smoothed corrected files (predictFrameReferences; none: the first pass stands).
   */
  firstPass?: { result: RegistrationResult; seconds: number; smoothedFile: string; prediction?: FilePrediction };
  /** Write the frame's derived DICOM instances (omit to skip). */
  derived?: DerivedSeriesSpec & { sources: Volume['sources'][number] };
}

export interface FrameResult {
  frame: number;
  registered: boolean;
  /** Reference point → the same anatomy in this frame, LPS mm, row-major 4×4. */
  matrix: number[];
  translationMm: [number, number, number];
  rotationDeg: [number, number, number];
  converged: boolean;
  problem?: string;
  similarity?: number;
  levels?: LevelReport[];
  seconds: number;
  instances: string[];
}

// One prepared reference per worker thread: every frame task of a job reuses it.
let cachedReference: { key: string; prepared: PreparedReference } | undefined;

async function seriesReference(referenceFile: string, grid: GridData, registration: RigidRegistrationOptions): Promise<PreparedReference> {
  const key = `${referenceFile}\n${JSON.stringify(registration)}`;
  if (cachedReference?.key !== key)
    cachedReference = { key, prepared: prepareReference(await readFloat32(referenceFile), grid.dims, grid.spacingMm, registration) };
  return cachedReference.prepared;
}

/** The frame's predicted reference, the other frames' files read one at a time. */
function predictedReference(prediction: FilePrediction, length: number): Float32Array {
  const { files, weights, constant } = prediction;
  // One buffer, read into again for each file.
  const other = new Float32Array(length);
  return combine(files, weights, constant, length, (file, add) => {
    const fd = openSync(file, 'r');
    try {
      if (fstatSync(fd).size !== 4 * length) throw dfError('DF_ERR_MOTION_CORRECTION', `${file}: not a frame of ${length} voxels`);
      readExactly(fd, new Uint8Array(other.buffer), 0);
    } finally {
      closeSync(fd);
    }
    add(other);
  });
}

async function writeFloat32(file: string, data: Float32Array): Promise<void> {
  await writeFile(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

async function readFloat32(file: string): Promise<Float32Array> {
  const bytes = await readFile(file);
  // A fresh, aligned copy: Buffer pools may start at an odd offset.
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

export async function correctFrame(arg: CorrectFrameArg): Promise<FrameResult> {
  const started = performance.now();
  const frame = await readFloat32(arg.frameFile);
  const { dims, spacingMm } = arg.grid;
  const grid = { dims, spacingMm, affine: Float64Array.from(arg.grid.affine) };
  let gridMatrix = rigidMatrix([0, 0, 0, 0, 0, 0], [0, 0, 0]);
  let registered = false;
  let converged = true;
  let problem: string | undefined;
  let similarity: number | undefined;
  let levels: LevelReport[] | undefined;
  if (arg.register) {
    const prepared = await seriesReference(arg.referenceFile, arg.grid, arg.registration);
    const first = arg.firstPass;
    let result: RegistrationResult;
    if (first === undefined) result = registerFrame(prepared, frame);
    else if (first.prediction === undefined || !first.result.plausible) result = first.result;
    else
      result = secondPass(
        prepared,
        predictedReference(first.prediction, frame.length),
        frame,
        first.result,
        await readFloat32(first.smoothedFile),
      );
    similarity = result.similarity;
    levels = result.levels;
    converged = result.converged;
    problem = result.problem;
    // An implausible result (beyond the bounds, not finite, worse than no correction) is not
    // applied: the frame stays as it was and is reported. One that only ran out of iterations
    // is applied and reported.
    if (result.plausible) {
      gridMatrix = result.matrix;
      registered = true;
    }
  }
  const corrected = registered ? resampleTrilinear(frame, dims, spacingMm, gridMatrix) : frame;
  await writeFile(arg.correctedFile, new Uint8Array(corrected.buffer, corrected.byteOffset, corrected.byteLength));
  const matrix = motionInPatientSpace(grid, gridMatrix);
  const { translationMm, rotationDeg } = motionParameters(grid, matrix);
  const instances = arg.derived === undefined ? [] : await writeDerivedFrame(corrected, dims, arg.derived.sources, arg.derived);
  return {
    frame: arg.frame,
    registered,
    matrix: Array.from(matrix),
    translationMm,
    rotationDeg,
    converged,
    ...(problem === undefined ? {} : { problem }),
    ...(similarity === undefined ? {} : { similarity }),
    ...(levels === undefined ? {} : { levels }),
    seconds: (performance.now() - started) / 1000 + (arg.firstPass?.seconds ?? 0),
    instances,
  };
}

export interface WriteResultsArg {
  outDir: string;
  grid: GridData;
  timing: FrameTiming[];
  correctedFiles: string[];
  results: FrameResult[];
  series: SeriesInfo;
  units?: string;
  referenceDescription: string;
  options: Record<string, unknown>;
  nifti: boolean;
  /** gzip level of the NIfTI (1–9). */
  niftiGzipLevel: number;
  plot: boolean;
  software: { name: string; version: string };
}

export interface WrittenResults {
  json: string;
  csv: string;
  nifti?: string;
  sidecar?: string;
  svg?: string;
  png?: string;
}

export async function writeResults(arg: WriteResultsArg): Promise<WrittenResults> {
  await mkdir(arg.outDir, { recursive: true });
  const frames = arg.results.map((r) => {
    return {
      frame: r.frame + 1,
      ...frameTimesSec(arg.timing[r.frame]),
      registered: r.registered,
      converged: r.converged,
      ...(r.problem === undefined ? {} : { problem: r.problem }),
      translationMm: r.translationMm.map(round6),
      rotationDeg: r.rotationDeg.map(round6),
      matrix: [0, 1, 2, 3].map((row) => r.matrix.slice(4 * row, 4 * row + 4).map(round9)),
      ...(r.similarity === undefined ? {} : { similarity: round6(r.similarity) }),
      seconds: round6(r.seconds),
    };
  });
  const summary = {
    software: arg.software,
    seriesInstanceUid: arg.series.seriesInstanceUid,
    coordinates: 'DICOM patient coordinates (LPS), mm',
    matrixMaps: 'a point of the reference to where the same anatomy lies in the frame (row-major 4×4, column vectors)',
    parameters: 'translation of the volume centre (mm) and Euler angles (degrees) of R = Rz·Ry·Rx about the volume centre, LPS axes',
    volumeCentreMm: centreOf(arg.grid),
    reference: arg.referenceDescription,
    options: arg.options,
    frames,
  };
  const json = path.join(arg.outDir, 'motion.json');
  await writeFile(json, `${JSON.stringify(summary, null, 2)}\n`);
  const header = [
    'frame',
    'start_s',
    'duration_s',
    'mid_s',
    'registered',
    'converged',
    'tx_mm',
    'ty_mm',
    'tz_mm',
    'rx_deg',
    'ry_deg',
    'rz_deg',
    ...Array.from({ length: 12 }, (_, i) => `m${Math.floor(i / 4)}${i % 4}`),
  ];
  const lines = [header.join(',')];
  for (const [i, f] of frames.entries()) {
    const r = arg.results[i];
    lines.push(
      [
        f.frame,
        f.startSec ?? '',
        f.durationSec ?? '',
        f.midSec ?? '',
        f.registered,
        f.converged,
        ...f.translationMm,
        ...f.rotationDeg,
        ...r.matrix.slice(0, 12).map(round9),
      ].join(','),
    );
  }
  const csv = path.join(arg.outDir, 'motion.csv');
  await writeFile(csv, `${lines.join('\n')}\n`);
  const written: WrittenResults = { json, csv };

  if (arg.nifti) {
    const corrected = await Promise.all(arg.correctedFiles.map(readFloat32));
    const affine = Float64Array.from(arg.grid.affine);
    const volume = {
      dims: arg.grid.dims,
      spacingMm: arg.grid.spacingMm,
      affine,
      frames: corrected,
      timing: arg.timing,
      sources: [],
      varyingRescale: true,
      series: arg.series,
      ...(arg.units === undefined ? {} : { units: arg.units }),
    };
    written.nifti = path.join(arg.outDir, 'motion-corrected.nii.gz');
    await writeNifti(volume, written.nifti, { description: 'dicomflow motion-corrected', gzipLevel: arg.niftiGzipLevel });
    written.sidecar = path.join(arg.outDir, 'motion-corrected.json');
    await writeFile(written.sidecar, `${JSON.stringify(bidsSidecar(volume, arg.software), null, 2)}\n`);
  }
  if (arg.plot) {
    written.svg = path.join(arg.outDir, 'motion.svg');
    written.png = path.join(arg.outDir, 'motion.png');
    const points = arg.results.map((r, i) => ({
      midSec: frames[i].midSec ?? i,
      translationMm: r.translationMm,
      rotationDeg: r.rotationDeg,
    }));
    await writeMotionPlot(points, `Motion: ${arg.series.seriesDescription ?? arg.series.seriesInstanceUid}`, written.svg, written.png);
  }
  return written;
}

function centreOf(grid: GridData): number[] {
  const [nx, ny, nz] = grid.dims;
  const a = grid.affine;
  const i = (nx - 1) / 2,
    j = (ny - 1) / 2,
    k = (nz - 1) / 2;
  return [0, 1, 2].map((r) => round6(a[4 * r] * i + a[4 * r + 1] * j + a[4 * r + 2] * k + a[4 * r + 3]));
}

function round6(v: number): number {
  return Number(v.toFixed(6));
}
function round9(v: number): number {
  return Number(v.toPrecision(10));
}
