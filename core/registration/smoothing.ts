/**
 * Separable Gaussian smoothing given a full width at half maximum in mm. Near the borders the
 * truncated kernel is renormalised, so the edge of the field of view does not darken.
 */

const FWHM_PER_SIGMA = 2 * Math.sqrt(2 * Math.log(2));

export function sigmaOfFwhm(fwhmMm: number): number {
  return fwhmMm / FWHM_PER_SIGMA;
}

/** Returns a new array; an axis with FWHM 0 (or below a tenth of a voxel) is left as it is. */
export function gaussianSmooth(data: Float32Array, dims: readonly [number, number, number], spacingMm: readonly [number, number, number], fwhmMm: number | readonly [number, number, number]): Float32Array {
  const fwhm = typeof fwhmMm === 'number' ? [fwhmMm, fwhmMm, fwhmMm] : fwhmMm;
  let current = Float32Array.from(data);
  let scratch = new Float32Array(data.length);
  for (let axis = 0; axis < 3; axis++) {
    const sigmaVoxels = sigmaOfFwhm(fwhm[axis]) / spacingMm[axis];
    if (!(sigmaVoxels > 0.1) || dims[axis] < 2) continue;
    smoothAxis(current, scratch, dims, axis, gaussianKernel(sigmaVoxels));
    [current, scratch] = [scratch, current];
  }
  return current;
}

function gaussianKernel(sigmaVoxels: number): Float64Array {
  const radius = Math.max(1, Math.ceil(3 * sigmaVoxels));
  const kernel = new Float64Array(2 * radius + 1);
  for (let i = -radius; i <= radius; i++) kernel[i + radius] = Math.exp(-(i * i) / (2 * sigmaVoxels * sigmaVoxels));
  return kernel;
}

function smoothAxis(input: Float32Array, output: Float32Array, dims: readonly [number, number, number], axis: number, kernel: Float64Array): void {
  const [nx, ny, nz] = dims;
  const n = dims[axis];
  const stride = axis === 0 ? 1 : axis === 1 ? nx : nx * ny;
  const radius = (kernel.length - 1) / 2;
  const line = new Float64Array(n);
  // Every line along the axis: iterate over the two other axes.
  const outerA = axis === 2 ? ny : nz;
  const outerB = axis === 0 ? ny : nx;
  for (let a = 0; a < outerA; a++) {
    for (let b = 0; b < outerB; b++) {
      const start = axis === 0 ? nx * (b + ny * a) : axis === 1 ? b + nx * ny * a : b + nx * a;
      for (let i = 0; i < n; i++) line[i] = input[start + i * stride];
      for (let i = 0; i < n; i++) {
        const lo = Math.max(0, i - radius);
        const hi = Math.min(n - 1, i + radius);
        let sum = 0;
        let weight = 0;
        for (let j = lo; j <= hi; j++) {
          const w = kernel[j - i + radius];
          sum += w * line[j];
          weight += w;
        }
        output[start + i * stride] = sum / weight;
      }
    }
  }
}
