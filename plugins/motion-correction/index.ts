import path from 'node:path';
import { dfError } from '../../core/errors.ts';
import { definePlugin, type StepContext, type StepInput } from '../../core/plugin.ts';
import { DEFAULT_REGISTRATION_OPTIONS, type RigidRegistrationOptions } from './registration/register.ts';
import type { ReferenceSpec } from './registration/reference.ts';
import { filePrediction, type Prediction } from './registration/predicted-reference.ts';
import { uidFromName } from './derived-series.ts';
import type {
  CorrectFrameArg,
  FirstPassArg,
  FirstPassResult,
  FrameResult,
  PredictReferencesArg,
  PreparedSeries,
  PrepareSeriesArg,
  WriteResultsArg,
  WrittenResults,
} from './tasks.ts';
import { frameTimesSec } from './frame-times.ts';

const VERSION = '1.0.0';
const TASKS = new URL('./tasks.ts', import.meta.url).href;
// The registration's own defaults, so the schema and registration/ cannot drift apart.
const DEFAULTS = DEFAULT_REGISTRATION_OPTIONS;

/**
 * Rigid motion correction of a dynamic series: every frame from the start time on is registered
 * (6 degrees of freedom, coarse to fine) to a reference built from the series, in parallel in the
 * worker pool, and resampled. Outputs: the corrected series as derived DICOM instances (for a
 * following store or route step), a 4D NIfTI, motion.json / motion.csv with each frame's
 * parameters and matrix, and a plot of the parameters over time.
 */
const plugin = definePlugin({
  name: 'motion-correction',
  version: VERSION,
  description:
    'Rigid (6 DOF) frame-by-frame motion correction of a dynamic series (PET) to a reference built from it: derived DICOM series, 4D NIfTI, motion parameters and plot.',
  runsIn: 'main',
  usesPool: true,
  consumes: ['instances'],
  produces: ['instances', 'files', 'tables'],
  defaultTimeoutSeconds: 1800,
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      reference: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'What every frame is registered to.',
        properties: {
          kind: {
            type: 'string',
            enum: ['sum-late', 'mean', 'frame'],
            default: 'sum-late',
            description:
              '"sum-late": the sum of the last `lateFrames` frames; "mean": the duration-weighted mean of the frames whose midpoint lies in `windowSec`; "frame": frame number `frame`.',
          },
          lateFrames: { type: 'integer', minimum: 1, default: 3, description: 'For "sum-late": how many of the last frames.' },
          windowSec: {
            type: 'array',
            items: { type: 'number', minimum: 0 },
            minItems: 2,
            maxItems: 2,
            description: 'For "mean": [start, end] in seconds from the series start.',
          },
          frame: { type: 'integer', minimum: 1, description: 'For "frame": the 1-based frame number.' },
        },
      },
      startSec: {
        type: 'number',
        minimum: 0,
        default: 0,
        description:
          'Frames that start before this time (s from the series start) are left uncorrected: early frames have too few counts or too different a tracer distribution.',
      },
      cost: {
        type: 'string',
        enum: ['nmi', 'ncc'],
        default: DEFAULTS.cost,
        description:
          '"nmi" (normalised mutual information) copes with a tracer distribution that changes between frames; "ncc" (normalised cross-correlation) is faster but assumes the frames look like the reference.',
      },
      fwhmMm: {
        oneOf: [{ type: 'number', minimum: 0, maximum: 30 }, { const: 'auto' }],
        default: DEFAULTS.fwhmMm,
        description:
          'Gaussian pre-smoothing of the reference and every frame before registration (FWHM, mm); "auto": two voxels along the coarsest axis (about the image\'s own resolution), times the square root of the reference\'s relative noise over 7 % (0.75–1.25×). The corrected frames are resampled from the unsmoothed data.',
      },
      levels: {
        oneOf: [{ type: 'integer', minimum: 1, maximum: 5 }, { const: 'auto' }],
        default: DEFAULTS.levels,
        description:
          'Resolution levels (coarse to fine), each halving the finest axes; "auto": as many as keep at least 20 voxels in plane (3 for a 128 matrix, 2 for 40–79).',
      },
      bins: {
        type: 'integer',
        minimum: 8,
        maximum: 256,
        default: DEFAULTS.bins,
        description: 'Joint histogram bins per image, for "nmi".',
      },
      maxIterations: {
        type: 'integer',
        minimum: 1,
        maximum: 1000,
        default: DEFAULTS.maxIterations,
        description: 'Optimizer iterations per level at most.',
      },
      toleranceMm: {
        type: 'number',
        exclusiveMinimum: 0,
        default: DEFAULTS.toleranceMm,
        description: 'Converged when a step moves no point by more than this (mm).',
      },
      maxSamples: {
        type: 'integer',
        minimum: 1000,
        default: DEFAULTS.maxSamples,
        description: 'Reference voxels used by the cost per level at most (a fixed random subset).',
      },
      maxTranslationMm: {
        type: 'number',
        exclusiveMinimum: 0,
        default: DEFAULTS.maxTranslationMm,
        description: 'A frame whose estimated translation exceeds this is left uncorrected and reported as failed.',
      },
      maxRotationDeg: {
        type: 'number',
        exclusiveMinimum: 0,
        default: DEFAULTS.maxRotationDeg,
        description: 'Likewise for the rotation about any axis (degrees).',
      },
      predictedReference: {
        type: 'boolean',
        default: DEFAULTS.predictedReference,
        description:
          'A second pass: each frame refined against a reference that looks like it, predicted from the other frames once the first pass has corrected them (about twice the CPU; more precise where early frames look unlike the reference).',
      },
      requireConvergence: {
        type: 'boolean',
        default: false,
        description:
          'Fail the step when a frame did not converge or failed the bounds, instead of reporting it in motion.json and the log.',
      },
      dicom: { type: 'boolean', default: true, description: 'Emit the corrected series as derived DICOM instances.' },
      nifti: {
        type: 'boolean',
        default: true,
        description: 'Write the corrected series as a 4D NIfTI (motion-corrected.nii.gz) with a BIDS sidecar.',
      },
      niftiGzipLevel: {
        type: 'integer',
        minimum: 1,
        maximum: 9,
        default: 1,
        description:
          "gzip level of motion-corrected.nii.gz. Noisy float32 PET frames hardly compress further: level 6 (dcm2niix's) made the standard phantom's 12 frames of 128×128×47 4 % smaller than level 1 for 60 % more CPU.",
      },
      plot: { type: 'boolean', default: true, description: 'Write motion.svg and motion.png (the six parameters over time).' },
      seriesNumberOffset: {
        type: 'integer',
        minimum: 0,
        default: 1000,
        description: 'The derived series number is the source series number plus this.',
      },
      seriesDescriptionSuffix: {
        type: 'string',
        maxLength: 32,
        default: ' MoCo',
        description: 'Appended to the source series description (the result is cut to 64 characters).',
      },
    },
  },
  check(options) {
    const problems: { pointer: string; message: string }[] = [];
    const reference = options.reference;
    if (reference.kind === 'mean' && reference.windowSec === undefined)
      problems.push({ pointer: '/reference/windowSec', message: 'a "mean" reference needs windowSec: [start, end] in seconds' });
    if (reference.kind === 'mean' && reference.windowSec !== undefined && reference.windowSec[0] > reference.windowSec[1])
      problems.push({ pointer: '/reference/windowSec', message: 'the window starts after it ends' });
    if (reference.kind === 'frame' && reference.frame === undefined)
      problems.push({ pointer: '/reference/frame', message: 'a "frame" reference needs frame: the 1-based frame number' });
    return problems;
  },
  async run(ctx, options) {
    const groups = groupBySeries(ctx.inputs);
    const referenceSpec = referenceOf(options.reference);
    const registration: RigidRegistrationOptions = {
      ...DEFAULT_REGISTRATION_OPTIONS,
      cost: options.cost,
      fwhmMm: options.fwhmMm,
      levels: options.levels,
      bins: options.bins,
      maxIterations: options.maxIterations,
      toleranceMm: options.toleranceMm,
      maxSamples: options.maxSamples,
      maxTranslationMm: options.maxTranslationMm,
      maxRotationDeg: options.maxRotationDeg,
      predictedReference: options.predictedReference,
    };
    let corrected = 0;
    for (const [index, files] of groups.entries()) {
      const share = (fraction: number, message?: string) => ctx.progress((index + fraction) / groups.length, message);
      const prepared = await ctx.runTask<PreparedSeries | { static: true; seriesInstanceUid: string }>(TASKS, 'prepareSeries', {
        files: files.map((f) => f.path),
        scratchDir: path.join(ctx.scratchDir, String(index)),
        reference: referenceSpec,
        startSec: options.startSec,
        registration,
      } satisfies PrepareSeriesArg);
      if ('static' in prepared) {
        ctx.log.info('series skipped: one frame, nothing to correct', { seriesInstanceUid: prepared.seriesInstanceUid });
        continue;
      }
      share(0.1, 'series loaded, reference built');
      const outDir = groups.length === 1 ? ctx.outputDir : path.join(ctx.outputDir, prepared.series.seriesInstanceUid);
      await correctSeries(ctx, options, prepared.registration, prepared, outDir, path.join(ctx.scratchDir, String(index)), share);
      corrected++;
    }
    if (corrected === 0)
      throw dfError('DF_ERR_MOTION_CORRECTION', 'no dynamic series among the inputs: motion correction needs a series with several frames');
  },
});

export default plugin;

type Options = Parameters<typeof plugin.run>[1];

async function correctSeries(
  ctx: StepContext,
  options: Options,
  registration: RigidRegistrationOptions,
  prepared: PreparedSeries,
  outDir: string,
  scratchDir: string,
  share: (fraction: number, message?: string) => void,
): Promise<void> {
  const source = prepared.series;
  const frameCount = prepared.frameFiles.length;
  // Same job and source, same UIDs: a retried attempt rewrites the same instances.
  const uidSeed = `dicomflow motion-correction ${VERSION}/${ctx.job.id}/${source.seriesInstanceUid}`;
  const seriesInstanceUid = uidFromName(uidSeed);
  const derivationDescription = `Rigid (6 DOF) motion correction by dicomflow motion-correction ${VERSION}: each frame registered to the ${prepared.referenceDescription} (${options.cost.toUpperCase()}, pre-smoothing ${+Number(registration.fwhmMm).toFixed(2)} mm FWHM, ${registration.levels} levels)${registration.predictedReference ? ', refined against a reference predicted from the other frames once corrected,' : ''} and resampled trilinearly; frames starting before ${options.startSec} s left uncorrected.`;
  ctx.log.info(`correcting ${frameCount} frames, reference: ${prepared.referenceDescription}`, {
    seriesInstanceUid: source.seriesInstanceUid,
  });
  // The derived objects copy their source slice's data set: that needs one image per file.
  const multiFrameSources = prepared.sources.some((slices) => slices.some((slice) => slice.frameNumber !== undefined));
  const writeDicom = options.dicom && !multiFrameSources;
  if (options.dicom && multiFrameSources)
    ctx.log.warn(
      'no derived DICOM series: the source is a multi-frame object (only one image per file is supported); the NIfTI and motion files are written',
      { seriesInstanceUid: source.seriesInstanceUid },
    );
  const firstPasses = registration.predictedReference
    ? await firstPassesWithPredictions(ctx.runTask, registration, prepared, scratchDir, share)
    : undefined;
  const base = firstPasses === undefined ? 0.1 : 0.5;
  let done = 0;
  const results = await Promise.all(
    prepared.frameFiles.map(async (frameFile, frame) => {
      const arg: CorrectFrameArg = {
        frame,
        register: prepared.register[frame],
        frameFile,
        referenceFile: prepared.referenceFile,
        correctedFile: path.join(scratchDir, 'frames', `corrected-${String(frame + 1).padStart(4, '0')}.f32`),
        grid: prepared.grid,
        registration,
        ...(firstPasses?.[frame] === undefined ? {} : { firstPass: firstPasses[frame] }),
        ...(writeDicom
          ? {
              derived: {
                seriesInstanceUid,
                uidSeed,
                ...(source.seriesNumber === undefined ? {} : { seriesNumber: source.seriesNumber + options.seriesNumberOffset }),
                seriesDescription: `${source.seriesDescription ?? ''}${options.seriesDescriptionSuffix}`.trim(),
                derivationDescription,
                sourceSeriesInstanceUid: source.seriesInstanceUid,
                outDir: path.join(outDir, 'dicom'),
                sources: prepared.sources[frame],
              },
            }
          : {}),
      };
      const result = await ctx.runTask<FrameResult>(TASKS, 'correctFrame', arg);
      done++;
      const what = !prepared.register[frame]
        ? 'before the start time, left uncorrected'
        : `t = [${result.translationMm.map((v) => v.toFixed(2)).join(', ')}] mm, r = [${result.rotationDeg.map((v) => v.toFixed(2)).join(', ')}]°${result.converged ? '' : ` (${result.problem})`}`;
      share(base + ((0.95 - base) * done) / frameCount, `frame ${frame + 1}/${frameCount}: ${what}`);
      if (!result.converged)
        ctx.log.warn(`frame ${frame + 1}: ${result.problem}${result.registered ? '' : '; left uncorrected'}`, {
          seriesInstanceUid: source.seriesInstanceUid,
          frame: frame + 1,
        });
      return result;
    }),
  );
  const failed = results.filter((r) => !r.converged);
  if (options.requireConvergence && failed.length > 0) {
    throw dfError(
      'DF_ERR_MOTION_CORRECTION',
      `${failed.length} frame(s) failed the registration checks: ${failed.map((r) => `frame ${r.frame + 1}: ${r.problem}`).join('; ')}`,
    );
  }
  const written = await ctx.runTask<WrittenResults>(TASKS, 'writeResults', {
    outDir,
    grid: prepared.grid,
    timing: prepared.timing,
    correctedFiles: results.map((_, frame) => path.join(scratchDir, 'frames', `corrected-${String(frame + 1).padStart(4, '0')}.f32`)),
    results,
    series: source,
    ...(prepared.units === undefined ? {} : { units: prepared.units }),
    referenceDescription: prepared.referenceDescription,
    options: { ...options },
    nifti: options.nifti,
    niftiGzipLevel: options.niftiGzipLevel,
    plot: options.plot,
    software: { name: 'dicomflow motion-correction', version: VERSION },
  } satisfies WriteResultsArg);
  for (const r of results) for (const file of r.instances) ctx.emitInstance(file, `motion-corrected frame ${r.frame + 1}`);
  ctx.emitFile(written.json, 'motion parameters and matrices per frame (JSON)');
  ctx.emitFile(written.csv, 'motion parameters and matrices per frame (CSV)');
  if (written.nifti !== undefined)
    ctx.emitFile(written.nifti, `motion-corrected series, 4D NIfTI (${prepared.grid.dims.join('×')}×${frameCount})`);
  if (written.sidecar !== undefined) ctx.emitFile(written.sidecar, 'BIDS sidecar of the motion-corrected NIfTI');
  if (written.svg !== undefined) ctx.emitFile(written.svg, 'motion plot (SVG)');
  if (written.png !== undefined) ctx.emitFile(written.png, 'motion plot (PNG)');
  ctx.emitTable(
    'motion',
    results.map((r) => ({
      frame: r.frame + 1,
      // Frame times put the web page's motion plot on a time axis, as the step's own plot is.
      ...frameTimesSec(prepared.timing[r.frame]),
      registered: r.registered,
      converged: r.converged,
      txMm: r.translationMm[0],
      tyMm: r.translationMm[1],
      tzMm: r.translationMm[2],
      rxDeg: r.rotationDeg[0],
      ryDeg: r.rotationDeg[1],
      rzDeg: r.rotationDeg[2],
    })),
    `motion of series ${source.seriesNumber ?? source.seriesInstanceUid}`,
  );
  const registeredSeconds = results.filter((r) => r.registered).map((r) => r.seconds);
  ctx.log.info(`${results.filter((r) => r.registered).length} of ${frameCount} frames corrected, ${failed.length} reported`, {
    seriesInstanceUid: source.seriesInstanceUid,
    derivedSeriesInstanceUid: writeDicom ? seriesInstanceUid : undefined,
    meanSecondsPerFrame: registeredSeconds.length === 0 ? 0 : registeredSeconds.reduce((a, b) => a + b, 0) / registeredSeconds.length,
  });
  share(1, 'done');
}

/**
 * The first pass of every registered frame (in parallel on the pool), then one task predicting
 * each frame's reference from the others (registration/register-series.ts). Per frame, what its
 * second pass needs; undefined for frames not registered. Exported for `bench motion`, which
 * times it on the step pool as a job runs it.
 */
export async function firstPassesWithPredictions(
  runTask: StepContext['runTask'],
  registration: RigidRegistrationOptions,
  prepared: Pick<PreparedSeries, 'frameFiles' | 'referenceFile' | 'grid' | 'register'>,
  scratchDir: string,
  share: (fraction: number, message?: string) => void,
): Promise<(CorrectFrameArg['firstPass'] | undefined)[]> {
  const file = (kind: string, frame: number): string =>
    path.join(scratchDir, 'frames', `${kind}-${String(frame + 1).padStart(4, '0')}.f32`);
  const frameCount = prepared.frameFiles.length;
  let done = 0;
  const passes = await Promise.all(
    prepared.frameFiles.map(async (frameFile, frame) => {
      if (!prepared.register[frame]) return undefined;
      const pass = await runTask<FirstPassResult>(TASKS, 'firstPassFrame', {
        frameFile,
        referenceFile: prepared.referenceFile,
        grid: prepared.grid,
        registration,
        smoothedFile: file('smoothed', frame),
        smoothedCorrectedFile: file('smoothed-corrected', frame),
      } satisfies FirstPassArg);
      done++;
      share(0.1 + (0.35 * done) / frameCount, `first pass of frame ${frame + 1}/${frameCount}`);
      return pass;
    }),
  );
  const fitted = await runTask<(Prediction | null)[]>(TASKS, 'predictFrameReferences', {
    referenceFile: prepared.referenceFile,
    maskFraction: registration.maskFraction,
    smoothedCorrectedFiles: passes.map((pass, frame) => (pass?.corrected === true ? file('smoothed-corrected', frame) : null)),
  } satisfies PredictReferencesArg);
  share(0.5, 'references predicted from the first pass');
  return passes.map((pass, frame) => {
    if (pass === undefined) return undefined;
    const prediction = fitted[frame];
    return {
      result: pass.result,
      seconds: pass.seconds,
      smoothedFile: file('smoothed', frame),
      ...(prediction ? { prediction: filePrediction(prediction, (other) => file('smoothed-corrected', other)) } : {}),
    };
  });
}

function referenceOf(reference: Options['reference']): ReferenceSpec {
  switch (reference.kind) {
    case 'mean':
      return { kind: 'mean', windowSec: [reference.windowSec![0], reference.windowSec![1]] };
    case 'frame':
      return { kind: 'frame', frame: reference.frame! };
    default:
      return { kind: 'sum-late', lateFrames: reference.lateFrames };
  }
}

/** Inputs per series, each SOP instance once, in series order of arrival. */
function groupBySeries(inputs: readonly StepInput[]): StepInput[][] {
  const groups = new Map<string, Map<string, StepInput>>();
  for (const input of inputs) {
    const key = input.seriesInstanceUid ?? '';
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = new Map()));
    if (!group.has(input.sopInstanceUid)) group.set(input.sopInstanceUid, input);
  }
  return [...groups.values()].map((g) => [...g.values()]);
}
