import type { Cost } from './similarity.ts';
import type { RigidParameters } from './rigid.ts';

/**
 * Limited-memory BFGS on the six rigid parameters, with an Armijo backtracking line search.
 *
 * The parameters are scaled so that one unit of each moves the image by about one millimetre
 * (rotations times the sample cloud's RMS radius): step sizes and the stopping tolerance are then
 * displacements in mm, the quantity the user cares about.
 */
export interface OptimizeOptions {
  /** mm moved per radian of rotation (the RMS distance of the samples from the centre). */
  radiusMm: number;
  maxIterations: number;
  /** Converged when an accepted step moves no point by more than this (mm). */
  toleranceMm: number;
  /** Length of the first step (mm). */
  initialStepMm: number;
}

export type StopReason = 'step-below-tolerance' | 'no-further-decrease' | 'max-iterations' | 'gradient-zero';

export interface OptimizeResult {
  parameters: RigidParameters;
  value: number;
  iterations: number;
  evaluations: number;
  stop: StopReason;
}

const HISTORY = 6;
const ARMIJO = 1e-4;
const MAX_BACKTRACKS = 12;

export function minimize(cost: Cost, start: Readonly<RigidParameters>, options: OptimizeOptions): OptimizeResult {
  const scale = [1, 1, 1, 1 / options.radiusMm, 1 / options.radiusMm, 1 / options.radiusMm];
  const toParameters = (y: Float64Array): RigidParameters => [0, 1, 2, 3, 4, 5].map((i) => y[i] * scale[i]) as RigidParameters;
  const evaluations0 = cost.evaluations;
  const y = Float64Array.from(start, (v, i) => v / scale[i]);
  const gradientParams = new Float64Array(6);
  const evaluate = (point: Float64Array, g: Float64Array): number => {
    const value = cost.evaluate(toParameters(point), gradientParams);
    // Chain rule for the scaling: ∂/∂y = ∂/∂p · scale.
    for (let i = 0; i < 6; i++) g[i] = gradientParams[i] * scale[i];
    if (!Number.isFinite(value) || g.some((v) => !Number.isFinite(v))) throw new Error('registration cost is not finite');
    return value;
  };
  const g = new Float64Array(6);
  let value = evaluate(y, g);
  const sHistory: Float64Array[] = [];
  const yHistory: Float64Array[] = [];
  const rhoHistory: number[] = [];
  const direction = new Float64Array(6);
  const trial = new Float64Array(6);
  const trialGradient = new Float64Array(6);
  let stop: StopReason = 'max-iterations';
  let iterations = 0;
  let steepest = true;

  while (iterations < options.maxIterations) {
    if (g.every((v) => v === 0)) {
      stop = 'gradient-zero';
      break;
    }
    iterations++;
    computeDirection(g, sHistory, yHistory, rhoHistory, direction);
    let slope = dot(direction, g);
    if (!(slope < 0)) {
      // Not a descent direction (curvature information gone stale): fall back to −g.
      for (let i = 0; i < 6; i++) direction[i] = -g[i];
      slope = dot(direction, g);
      sHistory.length = 0;
      yHistory.length = 0;
      rhoHistory.length = 0;
      steepest = true;
    }
    // Without curvature history the gradient's size says nothing about the distance to the
    // optimum: make the first step a fixed displacement instead.
    let step = steepest ? options.initialStepMm / maxAbs(direction) : 1;
    let accepted = false;
    let trialValue = value;
    for (let attempt = 0; attempt < MAX_BACKTRACKS; attempt++) {
      for (let i = 0; i < 6; i++) trial[i] = y[i] + step * direction[i];
      trialValue = evaluate(trial, trialGradient);
      if (trialValue <= value + ARMIJO * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.3;
    }
    if (!accepted) {
      if (!steepest) {
        // Retry once from scratch along −g before giving up.
        sHistory.length = 0;
        yHistory.length = 0;
        rhoHistory.length = 0;
        steepest = true;
        continue;
      }
      stop = 'no-further-decrease';
      break;
    }
    const s = new Float64Array(6);
    const dg = new Float64Array(6);
    for (let i = 0; i < 6; i++) {
      s[i] = trial[i] - y[i];
      dg[i] = trialGradient[i] - g[i];
    }
    const sy = dot(s, dg);
    if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(dg, dg))) {
      sHistory.push(s);
      yHistory.push(dg);
      rhoHistory.push(1 / sy);
      if (sHistory.length > HISTORY) {
        sHistory.shift();
        yHistory.shift();
        rhoHistory.shift();
      }
      steepest = false;
    }
    y.set(trial);
    g.set(trialGradient);
    value = trialValue;
    // The largest displacement this step caused: |Δt| plus the arc of the rotation, in mm.
    if (maxAbs(s) * 2 < options.toleranceMm) {
      stop = 'step-below-tolerance';
      break;
    }
  }
  return { parameters: toParameters(y), value, iterations, evaluations: cost.evaluations - evaluations0, stop };
}

/** The L-BFGS two-loop recursion: direction = −H·g. */
function computeDirection(g: Float64Array, s: Float64Array[], y: Float64Array[], rho: number[], out: Float64Array): void {
  const q = Float64Array.from(g);
  const alpha = new Float64Array(s.length);
  for (let k = s.length - 1; k >= 0; k--) {
    alpha[k] = rho[k] * dot(s[k], q);
    for (let i = 0; i < 6; i++) q[i] -= alpha[k] * y[k][i];
  }
  if (s.length > 0) {
    const last = s.length - 1;
    const gamma = dot(s[last], y[last]) / dot(y[last], y[last]);
    for (let i = 0; i < 6; i++) q[i] *= gamma;
  }
  for (let k = 0; k < s.length; k++) {
    const beta = rho[k] * dot(y[k], q);
    for (let i = 0; i < 6; i++) q[i] += s[k][i] * (alpha[k] - beta);
  }
  for (let i = 0; i < 6; i++) out[i] = -q[i];
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

function maxAbs(a: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]));
  return max;
}
