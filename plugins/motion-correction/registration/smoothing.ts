/**
 * Separable Gaussian smoothing given a full width at half maximum in mm. Near the borders the
 * truncated kernel is renormalised, so the edge of the field of view does not darken.
 */

const FWHM_PER_SIGMA = 2 * Math.sqrt(2 * Math.log(2));

export function sigmaOfFwhm(fwhmMm: number): number {
  return fwhmMm / FWHM_PER_SIGMA;
}

/** Returns a new array; an axis with FWHM 0 (or below a tenth of a voxel) is left as it is. */
export function gaussianSmooth(
  data: Float32Array,
  dims: readonly [number, number, number],
  spacingMm: readonly [number, number, number],
  fwhmMm: number | readonly [number, number, number],
): Float32Array {
  const fwhm = typeof fwhmMm === 'number' ? [fwhmMm, fwhmMm, fwhmMm] : fwhmMm;
  let current = data;
  let spare: Float32Array | undefined;
  for (let axis = 0; axis < 3; axis++) {
    const sigmaVoxels = sigmaOfFwhm(fwhm[axis]) / spacingMm[axis];
    if (!(sigmaVoxels > 0.1) || dims[axis] < 2) continue;
    const target = spare ?? new Float32Array(data.length);
    smoothAxis(current, target, dims, axis, gaussianKernel(sigmaVoxels));
    spare = current === data ? undefined : current;
    current = target;
  }
  return current === data ? Float32Array.from(data) : current;
}

function gaussianKernel(sigmaVoxels: number): Float64Array {
  const radius = Math.max(1, Math.ceil(3 * sigmaVoxels));
  const kernel = new Float64Array(2 * radius + 1);
  for (let i = -radius; i <= radius; i++) kernel[i + radius] = Math.exp(-(i * i) / (2 * sigmaVoxels * sigmaVoxels));
  return kernel;
}

/**
 * One axis. The kernel's weight that falls inside the image depends only on the position along
 * the axis, so each position's normaliser is computed once; the y and z passes then run along
 * whole rows (contiguous memory), the x pass along each row.
 */
function smoothAxis(
  input: Float32Array,
  output: Float32Array,
  dims: readonly [number, number, number],
  axis: number,
  kernel: Float64Array,
): void {
  const [nx, ny, nz] = dims;
  const n = dims[axis];
  const radius = (kernel.length - 1) / 2;
  const inverseWeight = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let weight = 0;
    for (let j = Math.max(0, i - radius); j <= Math.min(n - 1, i + radius); j++) weight += kernel[j - i + radius];
    inverseWeight[i] = 1 / weight;
  }
  if (axis === 0) {
    // Interior positions take the whole kernel without a bound per tap; the sums run in the same
    // order as at the borders, so the result is the one of a single general loop.
    const taps = kernel.length;
    const bordered = (start: number, i: number): number => {
      const lo = Math.max(0, i - radius),
        hi = Math.min(nx - 1, i + radius);
      let sum = 0;
      for (let j = lo; j <= hi; j++) sum += kernel[j - i + radius] * input[start + j];
      return sum * inverseWeight[i];
    };
    const leftEnd = Math.min(radius, nx),
      rightStart = Math.max(radius, nx - radius);
    for (let row = 0; row < ny * nz; row++) {
      const start = row * nx;
      for (let i = 0; i < leftEnd; i++) output[start + i] = bordered(start, i);
      for (let i = radius; i < nx - radius; i++) {
        const from = start + i - radius;
        let sum = 0;
        for (let t = 0; t < taps; t++) sum += kernel[t] * input[from + t];
        output[start + i] = sum * inverseWeight[i];
      }
      for (let i = rightStart; i < nx; i++) output[start + i] = bordered(start, i);
    }
    return;
  }
  // y: lines of nx within each slice; z: planes of nx·ny. Either way a "row" of `width` values
  // is contiguous and rows `stride` apart are neighbours along the axis. The first tap sets the
  // row (0 + a is a) and the last one writes the output, so each row is passed over once per tap.
  const width = axis === 1 ? nx : nx * ny;
  const stride = width;
  const blocks = axis === 1 ? nz : 1;
  const blockSize = nx * ny;
  const row = new Float64Array(width);
  for (let block = 0; block < blocks; block++) {
    const base = block * blockSize;
    for (let i = 0; i < n; i++) {
      const lo = Math.max(0, i - radius),
        hi = Math.min(n - 1, i + radius);
      const to = base + i * stride;
      const scale = inverseWeight[i];
      const first = kernel[lo - i + radius];
      const firstFrom = base + lo * stride;
      if (lo === hi) {
        for (let x = 0; x < width; x++) output[to + x] = first * input[firstFrom + x] * scale;
        continue;
      }
      for (let x = 0; x < width; x++) row[x] = first * input[firstFrom + x];
      for (let j = lo + 1; j < hi; j++) {
        const w = kernel[j - i + radius];
        const from = base + j * stride;
        for (let x = 0; x < width; x++) row[x] += w * input[from + x];
      }
      const last = kernel[hi - i + radius];
      const lastFrom = base + hi * stride;
      for (let x = 0; x < width; x++) output[to + x] = (row[x] + last * input[lastFrom + x]) * scale;
    }
  }
}
