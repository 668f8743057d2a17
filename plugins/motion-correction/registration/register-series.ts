import { predictedReferences } from './predicted-reference.ts';
import {
  headVoxels,
  registerFrame,
  smoothForRegistration,
  withFinestImage,
  type PreparedReference,
  type RegistrationResult,
} from './register.ts';
import { resampleTrilinear } from './resample.ts';

/**
 * The two passes over a series, as steps the motion-correction step spreads over its worker
 * pool and the bench and tests run in one thread:
 * 1. every frame registered to the series' reference, coarse to fine (firstPass);
 * 2. per frame, a reference predicted from the other frames in the pose the first pass found
 *    (predictedReferences), and the frame refined against it at the finest level (secondPass).
 */

export interface FirstPass {
  result: RegistrationResult;
  /** The frame as the registration sees it (smoothForRegistration), for the second pass. */
  smoothedFrame: Float32Array;
}

/**
 * With a second pass to come, the first stops its finest level at 4× the tolerance: it only
 * places the frame for its neighbours' predictions, whose own errors are ten times larger, and
 * the second pass converges to the tolerance (a frame whose refinement is not applied keeps a
 * result within 0.02 mm of its optimum, still far below its error). Measured on the three
 * phantoms (bench/motion.ts, seeds 0–3): the same final errors within the seed spread, 15–25 %
 * less CPU in the first pass.
 */
const FIRST_PASS_TOLERANCE_FACTOR = 4;

export function firstPass(reference: PreparedReference, frame: Float32Array): FirstPass {
  const smoothedFrame = smoothForRegistration(reference, frame);
  const { toleranceMm, predictedReference } = reference.options;
  const finestToleranceMm = predictedReference ? FIRST_PASS_TOLERANCE_FACTOR * toleranceMm : toleranceMm;
  return { result: registerFrame(reference, frame, { smoothedFrame, finestToleranceMm }), smoothedFrame };
}

/**
 * The smoothed frame moved into the reference's pose by its first-pass result, for predicting
 * the other frames' references; undefined when that result is not plausible. Smoothing
 * commutes with a rigid motion (the kernel is isotropic in mm), so the smoothed frame is moved.
 */
export function smoothedCorrected(reference: PreparedReference, pass: FirstPass): Float32Array | undefined {
  return pass.result.plausible ? resampleTrilinear(pass.smoothedFrame, reference.dims, reference.spacingMm, pass.result.matrix) : undefined;
}

/** The voxels the prediction is fitted over: the head in the series' reference. */
export function predictionMask(reference: Float32Array, maskFraction: number): Uint32Array {
  return headVoxels(reference, maskFraction);
}

/**
 * The frame refined at the finest level against its predicted reference (already smoothed as
 * the first pass's), from the first pass's result. When the refinement is not plausible the
 * first pass's result stands.
 */
export function secondPass(
  first: PreparedReference,
  predicted: Float32Array,
  frame: Float32Array,
  firstResult: RegistrationResult,
  smoothedFrame?: Float32Array,
): RegistrationResult {
  const refined = registerFrame(withFinestImage(first, predicted), frame, {
    initial: firstResult.parameters,
    stages: 'finest',
    ...(smoothedFrame === undefined ? {} : { smoothedFrame }),
  });
  if (!refined.plausible) return firstResult;
  return { ...refined, levels: [...firstResult.levels, ...refined.levels] };
}

/** Both passes over the frames marked in `register` (all by default); undefined for the others. */
export function registerSeries(
  reference: PreparedReference,
  seriesReference: Float32Array,
  frames: readonly Float32Array[],
  register: readonly boolean[] = frames.map(() => true),
): (RegistrationResult | undefined)[] {
  const first = frames.map((frame, f) => (register[f] ? firstPass(reference, frame) : undefined));
  if (!reference.options.predictedReference) return first.map((pass) => pass?.result);
  const predicted = predictedReferences(
    first.map((pass) => (pass === undefined ? undefined : smoothedCorrected(reference, pass))),
    predictionMask(seriesReference, reference.options.maskFraction),
  );
  return first.map((pass, f) => {
    if (pass === undefined) return undefined;
    const own = predicted[f];
    return own === undefined || !pass.result.plausible
      ? pass.result
      : secondPass(reference, own, frames[f], pass.result, pass.smoothedFrame);
  });
}
