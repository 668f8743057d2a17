/**
 * One shared model of an image series as a volume: what NIfTI conversion, motion correction and
 * VOI statistics all work on. Geometry is in DICOM patient coordinates (LPS, mm).
 *
 * Voxel order: i (column, along the row direction cosine) fastest, then j (row), then k (slice,
 * in the order of increasing position along the slice normal). Index of (i, j, k) in a frame's
 * data: i + columns * (j + rows * k).
 */

/** A 3D image on a grid: the unit registration and statistics work on. */
export interface Grid {
  /** [columns, rows, slices] */
  dims: [number, number, number];
  /** [column spacing, row spacing, slice spacing] in mm (PixelSpacing is [row, column]: swapped here). */
  spacingMm: [number, number, number];
  /**
   * Voxel index (i, j, k, 1) → patient LPS mm, a 4×4 matrix in row-major order (16 numbers).
   * Columns 0–2 are the direction cosines times the spacing, column 3 the centre of voxel 0.
   */
  affine: Float64Array;
}

export interface FrameTiming {
  /** From the series' reference time (PET: SeriesTime/AcquisitionStart per PS3.3 C.8.9.1), ms. */
  startMs: number;
  durationMs: number;
}

export interface Volume extends Grid {
  /** One Float32Array per frame (length columns × rows × slices), rescale slope/intercept applied. */
  frames: Float32Array[];
  /** One per frame; empty for a static series without timing. */
  timing: FrameTiming[];
  /** Units of the stored values after rescaling (PET: Units (0054,1001), e.g. BQML), if known. */
  units?: string;
  /**
   * The source instances, per frame and slice in voxel order: [frame][k] → SOP Instance UID and
   * file, so a derived series can reference and copy attributes from its originals.
   */
  sources: { sopInstanceUid: string; path: string; frameNumber?: number }[][];
  /** Whether any slice's rescale slope or intercept differ from the others (keep float data). */
  varyingRescale: boolean;
}
