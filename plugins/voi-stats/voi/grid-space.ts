import type { Grid } from '../../../core/dicom/volume.ts';

/**
 * Index ↔ patient-space maths on a Grid's 4×4 row-major affine (voxel index → LPS mm).
 * Kept here rather than borrowed from registration: VOIs only need points, inverses and volumes.
 */

export type Vec3 = [number, number, number];

/** Inverse of an affine 4×4 (row-major, last row 0 0 0 1). Throws when the 3×3 part is singular. */
export function invertAffine(m: ArrayLike<number>): Float64Array {
  const [a, b, c, d, e, f, g, h, i] = [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]];
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) throw new Error('affine is singular (zero voxel size or collinear axes)');
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
  const t = [m[3], m[7], m[11]];
  const out = new Float64Array(16);
  for (let row = 0; row < 3; row++) {
    out[row * 4] = r[row * 3];
    out[row * 4 + 1] = r[row * 3 + 1];
    out[row * 4 + 2] = r[row * 3 + 2];
    out[row * 4 + 3] = -(r[row * 3] * t[0] + r[row * 3 + 1] * t[1] + r[row * 3 + 2] * t[2]);
  }
  out[15] = 1;
  return out;
}

/** a · b for two affine 4×4 matrices (row-major). */
export function multiplyAffine(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(16);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let sum = 0;
      for (let k = 0; k < 4; k++) sum += a[r * 4 + k] * b[k * 4 + c];
      out[r * 4 + c] = sum;
    }
  }
  return out;
}

export function applyAffine(m: ArrayLike<number>, x: number, y: number, z: number): Vec3 {
  return [m[0] * x + m[1] * y + m[2] * z + m[3], m[4] * x + m[5] * y + m[6] * z + m[7], m[8] * x + m[9] * y + m[10] * z + m[11]];
}

/** Volume of one voxel in mm³: |det| of the affine's 3×3 part (spacing, whatever the orientation). */
export function voxelVolumeMm3(grid: Grid): number {
  const m = grid.affine;
  return Math.abs(m[0] * (m[5] * m[10] - m[6] * m[9]) - m[1] * (m[4] * m[10] - m[6] * m[8]) + m[2] * (m[4] * m[9] - m[5] * m[8]));
}

export function voxelCount(grid: Grid): number {
  return grid.dims[0] * grid.dims[1] * grid.dims[2];
}
