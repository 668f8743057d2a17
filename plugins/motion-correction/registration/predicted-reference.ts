/**
 * A reference for each frame that looks like that frame: the combination of the other frames,
 * once a first pass has moved them into the reference's pose, that best predicts it.
 *
 * Why: registering an early frame (blood pool and perfusion) to a late, metabolic reference
 * leaves mutual information a different contrast to match, and its optimum moves with the
 * contrast (on the phantoms: 0.05–0.10 mm mean error with noise-free frames, against 0.01–0.045 mm
 * against references of their own contrast). The prediction is a least-squares fit of the frame,
 * after the registration's smoothing and over the head, by the other corrected frames and a
 * constant: the fit picks the frames of similar contrast and weighs their noise against that
 * (noisier neighbours leave a larger residual, so they get less weight) without a parameter.
 * Leaving the frame itself out keeps its own noise and first-pass pose out of its reference.
 */

/**
 * How to predict one frame: the constant plus each listed frame (by index in the series) times
 * its weight, in that order.
 */
export interface Prediction {
  frames: number[];
  weights: number[];
  constant: number;
}

/** A Prediction whose frames are files: the constant plus each file's image times its weight. */
export interface FilePrediction {
  files: string[];
  weights: number[];
  constant: number;
}

/** A frame's Prediction (the step's predictFrameReferences task) with each frame named by its smoothed corrected file. */
export function filePrediction(prediction: Prediction, smoothedCorrectedFile: (frame: number) => string): FilePrediction {
  return { files: prediction.frames.map(smoothedCorrectedFile), weights: prediction.weights, constant: prediction.constant };
}

/**
 * For every frame with a smoothed, corrected image, the predicted (smoothed) reference, or
 * undefined when the frame has none (not registered, or no other frame to predict it from).
 * `mask` lists the voxels the fit runs over.
 */
export function predictedReferences(
  smoothedCorrected: readonly (Float32Array | undefined)[],
  mask: Uint32Array,
): (Float32Array | undefined)[] {
  const present = smoothedCorrected.map((image) => image !== undefined);
  const gram = new GramAccumulator(present.filter(Boolean).length);
  gram.add(
    smoothedCorrected.filter((image) => image !== undefined),
    mask,
  );
  return predictions(present, gram.matrix()).map((prediction, f) =>
    prediction === undefined
      ? undefined
      : combine(prediction.frames, prediction.weights, prediction.constant, smoothedCorrected[f]!.length, (other, add) =>
          add(smoothedCorrected[other]!),
        ),
  );
}

/**
 * Per frame (present: it has a smoothed, corrected image), how the other present frames and a
 * constant best predict it by least squares, from their Gram matrix (GramAccumulator, the
 * present frames in series order); undefined for the others and where the fit is singular.
 */
export function predictions(present: readonly boolean[], gram: number[][]): (Prediction | undefined)[] {
  const indices = present.flatMap((p, f) => (p ? [f] : []));
  const constant = indices.length;
  return present.map((p, f) => {
    if (!p) return undefined;
    const self = indices.indexOf(f);
    const others = indices.map((_, i) => i).filter((i) => i !== self);
    if (others.length === 0) return undefined;
    const terms = [...others, constant];
    const weights = solveSymmetric(
      terms.map((a) => terms.map((b) => gram[a][b])),
      terms.map((a) => gram[a][self]),
    );
    if (weights === undefined) return undefined;
    return { frames: others.map((i) => indices[i]), weights: weights.slice(0, -1), constant: weights[weights.length - 1] };
  });
}

/**
 * A predicted reference of `length` voxels: the constant, then each source's image times its
 * weight, added in turn. `each(source, add)` hands over a source's image (a frame in memory, or a
 * frame's file read into a buffer), so that a caller reading files holds one at a time.
 */
export function combine<Source>(
  sources: readonly Source[],
  weights: readonly number[],
  constant: number,
  length: number,
  each: (source: Source, add: (image: Float32Array) => void) => void,
): Float32Array {
  const out = new Float32Array(length).fill(constant);
  sources.forEach((source, k) => {
    const w = weights[k];
    each(source, (image) => {
      for (let n = 0; n < out.length; n++) out[n] += w * image[n];
    });
  });
  return out;
}

/**
 * Inner products over the mask of every pair of images and of each with the constant 1 (last
 * row), gathered over blocks of voxels: `add` takes the images' values over one block and the
 * mask's voxels inside it (offsets into the block), so images read from files in pieces need not
 * be held whole. Each sum runs over the mask in order, whatever the blocks: the same result as
 * one pass over whole images.
 */
export class GramAccumulator {
  private readonly count: number;
  private readonly sums: number[][];
  private masked = 0;

  constructor(images: number) {
    this.count = images;
    this.sums = Array.from({ length: images + 1 }, () => new Array<number>(images + 1).fill(0));
  }

  add(blocks: readonly Float32Array[], mask: Uint32Array): void {
    const n = this.count;
    for (let a = 0; a < n; a++) {
      const x = blocks[a];
      for (let b = a; b < n; b++) {
        const y = blocks[b];
        let sum = this.sums[a][b];
        for (let q = 0; q < mask.length; q++) sum += x[mask[q]] * y[mask[q]];
        this.sums[a][b] = sum;
      }
      let sum = this.sums[a][n];
      for (let q = 0; q < mask.length; q++) sum += x[mask[q]];
      this.sums[a][n] = sum;
    }
    this.masked += mask.length;
  }

  matrix(): number[][] {
    const n = this.count;
    const gram = this.sums.map((row) => [...row]);
    for (let a = 0; a <= n; a++) for (let b = 0; b < a; b++) gram[a][b] = gram[b][a];
    gram[n][n] = this.masked;
    return gram;
  }
}

/**
 * Solves A·x = b for a small symmetric positive semi-definite A (the normal equations), by
 * Gaussian elimination with partial pivoting; a relative 1e-9 on the diagonal keeps nearly
 * collinear frames (two still late frames) solvable. Undefined when singular anyway.
 */
function solveSymmetric(a: number[][], b: number[]): number[] | undefined {
  const n = b.length;
  const m = a.map((row, i) => [...row.map((v, j) => (i === j ? v * (1 + 1e-9) : v)), b[i]]);
  for (let i = 0; i < n; i++) {
    let pivot = i;
    for (let r = i + 1; r < n; r++) if (Math.abs(m[r][i]) > Math.abs(m[pivot][i])) pivot = r;
    [m[i], m[pivot]] = [m[pivot], m[i]];
    if (!(Math.abs(m[i][i]) > 0)) return undefined;
    for (let r = i + 1; r < n; r++) {
      const factor = m[r][i] / m[i][i];
      for (let j = i; j <= n; j++) m[r][j] -= factor * m[i][j];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    let sum = m[i][n];
    for (let j = i + 1; j < n; j++) sum -= m[i][j] * x[j];
    x[i] = sum / m[i][i];
  }
  return x.every(Number.isFinite) ? x : undefined;
}
