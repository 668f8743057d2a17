// Motion correction: dicomflow's rigid registration against elastix (rigid Euler transform,
// Mattes mutual information, 3 resolutions) on the same frames and reference of a dynamic brain
// phantom with known motion, in the same run: seconds per frame and displacement error over the
// brain for both. Target from issue 6: at least 3× faster than elastix at equal or better error.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { motionInPatientSpace } from '../core/registration/patient-space.ts';
import { combineFrames } from '../core/registration/reference.ts';
import { DEFAULT_REGISTRATION_OPTIONS, prepareReference, registerFrame } from '../core/registration/register.ts';
import { displacementDifference, type Matrix4 } from '../core/registration/rigid.ts';
import { dynamicBrainFrames, gridAffine, voxelPosition, type PhantomGrid } from '../test/fixtures/dynamic-brain-phantom.ts';
import { cleanUp, makeTempDir, trackChild } from './support/cleanup.ts';
import { formatTable, median } from './support/table.ts';

export const description = 'rigid motion correction of a dynamic brain phantom: dicomflow vs elastix, s/frame and displacement error';

const USAGE = `npm run bench -- motion [--size 128x128x47] [--spacing 2,2,3.27] [--frames N] [--threads T] [--cost nmi|ncc] [--keep]

  --size      grid of each frame, columns×rows×slices (default 128x128x47)
  --spacing   voxel size in mm, columns,rows,slices (default 2,2,3.27)
  --frames    register only the first N moving frames (3, 4, …; default all 7)
  --threads   elastix threads (default 2); dicomflow runs each frame on one thread
  --cost      dicomflow's cost (default nmi)
  --keep      keep the temporary directory (frames as .mhd, elastix logs) and print its path`;

const ELASTIX_PARAMETERS = `// Rigid registration: Euler transform, Mattes MI, 3 resolutions (the usual elastix rigid setup).
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

interface FrameRow {
  frame: number;
  trueMotion: string;
  dicomflowSeconds: number;
  dicomflowCpuSeconds: number;
  dicomflowErrorMm: number;
  elastixSeconds: number;
  elastixCpuSeconds: number;
  elastixErrorMm: number;
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
  const r = zyx ? product(rotation(2, rz), product(rotation(1, ry), rotation(0, rx))) : product(rotation(2, rz), product(rotation(0, rx), rotation(1, ry)));
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
  const co = Math.cos(angle), si = Math.sin(angle);
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
      size: { type: 'string', default: '128x128x47' },
      spacing: { type: 'string', default: '2,2,3.27' },
      frames: { type: 'string', default: '7' },
      threads: { type: 'string', default: '2' },
      cost: { type: 'string', default: 'nmi' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const dims = values.size.split('x').map(Number) as [number, number, number];
  const spacingMm = values.spacing.split(',').map(Number) as [number, number, number];
  if (dims.length !== 3 || spacingMm.length !== 3 || [...dims, ...spacingMm].some((v) => !(v > 0))) {
    console.error(USAGE);
    return 2;
  }
  const cost = values.cost === 'ncc' ? 'ncc' : 'nmi';
  const grid: PhantomGrid = { dims, spacingMm };
  const dir = makeTempDir('df-bench-motion-');

  let started = performance.now();
  const { frames, truth, brainPoints } = dynamicBrainFrames({ grid });
  console.log(`phantom: ${frames.length} frames of ${dims.join('×')} voxels of ${spacingMm.join('×')} mm, ${brainPoints.length / 3} brain voxels, built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  // The same reference for both: the mean of the last two frames (where the phantom is still);
  // frames 3–9 are registered (the first two are the uncorrected early frames of the test).
  const last = frames.length - 1;
  const reference = combineFrames([frames[last - 1], frames[last]], [0.5, 0.5]);
  const fixed = writeMhd(dir, 'reference', reference, grid);
  const parameterFile = path.join(dir, 'rigid.txt');
  fs.writeFileSync(parameterFile, ELASTIX_PARAMETERS);
  const affine = gridAffine(grid);
  const gridForPatient = { dims, spacingMm, affine };

  started = performance.now();
  const options = { ...DEFAULT_REGISTRATION_OPTIONS, cost } as const;
  const prepared = prepareReference(reference, dims, spacingMm, options);
  const prepareSeconds = (performance.now() - started) / 1000;

  const rows: FrameRow[] = [];
  let failures = 0;
  const lastMoving = Math.min(frames.length, 2 + Math.max(1, Number(values.frames) || 7));
  for (let f = 2; f < lastMoving; f++) {
    // dicomflow: one frame on this thread, as one pool task runs it.
    let t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const result = registerFrame(prepared, frames[f]);
    const dicomflowSeconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const dicomflowCpuSeconds = (cpu.user + cpu.system) / 1e6;
    const dicomflowError = displacementDifference(motionInPatientSpace(gridForPatient, result.matrix), truth[f].matrix, brainPoints).meanMm;
    if (!result.converged) console.log(`  dicomflow frame ${f + 1}: ${result.problem}`);

    const moving = writeMhd(dir, `frame-${f + 1}`, frames[f], grid);
    const outDir = path.join(dir, `elastix-${f + 1}`);
    fs.mkdirSync(outDir);
    t0 = performance.now();
    const elastixArgs = ['-f', fixed, '-m', moving, '-p', parameterFile, '-out', outDir, '-threads', values.threads];
    const timeFile = path.join(outDir, 'time.txt');
    const elastix = fs.existsSync(GNU_TIME)
      ? await run(GNU_TIME, ['-f', '%U %S', '-o', timeFile, 'elastix', ...elastixArgs], path.join(outDir, 'stdout.log'))
      : await run('elastix', elastixArgs, path.join(outDir, 'stdout.log'));
    const elastixCpuSeconds = fs.existsSync(timeFile) ? fs.readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number).reduce((a, b) => a + b, 0) : Number.NaN;
    let elastixError = Number.NaN;
    if (elastix.code === 0) {
      elastixError = displacementDifference(elastixMatrix(path.join(outDir, 'TransformParameters.0.txt')), truth[f].matrix, brainPoints).meanMm;
    } else {
      failures++;
      console.log(`  elastix frame ${f + 1} exited with ${elastix.code}; see ${path.join(outDir, 'elastix.log')}`);
    }
    const m = truth[f].motion;
    const row: FrameRow = {
      frame: f + 1,
      trueMotion: `${Math.hypot(m[0], m[1], m[2]).toFixed(1)} mm, ${Math.max(...m.slice(3).map(Math.abs)).toFixed(1)}°`,
      dicomflowSeconds,
      dicomflowCpuSeconds,
      dicomflowErrorMm: dicomflowError,
      elastixSeconds: elastix.seconds,
      elastixCpuSeconds,
      elastixErrorMm: elastixError,
    };
    rows.push(row);
    console.log(`frame ${row.frame}: dicomflow ${dicomflowSeconds.toFixed(2)} s (CPU ${dicomflowCpuSeconds.toFixed(2)} s), ${dicomflowError.toFixed(3)} mm; elastix ${elastix.seconds.toFixed(2)} s (CPU ${elastixCpuSeconds.toFixed(2)} s), ${elastixError.toFixed(3)} mm`);
  }

  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  console.log('');
  console.log(
    formatTable(
      ['frame', 'true motion', 'dicomflow s', 'dicomflow CPU s', 'dicomflow err mm', 'elastix s', 'elastix CPU s', 'elastix err mm'],
      rows.map((r) => [String(r.frame), r.trueMotion, r.dicomflowSeconds.toFixed(2), r.dicomflowCpuSeconds.toFixed(2), r.dicomflowErrorMm.toFixed(3), r.elastixSeconds.toFixed(2), r.elastixCpuSeconds.toFixed(2), r.elastixErrorMm.toFixed(3)]),
    ),
  );
  const dfSeconds = mean(rows.map((r) => r.dicomflowSeconds));
  const elSeconds = mean(rows.map((r) => r.elastixSeconds));
  const dfError = mean(rows.map((r) => r.dicomflowErrorMm));
  const elError = mean(rows.map((r) => r.elastixErrorMm));
  console.log('');
  console.log(
    formatTable(
      ['tool', 's/frame (mean)', 's/frame (median)', 'CPU s/frame', 'mean err mm', 'worst frame mm', 'threads'],
      [
        ['dicomflow', dfSeconds.toFixed(2), median(rows.map((r) => r.dicomflowSeconds)).toFixed(2), mean(rows.map((r) => r.dicomflowCpuSeconds)).toFixed(2), dfError.toFixed(3), Math.max(...rows.map((r) => r.dicomflowErrorMm)).toFixed(3), '1'],
        ['elastix', elSeconds.toFixed(2), median(rows.map((r) => r.elastixSeconds)).toFixed(2), mean(rows.map((r) => r.elastixCpuSeconds)).toFixed(2), elError.toFixed(3), Math.max(...rows.map((r) => r.elastixErrorMm)).toFixed(3), values.threads],
      ],
    ),
  );
  console.log(`\ndicomflow's reference preparation (once per series, not in s/frame): ${prepareSeconds.toFixed(2)} s; elastix s/frame is the process's wall time (start-up and reading included).`);
  const speedup = elSeconds / dfSeconds;
  const met = speedup >= 3 && dfError <= elError;
  const cpuRatio = mean(rows.map((r) => r.elastixCpuSeconds)) / mean(rows.map((r) => r.dicomflowCpuSeconds));
  console.log(`target: ≥ 3× faster than elastix at equal or better mean error — ${speedup.toFixed(1)}× faster in wall time per frame (${cpuRatio.toFixed(1)}× in CPU time), ${dfError.toFixed(3)} vs ${elError.toFixed(3)} mm: ${met ? '[met]' : '[NOT MET]'}`);
  console.log(`load average: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (values.keep) console.log(`kept ${dir}`);
  else await cleanUp();
  return failures === 0 ? 0 : 1;
}
