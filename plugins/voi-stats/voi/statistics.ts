import type { Grid } from '../../../core/dicom/volume.ts';
import { voxelVolumeMm3 } from './grid-space.ts';

/** Statistics of one VOI in one frame, in the image's units. Empty VOIs have nulls. */
export interface VoiFrameStatistics {
  voxels: number;
  volumeMl: number;
  mean: number | null;
  /** Sample standard deviation (n − 1); 0 for a single voxel. */
  sd: number | null;
  min: number | null;
  max: number | null;
  /** Middle value; the mean of the two middle values for an even count. */
  median: number | null;
  /** Mean in the peak sphere (see peakSphere), placed to maximise it; null when no sphere fits. */
  peak: number | null;
}

/**
 * One cubic centimetre: the sphere of PERCIST's SULpeak (Wahl et al., J Nucl Med 2009), radius
 * (3/(4π))^(1/3) cm ≈ 6.20 mm.
 */
export const PEAK_SPHERE_RADIUS_MM = 10 * Math.cbrt(3 / (4 * Math.PI));

/**
 * The peak sphere as voxel offsets and weights: each voxel's weight is the fraction of it that
 * lies inside the sphere, from 8×8×8 sub-samples, so the sphere holds its true volume on any
 * grid (counting voxel centres alone would give 1 cm³ only by luck). Works on oblique grids.
 */
export interface PeakKernel {
  offsets: Int32Array; // (di, dj, dk) triples
  weights: Float64Array;
  /** Sum of the weights: the sphere's volume in voxels. */
  total: number;
}

export function peakKernel(grid: Grid, radiusMm = PEAK_SPHERE_RADIUS_MM, subsamples = 8): PeakKernel {
  const m = grid.affine;
  const column = (c: number) => Math.hypot(m[c], m[4 + c], m[8 + c]);
  // The sphere fits in this many voxels each side along each axis (spacing along the axis).
  const reach = [0, 1, 2].map((c) => Math.ceil(radiusMm / column(c) + 0.5));
  const offsets: number[] = [];
  const weights: number[] = [];
  const r2 = radiusMm * radiusMm;
  const step = 1 / subsamples;
  for (let dk = -reach[2]; dk <= reach[2]; dk++) {
    for (let dj = -reach[1]; dj <= reach[1]; dj++) {
      for (let di = -reach[0]; di <= reach[0]; di++) {
        let inside = 0;
        for (let sk = 0; sk < subsamples; sk++) {
          const z = dk - 0.5 + (sk + 0.5) * step;
          for (let sj = 0; sj < subsamples; sj++) {
            const y = dj - 0.5 + (sj + 0.5) * step;
            for (let si = 0; si < subsamples; si++) {
              const x = di - 0.5 + (si + 0.5) * step;
              const px = m[0] * x + m[1] * y + m[2] * z;
              const py = m[4] * x + m[5] * y + m[6] * z;
              const pz = m[8] * x + m[9] * y + m[10] * z;
              if (px * px + py * py + pz * pz <= r2) inside++;
            }
          }
        }
        if (inside > 0) {
          offsets.push(di, dj, dk);
          weights.push(inside / subsamples ** 3);
        }
      }
    }
  }
  return { offsets: Int32Array.from(offsets), weights: Float64Array.from(weights), total: weights.reduce((a, b) => a + b, 0) };
}

export interface StatisticsOptions {
  kernel?: PeakKernel;
  /**
   * The sphere's centre is sought among the VOI's hottest voxels: all of them up to this many,
   * else this many of the hottest (ties at the cut-off included).
   */
  peakCandidates?: number;
  /** The mask's voxel indices (maskIndices), when statistics of several frames are computed. */
  indices?: Int32Array;
}

/** Indices of the voxels a mask covers, in voxel order. */
export function maskIndices(mask: Uint8Array): Int32Array {
  let n = 0;
  for (let v = 0; v < mask.length; v++) n += mask[v];
  const indices = new Int32Array(n);
  for (let v = 0, w = 0; v < mask.length; v++) if (mask[v] !== 0) indices[w++] = v;
  return indices;
}

/**
 * Statistics of the VOI's voxels in one frame. The peak is the highest mean of the peak sphere
 * centred on a voxel of the VOI; the sphere itself may reach outside the VOI (PERCIST's
 * definition: the hot spot is found within the lesion, the sphere averages what is there). Parts
 * of the sphere outside the image are left out and the remaining weights renormalised.
 */
export function voiFrameStatistics(grid: Grid, frame: Float32Array, mask: Uint8Array, options: StatisticsOptions = {}): VoiFrameStatistics {
  const indices = options.indices ?? maskIndices(mask);
  const n = indices.length;
  const volumeMl = (n * voxelVolumeMm3(grid)) / 1000;
  if (n === 0) return { voxels: 0, volumeMl: 0, mean: null, sd: null, min: null, max: null, median: null, peak: null };
  const values = new Float64Array(n);
  let sum = 0;
  for (let w = 0; w < n; w++) {
    const value = frame[indices[w]];
    values[w] = value;
    sum += value;
  }
  const mean = sum / n;
  let squares = 0;
  for (let w = 0; w < n; w++) squares += (values[w] - mean) ** 2;
  const sorted = values.slice().sort();
  const median = n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  const limit = options.peakCandidates ?? 20_000;
  const threshold = n > limit ? sorted[n - limit] : -Infinity;
  const kernel = options.kernel ?? peakKernel(grid);
  const [nx, ny] = grid.dims;
  const linear = new Int32Array(kernel.weights.length);
  const reach: [number, number, number] = [0, 0, 0];
  for (let w = 0; w < linear.length; w++) {
    const [di, dj, dk] = [kernel.offsets[3 * w], kernel.offsets[3 * w + 1], kernel.offsets[3 * w + 2]];
    linear[w] = di + nx * (dj + ny * dk);
    reach[0] = Math.max(reach[0], Math.abs(di));
    reach[1] = Math.max(reach[1], Math.abs(dj));
    reach[2] = Math.max(reach[2], Math.abs(dk));
  }
  let peak = -Infinity;
  for (let w = 0; w < n; w++) {
    if (values[w] < threshold) continue;
    const m = sphereMean(grid, frame, indices[w], kernel, linear, reach);
    if (m > peak) peak = m;
  }
  return {
    voxels: n,
    volumeMl,
    mean,
    sd: n > 1 ? Math.sqrt(squares / (n - 1)) : 0,
    min: sorted[0],
    max: sorted[n - 1],
    median,
    peak: Number.isFinite(peak) ? peak : null,
  };
}

function sphereMean(
  grid: Grid,
  frame: Float32Array,
  centre: number,
  kernel: PeakKernel,
  linear: Int32Array,
  reach: [number, number, number],
): number {
  const [nx, ny, nz] = grid.dims;
  const ci = centre % nx;
  const cj = Math.floor(centre / nx) % ny;
  const ck = Math.floor(centre / (nx * ny));
  const { offsets, weights } = kernel;
  let sum = 0;
  if (ci >= reach[0] && cj >= reach[1] && ck >= reach[2] && ci < nx - reach[0] && cj < ny - reach[1] && ck < nz - reach[2]) {
    // Wholly inside the image (nearly always): flat offsets, no bounds checks; weights sum to total.
    for (let w = 0; w < weights.length; w++) sum += weights[w] * frame[centre + linear[w]];
    return sum / kernel.total;
  }
  let weight = 0;
  for (let o = 0, w = 0; w < weights.length; o += 3, w++) {
    const i = ci + offsets[o];
    const j = cj + offsets[o + 1];
    const k = ck + offsets[o + 2];
    if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) continue;
    sum += weights[w] * frame[i + nx * (j + ny * k)];
    weight += weights[w];
  }
  return weight > 0 ? sum / weight : -Infinity;
}
