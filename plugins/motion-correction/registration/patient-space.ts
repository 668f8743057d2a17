import type { Grid } from '../../../core/dicom/volume.ts';
import { eulerAngles, invertAffine, multiply, type Matrix4, type Vector3 } from './rigid.ts';

/**
 * Between the registration's grid space (voxel (i, j, k) at (i·sx, j·sy, k·sz) mm) and DICOM
 * patient coordinates (LPS, mm). The grid's axes are orthonormal, so the map is a rotation plus
 * a translation and a rigid motion stays rigid on either side.
 */
export function gridToPatient(grid: Grid): Matrix4 {
  const a = grid.affine;
  const m = new Float64Array(16);
  for (let row = 0; row < 3; row++) {
    for (let col = 0; col < 3; col++) m[4 * row + col] = a[4 * row + col] / grid.spacingMm[col];
    m[4 * row + 3] = a[4 * row + 3];
  }
  m[15] = 1;
  return m;
}

/** A grid-space motion as the same motion in patient space: G·M·G⁻¹. */
export function motionInPatientSpace(grid: Grid, gridMotion: Matrix4): Matrix4 {
  const g = gridToPatient(grid);
  return multiply(multiply(g, gridMotion), invertAffine(g));
}

/** A patient-space motion in grid space: G⁻¹·M·G. */
export function motionInGridSpace(grid: Grid, patientMotion: Matrix4): Matrix4 {
  const g = gridToPatient(grid);
  return multiply(multiply(invertAffine(g), patientMotion), g);
}

/** The volume's centre in patient coordinates (LPS mm). */
export function patientCentre(grid: Grid): Vector3 {
  const [nx, ny, nz] = grid.dims;
  const a = grid.affine;
  const i = (nx - 1) / 2,
    j = (ny - 1) / 2,
    k = (nz - 1) / 2;
  return [a[0] * i + a[1] * j + a[2] * k + a[3], a[4] * i + a[5] * j + a[6] * k + a[7], a[8] * i + a[9] * j + a[10] * k + a[11]];
}

export interface MotionParameters {
  /** Where the volume centre moved, LPS mm. */
  translationMm: Vector3;
  /** Euler angles of the rotation about the volume centre (R = Rz·Ry·Rx, LPS axes), degrees. */
  rotationDeg: Vector3;
}

/** The six reported parameters of a patient-space motion, about the volume's centre. */
export function motionParameters(grid: Grid, patientMotion: Matrix4): MotionParameters {
  const c = patientCentre(grid);
  const m = patientMotion;
  const moved: Vector3 = [
    m[0] * c[0] + m[1] * c[1] + m[2] * c[2] + m[3],
    m[4] * c[0] + m[5] * c[1] + m[6] * c[2] + m[7],
    m[8] * c[0] + m[9] * c[1] + m[10] * c[2] + m[11],
  ];
  const angles = eulerAngles(m);
  return {
    translationMm: [moved[0] - c[0], moved[1] - c[1], moved[2] - c[2]],
    rotationDeg: angles.map((a) => (a * 180) / Math.PI) as Vector3,
  };
}
