import { gaussianSmooth } from './smoothing.ts';

/**
 * One resolution level of an image, in the grid's own millimetre space: voxel (i, j, k) of the
 * full-resolution grid sits at (i·sx, j·sy, k·sz). A rigid motion in this space is a rigid motion
 * in patient space (the grid axes are orthonormal), so registration works here, where a point's
 * voxel index is one multiply-add per axis.
 */
export interface ImageLevel {
  data: Float32Array;
  dims: [number, number, number];
  spacingMm: [number, number, number];
  /** Position of voxel 0's centre, mm. */
  originMm: [number, number, number];
}

export function fullResolutionLevel(
  data: Float32Array,
  dims: readonly [number, number, number],
  spacingMm: readonly [number, number, number],
): ImageLevel {
  return { data, dims: [...dims], spacingMm: [...spacingMm], originMm: [0, 0, 0] };
}

/**
 * Which axes to halve at each step, coarsest level first: an axis is halved when its spacing is
 * within 1.5× of the finest current spacing (so anisotropic PET voxels become roughly isotropic
 * before the slice axis is reduced) and it keeps at least 8 voxels.
 */
export function pyramidPlan(
  dims: readonly [number, number, number],
  spacingMm: readonly [number, number, number],
  levels: number,
): boolean[][] {
  const steps: boolean[][] = [];
  let d = [...dims];
  let s = [...spacingMm];
  for (let level = 1; level < levels; level++) {
    const finest = Math.min(...s);
    const halve = s.map((sp, axis) => sp <= 1.5 * finest && d[axis] >= 16);
    if (!halve.some(Boolean)) break;
    steps.push(halve);
    d = d.map((n, axis) => (halve[axis] ? Math.ceil(n / 2) : n));
    s = s.map((sp, axis) => (halve[axis] ? 2 * sp : sp));
  }
  return steps;
}

/**
 * Halves the chosen axes: a light Gaussian (FWHM one new voxel) against aliasing, then the mean of
 * each pair of voxels. The new voxel 0 lies between the old voxels 0 and 1.
 */
export function downsample(level: ImageLevel, halve: readonly boolean[]): ImageLevel {
  const fwhm = halve.map((h, axis) => (h ? level.spacingMm[axis] : 0)) as [number, number, number];
  const smooth = gaussianSmooth(level.data, level.dims, level.spacingMm, fwhm);
  const [nx, ny, nz] = level.dims;
  const dims = level.dims.map((n, axis) => (halve[axis] ? Math.ceil(n / 2) : n)) as [number, number, number];
  const [mx, my, mz] = dims;
  const out = new Float32Array(mx * my * mz);
  const fx = halve[0] ? 2 : 1,
    fy = halve[1] ? 2 : 1,
    fz = halve[2] ? 2 : 1;
  for (let k = 0; k < mz; k++) {
    const k0 = k * fz,
      k1 = Math.min(nz - 1, k0 + fz - 1);
    for (let j = 0; j < my; j++) {
      const j0 = j * fy,
        j1 = Math.min(ny - 1, j0 + fy - 1);
      for (let i = 0; i < mx; i++) {
        const i0 = i * fx,
          i1 = Math.min(nx - 1, i0 + fx - 1);
        const a =
          smooth[i0 + nx * (j0 + ny * k0)] +
          smooth[i1 + nx * (j0 + ny * k0)] +
          smooth[i0 + nx * (j1 + ny * k0)] +
          smooth[i1 + nx * (j1 + ny * k0)];
        const b =
          smooth[i0 + nx * (j0 + ny * k1)] +
          smooth[i1 + nx * (j0 + ny * k1)] +
          smooth[i0 + nx * (j1 + ny * k1)] +
          smooth[i1 + nx * (j1 + ny * k1)];
        out[i + mx * (j + my * k)] = (a + b) / 8;
      }
    }
  }
  return {
    data: out,
    dims,
    spacingMm: level.spacingMm.map((s, axis) => (halve[axis] ? 2 * s : s)) as [number, number, number],
    // The mean of voxels i0 and i0+1 sits half a voxel further on (exact also at an odd end,
    // where the last voxel is averaged with itself, to within half a voxel of that one cell).
    originMm: level.originMm.map((o, axis) => (halve[axis] ? o + 0.5 * level.spacingMm[axis] : o)) as [number, number, number],
  };
}

/** Levels coarsest first, the given (already pre-smoothed) image last. */
export function buildPyramid(finest: ImageLevel, plan: readonly (readonly boolean[])[]): ImageLevel[] {
  const levels = [finest];
  for (const halve of plan) levels.push(downsample(levels[levels.length - 1], halve));
  return levels.reverse();
}
