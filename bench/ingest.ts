// Ingest throughput: the same generated CT series is sent with DCMTK's storescu (one
// association) to dicomflow, to storescp and to Orthanc, in the same run, and images/s are printed
// side by side with dicomflow's peak RSS. Targets from issue 2: dicomflow with durable storage
// ≥ Orthanc's images/s and ≥ 60 % of storescp's; peak RSS < 300 MB while receiving a 2 GB series.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ctSeries } from '../test/fixtures/builder.ts';
import { missingDcmtkTool } from '../test/helpers/dcmtk.ts';
import { cleanUp, makeTempDir, removeTempDir, trackChild } from './support/cleanup.ts';
import { RssSampler } from './support/memory.ts';
import { formatTable, median } from './support/table.ts';
import { dicomflowTarget, orthancTarget, orthancVersion, storescpTarget, type RunningTarget, type TargetKind } from './support/targets.ts';
import { positiveInt } from './support/args.ts';

export const description = 'storescu sends one CT series to dicomflow, storescp and Orthanc: images/s side by side, dicomflow peak RSS';

const USAGE = `npm run bench -- ingest [--slices N] [--runs R] [--big] [--big-slices N]

  --slices N       slices of 512×512×16 bit in the series sent to every target (default 400)
  --runs R         timed sends per target, each to a freshly started target (default 3); the median counts
  --big            also send a ~2 GB series (--big-slices, default 4000) to dicomflow once and report its peak RSS
  --big-slices N   slices of the big series (default 4000, about 2.1 GB)`;

const MB = 1e6;
const RSS_TARGET_BYTES = 300 * MB;
const STORESCP_REFERENCE = 'storescp --max-pdu 65536';

interface Series {
  dir: string;
  files: string[];
  bytes: number;
}

interface RunResult {
  seconds: number;
  stored: number;
  detail: string;
  peakRssBytes: number;
  /** RSS of the started target just before the send. */
  idleRssBytes: number;
  /** storescu's complaint, when it did not exit cleanly. */
  sendError?: string;
  /** Warnings and errors the target logged. */
  problems: string[];
}

interface TargetResult {
  name: string;
  kind: TargetKind;
  slices: number;
  bytes: number;
  runs: RunResult[];
  /** Runs that could not be measured (the target did not start, died, its count failed…). */
  errors: string[];
  /** Distinct warning and error lines the target logged over all runs. */
  logged: Set<string>;
}

async function makeSeries(dir: string, slices: number): Promise<Series> {
  const started = performance.now();
  const series = await ctSeries(dir, { slices, rows: 512, cols: 512, uidSeed: `bench ingest ${slices}` });
  let bytes = 0;
  // One untimed read of every file: the sends then all start from a warm page cache.
  for (const file of series.files) bytes += (await fs.promises.readFile(file)).length;
  console.log(`generated ${slices} CT slices 512×512×16 bit, ${(bytes / MB).toFixed(0)} MB, in ${((performance.now() - started) / 1000).toFixed(1)} s (page cache warmed)`);
  return { dir, files: series.files, bytes };
}

/** storescu -aec <AET> 127.0.0.1 <port> +sd <dir>: the whole series on one association, timed. */
function sendSeries(target: RunningTarget, dir: string, timeoutMs: number): Promise<{ seconds: number; error?: string }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = trackChild(
      spawn('storescu', ['-aet', 'BENCHSCU', '-aec', target.aeTitle, '127.0.0.1', String(target.port), '+sd', dir], {
        env: { ...process.env, TCP_NODELAY: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      }),
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      if (stderr.length < 20_000) stderr += text;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      if (code === 0 && stderr.trim() === '') resolve({ seconds });
      else resolve({ seconds, error: `storescu ${signal === 'SIGKILL' ? `killed after ${timeoutMs / 1000} s` : `exited with ${code ?? signal}`}${stderr.trim() ? `:\n${stderr.trim()}` : ''}` });
    });
  });
}

/** Starts a fresh target, sends the series once, checks the count, stops it and drops its data. */
async function runOnce(kind: TargetKind, series: Series, timeoutMs: number): Promise<RunResult> {
  const target = await kind.start();
  try {
    const sampler = new RssSampler(target.pid);
    const sent = await sendSeries(target, series.dir, timeoutMs);
    const { peakBytes } = sampler.stop();
    let counted: { stored: number; detail: string };
    try {
      counted = await target.storedCount();
    } catch (error) {
      // Most likely the target died during the send: say how, with what it printed last.
      const died = target.exitStatus();
      throw new Error(
        [
          `${died === undefined ? 'could not count the stored objects' : `the target ${died}`} (${describeError(error)}); storescu after ${sent.seconds.toFixed(1)} s: ${sent.error ?? 'exited 0'}`,
          'the target\'s output:',
          ...target.log().map((l) => `    | ${l}`),
        ].join('\n'),
        { cause: error },
      );
    }
    const { stored } = counted;
    const status = target.exitStatus();
    const detail = status === undefined ? counted.detail : `${counted.detail}; the target ${status}`;
    return { seconds: sent.seconds, stored, detail, peakRssBytes: peakBytes, idleRssBytes: sampler.startBytes, sendError: sent.error, problems: [...target.problems()] };
  } finally {
    await target.stop();
    // storescp leaves its files dirty in the page cache; flush what remains so that its write-back
    // does not land inside the next target's timed run.
    execFileSync('sync');
  }
}

/**
 * One timed run of a target, printed as it finishes. A run that stored fewer objects than sent,
 * or whose storescu complained, prints the target's log lines right there.
 */
async function measure(result: TargetResult, series: Series, run: number, runs: number, timeoutMs: number): Promise<void> {
  let outcome: RunResult;
  try {
    outcome = await runOnce(result.kind, series, timeoutMs);
  } catch (error) {
    const message = (error as Error).message;
    result.errors.push(message);
    console.log(`  ${result.name} run ${run}/${runs} failed: ${message}`);
    return;
  }
  result.runs.push(outcome);
  console.log(describeRun(result.name, run, runs, result.slices, result.bytes, outcome));
  if (outcome.stored !== result.slices || outcome.sendError !== undefined) {
    console.log(`    ${outcome.detail}`);
    if (outcome.sendError !== undefined) console.log(outcome.sendError.replace(/^/gm, '    storescu| '));
    for (const line of outcome.problems) console.log(`    log| ${line}`);
  }
  for (const line of outcome.problems) result.logged.add(line.replace(/"(time|pid)":\d+,?/g, '').replace(/\(node:\d+\)/, '(node)'));
}

function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0];
}

function displayName(kind: TargetKind, orthancVersion: string | undefined): string {
  return kind.name === 'Orthanc' ? `Orthanc ${orthancVersion}` : kind.name;
}

/** An error with its causes: fetch's "fetch failed" says why only in `cause`. */
function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e = error; e instanceof Error && parts.length < 4; e = e.cause) parts.push((e as NodeJS.ErrnoException).code ? `${e.message} [${(e as NodeJS.ErrnoException).code}]` : e.message);
  return parts.join(': ');
}

function describeRun(name: string, index: number, count: number, slices: number, bytes: number, run: RunResult): string {
  const ips = slices / run.seconds;
  const check = run.stored === slices ? `${run.stored}/${slices} stored` : `ONLY ${run.stored}/${slices} STORED (${run.detail})`;
  return `  ${name} run ${index}/${count}: ${run.seconds.toFixed(2)} s, ${ips.toFixed(0)} images/s, ${(bytes / MB / run.seconds).toFixed(0)} MB/s, RSS ${(run.idleRssBytes / MB).toFixed(0)} MB idle → ${(run.peakRssBytes / MB).toFixed(0)} MB peak, ${check}`;
}

function medianSeconds(result: TargetResult): number {
  return median(result.runs.map((r) => r.seconds));
}

function imagesPerSecond(result: TargetResult): number {
  return result.slices / medianSeconds(result);
}

function storedCell(result: TargetResult): string {
  if (result.runs.length === 0) return '–';
  const short = result.runs.map((r, i) => (r.stored === result.slices ? undefined : `run ${i + 1}: ${r.stored}/${result.slices}`)).filter((s) => s !== undefined);
  return short.length === 0 ? `all ${result.slices}` : short.join('; ');
}

function tableRows(results: TargetResult[]): string[][] {
  const reference = results.find((r) => r.name === STORESCP_REFERENCE && r.runs.length > 0);
  return results.map((r) => {
    if (r.runs.length === 0) return [r.name, '0', '–', '–', '–', '–', '–', '–', '–', `failed: ${firstLine(r.errors[0])}`];
    const ips = imagesPerSecond(r);
    const ratio = reference === undefined || reference.slices !== r.slices ? '–' : (ips / imagesPerSecond(reference)).toFixed(2);
    const peak = Math.max(...r.runs.map((run) => run.peakRssBytes));
    return [
      r.name,
      String(r.runs.length),
      medianSeconds(r).toFixed(2),
      `${Math.min(...r.runs.map((run) => run.seconds)).toFixed(2)}–${Math.max(...r.runs.map((run) => run.seconds)).toFixed(2)}`,
      ips.toFixed(0),
      (r.bytes / MB / medianSeconds(r)).toFixed(0),
      ratio,
      (median(r.runs.map((run) => run.idleRssBytes)) / MB).toFixed(0),
      (peak / MB).toFixed(0),
      storedCell(r) + (r.errors.length === 0 ? '' : `; ${r.errors.length} run(s) failed: ${firstLine(r.errors[0])}`),
    ];
  });
}

function verdict(met: boolean | undefined): string {
  return (met === undefined ? '[not measured]' : met ? '[met]' : '[NOT MET]').padEnd('[not measured]'.length);
}

function targetLines(results: TargetResult[], big: TargetResult | undefined, bigRequested: boolean): string[] {
  const measured = (name: string) => results.find((r) => r.name.startsWith(name) && r.runs.length > 0);
  const dicomflow = measured('dicomflow');
  const orthanc = measured('Orthanc');
  const storescps = results.filter((r) => r.name.startsWith('storescp') && r.runs.length > 0);
  const lines: string[] = [];

  if (dicomflow === undefined) {
    lines.push(`${verdict(undefined)} dicomflow was not measured: ${firstLine(results.find((r) => r.name === 'dicomflow')?.errors[0])}`);
    return lines;
  }
  const df = imagesPerSecond(dicomflow);
  if (orthanc === undefined) {
    lines.push(`${verdict(undefined)} dicomflow (durable) ≥ Orthanc's images/s: Orthanc ${results.some((r) => r.name.startsWith('Orthanc')) ? 'failed' : 'is not installed'}`);
  } else {
    const o = imagesPerSecond(orthanc);
    lines.push(`${verdict(df >= o)} dicomflow (durable) ≥ Orthanc's images/s: ${df.toFixed(0)} vs ${o.toFixed(0)} images/s (${((df / o) * 100).toFixed(0)} %)`);
  }
  if (storescps.length === 0) {
    lines.push(`${verdict(undefined)} dicomflow ≥ 60 % of storescp's images/s: storescp failed`);
  } else {
    // Against the faster storescp configuration: the stricter reading of the target.
    const best = storescps.reduce((a, b) => (imagesPerSecond(a) >= imagesPerSecond(b) ? a : b));
    const s = imagesPerSecond(best);
    lines.push(`${verdict(df >= 0.6 * s)} dicomflow ≥ 60 % of storescp's images/s: ${((df / s) * 100).toFixed(0)} % (${df.toFixed(0)} vs ${s.toFixed(0)} images/s, ${best.name}, the faster storescp here)`);
  }
  if (big !== undefined && big.runs.length > 0) {
    const run = big.runs[0];
    const ok = run.stored === big.slices;
    lines.push(
      `${verdict(run.peakRssBytes < RSS_TARGET_BYTES)} peak RSS < 300 MB while receiving a ${(big.bytes / 1e9).toFixed(1)} GB series: ${(run.peakRssBytes / MB).toFixed(0)} MB` +
        (ok ? '' : ` (and only ${run.stored}/${big.slices} objects were stored)`),
    );
  } else if (big !== undefined) {
    lines.push(`${verdict(undefined)} peak RSS < 300 MB while receiving a 2 GB series: the --big run failed: ${firstLine(big.errors[0])}`);
  } else {
    const peak = Math.max(...dicomflow.runs.map((r) => r.peakRssBytes));
    lines.push(`${verdict(undefined)} peak RSS < 300 MB while receiving a 2 GB series: run with --big (${bigRequested ? 'failed' : 'not requested'}; ${(dicomflow.bytes / MB).toFixed(0)} MB series above: ${(peak / MB).toFixed(0)} MB)`);
  }
  return lines;
}

export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: { slices: { type: 'string' }, runs: { type: 'string' }, big: { type: 'boolean', default: false }, 'big-slices': { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
      strict: true,
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  let slices: number, runs: number, bigSlices: number;
  try {
    slices = positiveInt(values.slices, 'slices', 400);
    runs = positiveInt(values.runs, 'runs', 3);
    bigSlices = positiveInt(values['big-slices'], 'big-slices', 4000);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const missing = missingDcmtkTool(['storescu', 'storescp']);
  if (missing !== undefined) {
    console.error(missing);
    return 1;
  }

  const kinds: TargetKind[] = [storescpTarget(STORESCP_REFERENCE, ['--max-pdu', '65536']), storescpTarget('storescp (default max PDU 16384)', []), dicomflowTarget()];
  const version = orthancVersion();
  if (version !== undefined) kinds.push(orthancTarget(version));
  const results: TargetResult[] = [];
  let big: TargetResult | undefined;
  const loadBefore = os.loadavg()[0];
  const root = makeTempDir('dicomflow-bench-ingest-');
  try {
    const series = await makeSeries(path.join(root, 'series'), slices);
    for (const kind of kinds) results.push({ name: displayName(kind, version), kind, slices, bytes: series.bytes, runs: [], errors: [], logged: new Set() });
    // ~20 ms per image is slower than any target should be; a hung association fails the run instead of the bench.
    const timeoutMs = Math.max(60_000, slices * 20 + 30_000);
    // Round-robin over the targets, so that a machine getting slower or faster during the bench
    // affects every target alike.
    for (let run = 1; run <= runs; run++) {
      for (const result of results) await measure(result, series, run, runs, timeoutMs);
    }
    if (values.big) {
      const bigDir = path.join(root, 'big');
      const bigSeries = await makeSeries(bigDir, bigSlices);
      big = { name: `dicomflow, ${bigSlices} slices (--big)`, kind: dicomflowTarget(), slices: bigSlices, bytes: bigSeries.bytes, runs: [], errors: [], logged: new Set() };
      await measure(big, bigSeries, 1, 1, Math.max(120_000, bigSlices * 20 + 60_000));
      removeTempDir(bigDir);
    }
  } finally {
    await cleanUp();
  }
  const all = big === undefined ? results : [...results, big];
  const loadAfter = os.loadavg()[0];

  const headers = ['target', 'runs', 'median s', 'min–max s', 'images/s', 'MB/s', `vs ${STORESCP_REFERENCE}`, 'idle RSS MB', 'peak RSS MB', 'stored'];
  console.log('');
  console.log(formatTable(headers, tableRows(all)));
  console.log('');
  console.log('Targets (issue 2):');
  for (const line of targetLines(results, big, values.big)) console.log(`  ${line}`);
  console.log('');
  console.log('What each target does before it answers Success:');
  for (const result of results) console.log(`  ${result.name}: ${result.kind.durability}`);
  if (version === undefined) console.log('  Orthanc: not installed (apt-get install orthanc), not measured');
  console.log('');
  console.log(
    `storescu sends the whole series on one association (TCP_NODELAY=1 for every DCMTK program, Orthanc included); each run starts a fresh target ` +
      `with empty storage; wall time from storescu's start to its exit; median of ${runs}. MB = 10^6 bytes of Part 10 files; peak RSS = VmHWM ` +
      `(or the highest 50 ms VmRSS sample) of the target's process.`,
  );
  // The bench itself keeps about one core busy (storescu plus the target); more than that means
  // other work competed for the CPU and the numbers are noisier than usual.
  const cores = os.availableParallelism();
  const busy = loadBefore > 0.5 ? ' — other processes were running: expect noisy numbers, compare targets within this run only' : '';
  console.log(`Machine: ${cores} cores, 1-minute load average ${loadBefore.toFixed(2)} before the bench, ${loadAfter.toFixed(2)} after${busy}.`);
  const logged = all.filter((r) => r.logged.size > 0);
  if (logged.length > 0) {
    console.log('');
    console.log('Warnings and errors the targets logged (each distinct line once):');
    for (const r of logged) for (const line of r.logged) console.log(`  ${r.name}: ${line}`);
  }
  const failed = all.some((r) => r.errors.length > 0 || r.runs.some((run) => run.stored !== r.slices || run.sendError !== undefined));
  return failed ? 1 : 0;
}
