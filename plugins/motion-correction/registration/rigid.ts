/**
 * Rigid transforms of 3D space: six parameters (translations in mm, Euler angles in radians)
 * and their 4×4 matrices (row-major, 16 numbers, acting on column vectors [x y z 1]).
 *
 * The rotation is R = Rz(γ)·Ry(β)·Rx(α) about a centre c, then the translation t:
 * T(p) = R·(p − c) + c + t. Rotating about the volume's centre rather than the origin keeps the
 * rotations and translations nearly independent, which the optimizer depends on.
 */

/** [tx, ty, tz] in mm, then [α, β, γ] in radians about x, y, z. */
export type RigidParameters = [number, number, number, number, number, number];

export type Matrix4 = Float64Array;
export type Vector3 = [number, number, number];

export const IDENTITY_PARAMETERS: Readonly<RigidParameters> = [0, 0, 0, 0, 0, 0];

/** R = Rz(γ)·Ry(β)·Rx(α), row-major 3×3. */
export function rotationMatrix(alpha: number, beta: number, gamma: number): Float64Array {
  const ca = Math.cos(alpha),
    sa = Math.sin(alpha);
  const cb = Math.cos(beta),
    sb = Math.sin(beta);
  const cg = Math.cos(gamma),
    sg = Math.sin(gamma);
  return new Float64Array([
    cg * cb,
    cg * sb * sa - sg * ca,
    cg * sb * ca + sg * sa,
    sg * cb,
    sg * sb * sa + cg * ca,
    sg * sb * ca - cg * sa,
    -sb,
    cb * sa,
    cb * ca,
  ]);
}

/** ∂R/∂α, ∂R/∂β, ∂R/∂γ (row-major 3×3 each), for the analytic gradients of the costs. */
export function rotationDerivatives(alpha: number, beta: number, gamma: number): [Float64Array, Float64Array, Float64Array] {
  const ca = Math.cos(alpha),
    sa = Math.sin(alpha);
  const cb = Math.cos(beta),
    sb = Math.sin(beta);
  const cg = Math.cos(gamma),
    sg = Math.sin(gamma);
  const dAlpha = new Float64Array([
    0,
    cg * sb * ca + sg * sa,
    -cg * sb * sa + sg * ca,
    0,
    sg * sb * ca - cg * sa,
    -sg * sb * sa - cg * ca,
    0,
    cb * ca,
    -cb * sa,
  ]);
  const dBeta = new Float64Array([-cg * sb, cg * cb * sa, cg * cb * ca, -sg * sb, sg * cb * sa, sg * cb * ca, -cb, -sb * sa, -sb * ca]);
  const dGamma = new Float64Array([
    -sg * cb,
    -sg * sb * sa - cg * ca,
    -sg * sb * ca + cg * sa,
    cg * cb,
    cg * sb * sa - sg * ca,
    cg * sb * ca + sg * sa,
    0,
    0,
    0,
  ]);
  return [dAlpha, dBeta, dGamma];
}

/** The matrix of T(p) = R·(p − c) + c + t. */
export function rigidMatrix(parameters: Readonly<RigidParameters>, centre: Readonly<Vector3>): Matrix4 {
  const [tx, ty, tz, alpha, beta, gamma] = parameters;
  const r = rotationMatrix(alpha, beta, gamma);
  const m = new Float64Array(16);
  for (let row = 0; row < 3; row++) {
    let rc = 0;
    for (let col = 0; col < 3; col++) {
      m[4 * row + col] = r[3 * row + col];
      rc += r[3 * row + col] * centre[col];
    }
    m[4 * row + 3] = centre[row] - rc + [tx, ty, tz][row];
  }
  m[15] = 1;
  return m;
}

/** Euler angles (α, β, γ) of a rotation R = Rz·Ry·Rx; β in [−90°, 90°]. */
export function eulerAngles(m: ArrayLike<number>, stride = 4): Vector3 {
  const at = (row: number, col: number): number => m[stride * row + col];
  const beta = Math.asin(Math.max(-1, Math.min(1, -at(2, 0))));
  const alpha = Math.atan2(at(2, 1), at(2, 2));
  const gamma = Math.atan2(at(1, 0), at(0, 0));
  return [alpha, beta, gamma];
}

/** The six parameters of a rigid matrix about a centre (inverse of rigidMatrix). */
export function rigidParameters(m: Matrix4, centre: Readonly<Vector3>): RigidParameters {
  const [alpha, beta, gamma] = eulerAngles(m);
  const moved = applyMatrix(m, centre);
  return [moved[0] - centre[0], moved[1] - centre[1], moved[2] - centre[2], alpha, beta, gamma];
}

export function multiply(a: Matrix4, b: Matrix4): Matrix4 {
  const out = new Float64Array(16);
  for (let row = 0; row < 4; row++) {
    for (let col = 0; col < 4; col++) {
      let sum = 0;
      for (let k = 0; k < 4; k++) sum += a[4 * row + k] * b[4 * k + col];
      out[4 * row + col] = sum;
    }
  }
  return out;
}

/** Inverse of an affine 4×4 matrix (last row 0 0 0 1), by the 3×3 block's adjugate. */
export function invertAffine(m: Matrix4): Matrix4 {
  const [a, b, c, , d, e, f, , g, h, i] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) throw new Error('invertAffine: the matrix is singular');
  const inv = [
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
  const out = new Float64Array(16);
  for (let row = 0; row < 3; row++) {
    out[4 * row] = inv[3 * row];
    out[4 * row + 1] = inv[3 * row + 1];
    out[4 * row + 2] = inv[3 * row + 2];
    out[4 * row + 3] = -(inv[3 * row] * m[3] + inv[3 * row + 1] * m[7] + inv[3 * row + 2] * m[11]);
  }
  out[15] = 1;
  return out;
}

export function applyMatrix(m: Matrix4, p: Readonly<Vector3>): Vector3 {
  return [
    m[0] * p[0] + m[1] * p[1] + m[2] * p[2] + m[3],
    m[4] * p[0] + m[5] * p[1] + m[6] * p[2] + m[7],
    m[8] * p[0] + m[9] * p[1] + m[10] * p[2] + m[11],
  ];
}

/**
 * Distance between where two transforms send each point (mm), as mean and maximum over the points
 * (a flat x, y, z list): the displacement error of an estimated motion against the true one.
 */
export function displacementDifference(a: Matrix4, b: Matrix4, points: ArrayLike<number>): { meanMm: number; maxMm: number } {
  let sum = 0;
  let max = 0;
  const count = Math.floor(points.length / 3);
  for (let n = 0; n < count; n++) {
    const x = points[3 * n],
      y = points[3 * n + 1],
      z = points[3 * n + 2];
    const dx = (a[0] - b[0]) * x + (a[1] - b[1]) * y + (a[2] - b[2]) * z + (a[3] - b[3]);
    const dy = (a[4] - b[4]) * x + (a[5] - b[5]) * y + (a[6] - b[6]) * z + (a[7] - b[7]);
    const dz = (a[8] - b[8]) * x + (a[9] - b[9]) * y + (a[10] - b[10]) * z + (a[11] - b[11]);
    const d = Math.sqrt(dx * dx + dy * dy + dz * dz);
    sum += d;
    if (d > max) max = d;
  }
  return { meanMm: count === 0 ? 0 : sum / count, maxMm: max };
}
