// NIfTI conversion time: a dynamic PET series and a long CT series converted by dicomflow (the
// convert-nifti step's code, planVolume and writeSeriesNifti plus the sidecar:
// bench/support/nifti-convert.ts) and by dcm2niix, in the same run, round-robin, .nii and
// .nii.gz. dicomflow is timed twice: as a pipeline runs the step (in a warm worker process, the
// modules loaded, from request to answer), and as a fresh process (Node start-up and module
// loading included), like dcm2niix, which a pipeline would start for each series. Targets from
// issue 16, on the step time: ≤ 1.0× dcm2niix's wall time for .nii, ≤ 0.8× for .nii.gz.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface, type Interface } from 'node:readline';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as niftiReader from 'nifti-reader-js';
import { ctSeries, petSeries, type BuiltSeries } from '../test/fixtures/builder.ts';
import { hasTool } from '../test/helpers/dcmtk.ts';
import { makeTempDir, removeTempDir, trackChild } from './support/cleanup.ts';
import { formatTable, median } from './support/table.ts';

export const description =
  'a 24-frame dynamic PET and a 400-slice CT to NIfTI (.nii and .nii.gz) by dicomflow and by dcm2niix: seconds side by side';

const USAGE = `npm run bench -- nifti [--frames N] [--slices N] [--size N] [--ct-slices N] [--runs R] [--only pet|ct]

  --frames N     time frames of the dynamic PET series (default 24)
  --slices N     slices per PET frame (default 47)
  --size N       PET rows and columns (default 128)
  --ct-slices N  slices of the CT series, 512×512 (default 400)
  --runs R       timed conversions per tool, series and format (default 5); the median counts
  --only S       only the PET or only the CT series`;

const TARGET_RATIO = { nii: 1.0, gz: 0.8 };

interface Tool {
  name: string;
  /** Converts `dir` into `out`, timed. */
  run(dir: string, out: string, gzip: boolean): Promise<{ seconds: number; error?: string }>;
}

const CONVERT = path.join(import.meta.dirname, 'support', 'nifti-convert.ts');

/** The step in a warm process: started once, modules loaded, then asked for each conversion. */
class WarmWorker {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: Interface;
  readonly #answers: string[] = [];
  #waiting: ((line: string) => void) | undefined;

  constructor() {
    this.#child = trackChild(spawn(process.execPath, [CONVERT, '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] }));
    this.#lines = createInterface({ input: this.#child.stdout });
    this.#lines.on('line', (line) => {
      if (this.#waiting) {
        const resolve = this.#waiting;
        this.#waiting = undefined;
        resolve(line);
      } else this.#answers.push(line);
    });
  }

  next(): Promise<string> {
    const line = this.#answers.shift();
    return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => (this.#waiting = resolve));
  }

  async run(dir: string, file: string): Promise<{ seconds: number; error?: string }> {
    const started = performance.now();
    this.#child.stdin.write(`${dir}\t${file}\n`);
    const answer = await this.next();
    const seconds = (performance.now() - started) / 1000;
    return answer === 'done' ? { seconds } : { seconds, error: answer };
  }

  async stop(): Promise<void> {
    this.#child.stdin.end();
    if (this.#child.exitCode === null) await once(this.#child, 'exit');
  }
}

function toolsWith(warm: WarmWorker): Tool[] {
  return [
    { name: 'dicomflow', run: (dir, out, gzip) => warm.run(dir, path.join(out, `series.nii${gzip ? '.gz' : ''}`)) },
    {
      name: 'dicomflow (fresh process)',
      run: (dir, out, gzip) => timed([process.execPath, CONVERT, dir, path.join(out, `series.nii${gzip ? '.gz' : ''}`)]),
    },
    { name: 'dcm2niix', run: (dir, out, gzip) => timed(['dcm2niix', '-z', gzip ? 'y' : 'n', '-b', 'y', '-f', 'series', '-o', out, dir]) },
  ];
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      frames: { type: 'string' },
      slices: { type: 'string' },
      size: { type: 'string' },
      'ct-slices': { type: 'string' },
      runs: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!hasTool('dcm2niix')) {
    console.error('dcm2niix is not installed (Debian: apt-get install dcm2niix); this bench compares against it');
    return 1;
  }
  const frames = Number(values.frames ?? 24);
  const slices = Number(values.slices ?? 47);
  const size = Number(values.size ?? 128);
  const ctSlices = Number(values['ct-slices'] ?? 400);
  const runs = Number(values.runs ?? 5);
  const work = makeTempDir('df-bench-nifti-');
  const warm = new WarmWorker();
  const tools = toolsWith(warm);
  try {
    if ((await warm.next()) !== 'ready') throw new Error('the warm dicomflow process did not start');
    const cases: { name: string; make: () => Promise<BuiltSeries> }[] = [
      {
        name: `PET ${frames}×${slices}×${size}²`,
        make: () => {
          const durations = Array.from({ length: frames }, (_, f) => (f < 8 ? 15 : f < 16 ? 60 : 300));
          return petSeries(path.join(work, 'pet'), {
            frameDurationsSec: durations,
            slices,
            rows: size,
            cols: size,
            uidSeed: 'bench nifti',
          });
        },
      },
      { name: `CT ${ctSlices}×512²`, make: () => ctSeries(path.join(work, 'ct'), { slices: ctSlices, uidSeed: 'bench nifti ct' }) },
    ].filter((c) => values.only === undefined || c.name.toLowerCase().startsWith(values.only.toLowerCase()));

    let failed = false;
    const rows: string[][] = [];
    for (const { name, make } of cases) {
      const started = performance.now();
      const series = await make();
      let bytes = 0;
      for (const file of series.files) bytes += (await fs.promises.readFile(file)).length; // warm the page cache
      console.log(
        `\n${name}: ${series.files.length} files, ${(bytes / 1e6).toFixed(0)} MB, generated in ${((performance.now() - started) / 1000).toFixed(1)} s (page cache warmed)`,
      );
      const seconds = new Map<string, number[]>();
      for (let run = 1; run <= runs; run++) {
        for (const gzip of [false, true]) {
          for (const tool of tools) {
            const out = path.join(work, `${slug(tool.name)}-${gzip ? 'gz' : 'nii'}-${run}`);
            fs.mkdirSync(out);
            const result = await tool.run(series.dir, out, gzip);
            const key = `${tool.name}|${gzip}`;
            if (result.error) {
              failed = true;
              console.log(`run ${run} ${tool.name} ${gzip ? '.nii.gz' : '.nii'}: FAILED ${result.error}`);
              continue;
            }
            seconds.set(key, [...(seconds.get(key) ?? []), result.seconds]);
            console.log(`run ${run} ${tool.name.padEnd(25)} ${(gzip ? '.nii.gz' : '.nii').padEnd(7)} ${result.seconds.toFixed(2)} s`);
          }
          // Correctness in passing: the files of this run hold the same voxels, in the same order.
          for (const tool of tools.filter((t) => t.name !== 'dcm2niix')) {
            const check = sameVoxels(
              path.join(work, `${slug(tool.name)}-${gzip ? 'gz' : 'nii'}-${run}`),
              path.join(work, `dcm2niix-${gzip ? 'gz' : 'nii'}-${run}`),
            );
            if (check !== undefined) {
              failed = true;
              console.log(`run ${run} ${tool.name} ${gzip ? '.nii.gz' : '.nii'}: outputs differ from dcm2niix's: ${check}`);
            }
          }
          for (const tool of tools)
            fs.rmSync(path.join(work, `${slug(tool.name)}-${gzip ? 'gz' : 'nii'}-${run}`), { recursive: true, force: true });
        }
      }
      for (const gzip of [false, true]) {
        const reference = median(seconds.get(`dcm2niix|${gzip}`) ?? []);
        const target = gzip ? TARGET_RATIO.gz : TARGET_RATIO.nii;
        for (const tool of tools) {
          const all = seconds.get(`${tool.name}|${gzip}`) ?? [];
          const m = median(all);
          const ratio = m / reference;
          rows.push([
            name,
            gzip ? '.nii.gz' : '.nii',
            tool.name,
            String(all.length),
            m.toFixed(2),
            all.length ? `${Math.min(...all).toFixed(2)}–${Math.max(...all).toFixed(2)}` : '–',
            (bytes / 1e6 / m).toFixed(0),
            tool.name === 'dcm2niix'
              ? '1.00×'
              : `${ratio.toFixed(2)}×${tool.name !== 'dicomflow' || ratio <= target ? '' : ` (target ≤ ${target.toFixed(1)}× missed)`}`,
          ]);
        }
      }
      fs.rmSync(series.dir, { recursive: true, force: true });
    }
    console.log('');
    console.log(formatTable(['series', 'output', 'tool', 'runs', 'median s', 'min–max s', 'DICOM MB/s', 'vs dcm2niix'], rows));
    const gzipper = hasTool('pigz') ? 'pigz (found on PATH)' : 'its internal single-threaded deflate (no pigz on PATH)';
    console.log(
      `\ndicomflow: bench/support/nifti-convert.ts, the convert-nifti step's code (planVolume, writeSeriesNifti, the sidecar): "dicomflow" in a warm process as the worker pool runs a step (the target applies to it), "fresh process" with Node start-up and module loading, as dcm2niix's start-up is counted; .nii.gz deflated at level 6 in parallel 1 MiB blocks on libuv's thread pool.`,
    );
    console.log(`dcm2niix -z n|y -b y: .nii.gz at its default level 6 with ${gzipper}.`);
    return failed ? 1 : 0;
  } finally {
    await warm.stop();
    removeTempDir(work);
  }
}

const slug = (name: string) => name.replace(/\W+/g, '-');

function timed(command: string[]): Promise<{ seconds: number; error?: string }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = trackChild(spawn(command[0], command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] }));
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      if (stderr.length < 20_000) stderr += text;
    });
    child.once('exit', (code, signal) => {
      const seconds = (performance.now() - started) / 1000;
      resolve(code === 0 ? { seconds } : { seconds, error: `exited with ${code ?? signal}: ${stderr.trim()}` });
    });
  });
}

/** undefined when both directories' one NIfTI file hold the same voxels (within float rounding). */
function sameVoxels(oursDir: string, theirsDir: string): string | undefined {
  const read = (dir: string) => {
    const name = fs.readdirSync(dir).find((f) => /\.nii(\.gz)?$/.test(f));
    if (name === undefined) return undefined;
    const bytes = fs.readFileSync(path.join(dir, name));
    let data: ArrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    if (niftiReader.isCompressed(data)) data = niftiReader.decompress(data) as ArrayBuffer;
    const header = niftiReader.readHeader(data);
    const image = niftiReader.readImage(header, data);
    const values = header.datatypeCode === 16 ? new Float32Array(image) : header.datatypeCode === 4 ? new Int16Array(image) : undefined;
    return { dims: header.dims, values, datatype: header.datatypeCode as number };
  };
  const a = read(oursDir);
  const b = read(theirsDir);
  if (a === undefined || b === undefined) return 'a NIfTI file is missing';
  if (a.dims.join() !== b.dims.join()) return `dims ${a.dims.slice(0, 5)} vs ${b.dims.slice(0, 5)}`;
  if (a.datatype !== b.datatype) return `data type ${a.datatype} vs ${b.datatype}`;
  if (a.values === undefined || b.values === undefined) return `data type ${a.datatype} not compared`;
  for (let i = 0; i < a.values.length; i++) {
    if (Math.abs(a.values[i] - b.values[i]) > 1e-6 * Math.max(1, Math.abs(b.values[i])))
      return `voxel ${i}: ${a.values[i]} vs ${b.values[i]}`;
  }
  return undefined;
}
