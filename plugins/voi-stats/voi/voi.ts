import type { Grid } from '../../../core/dicom/volume.ts';
import { applyAffine, invertAffine, voxelCount, type Vec3 } from './grid-space.ts';

/**
 * A volume of interest on an image's grid: one byte per voxel, 1 inside. Every source (label
 * map, geometric shape, DICOM SEG segment) ends as this, so statistics never care where a VOI
 * came from.
 */
export interface Voi {
  name: string;
  source: 'label-map' | 'sphere' | 'box' | 'seg';
  /** The label value (label map) or Segment Number (SEG). */
  label?: number;
  mask: Uint8Array;
}

export interface SphereVoi {
  kind: 'sphere';
  name: string;
  /** Centre in patient coordinates (LPS, mm). */
  centerMm: Vec3;
  radiusMm: number;
}

/** A box with faces parallel to the patient axes (LPS, mm), given by two opposite corners. */
export interface BoxVoi {
  kind: 'box';
  name: string;
  cornerMm: Vec3;
  oppositeCornerMm: Vec3;
}

export type ShapeVoi = SphereVoi | BoxVoi;

/**
 * Rasterises a sphere or box onto the grid: a voxel belongs when its centre lies inside
 * (boundary included). Only the index-space bounding box of the shape is visited.
 */
export function shapeVoi(grid: Grid, shape: ShapeVoi): Voi {
  const [lo, hi] = boundsMm(shape);
  const inside =
    shape.kind === 'sphere'
      ? (p: Vec3) =>
          (p[0] - shape.centerMm[0]) ** 2 + (p[1] - shape.centerMm[1]) ** 2 + (p[2] - shape.centerMm[2]) ** 2 <=
          shape.radiusMm ** 2 * (1 + 1e-12)
      : (p: Vec3) => p.every((v, a) => v >= lo[a] - 1e-9 && v <= hi[a] + 1e-9);
  const mask = new Uint8Array(voxelCount(grid));
  const [nx, ny] = grid.dims;
  const [i0, i1, j0, j1, k0, k1] = indexBounds(grid, lo, hi);
  for (let k = k0; k <= k1; k++) {
    for (let j = j0; j <= j1; j++) {
      for (let i = i0; i <= i1; i++) {
        if (inside(applyAffine(grid.affine, i, j, k))) mask[i + nx * (j + ny * k)] = 1;
      }
    }
  }
  return { name: shape.name, source: shape.kind, mask };
}

/** The shape's extent along the patient axes: [lowest corner, highest corner]. */
function boundsMm(shape: ShapeVoi): [Vec3, Vec3] {
  if (shape.kind === 'sphere') {
    const [x, y, z] = shape.centerMm;
    const r = shape.radiusMm;
    return [
      [x - r, y - r, z - r],
      [x + r, y + r, z + r],
    ];
  }
  const a = shape.cornerMm;
  const b = shape.oppositeCornerMm;
  return [
    [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.min(a[2], b[2])],
    [Math.max(a[0], b[0]), Math.max(a[1], b[1]), Math.max(a[2], b[2])],
  ];
}

/** Index ranges (inclusive, clamped to the grid) covering an LPS box, whatever the orientation. */
function indexBounds(grid: Grid, lo: Vec3, hi: Vec3): [number, number, number, number, number, number] {
  const inverse = invertAffine(grid.affine);
  const min = [Infinity, Infinity, Infinity];
  const max = [-Infinity, -Infinity, -Infinity];
  for (let corner = 0; corner < 8; corner++) {
    const p = applyAffine(inverse, corner & 1 ? hi[0] : lo[0], corner & 2 ? hi[1] : lo[1], corner & 4 ? hi[2] : lo[2]);
    for (let a = 0; a < 3; a++) {
      min[a] = Math.min(min[a], p[a]);
      max[a] = Math.max(max[a], p[a]);
    }
  }
  const out: number[] = [];
  for (let a = 0; a < 3; a++) {
    out.push(Math.max(0, Math.floor(min[a] - 1e-6)), Math.min(grid.dims[a] - 1, Math.ceil(max[a] + 1e-6)));
  }
  return out as [number, number, number, number, number, number];
}
