import type { Matrix4 } from './rigid.ts';

/**
 * What a trilinear lookup on a grid of `dims` needs: the largest coordinate per axis, the
 * largest first voxel of a cell (the last but one; on an axis of one voxel, the voxel itself)
 * and the index steps from a cell's first voxel to its neighbours (0 along an axis of one voxel).
 */
export function trilinearCells(dims: readonly [number, number, number]) {
  const [nx, ny, nz] = dims;
  const plane = nx * ny;
  return {
    plane,
    maxX: nx - 1,
    maxY: ny - 1,
    maxZ: nz - 1,
    lastX: Math.max(0, nx - 2),
    lastY: Math.max(0, ny - 2),
    lastZ: Math.max(0, nz - 2),
    dx: nx > 1 ? 1 : 0,
    dy: ny > 1 ? nx : 0,
    dz: nz > 1 ? plane : 0,
  };
}

/**
 * Trilinear resampling of an image onto its own grid under a transform: the output at voxel p is
 * the input at T(p), both in the grid's mm space (voxel (i, j, k) at (i·sx, j·sy, k·sz)). Points
 * more than half a voxel outside the input are `outside` (default 0); within that margin the
 * edge voxel's value is used.
 */
export function resampleTrilinear(
  input: Float32Array,
  dims: readonly [number, number, number],
  spacingMm: readonly [number, number, number],
  transform: Matrix4,
  outside = 0,
): Float32Array {
  const [nx, ny, nz] = dims;
  const [sx, sy, sz] = spacingMm;
  const out = new Float32Array(nx * ny * nz);
  // Voxel index → voxel index, folding the spacing into the matrix once.
  const m = transform;
  const a00 = m[0],
    a01 = (m[1] * sy) / sx,
    a02 = (m[2] * sz) / sx,
    a03 = m[3] / sx;
  const a10 = (m[4] * sx) / sy,
    a11 = m[5],
    a12 = (m[6] * sz) / sy,
    a13 = m[7] / sy;
  const a20 = (m[8] * sx) / sz,
    a21 = (m[9] * sy) / sz,
    a22 = m[10],
    a23 = m[11] / sz;
  const { plane, maxX, maxY, maxZ, lastX, lastY, lastZ, dx, dy, dz } = trilinearCells(dims);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      let x = a01 * j + a02 * k + a03;
      let y = a11 * j + a12 * k + a13;
      let z = a21 * j + a22 * k + a23;
      let index = nx * (j + ny * k);
      for (let i = 0; i < nx; i++, index++, x += a00, y += a10, z += a20) {
        if (x < -0.5 || y < -0.5 || z < -0.5 || x > nx - 0.5 || y > ny - 0.5 || z > nz - 0.5) {
          out[index] = outside;
          continue;
        }
        // Math.min/max and `| 0` (of values ≥ 0) rather than branches and Math.floor: the same
        // values, without data-dependent jumps or float-to-index conversions.
        const cx = Math.max(0, Math.min(x, maxX)),
          cy = Math.max(0, Math.min(y, maxY)),
          cz = Math.max(0, Math.min(z, maxZ));
        const x0 = Math.min(lastX, cx | 0),
          y0 = Math.min(lastY, cy | 0),
          z0 = Math.min(lastZ, cz | 0);
        const fx = cx - x0,
          fy = cy - y0,
          fz = cz - z0;
        const b = x0 + nx * y0 + plane * z0;
        const c00 = input[b] + fx * (input[b + dx] - input[b]);
        const c10 = input[b + dy] + fx * (input[b + dy + dx] - input[b + dy]);
        const c01 = input[b + dz] + fx * (input[b + dz + dx] - input[b + dz]);
        const c11 = input[b + dz + dy] + fx * (input[b + dz + dy + dx] - input[b + dz + dy]);
        const c0 = c00 + fy * (c10 - c00);
        const c1 = c01 + fy * (c11 - c01);
        out[index] = c0 + fz * (c1 - c0);
      }
    }
  }
  return out;
}
