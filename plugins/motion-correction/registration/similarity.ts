import type { ImageLevel } from './pyramid.ts';
import { trilinearCells } from './resample.ts';
import { rotationDerivatives, rotationMatrix, type RigidParameters, type Vector3 } from './rigid.ts';

/**
 * Similarity between a reference (fixed) image and a frame (moving) under a rigid transform,
 * with analytic gradients with respect to the six parameters. Both are returned as a value to
 * *minimise* (the negated similarity).
 *
 * - 'nmi', normalised mutual information (H(R) + H(F)) / H(R, F) (Studholme 1999), from a joint
 *   histogram with Parzen windows: a box on the reference, a cubic B-spline on the frame so the
 *   cost is differentiable (Mattes 2003). It assumes only that the intensities are statistically
 *   dependent, not that they are proportional: this is the cost that copes with a tracer
 *   distribution that changes from frame to frame (early perfusion-like frames against a late
 *   reference).
 * - 'ncc', normalised cross-correlation: assumes each frame is a scaled, offset copy of the
 *   reference. Faster and precise when the contrast is the same (late frames), but biased when
 *   regions change their relative uptake.
 */
export type CostKind = 'nmi' | 'ncc';

/** The points a cost is evaluated at: reference voxels, as offsets from the rotation centre. */
export interface SampleSet {
  count: number;
  /** Positions relative to the rotation centre, mm (grid space). */
  x: Float32Array;
  y: Float32Array;
  z: Float32Array;
  /** The reference's value at each point. */
  fixed: Float32Array;
  centre: Vector3;
}

export interface MovingImage {
  level: ImageLevel;
}

export interface Cost {
  /** The value to minimise; fills `gradient` (6) when given. */
  evaluate(parameters: Readonly<RigidParameters>, gradient?: Float64Array): number;
  /** Number of evaluations so far. */
  evaluations: number;
}

export function createCost(
  kind: CostKind,
  samples: SampleSet,
  moving: MovingImage,
  options: { bins?: number; initial?: Readonly<RigidParameters> } = {},
): Cost {
  const sampler = new MovingSampler(samples, moving);
  if (kind === 'ncc') return nccCost(samples, sampler);
  // The frame's histogram range from the frame where the samples fall at the start, so a hot
  // structure outside the head (or present in one frame only) does not squeeze the head's
  // intensities into a few bins.
  sampler.sample(options.initial ?? [0, 0, 0, 0, 0, 0], false);
  return nmiCost(samples, sampler, robustRange(sampler.value), options.bins ?? 32);
}

/**
 * The moving image at each sample's transformed position (trilinear) and the exact gradient of
 * that interpolant (from the same eight voxels), written into reusable arrays, and the six-vector
 * ∂position/∂parameter dotted with the gradient. The exact derivative, not interpolated
 * finite-difference images: on noisy, lightly smoothed data those differ enough from the cost's
 * true slope that the line search finds no descent and the finest level stops where it started.
 */
class MovingSampler {
  readonly value: Float32Array;
  readonly gx: Float32Array;
  readonly gy: Float32Array;
  readonly gz: Float32Array;
  /** R·d per sample: the rotated offset from the centre, for the rotation gradient. */
  readonly rx: Float32Array;
  readonly ry: Float32Array;
  readonly rz: Float32Array;
  readonly samples: SampleSet;
  readonly moving: MovingImage;
  /** Angular velocity of each Euler angle: ∂R/∂θ_a = [ω_a]×·R. */
  omega: Float64Array[] = [];

  constructor(samples: SampleSet, moving: MovingImage) {
    this.samples = samples;
    this.moving = moving;
    this.value = new Float32Array(samples.count);
    this.gx = new Float32Array(samples.count);
    this.gy = new Float32Array(samples.count);
    this.gz = new Float32Array(samples.count);
    this.rx = new Float32Array(samples.count);
    this.ry = new Float32Array(samples.count);
    this.rz = new Float32Array(samples.count);
  }

  sample(parameters: Readonly<RigidParameters>, withGradient: boolean): void {
    const [tx, ty, tz, alpha, beta, gamma] = parameters;
    const r = rotationMatrix(alpha, beta, gamma);
    if (withGradient) this.omega = angularVelocities(r, rotationDerivatives(alpha, beta, gamma));
    const { x, y, z, count, centre } = this.samples;
    const { data, dims, spacingMm, originMm } = this.moving.level;
    const nx = dims[0];
    // Sample position → moving voxel index: ((R·d + c + t) − origin) / spacing.
    const ix = 1 / spacingMm[0],
      iy = 1 / spacingMm[1],
      iz = 1 / spacingMm[2];
    const r00 = r[0] * ix,
      r01 = r[1] * ix,
      r02 = r[2] * ix,
      ox = (centre[0] + tx - originMm[0]) * ix;
    const r10 = r[3] * iy,
      r11 = r[4] * iy,
      r12 = r[5] * iy,
      oy = (centre[1] + ty - originMm[1]) * iy;
    const r20 = r[6] * iz,
      r21 = r[7] * iz,
      r22 = r[8] * iz,
      oz = (centre[2] + tz - originMm[2]) * iz;
    const { plane, maxX, maxY, maxZ, lastX, lastY, lastZ, dx, dy, dz } = trilinearCells(dims);
    const { value, gx, gy, gz, rx, ry, rz } = this;
    const [q00, q01, q02, q10, q11, q12, q20, q21, q22] = r;
    for (let n = 0; n < count; n++) {
      const px = x[n],
        py = y[n],
        pz = z[n];
      const su = r00 * px + r01 * py + r02 * pz + ox;
      const sv = r10 * px + r11 * py + r12 * pz + oy;
      const sw = r20 * px + r21 * py + r22 * pz + oz;
      // Outside the frame: the edge value (a constant count of samples keeps the cost smooth),
      // and no pull from the gradient along a clamped axis. Math.min/max rather than branches:
      // the same values without data-dependent jumps (with the int32 index below, a cost
      // evaluation took 9.1–9.4 ms instead of 11.4, and 5.1–5.3 instead of 7.4 without gradient).
      const u = Math.min(maxX, Math.max(0, su)),
        v = Math.min(maxY, Math.max(0, sv)),
        w = Math.min(maxZ, Math.max(0, sw));
      // u, v, w ≥ 0, so `| 0` is Math.floor, and as int32 the voxel index is integer arithmetic.
      const i0 = Math.min(lastX, u | 0),
        j0 = Math.min(lastY, v | 0),
        k0 = Math.min(lastZ, w | 0);
      const fx = u - i0,
        fy = v - j0,
        fz = w - k0;
      const b = i0 + nx * j0 + plane * k0;
      const b1 = b + dx,
        b2 = b + dy,
        b3 = b + dy + dx,
        b4 = b + dz,
        b5 = b + dz + dx,
        b6 = b + dz + dy,
        b7 = b + dz + dy + dx;
      const v0 = data[b],
        v1 = data[b1],
        v2 = data[b2],
        v3 = data[b3],
        v4 = data[b4],
        v5 = data[b5],
        v6 = data[b6],
        v7 = data[b7];
      // Along x first, then y, then z (the same value as the weighted sum of the eight).
      const c00 = v0 + fx * (v1 - v0),
        c10 = v2 + fx * (v3 - v2),
        c01 = v4 + fx * (v5 - v4),
        c11 = v6 + fx * (v7 - v6);
      const c0 = c00 + fy * (c10 - c00),
        c1 = c01 + fy * (c11 - c01);
      value[n] = c0 + fz * (c1 - c0);
      if (!withGradient) continue;
      rx[n] = q00 * px + q01 * py + q02 * pz;
      ry[n] = q10 * px + q11 * py + q12 * pz;
      rz[n] = q20 * px + q21 * py + q22 * pz;
      if (u !== su || v !== sv || w !== sw) {
        gx[n] = 0;
        gy[n] = 0;
        gz[n] = 0;
        continue;
      }
      const ey = 1 - fy,
        ez = 1 - fz;
      gx[n] = (ez * (ey * (v1 - v0) + fy * (v3 - v2)) + fz * (ey * (v5 - v4) + fy * (v7 - v6))) * ix;
      gy[n] = (ez * (c10 - c00) + fz * (c11 - c01)) * iy;
      gz[n] = (c1 - c0) * iz;
    }
  }

  /**
   * Σ_n weight_n·∂f_n/∂parameters into out (6). Translations: Σ w∇f. Rotations: ∇f·(∂R/∂θ_a·d)
   * = ∇f·(ω_a × R·d) = ω_a·(R·d × ∇f), so one cross product per sample serves all three angles.
   */
  reduce(weight: Float64Array, out: Float64Array): void {
    const { gx, gy, gz, rx, ry, rz } = this;
    let tx = 0,
      ty = 0,
      tz = 0,
      cx = 0,
      cy = 0,
      cz = 0;
    for (let n = 0; n < weight.length; n++) {
      const w = weight[n];
      if (w === 0) continue;
      const ax = gx[n] * w,
        ay = gy[n] * w,
        az = gz[n] * w;
      const px = rx[n],
        py = ry[n],
        pz = rz[n];
      tx += ax;
      ty += ay;
      tz += az;
      cx += py * az - pz * ay;
      cy += pz * ax - px * az;
      cz += px * ay - py * ax;
    }
    out[0] = tx;
    out[1] = ty;
    out[2] = tz;
    for (let a = 0; a < 3; a++) out[3 + a] = this.omega[a][0] * cx + this.omega[a][1] * cy + this.omega[a][2] * cz;
  }
}

/** ω_a with [ω_a]× = ∂R/∂θ_a · Rᵀ (a skew-symmetric matrix, R being a rotation). */
function angularVelocities(r: Float64Array, derivatives: Float64Array[]): Float64Array[] {
  return derivatives.map((d) => {
    // Entries (2,1), (0,2), (1,0) of D·Rᵀ.
    const at = (row: number, col: number): number =>
      d[3 * row] * r[3 * col] + d[3 * row + 1] * r[3 * col + 1] + d[3 * row + 2] * r[3 * col + 2];
    return new Float64Array([at(2, 1), at(0, 2), at(1, 0)]);
  });
}

function nccCost(samples: SampleSet, sampler: MovingSampler): Cost {
  const count = samples.count;
  // The reference, centred and scaled to unit norm, once.
  let mean = 0;
  for (let n = 0; n < count; n++) mean += samples.fixed[n];
  mean /= count;
  let norm = 0;
  for (let n = 0; n < count; n++) norm += (samples.fixed[n] - mean) ** 2;
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  const fixed = new Float64Array(count);
  for (let n = 0; n < count; n++) fixed[n] = (samples.fixed[n] - mean) * scale;
  const weight = new Float64Array(count);
  const cost: Cost = {
    evaluations: 0,
    evaluate(parameters, gradient) {
      cost.evaluations++;
      sampler.sample(parameters, gradient !== undefined);
      const f = sampler.value;
      let sum = 0,
        sumSq = 0,
        cross = 0;
      for (let n = 0; n < count; n++) {
        const v = f[n];
        sum += v;
        sumSq += v * v;
        cross += fixed[n] * v;
      }
      const variance = sumSq - (sum * sum) / count;
      if (!(variance > 0)) {
        gradient?.fill(0);
        return 0;
      }
      const ncc = cross / Math.sqrt(variance);
      if (gradient !== undefined) {
        // dNCC = Σ df·[r̃/√B − A·(f − f̄)/B^{3/2}], with A = Σ r̃f and B = Σ(f − f̄)².
        const fMean = sum / count;
        const sqrtB = Math.sqrt(variance);
        const a = 1 / sqrtB,
          b = cross / (variance * sqrtB);
        for (let n = 0; n < count; n++) weight[n] = -(fixed[n] * a - (f[n] - fMean) * b);
        sampler.reduce(weight, gradient);
      }
      return -ncc;
    },
  };
  return cost;
}

/**
 * [low, high] of an intensity range for the histogram: the minimum and the 95th percentile
 * (values above share the top bin). Hot structures (a sinus in an early frame, a lesion) would
 * otherwise squeeze the brain into a few bins; on the test phantom the 95th percentile gave
 * clearly smaller errors on early frames than the 99.5th, and no worse on late ones.
 */
export function robustRange(values: Float32Array, upperQuantile = 0.95): [number, number] {
  // A quantile from ~20 000 evenly spread values is within a fraction of a bin of the exact one;
  // a typed array sorts numerically without a comparator call per pair.
  const step = Math.max(1, Math.floor(values.length / 20_000));
  const picked = new Float32Array(Math.ceil(values.length / step));
  let min = Infinity;
  for (let n = 0; n < values.length; n++) if (values[n] < min) min = values[n];
  for (let n = 0, i = 0; n < values.length; n += step, i++) picked[i] = values[n];
  picked.sort();
  const high = picked[Math.min(picked.length - 1, Math.floor(upperQuantile * picked.length))];
  return [min, high > min ? high : min + 1];
}

function nmiCost(samples: SampleSet, sampler: MovingSampler, movingRange: [number, number], bins: number): Cost {
  const count = samples.count;
  // The reference's bin per sample (box window), fixed for the whole level.
  const [fixedLow, fixedHigh] = robustRange(samples.fixed);
  const fixedBin = new Uint16Array(count);
  const fixedCount = new Float64Array(bins);
  for (let n = 0; n < count; n++) {
    const b = Math.floor(((samples.fixed[n] - fixedLow) / (fixedHigh - fixedLow)) * bins);
    fixedBin[n] = b < 0 ? 0 : b >= bins ? bins - 1 : b;
    fixedCount[fixedBin[n]]++;
  }
  let fixedEntropy = 0;
  for (let a = 0; a < bins; a++) if (fixedCount[a] > 0) fixedEntropy -= (fixedCount[a] / count) * Math.log(fixedCount[a] / count);
  // The frame's bins: the B-spline window spans 4 bins, so 2 bins of padding on each side keep
  // every contribution inside the table.
  const [movingLow, movingHigh] = movingRange;
  const binWidth = (movingHigh - movingLow) / (bins - 1);
  const movingBins = bins + 4;
  const joint = new Float64Array(bins * movingBins);
  const logJoint = new Float64Array(bins * movingBins);
  const movingMarginal = new Float64Array(movingBins);
  const logMoving = new Float64Array(movingBins);
  const position = new Float32Array(count);
  const weight = new Float64Array(count);

  const cost: Cost = {
    evaluations: 0,
    evaluate(parameters, gradient) {
      cost.evaluations++;
      sampler.sample(parameters, gradient !== undefined);
      const f = sampler.value;
      joint.fill(0);
      for (let n = 0; n < count; n++) {
        // Values beyond the range sit in the end bins, with no gradient.
        const m = Math.min(bins - 1, Math.max(0, (f[n] - movingLow) / binWidth)) + 2;
        position[n] = m;
        // The cubic B-spline's four taps at bins ⌊m⌋−1 … ⌊m⌋+2, in closed form (m ≥ 2).
        const first = (m | 0) - 1;
        const u = m - first - 1;
        const v = 1 - u;
        const u2 = u * u,
          u3 = u2 * u;
        const at = fixedBin[n] * movingBins + first;
        joint[at] += (v * v * v) / 6;
        joint[at + 1] += (3 * u3 - 6 * u2 + 4) / 6;
        joint[at + 2] += (-3 * u3 + 3 * u2 + 3 * u + 1) / 6;
        joint[at + 3] += u3 / 6;
      }
      movingMarginal.fill(0);
      let jointEntropy = 0;
      for (let a = 0; a < bins; a++) {
        for (let b = 0; b < movingBins; b++) {
          const p = joint[a * movingBins + b] / count;
          movingMarginal[b] += p;
          const lp = p > 0 ? Math.log(p) : 0;
          logJoint[a * movingBins + b] = lp;
          jointEntropy -= p * lp;
        }
      }
      let movingEntropy = 0;
      for (let b = 0; b < movingBins; b++) {
        const p = movingMarginal[b];
        logMoving[b] = p > 0 ? Math.log(p) : 0;
        movingEntropy -= p * logMoving[b];
      }
      const sumEntropy = fixedEntropy + movingEntropy;
      const nmi = jointEntropy > 0 ? sumEntropy / jointEntropy : 1;
      if (gradient !== undefined) {
        // With p(a, b) = (1/N) Σ_x [a_x = a]·β(b − m_x):
        // dH(R,F)/dμ = −(1/N) Σ_x ∂m_x/∂μ Σ_b ∂β(b − m_x)/∂m · log p(a_x, b), likewise H(F)
        // with log p(b); dNMI = (dH(F)·H(R,F) − (H(R) + H(F))·dH(R,F)) / H(R,F)².
        // ∂m/∂μ = ∂f/∂μ / binWidth; the cost is −NMI.
        const scale = 1 / (count * jointEntropy * jointEntropy * binWidth);
        for (let n = 0; n < count; n++) {
          const raw = f[n];
          // A value clamped to the end of the range does not move with the transform.
          if (raw <= movingLow || raw >= movingHigh) {
            weight[n] = 0;
            continue;
          }
          const m = position[n];
          const first = (m | 0) - 1;
          const u = m - first - 1;
          const v = 1 - u;
          const d0 = -0.5 * v * v,
            d1 = 1.5 * u * u - 2 * u,
            d2 = -1.5 * u * u + u + 0.5,
            d3 = 0.5 * u * u;
          const at = fixedBin[n] * movingBins + first;
          const dMoving = d0 * logMoving[first] + d1 * logMoving[first + 1] + d2 * logMoving[first + 2] + d3 * logMoving[first + 3];
          const dJoint = d0 * logJoint[at] + d1 * logJoint[at + 1] + d2 * logJoint[at + 2] + d3 * logJoint[at + 3];
          weight[n] = (dMoving * jointEntropy - sumEntropy * dJoint) * scale;
        }
        sampler.reduce(weight, gradient);
      }
      return -nmi;
    },
  };
  return cost;
}
