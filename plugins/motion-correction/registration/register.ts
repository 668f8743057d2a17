import { minimize, type StopReason } from './optimizer.ts';
import { buildPyramid, fullResolutionLevel, pyramidPlan, type ImageLevel } from './pyramid.ts';
import { rigidMatrix, type Matrix4, type RigidParameters, type Vector3 } from './rigid.ts';
import { createCost, robustRange, type CostKind, type SampleSet } from './similarity.ts';
import { gaussianSmooth } from './smoothing.ts';

/**
 * Rigid registration of one frame to a reference, coarse to fine. Both images are on the same grid
 * (frames of one series); positions are in the grid's mm space (voxel (i, j, k) at
 * (i·sx, j·sy, k·sz)), rotations about the volume's centre.
 *
 * The result maps a point of the reference to where the same anatomy lies in the frame.
 */
export interface RigidRegistrationOptions {
  cost: CostKind;
  /** Gaussian pre-smoothing of reference and frame, FWHM in mm (0: none; 'auto': autoFwhmMm). */
  fwhmMm: number | 'auto';
  /** Resolution levels, each halving the finest axes (fewer when the image is small; 'auto': autoLevels). */
  levels: number | 'auto';
  /** Histogram bins per image for 'nmi'. */
  bins: number;
  /** Iterations per level at most. */
  maxIterations: number;
  /** Stop at the finest level when a step moves no point by more than this (mm). */
  toleranceMm: number;
  /** At most this many reference voxels per level take part in the cost (a fixed random subset). */
  maxSamples: number;
  /** Reference voxels below this fraction of its (robust) maximum, beyond a margin, are left out. */
  maskFraction: number;
  /** Seed of the sample positions (a different seed, an equally valid draw: the bench reports the spread). */
  samplingSeed: number;
  /** Above these the result is implausible and reported as failed. */
  maxTranslationMm: number;
  maxRotationDeg: number;
  /**
   * A second pass: each frame refined at the finest level against a reference predicted from the
   * other frames once the first pass has corrected them (predicted-reference.ts), instead of
   * only the series' one reference.
   */
  predictedReference: boolean;
}

export const DEFAULT_REGISTRATION_OPTIONS: RigidRegistrationOptions = {
  cost: 'nmi',
  fwhmMm: 'auto',
  levels: 'auto',
  bins: 32,
  maxIterations: 100,
  toleranceMm: 0.005,
  maxSamples: 150_000,
  maskFraction: 0.05,
  samplingSeed: 0,
  maxTranslationMm: 30,
  maxRotationDeg: 20,
  predictedReference: true,
};

/**
 * The pre-smoothing that follows from the data: two voxels along the grid's coarsest axis,
 * scaled by the square root of the reference's noise relative to 7 % (within 0.75–1.25×: the
 * estimate also counts anatomy as noise where voxels are coarse next to its edges, so it is
 * trusted for a moderate correction only). Reconstructions are sampled
 * at about half their resolution, so two voxels is about the image's own point spread, the
 * matched filter for locating its edges in noise; noisier data (a lower dose, shorter frames)
 * needs more, cleaner data less: less smoothing leaves noise (and trilinear interpolation's
 * dependence on where a point falls between voxels) in the cost, more flattens the edges the
 * alignment comes from. Measured on three phantoms (bench/motion.ts): the best factor of the
 * voxel size was ≥ 2.5 at 10 % reference noise, 2–2.5 at 7 %, ≤ 1.5 at 4 %.
 */
export function autoFwhmMm(spacingMm: readonly [number, number, number], relativeNoise: number): number {
  const scale = Math.min(1.25, Math.max(0.75, Math.sqrt(relativeNoise / 0.07)));
  return 2 * Math.max(...spacingMm) * (Number.isFinite(scale) ? scale : 1);
}

/**
 * The noise of an image relative to its signal: the median absolute difference between a voxel
 * and the mean of its six neighbours (× 1.4826 for a normal SD), over voxels above 20 % of the
 * maximum, divided by their median. The neighbours' mean keeps the anatomy (smooth at the voxel
 * scale in a reconstruction), so the difference is mostly noise.
 */
export function relativeNoise(data: Float32Array, dims: readonly [number, number, number]): number {
  const [nx, ny, nz] = dims;
  if (nx < 3 || ny < 3 || nz < 3) return Number.NaN;
  let max = 0;
  for (let n = 0; n < data.length; n++) if (data[n] > max) max = data[n];
  const plane = nx * ny;
  // Every voxel of a large image is not needed for two medians: a regular subset of ~100 000.
  const step = Math.max(1, Math.floor(data.length / 100_000));
  const residuals: number[] = [];
  const signal: number[] = [];
  for (let q = plane + nx + 1; q < data.length - plane - nx - 1; q += step) {
    const i = q % nx,
      j = Math.floor(q / nx) % ny;
    if (i === 0 || i === nx - 1 || j === 0 || j === ny - 1 || !(data[q] >= 0.2 * max)) continue;
    const mean = (data[q - 1] + data[q + 1] + data[q - nx] + data[q + nx] + data[q - plane] + data[q + plane]) / 6;
    residuals.push(Math.abs(data[q] - mean));
    signal.push(data[q]);
  }
  if (signal.length === 0) return Number.NaN;
  const median = (values: number[]): number => Float64Array.from(values).sort()[values.length >> 1];
  return (1.4826 * median(residuals)) / median(signal);
}

/**
 * Levels that follow from the image size: halve while the in-plane axes keep at least 20 voxels
 * (a head still spans a dozen of them, enough for the cost to see its shape): 3 levels for a 128
 * matrix, 2 for 40–79.
 */
export function autoLevels(dims: readonly [number, number, number]): number {
  let levels = 1;
  for (let n = Math.min(dims[0], dims[1]); n >= 40 && levels < 5; n = Math.ceil(n / 2)) levels++;
  return levels;
}

export function resolvedFwhmMm(
  options: RigidRegistrationOptions,
  reference: Float32Array,
  dims: readonly [number, number, number],
  spacingMm: readonly [number, number, number],
): number {
  return options.fwhmMm === 'auto' ? autoFwhmMm(spacingMm, relativeNoise(reference, dims)) : options.fwhmMm;
}

export function resolvedLevels(options: RigidRegistrationOptions, dims: readonly [number, number, number]): number {
  return options.levels === 'auto' ? autoLevels(dims) : options.levels;
}

export interface PreparedReference {
  dims: [number, number, number];
  spacingMm: [number, number, number];
  /** The pre-smoothing applied (FWHM, mm) and the number of levels, 'auto' resolved. */
  fwhmMm: number;
  levels: number;
  /** The coarsest level prepared (0: all; levels − 1: the finest alone). */
  firstLevel: number;
  centre: Vector3;
  plan: boolean[][];
  /** Sample sets of levels firstLevel… (coarsest first). */
  samples: SampleSet[];
  /** RMS distance of the finest samples from the centre, mm. */
  radiusMm: number;
  options: RigidRegistrationOptions;
}

export interface LevelReport {
  spacingMm: [number, number, number];
  samples: number;
  iterations: number;
  evaluations: number;
  stop: StopReason;
  value: number;
}

export interface RegistrationResult {
  /** Grid-space parameters: translations mm, rotations radians about the volume centre. */
  parameters: RigidParameters;
  /** Grid mm (reference) → grid mm (frame). */
  matrix: Matrix4;
  /** The finest level stopped on a step below tolerance (or no further decrease) within bounds. */
  converged: boolean;
  /**
   * False when the result must not be applied: the cost became non-finite, the motion is beyond
   * the bounds, or the similarity ended below that of no correction at all.
   */
  plausible: boolean;
  /** Why not, when not converged. */
  problem?: string;
  /** The similarity at the end (NMI or NCC, larger is more similar). */
  similarity: number;
  levels: LevelReport[];
}

export function volumeCentre(dims: readonly [number, number, number], spacingMm: readonly [number, number, number]): Vector3 {
  return [((dims[0] - 1) * spacingMm[0]) / 2, ((dims[1] - 1) * spacingMm[1]) / 2, ((dims[2] - 1) * spacingMm[2]) / 2];
}

/** Which resolution levels a registration runs: all, or the finest alone (a refinement from an estimate already within a fraction of a voxel). */
export type LevelStages = 'all' | 'finest';

/** Smooths the reference, builds its pyramid and the sample set of each level it is needed for (once per series). */
export function prepareReference(
  reference: Float32Array,
  dims: [number, number, number],
  spacingMm: [number, number, number],
  options: RigidRegistrationOptions = DEFAULT_REGISTRATION_OPTIONS,
  how: { stages?: LevelStages /** The reference is already smoothed by options.fwhmMm (a number). */; smoothed?: boolean } = {},
): PreparedReference {
  const stages = how.stages ?? 'all';
  const fwhmMm = resolvedFwhmMm(options, reference, dims, spacingMm);
  const plan = pyramidPlan(dims, spacingMm, resolvedLevels(options, dims));
  const smoothed = fwhmMm > 0 && how.smoothed !== true ? gaussianSmooth(reference, dims, spacingMm, fwhmMm) : reference;
  const full = fullResolutionLevel(smoothed, dims, spacingMm);
  const levels = stages === 'finest' ? [full] : buildPyramid(full, plan);
  const firstLevel = plan.length + 1 - levels.length;
  const centre = volumeCentre(dims, spacingMm);
  const samples = levels.map((level, index) => sampleSet(level, centre, options, firstLevel + index));
  const finest = samples[samples.length - 1];
  let sumSq = 0;
  for (let n = 0; n < finest.count; n++) sumSq += finest.x[n] ** 2 + finest.y[n] ** 2 + finest.z[n] ** 2;
  const radiusMm = Math.max(10, Math.sqrt(sumSq / Math.max(1, finest.count)));
  return { dims, spacingMm, fwhmMm, levels: plan.length + 1, firstLevel, centre, plan, samples, radiusMm, options };
}

/**
 * The finest level of a prepared reference with another image's values at the same sample
 * points: a reference of a different contrast over the same head (predicted-reference.ts),
 * already smoothed as `prepared` smooths. Only a finest-stage registration can use it.
 */
export function withFinestImage(prepared: PreparedReference, smoothedImage: Float32Array): PreparedReference {
  const finest = prepared.samples[prepared.samples.length - 1];
  const [sx, sy, sz] = prepared.spacingMm;
  const [cx, cy, cz] = finest.centre;
  const fixed = new Float32Array(finest.count);
  // The finest level is the full-resolution grid (origin 0); its points lie within it.
  for (let n = 0; n < finest.count; n++)
    fixed[n] = interpolateAt(smoothedImage, prepared.dims, (finest.x[n] + cx) / sx, (finest.y[n] + cy) / sy, (finest.z[n] + cz) / sz);
  return { ...prepared, firstLevel: prepared.levels - 1, samples: [{ ...finest, fixed }] };
}

/** The frame as the registration sees it: smoothed by the reference's pre-smoothing. */
export function smoothForRegistration(reference: PreparedReference, frame: Float32Array): Float32Array {
  return reference.fwhmMm > 0 ? gaussianSmooth(frame, reference.dims, reference.spacingMm, reference.fwhmMm) : frame;
}

export interface RegistrationRun {
  /** Where the parameters start (default: no motion). */
  initial?: Readonly<RigidParameters>;
  stages?: LevelStages;
  /** smoothForRegistration(reference, frame), when the caller has it already. */
  smoothedFrame?: Float32Array;
  /** The finest level's tolerance, mm, when not options.toleranceMm. */
  finestToleranceMm?: number;
}

export function registerFrame(reference: PreparedReference, frame: Float32Array, run: RegistrationRun = {}): RegistrationResult {
  const { options, dims, spacingMm } = reference;
  const stages = run.stages ?? 'all';
  const initial = run.initial ?? [0, 0, 0, 0, 0, 0];
  const smoothed = run.smoothedFrame ?? smoothForRegistration(reference, frame);
  const full = fullResolutionLevel(smoothed, dims, spacingMm);
  const levels = stages === 'finest' ? [full] : buildPyramid(full, reference.plan);
  const firstLevel = reference.levels - levels.length;
  if (firstLevel < reference.firstLevel)
    throw new Error(`the reference was prepared from level ${reference.firstLevel + 1} of ${reference.levels} only`);
  let parameters: RigidParameters = [...initial] as RigidParameters;
  const reports: LevelReport[] = [];
  let value = 0;
  let problem: string | undefined;
  let plausible = true;
  for (let index = 0; index < levels.length && problem === undefined; index++) {
    const level = levels[index];
    const levelIndex = firstLevel + index;
    const finest = levelIndex === reference.levels - 1;
    const samples = reference.samples[levelIndex - reference.firstLevel];
    const cost = createCost(options.cost, samples, { level }, { bins: options.bins, initial: parameters });
    const coarsestSpacing = Math.min(...level.spacingMm);
    try {
      const result = minimize(cost, parameters, {
        radiusMm: reference.radiusMm,
        maxIterations: options.maxIterations,
        // Coarse levels only need to bring the fine ones within their capture range.
        toleranceMm: finest ? (run.finestToleranceMm ?? options.toleranceMm) : Math.max(options.toleranceMm, 0.02 * coarsestSpacing),
        // A refinement (the finest level alone, from an earlier result) starts within a small
        // fraction of a voxel of its optimum: a first step of half a voxel only backtracks. With
        // 5 % of a voxel the second pass took 12–25 % fewer evaluations on the three phantoms,
        // the same errors within 0.002 mm (seeds 0–1).
        initialStepMm: (stages === 'finest' && run.initial !== undefined ? 0.05 : 0.5) * coarsestSpacing,
      });
      parameters = result.parameters;
      value = result.value;
      reports.push({
        spacingMm: level.spacingMm,
        samples: samples.count,
        iterations: result.iterations,
        evaluations: result.evaluations,
        stop: result.stop,
        value: -result.value,
      });
      // A coarse level can lead astray: the end must beat no correction at the finest level.
      const uncorrected = finest ? cost.evaluate([0, 0, 0, 0, 0, 0]) : Infinity;
      if (value > uncorrected) {
        problem = `the registered frame is less similar to the reference than the uncorrected one (${(-value).toFixed(4)} < ${(-uncorrected).toFixed(4)})`;
        plausible = false;
      }
    } catch (err) {
      problem = `${(err as Error).message} at level ${levelIndex + 1} of ${reference.levels}`;
      plausible = false;
    }
  }
  const last = reports[reports.length - 1];
  const translation = Math.hypot(parameters[0], parameters[1], parameters[2]);
  const rotationDeg = (Math.max(Math.abs(parameters[3]), Math.abs(parameters[4]), Math.abs(parameters[5])) * 180) / Math.PI;
  if (problem === undefined && parameters.some((p) => !Number.isFinite(p))) {
    problem = 'the parameters are not finite';
    plausible = false;
  } else if (problem === undefined && translation > options.maxTranslationMm) {
    problem = `translation ${translation.toFixed(1)} mm exceeds ${options.maxTranslationMm} mm`;
    plausible = false;
  } else if (problem === undefined && rotationDeg > options.maxRotationDeg) {
    problem = `rotation ${rotationDeg.toFixed(1)}° exceeds ${options.maxRotationDeg}°`;
    plausible = false;
  } else if (problem === undefined && last?.stop === 'max-iterations') {
    problem = `no convergence within ${options.maxIterations} iterations at the finest level`;
  }
  return {
    parameters,
    matrix: rigidMatrix(parameters, reference.centre),
    converged: problem === undefined,
    plausible,
    ...(problem === undefined ? {} : { problem }),
    similarity: -value,
    levels: reports,
  };
}

/**
 * The points a level's cost is evaluated at: reference voxels above maskFraction of the robust
 * maximum, grown by two voxels so the object's edges (where the alignment information is) are in,
 * a fixed pseudo-random subset of at most maxSamples, each moved to a random point within its
 * voxel (the reference's value there interpolated).
 *
 * Off the grid because of trilinear interpolation's bias: at points on the grid, a transform
 * that keeps them on the frame's grid (no rotation, whole-voxel shifts) samples the frame's noise
 * unsmoothed, one that puts them halfway between voxels averages eight voxels' noise, and the
 * mutual information prefers the latter by more than the anatomy's signal at sub-millimetre
 * offsets: it pulls the rotations to zero and the shifts to half voxels. Points at random
 * offsets meet every fractional position equally under any transform, so the pull averages out
 * (elastix's random-coordinate sampler, for the same reason).
 */
function sampleSet(level: ImageLevel, centre: Vector3, options: RigidRegistrationOptions, levelIndex: number): SampleSet {
  const { data, dims, spacingMm, originMm } = level;
  const [nx, ny, nz] = dims;
  const [, high] = robustRange(data, 0.995);
  const threshold = options.maskFraction * high;
  let mask: Uint8Array = new Uint8Array(data.length);
  for (let n = 0; n < data.length; n++) mask[n] = data[n] > threshold ? 1 : 0;
  for (let pass = 0; pass < 2; pass++) mask = dilate(mask, dims);
  let inMask = 0;
  for (let n = 0; n < mask.length; n++) inMask += mask[n];
  const keep = Math.min(1, options.maxSamples / Math.max(1, inMask));
  let seed = ((0x9e3779b9 ^ levelIndex) + Math.imul(options.samplingSeed, 0x632be5ab)) >>> 0;
  const random = (): number => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const capacity = Math.min(inMask, Math.ceil(keep * inMask * 1.05) + 64);
  const x = new Float32Array(capacity),
    y = new Float32Array(capacity),
    z = new Float32Array(capacity),
    fixed = new Float32Array(capacity);
  // Offsets within ±½ voxel, kept inside the grid (an axis of one voxel stays on it).
  const jitter = (index: number, n: number): number => (n > 1 ? Math.min(n - 1, Math.max(0, index + random() - 0.5)) : index);
  let count = 0;
  for (let k = 0; k < nz && count < capacity; k++) {
    for (let j = 0; j < ny && count < capacity; j++) {
      for (let i = 0; i < nx && count < capacity; i++) {
        const n = i + nx * (j + ny * k);
        if (mask[n] === 0) continue;
        if (keep < 1 && random() >= keep) continue;
        const u = jitter(i, nx),
          v = jitter(j, ny),
          w = jitter(k, nz);
        x[count] = originMm[0] + u * spacingMm[0] - centre[0];
        y[count] = originMm[1] + v * spacingMm[1] - centre[1];
        z[count] = originMm[2] + w * spacingMm[2] - centre[2];
        fixed[count] = interpolateAt(data, dims, u, v, w);
        count++;
      }
    }
  }
  return { count, x: x.subarray(0, count), y: y.subarray(0, count), z: z.subarray(0, count), fixed: fixed.subarray(0, count), centre };
}

/** Indexes of the voxels above maskFraction of the image's robust maximum: the head. */
export function headVoxels(image: Float32Array, maskFraction: number): Uint32Array {
  const threshold = maskFraction * robustRange(image, 0.995)[1];
  let count = 0;
  for (let n = 0; n < image.length; n++) if (image[n] > threshold) count++;
  const out = new Uint32Array(count);
  for (let n = 0, q = 0; n < image.length; n++) if (image[n] > threshold) out[q++] = n;
  return out;
}

/** Trilinear value at voxel coordinates (u, v, w) within the grid (an axis of one voxel: its value). */
function interpolateAt(data: Float32Array, dims: readonly [number, number, number], u: number, v: number, w: number): number {
  const [nx, ny, nz] = dims;
  const plane = nx * ny;
  const dx = nx > 1 ? 1 : 0,
    dy = ny > 1 ? nx : 0,
    dz = nz > 1 ? plane : 0;
  const i0 = Math.max(0, Math.min(Math.floor(u), nx - 2)),
    j0 = Math.max(0, Math.min(Math.floor(v), ny - 2)),
    k0 = Math.max(0, Math.min(Math.floor(w), nz - 2));
  const fx = nx > 1 ? u - i0 : 0,
    fy = ny > 1 ? v - j0 : 0,
    fz = nz > 1 ? w - k0 : 0;
  const b = i0 + nx * j0 + plane * k0;
  const c00 = data[b] + fx * (data[b + dx] - data[b]),
    c10 = data[b + dy] + fx * (data[b + dy + dx] - data[b + dy]);
  const c01 = data[b + dz] + fx * (data[b + dz + dx] - data[b + dz]),
    c11 = data[b + dz + dy] + fx * (data[b + dz + dy + dx] - data[b + dz + dy]);
  const c0 = c00 + fy * (c10 - c00),
    c1 = c01 + fy * (c11 - c01);
  return c0 + fz * (c1 - c0);
}

/** One voxel of 6-neighbourhood dilation. */
function dilate(mask: Uint8Array, dims: readonly [number, number, number]): Uint8Array {
  const [nx, ny, nz] = dims;
  const out = Uint8Array.from(mask);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const n = i + nx * (j + ny * k);
        if (mask[n] === 0) continue;
        if (i > 0) out[n - 1] = 1;
        if (i < nx - 1) out[n + 1] = 1;
        if (j > 0) out[n - nx] = 1;
        if (j < ny - 1) out[n + nx] = 1;
        if (k > 0) out[n - nx * ny] = 1;
        if (k < nz - 1) out[n + nx * ny] = 1;
      }
    }
  }
  return out;
}
