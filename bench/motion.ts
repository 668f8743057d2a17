// Motion correction: dicomflow's rigid registration with its default options against elastix
// with a tuned rigid MI parameter file (bench/elastix-rigid-mi-tuned.txt; optionally also the
// usual 3-resolution setup) on the same frames and reference of realistic dynamic FDG brain
// phantoms with known motion (test/fixtures/fdg-brain-phantoms.ts), in the same run: seconds per
// registered frame and displacement error over the brain. Target from issue 16: mean error
// ≤ 0.05 mm, worst frame ≤ 0.10 mm, ≥ 4× faster per frame than tuned elastix. The speed is given
// three ways: one frame on one thread, the step's registration tasks on its pool, and the whole
// step as a job runs it (DICOM in, every output written), which is what issue 16 measured.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { motionInPatientSpace } from '../plugins/motion-correction/registration/patient-space.ts';
import { chooseReferenceFrames, combineFrames } from '../plugins/motion-correction/registration/reference.ts';
import { predictedReferences } from '../plugins/motion-correction/registration/predicted-reference.ts';
import {
  DEFAULT_REGISTRATION_OPTIONS,
  prepareReference,
  type PreparedReference,
  type RegistrationResult,
} from '../plugins/motion-correction/registration/register.ts';
import { firstPass, predictionMask, secondPass, smoothedCorrected } from '../plugins/motion-correction/registration/register-series.ts';
import { displacementDifference, rigidMatrix, type Matrix4 } from '../plugins/motion-correction/registration/rigid.ts';
import { FDG_PHANTOMS, fdgBrainPhantom, gridAffine, voxelPosition, type PhantomGrid } from '../test/fixtures/fdg-brain-phantoms.ts';
import { firstPassesWithPredictions } from '../plugins/motion-correction/index.ts';
import type { CorrectFrameArg, FrameResult, PredictReferencesArg } from '../plugins/motion-correction/tasks.ts';
import { createStepPool } from '../workers/pool.ts';
import { createStepContext } from '../core/jobs/step-context.ts';
import { seriesStepSeed } from '../test/helpers/series-step.ts';
import { PluginRegistry } from '../core/plugin-registry.ts';
import motionCorrection from '../plugins/motion-correction/index.ts';
import { petSeriesOfFrames } from '../test/fixtures/dynamic-brain-phantom.ts';
import type { FdgPhantom } from '../test/fixtures/fdg-brain-phantoms.ts';
import { cleanUp, makeTempDir, trackChild } from './support/cleanup.ts';
import { formatTable, median } from './support/table.ts';

export const description =
  'rigid motion correction of 3 realistic dynamic FDG brain phantoms: dicomflow (defaults) vs tuned elastix, s/frame and error';

const PHANTOM_NAMES = Object.keys(FDG_PHANTOMS) as (keyof typeof FDG_PHANTOMS)[];

const USAGE = `npm run bench -- motion [--phantom ${PHANTOM_NAMES.join(',')}] [--seeds N] [--threads T] [--elastix-default] [--keep]

  --phantom          which phantoms (comma-separated; default all three)
  --seeds            dicomflow also with sampling seeds 1…N−1, for the spread of its error (default 4; the table is seed 0's)
  --threads          elastix threads (default 2); dicomflow runs each frame on one thread, as a pool task does
  --elastix-default  also run elastix with the usual 3-resolution, 500-iteration rigid setup
  --keep             keep the temporary directory (frames as .mhd, elastix logs) and print its path`;

/** The motion-correction step's default reference (its schema's default): the sum of the last 3 frames. */
const DEFAULT_REFERENCE = { kind: 'sum-late', lateFrames: 3 } as const;

const TUNED_PARAMETERS = path.join(import.meta.dirname, 'elastix-rigid-mi-tuned.txt');

const ELASTIX_DEFAULT_PARAMETERS = `// Rigid registration: Euler transform, Mattes MI, 3 resolutions (the usual elastix rigid setup).
(FixedInternalImagePixelType "float")
(MovingInternalImagePixelType "float")
(FixedImageDimension 3)
(MovingImageDimension 3)
(UseDirectionCosines "true")
(Registration "MultiResolutionRegistration")
(Interpolator "BSplineInterpolator")
(BSplineInterpolationOrder 1)
(ResampleInterpolator "FinalBSplineInterpolator")
(FinalBSplineInterpolationOrder 3)
(Resampler "DefaultResampler")
(FixedImagePyramid "FixedSmoothingImagePyramid")
(MovingImagePyramid "MovingSmoothingImagePyramid")
(NumberOfResolutions 3)
(Optimizer "AdaptiveStochasticGradientDescent")
(MaximumNumberOfIterations 500)
(Transform "EulerTransform")
(AutomaticScalesEstimation "true")
(AutomaticTransformInitialization "false")
(HowToCombineTransforms "Compose")
(Metric "AdvancedMattesMutualInformation")
(NumberOfHistogramBins 32)
(ImageSampler "RandomCoordinate")
(NumberOfSpatialSamples 4096)
(NewSamplesEveryIteration "true")
(CheckNumberOfSamples "true")
(ErodeMask "false")
(DefaultPixelValue 0)
(WriteResultImage "false")
(ResultImagePixelType "float")
`;

interface ToolFigures {
  seconds: number;
  cpuSeconds: number;
  errorMm: number;
}

interface FrameRow {
  phantom: string;
  frame: number;
  trueMotion: string;
  tools: Record<string, ToolFigures>;
}

// GNU time gives the child's CPU time (user + system): a figure a busy machine disturbs far less
// than wall time.
const GNU_TIME = '/usr/bin/time';

/** A float32 MetaImage: header + raw, in the grid's patient (LPS) coordinates. */
function writeMhd(dir: string, name: string, data: Float32Array, grid: PhantomGrid): string {
  const origin = voxelPosition(grid, 0, 0, 0);
  fs.writeFileSync(path.join(dir, `${name}.raw`), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const header = [
    'ObjectType = Image',
    'NDims = 3',
    'BinaryData = True',
    'BinaryDataByteOrderMSB = False',
    'CompressedData = False',
    'TransformMatrix = 1 0 0 0 1 0 0 0 1',
    `Offset = ${origin.join(' ')}`,
    'CenterOfRotation = 0 0 0',
    'AnatomicalOrientation = RAI',
    `ElementSpacing = ${grid.spacingMm.join(' ')}`,
    `DimSize = ${grid.dims.join(' ')}`,
    'ElementType = MET_FLOAT',
    `ElementDataFile = ${name}.raw`,
  ];
  const file = path.join(dir, `${name}.mhd`);
  fs.writeFileSync(file, `${header.join('\n')}\n`);
  return file;
}

interface Timed {
  result: RegistrationResult;
  seconds: number;
  cpuSeconds: number;
}

/**
 * The step's registration with its defaults (registration/register-series.ts), timed per frame:
 * every frame's first pass, the prediction of the references (its time shared equally among the
 * frames), every frame's second pass. All frames are registered, as the step does by default.
 */
function registerSeriesTimed(prepared: PreparedReference, reference: Float32Array, frames: readonly Float32Array[]): Timed[] {
  const timer = (): (() => [number, number]) => {
    const t0 = performance.now(),
      c0 = process.cpuUsage();
    return () => {
      const c = process.cpuUsage(c0);
      return [(performance.now() - t0) / 1000, (c.user + c.system) / 1e6];
    };
  };
  const first = frames.map((frame) => {
    const stop = timer();
    const pass = firstPass(prepared, frame);
    const moved = smoothedCorrected(prepared, pass);
    const [seconds, cpuSeconds] = stop();
    return { pass, moved, seconds, cpuSeconds };
  });
  if (!prepared.options.predictedReference)
    return first.map(({ pass, seconds, cpuSeconds }) => ({ result: pass.result, seconds, cpuSeconds }));
  const stop = timer();
  const predicted = predictedReferences(
    first.map((f) => f.moved),
    predictionMask(reference, prepared.options.maskFraction),
  );
  const [shared, sharedCpu] = stop();
  return first.map(({ pass, seconds, cpuSeconds }, f) => {
    const own = predicted[f];
    const base = { seconds: seconds + shared / frames.length, cpuSeconds: cpuSeconds + sharedCpu / frames.length };
    if (own === undefined || !pass.result.plausible) return { result: pass.result, ...base };
    const stopSecond = timer();
    const result = secondPass(prepared, own, frames[f], pass.result, pass.smoothedFrame);
    const [more, moreCpu] = stopSecond();
    return { result, seconds: base.seconds + more, cpuSeconds: base.cpuSeconds + moreCpu };
  });
}

const TASKS = new URL('../plugins/motion-correction/tasks.ts', import.meta.url).href;

/**
 * A fresh step pool (one worker process per core) whose processes have started and loaded the
 * step's tasks module, so neither is in a timing; their code has not run yet, as in a job that
 * finds the pool idle.
 */
async function startedPool(dir: string): Promise<{ pool: ReturnType<typeof createStepPool>; threads: number; signal: AbortSignal }> {
  const threads = Math.max(1, os.availableParallelism());
  const pool = createStepPool({ threads });
  const signal = new AbortController().signal;
  const referenceFile = path.join(dir, 'warm-up-reference.f32');
  fs.writeFileSync(referenceFile, new Uint8Array(4 * 8));
  await Promise.all(
    Array.from({ length: threads }, () =>
      pool.runTask(
        {
          moduleUrl: TASKS,
          exportName: 'predictFrameReferences',
          arg: { referenceFile, maskFraction: 0.5, smoothedCorrectedFiles: [] } satisfies PredictReferencesArg,
        },
        { signal, transferList: [] },
      ),
    ),
  );
  return { pool, threads, signal };
}

/**
 * The step's own registration and resampling, as its job runs them: the tasks of
 * plugins/motion-correction/tasks.ts on the step pool (worker processes, one per core), every
 * frame's first pass at once, the prediction of the references, every frame's second pass and
 * resampling at once. Returns the wall time of the whole series (frames already in scratch, no
 * DICOM reading or writing), to set beside elastix registering the frames one after another.
 */
async function registerSeriesOnPool(
  dir: string,
  name: string,
  reference: Float32Array,
  frames: readonly Float32Array[],
  grid: { dims: [number, number, number]; spacingMm: [number, number, number]; affine: number[] },
): Promise<{ seconds: number; threads: number }> {
  const scratch = fs.mkdtempSync(path.join(dir, `${name}-pool-`));
  const file = (kind: string, f: number) => path.join(scratch, `${kind}-${f}.f32`);
  // firstPassesWithPredictions keeps its own files under <scratch>/frames, as in the step.
  fs.mkdirSync(path.join(scratch, 'frames'));
  const write = (to: string, data: Float32Array) => fs.writeFileSync(to, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const referenceFile = path.join(scratch, 'reference.f32');
  write(referenceFile, reference);
  frames.forEach((frame, f) => write(file('frame', f), frame));
  const { pool, threads, signal } = await startedPool(scratch);
  const runTask = <R>(moduleUrl: string, exportName: string, arg: unknown) =>
    pool.runTask({ moduleUrl, exportName, arg }, { signal, transferList: [] }) as Promise<R>;
  const task = <R>(exportName: string, arg: unknown) => runTask<R>(TASKS, exportName, arg);
  const registration = DEFAULT_REGISTRATION_OPTIONS;
  try {
    const started = performance.now();
    // The step's own first passes and fit of the predictions, then its frame tasks.
    const firstPasses = registration.predictedReference
      ? await firstPassesWithPredictions(
          runTask,
          registration,
          { frameFiles: frames.map((_, f) => file('frame', f)), referenceFile, grid, register: frames.map(() => true) },
          scratch,
          () => {},
        )
      : undefined;
    await Promise.all(
      frames.map((_, f) =>
        task<FrameResult>('correctFrame', {
          frame: f,
          register: true,
          frameFile: file('frame', f),
          referenceFile,
          correctedFile: file('corrected', f),
          grid,
          registration,
          ...(firstPasses?.[f] === undefined ? {} : { firstPass: firstPasses[f] }),
        } satisfies CorrectFrameArg),
      ),
    );
    return { seconds: (performance.now() - started) / 1000, threads };
  } finally {
    await pool.destroy();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * The whole motion-correction step as a pipeline's job runs it, with its default options: the
 * phantom written as a DICOM PET series (untimed), then the step's run from reading that series
 * to its outputs (derived DICOM series, 4D NIfTI, motion JSON/CSV and plot) on the step pool,
 * started before the timing as the engine keeps it. Issue 16 measured this: the step's wall time
 * per registered frame. Also returns the error of the matrices in its motion.json, through the
 * DICOM encoding (16-bit values with a slope per slice) rather than the frames in memory.
 */
async function wholeStepAsJob(
  dir: string,
  name: string,
  phantom: FdgPhantom,
): Promise<{ seconds: number; frames: number; errors: number[]; threads: number }> {
  const { grid, frames, truth, brainPoints } = phantom;
  const series = await petSeriesOfFrames(path.join(dir, `${name}-dicom`), grid, frames, truth, {
    seriesDescription: `FDG brain phantom ${name}`,
    uidSeed: `bench motion ${name}`,
  });
  const registry = new PluginRegistry();
  registry.register(motionCorrection, new URL('../plugins/motion-correction/index.ts', import.meta.url).href);
  const registered = registry.resolve('motion-correction@1');
  if (registered === undefined) throw new Error('motion-correction@1 is not registered');
  const options = {};
  if (!registered.validateOptions(options)) throw new Error(JSON.stringify(registered.validateOptions.errors));
  const jobDir = path.join(dir, `${name}-job`);
  fs.mkdirSync(jobDir);
  const { pool, threads, signal } = await startedPool(jobDir);
  try {
    const seed = seriesStepSeed(series, {
      jobId: `bench-${name}`,
      pipeline: 'bench-motion',
      stepId: 'motion-correction',
      jobDir,
      node: 'bench',
    });
    const { ctx } = createStepContext(
      seed,
      signal,
      () => {},
      undefined,
      undefined,
      (call, transferList) => pool.runTask(call, { signal, transferList }),
    );
    const started = performance.now();
    await motionCorrection.run(ctx, options as never);
    const seconds = (performance.now() - started) / 1000;
    const motion = JSON.parse(fs.readFileSync(path.join(jobDir, 'outputs', 'motion.json'), 'utf8')) as {
      frames: { matrix: number[][] }[];
    };
    const errors = phantom.scoredFrames.map(
      (f) => displacementDifference(Float64Array.from(motion.frames[f].matrix.flat()), truth[f].matrix, brainPoints).meanMm,
    );
    // Every frame is registered with the default start time; a result the step rejects (a still
    // frame a little less similar after registration than before) still cost its registration.
    return { seconds, frames: motion.frames.length, errors, threads };
  } finally {
    await pool.destroy();
    fs.rmSync(jobDir, { recursive: true, force: true });
    fs.rmSync(path.join(dir, `${name}-dicom`), { recursive: true, force: true });
  }
}

function run(command: string, args: string[], logFile: string): Promise<{ code: number | null; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const out = fs.openSync(logFile, 'w');
    const child = trackChild(spawn(command, args, { stdio: ['ignore', out, out] }));
    child.on('error', reject);
    child.on('exit', (code) => {
      fs.closeSync(out);
      resolve({ code, seconds: (performance.now() - started) / 1000 });
    });
  });
}

/** elastix's Euler transform (fixed point → moving point, physical = LPS here) as a matrix. */
function elastixMatrix(transformFile: string): Matrix4 {
  const text = fs.readFileSync(transformFile, 'utf8');
  const numbers = (key: string): number[] => {
    const match = new RegExp(`\\(${key} ([^)]*)\\)`).exec(text);
    if (match === null) throw new Error(`${transformFile}: no ${key}`);
    return match[1].trim().split(/\s+/).map(Number);
  };
  const [rx, ry, rz, tx, ty, tz] = numbers('TransformParameters');
  const c = numbers('CenterOfRotationPoint');
  // ITK's Euler3DTransform: R = Rz·Ry·Rx with ComputeZYX, else R = Rz·Rx·Ry (elastix 5.0 writes
  // "false" whatever the parameter file says); T(x) = R(x − c) + c + t.
  const zyx = /\(ComputeZYX "true"\)/.test(text);
  const r = zyx
    ? product(rotation(2, rz), product(rotation(1, ry), rotation(0, rx)))
    : product(rotation(2, rz), product(rotation(0, rx), rotation(1, ry)));
  const m = new Float64Array(16);
  for (let row = 0; row < 3; row++) {
    let rc = 0;
    for (let col = 0; col < 3; col++) {
      m[4 * row + col] = r[3 * row + col];
      rc += r[3 * row + col] * c[col];
    }
    m[4 * row + 3] = c[row] - rc + [tx, ty, tz][row];
  }
  m[15] = 1;
  return m;
}

/** Rotation by `angle` about axis 0 (x), 1 (y) or 2 (z), row-major 3×3. */
function rotation(axis: number, angle: number): number[] {
  const co = Math.cos(angle),
    si = Math.sin(angle);
  if (axis === 0) return [1, 0, 0, 0, co, -si, 0, si, co];
  if (axis === 1) return [co, 0, si, 0, 1, 0, -si, 0, co];
  return [co, -si, 0, si, co, 0, 0, 0, 1];
}

function product(a: number[], b: number[]): number[] {
  const out = new Array<number>(9).fill(0);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) out[3 * i + j] += a[3 * i + k] * b[3 * k + j];
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      phantom: { type: 'string', default: PHANTOM_NAMES.join(',') },
      threads: { type: 'string', default: '2' },
      seeds: { type: 'string', default: '4' },
      'elastix-default': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const names = values.phantom.split(',').map((n) => n.trim());
  const unknown = names.filter((n) => !(PHANTOM_NAMES as string[]).includes(n));
  if (unknown.length > 0) {
    console.error(`unknown phantom ${unknown.join(', ')}\n\n${USAGE}`);
    return 2;
  }
  // --keep: a directory the exit handler does not remove.
  const dir = values.keep ? fs.mkdtempSync(path.join(os.tmpdir(), 'df-bench-motion-')) : makeTempDir('df-bench-motion-');
  const defaultParameters = path.join(dir, 'rigid-default.txt');
  fs.writeFileSync(defaultParameters, ELASTIX_DEFAULT_PARAMETERS);
  const elastixRuns: { tool: string; parameterFile: string }[] = [{ tool: 'elastix tuned', parameterFile: TUNED_PARAMETERS }];
  if (values['elastix-default']) elastixRuns.push({ tool: 'elastix default', parameterFile: defaultParameters });
  const tools = ['dicomflow', ...elastixRuns.map((r) => r.tool)];
  const rows: FrameRow[] = [];
  const spreads: { phantom: string; perSeed: { seed: number; mean: number; worst: number }[] }[] = [];
  const onPool: { phantom: string; secondsPerFrame: number; wholeSecondsPerFrame: number; threads: number }[] = [];
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  let failures = 0;

  for (const name of names as (keyof typeof FDG_PHANTOMS)[]) {
    const spec = FDG_PHANTOMS[name];
    const { dims, spacingMm } = spec.grid;
    let started = performance.now();
    const phantom = fdgBrainPhantom(spec);
    const { frames, truth, brainPoints, grid } = phantom;
    console.log(
      `\nphantom ${name}: ${frames.length} frames of ${dims.join('×')} voxels of ${spacingMm.join('×')} mm, resolution ${spec.resolutionMm} mm FWHM, ` +
        `noise ${(100 * spec.noiseAt40min300s).toFixed(0)} % (grey matter, 300 s at 40 min), motion ≤ ${spec.maxTranslationMm} mm / ${spec.maxRotationDeg}°, ` +
        `${brainPoints.length / 3} brain voxels; built in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    const timing = truth.map((t, f) => ({ startMs: phantom.startsSec[f] * 1000, durationMs: t.durationSec * 1000 }));
    const choice = chooseReferenceFrames(DEFAULT_REFERENCE, timing, frames.length);
    if ('problem' in choice) throw new Error(choice.problem);
    const reference = combineFrames(
      choice.frames.map((f) => frames[f]),
      choice.weights,
    );
    const fixed = writeMhd(dir, `${name}-reference`, reference, grid);
    const gridForPatient = { dims, spacingMm, affine: gridAffine(grid) };

    started = performance.now();
    const prepared = prepareReference(reference, dims, spacingMm, DEFAULT_REGISTRATION_OPTIONS);
    console.log(
      `reference: ${choice.description}; dicomflow's preparation (once per series, not in s/frame) ${((performance.now() - started) / 1000).toFixed(2)} s`,
    );
    // dicomflow: one frame at a time on this thread, as one pool task runs it; an implausible
    // result is not applied (the frame stays uncorrected), as the step does.
    const errorOf = (f: number, result: RegistrationResult): number =>
      displacementDifference(
        motionInPatientSpace(gridForPatient, result.plausible ? result.matrix : rigidMatrix([0, 0, 0, 0, 0, 0], [0, 0, 0])),
        truth[f].matrix,
        brainPoints,
      ).meanMm;
    const ours = registerSeriesTimed(prepared, reference, frames);
    const perSeed: { seed: number; mean: number; worst: number }[] = [];
    for (let seed = 0; seed < Math.max(1, Number(values.seeds)); seed++) {
      const results =
        seed === 0
          ? ours.map((t) => t.result)
          : registerSeriesTimed(
              prepareReference(reference, dims, spacingMm, { ...DEFAULT_REGISTRATION_OPTIONS, samplingSeed: seed }),
              reference,
              frames,
            ).map((t) => t.result);
      const errors = phantom.scoredFrames.map((f) => errorOf(f, results[f]));
      perSeed.push({ seed, mean: errors.reduce((a, b) => a + b, 0) / errors.length, worst: Math.max(...errors) });
    }
    spreads.push({ phantom: name, perSeed });
    const pooled = await registerSeriesOnPool(dir, name, reference, frames, { dims, spacingMm, affine: Array.from(gridAffine(grid)) });
    console.log(
      `the step's tasks on the pool (${pooled.threads} worker processes): ${frames.length} frames registered and resampled in ${pooled.seconds.toFixed(2)} s, ${(pooled.seconds / frames.length).toFixed(2)} s per frame`,
    );
    const whole = await wholeStepAsJob(dir, name, phantom);
    onPool.push({
      phantom: name,
      secondsPerFrame: pooled.seconds / frames.length,
      wholeSecondsPerFrame: whole.seconds / whole.frames,
      threads: pooled.threads,
    });
    console.log(
      `the whole step as a job (DICOM series in; derived series, NIfTI, motion files and plot out): ${whole.frames} frames in ${whole.seconds.toFixed(2)} s, ` +
        `${(whole.seconds / whole.frames).toFixed(2)} s per registered frame; its motion.json against the truth: mean ${mean(whole.errors).toFixed(3)} mm, worst frame ${Math.max(...whole.errors).toFixed(3)} mm`,
    );

    for (const f of phantom.scoredFrames) {
      const figures: Record<string, ToolFigures> = {};
      const { result, seconds, cpuSeconds } = ours[f];
      figures.dicomflow = { seconds, cpuSeconds, errorMm: errorOf(f, result) };
      if (!result.converged) console.log(`  dicomflow ${name} frame ${f + 1}: ${result.problem}`);

      const moving = writeMhd(dir, `${name}-frame-${f + 1}`, frames[f], grid);
      for (const { tool, parameterFile } of elastixRuns) {
        const outDir = path.join(dir, `${name}-${tool.replace(/\s+/g, '-')}-${f + 1}`);
        fs.mkdirSync(outDir);
        const elastixArgs = ['-f', fixed, '-m', moving, '-p', parameterFile, '-out', outDir, '-threads', values.threads];
        const timeFile = path.join(outDir, 'time.txt');
        const elastix = fs.existsSync(GNU_TIME)
          ? await run(GNU_TIME, ['-f', '%U %S', '-o', timeFile, 'elastix', ...elastixArgs], path.join(outDir, 'stdout.log'))
          : await run('elastix', elastixArgs, path.join(outDir, 'stdout.log'));
        const cpuSeconds = fs.existsSync(timeFile)
          ? fs
              .readFileSync(timeFile, 'utf8')
              .trim()
              .split('\n')
              .at(-1)!
              .split(' ')
              .map(Number)
              .reduce((a, b) => a + b, 0)
          : Number.NaN;
        let errorMm = Number.NaN;
        if (elastix.code === 0) {
          errorMm = displacementDifference(
            elastixMatrix(path.join(outDir, 'TransformParameters.0.txt')),
            truth[f].matrix,
            brainPoints,
          ).meanMm;
        } else {
          failures++;
          console.log(`  ${tool} ${name} frame ${f + 1} exited with ${elastix.code}; see ${path.join(outDir, 'elastix.log')}`);
        }
        figures[tool] = { seconds: elastix.seconds, cpuSeconds, errorMm };
      }
      const m = truth[f].motion;
      const row: FrameRow = {
        phantom: name,
        frame: f + 1,
        trueMotion: `${Math.hypot(m[0], m[1], m[2]).toFixed(1)} mm, ${Math.max(...m.slice(3).map(Math.abs)).toFixed(1)}°`,
        tools: figures,
      };
      rows.push(row);
      console.log(
        `  frame ${row.frame} (${row.trueMotion}, ${truth[f].durationSec} s at ${truth[f].midSec} s): ${tools.map((t) => `${t} ${figures[t].seconds.toFixed(2)} s, ${figures[t].errorMm.toFixed(3)} mm`).join('; ')}`,
      );
    }
  }

  console.log('');
  console.log(
    formatTable(
      ['phantom', 'frame', 'true motion', ...tools.flatMap((t) => [`${t} s`, `${t} err mm`])],
      rows.map((r) => [
        r.phantom,
        String(r.frame),
        r.trueMotion,
        ...tools.flatMap((t) => [r.tools[t].seconds.toFixed(2), r.tools[t].errorMm.toFixed(3)]),
      ]),
    ),
  );
  console.log('');
  const summary: string[][] = [];
  let accurate = true;
  let fastOnPool = true;
  let fastWhole = true;
  let fastPerThread = true;
  for (const name of [...names, 'all']) {
    const subset = rows.filter((r) => name === 'all' || r.phantom === name);
    const ours = subset.map((r) => r.tools.dicomflow);
    const tuned = subset.map((r) => r.tools['elastix tuned']);
    const ratio = median(tuned.map((t) => t.seconds)) / median(ours.map((t) => t.seconds));
    const pooled = onPool.filter((p) => name === 'all' || p.phantom === name);
    const poolSeconds = mean(pooled.map((p) => p.secondsPerFrame));
    const poolRatio = median(tuned.map((t) => t.seconds)) / poolSeconds;
    const wholeSeconds = mean(pooled.map((p) => p.wholeSecondsPerFrame));
    const wholeRatio = median(tuned.map((t) => t.seconds)) / wholeSeconds;
    for (const tool of tools) {
      const figures = subset.map((r) => r.tools[tool]);
      summary.push([
        name,
        tool,
        median(figures.map((t) => t.seconds)).toFixed(2),
        mean(figures.map((t) => t.cpuSeconds)).toFixed(2),
        mean(figures.map((t) => t.errorMm)).toFixed(3),
        Math.max(...figures.map((t) => t.errorMm)).toFixed(3),
        tool === 'dicomflow' ? `${ratio.toFixed(1)}×` : '',
        tool === 'dicomflow' ? poolSeconds.toFixed(2) : '',
        tool === 'dicomflow' ? `${poolRatio.toFixed(1)}×` : '',
        tool === 'dicomflow' ? wholeSeconds.toFixed(2) : '',
        tool === 'dicomflow' ? `${wholeRatio.toFixed(1)}×` : '',
      ]);
    }
    const meanError = mean(ours.map((t) => t.errorMm));
    const worst = Math.max(...ours.map((t) => t.errorMm));
    if (!(meanError <= 0.05 && worst <= 0.1)) accurate = false;
    if (!(poolRatio >= 4)) fastOnPool = false;
    if (!(wholeRatio >= 4)) fastWhole = false;
    if (!(ratio >= 4)) fastPerThread = false;
  }
  console.log(
    formatTable(
      [
        'phantom',
        'tool',
        's/frame (median)',
        'CPU s/frame',
        'mean err mm',
        'worst frame mm',
        'speed-up vs tuned, one thread',
        'step on the pool s/frame',
        'speed-up vs tuned, as the step runs',
        'whole step s/frame',
        'speed-up vs tuned, whole step',
      ],
      summary,
    ),
  );
  console.log('\ndicomflow over sampling seeds (mean / worst frame, mm; the table above is seed 0):');
  console.log(
    formatTable(
      ['phantom', ...spreads[0].perSeed.map((s) => `seed ${s.seed}`), 'range of means', 'range of worst'],
      spreads.map((sp) => {
        const means = sp.perSeed.map((s) => s.mean),
          worsts = sp.perSeed.map((s) => s.worst);
        return [
          sp.phantom,
          ...sp.perSeed.map((s) => `${s.mean.toFixed(3)} / ${s.worst.toFixed(3)}`),
          `${Math.min(...means).toFixed(3)}–${Math.max(...means).toFixed(3)}`,
          `${Math.min(...worsts).toFixed(3)}–${Math.max(...worsts).toFixed(3)}`,
        ];
      }),
    ),
  );
  console.log(
    `\ndicomflow's s/frame: one frame on one thread, both passes and a share of the prediction of the references, every frame of the series registered as the step does. ` +
      `"Step on the pool": the step's own tasks on its pool of ${onPool[0]?.threads ?? '?'} worker processes (frames in parallel, as a job runs them; resampling included), the series' wall time ÷ its frames. ` +
      `"Whole step": the step's run with its default options on the phantom as a DICOM PET series, from reading it to writing the derived series, NIfTI, motion files and plot, ÷ its frames (every one registered). ` +
      `elastix runs with ${values.threads} threads, frames one after another; its s/frame is the process's wall time (start-up and reading included).`,
  );
  console.log(
    `target, accuracy (mean error ≤ 0.05 mm, worst frame ≤ 0.10 mm on every phantom): ${accurate ? '[met]' : '[NOT MET]'}; ` +
      `speed (≥ 4× faster per registered frame than tuned elastix, wall time, on every phantom): as the step runs ${fastOnPool ? '[met]' : '[NOT MET]'}, the whole step with its outputs ${fastWhole ? '[met]' : '[NOT MET]'}, on one thread against elastix's ${values.threads} ${fastPerThread ? '[met]' : '[not met]'}`,
  );
  console.log(
    `load average: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  if (values.keep) console.log(`kept ${dir}`);
  else await cleanUp();
  return failures === 0 ? 0 : 1;
}
