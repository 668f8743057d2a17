// Ingest throughput: the same generated CT series is sent with DCMTK's storescu to dicomflow (on
// SQLite and on PostgreSQL), to storescp and to Orthanc, in the same run, and images/s are printed
// side by side with dicomflow's peak RSS: over one association, and over several at once into one
// node against `storescp --fork`. The disk's cost of making one object durable (fsync(file) +
// rename + fsync(directory)) is measured in the same run, for the durable ceiling. Targets from
// issue 2 (durable ≥ Orthanc, ≥ 60 % of storescp, peak RSS < 300 MB on a 2 GB series) and issue 15
// (PostgreSQL ≥ 0.8× SQLite, N associations ≥ 0.7× storescp --fork, ≥ 0.9× the durable ceiling).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ctSeries } from '../test/fixtures/builder.ts';
import { missingDcmtkTool } from '../test/helpers/dcmtk.ts';
import { postgresBinDir, startPostgres, type PostgresCluster } from '../test/helpers/postgres.ts';
import { cleanUp, makeTempDir, removeTempDir } from './support/cleanup.ts';
import { filesystemOf, measureDurableWrite, type DurableWriteRun } from './support/durable-write.ts';
import { RssSampler } from './support/memory.ts';
import { postmasterPids, snapshot, usageBetween } from './support/proc-usage.ts';
import { formatTable, median } from './support/table.ts';
import { dicomflowTarget, orthancTarget, orthancVersion, storescpTarget, type RunningTarget, type TargetKind } from './support/targets.ts';
import { positiveInt } from './support/args.ts';
import { split, storescu } from './support/storescu.ts';

export const description =
  'storescu sends one CT series to dicomflow (SQLite, PostgreSQL), storescp and Orthanc, over 1 and N associations; the durable ceiling: images/s side by side';

const USAGE = `npm run bench -- ingest [--slices N] [--runs R] [--backends LIST] [--associations N] [--durable-objects N] [--big] [--big-slices N] [--big-runs R]

  --slices N           slices of 512×512×16 bit in the series sent to every target (default 400)
  --runs R             timed sends per target, each to a freshly started target (default 3); the median counts
  --backends LIST      dicomflow's index back ends, comma-separated: sqlite, postgres (default sqlite,postgres);
                       postgres runs on a throwaway cluster the bench starts, a fresh database per run
  --associations N     also send the series split into N parts by N storescu at once, to dicomflow (each
                       back end) and to storescp --fork (default 4; 1 leaves these rows out)
  --durable-objects N  files written per run for the disk's fsync(file) + rename + fsync(directory) cost (default 100)
  --big                also send a ~2 GB series (--big-slices, default 4000) to dicomflow --big-runs times, each to a
                       fresh server, and report its peak RSS in every run against < 300 MB
  --big-slices N       slices of the big series (default 4000, about 2.1 GB)
  --big-runs R         runs of the big series (default 3)`;

const MB = 1e6;
const RSS_TARGET_BYTES = 300 * MB;
const STORESCP_REFERENCE = 'storescp --max-pdu 65536';
const BACKENDS = ['sqlite', 'postgres'] as const;
type Backend = (typeof BACKENDS)[number];
const BACKEND_NAMES: Record<Backend, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };
// Issue 15's targets.
const POSTGRES_VS_SQLITE_TARGET = 0.8;
const CONCURRENT_VS_FORK_TARGET = 0.7;
const DURABLE_CEILING_TARGET = 0.9;
// Issue 2's.
const STORESCP_SHARE_TARGET = 0.6;

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
  /** CPU seconds the target's processes spent during the send (dicomflow: with its worker processes). */
  cpuSeconds: number;
  /** dicomflow on PostgreSQL: the CPU seconds of the PostgreSQL server (postmaster and backends) meanwhile. */
  postgresCpuSeconds?: number;
  /** How busy the machine's cores were during the send, 0–100: the bench's figures are only as steady as this is low. */
  machineBusyPercent: number;
  /** storescu's complaint, when one did not exit cleanly. */
  sendError?: string;
  /** Warnings and errors the target logged. */
  problems: string[];
}

/** The rows a verdict looks up; other rows have no role. */
type Role =
  | 'storescp'
  | 'storescp-16k'
  | 'storescp-fork'
  | 'dicomflow-sqlite'
  | 'dicomflow-postgres'
  | 'dicomflow-sqlite-n'
  | 'dicomflow-postgres-n'
  | 'orthanc'
  | 'big';

interface TargetResult {
  role: Role;
  name: string;
  kind: TargetKind;
  /** storescu processes sending parts of the series at once. */
  associations: number;
  slices: number;
  bytes: number;
  runs: RunResult[];
  /** Runs that could not be measured (the target did not start, died, its count failed…). */
  errors: string[];
  /** Distinct warning and error lines the target logged over all runs. */
  logged: Set<string>;
}

interface DurableResult {
  runs: DurableWriteRun[];
  errors: string[];
  filesystem: string;
}

async function makeSeries(dir: string, slices: number): Promise<Series> {
  const started = performance.now();
  const series = await ctSeries(dir, { slices, rows: 512, cols: 512, uidSeed: `bench ingest ${slices}` });
  let bytes = 0;
  // One untimed read of every file: the sends then all start from a warm page cache.
  for (const file of series.files) bytes += (await fs.promises.readFile(file)).length;
  console.log(
    `generated ${slices} CT slices 512×512×16 bit, ${(bytes / MB).toFixed(0)} MB, in ${((performance.now() - started) / 1000).toFixed(1)} s (page cache warmed)`,
  );
  return { dir, files: series.files, bytes };
}

/**
 * The series split into `associations` parts, each sent by its own storescu, all started at once;
 * timed from the first start to the last exit (every object acknowledged).
 */
async function sendSeries(
  target: RunningTarget,
  series: Series,
  associations: number,
  timeoutMs: number,
): Promise<{ seconds: number; error?: string }> {
  const started = performance.now();
  const complaints = await Promise.all(
    split(series.files, associations).map((files) => storescu(target.aeTitle, target.port, files, timeoutMs)),
  );
  const seconds = (performance.now() - started) / 1000;
  const errors = complaints.filter((c) => c !== undefined);
  return errors.length === 0 ? { seconds } : { seconds, error: errors.join('\n') };
}

/** Starts a fresh target, sends the series once, checks the count, stops it and drops its data. */
async function runOnce(kind: TargetKind, series: Series, associations: number, timeoutMs: number): Promise<RunResult> {
  const target = await kind.start();
  try {
    const sampler = new RssSampler(target.pid);
    // Outside the timed send: reading /proc takes a few milliseconds.
    const before = snapshot();
    const sent = await sendSeries(target, series, associations, timeoutMs);
    const usage = usageBetween(before, snapshot(), target.processGroups());
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
          "the target's output:",
          ...target.log().map((l) => `    | ${l}`),
        ].join('\n'),
        { cause: error },
      );
    }
    const { stored } = counted;
    const status = target.exitStatus();
    const detail = status === undefined ? counted.detail : `${counted.detail}; the target ${status}`;
    return {
      seconds: sent.seconds,
      stored,
      detail,
      peakRssBytes: peakBytes,
      idleRssBytes: sampler.startBytes,
      cpuSeconds: usage.cpuSeconds.target ?? 0,
      postgresCpuSeconds: usage.cpuSeconds.postgres,
      machineBusyPercent: usage.busyPercent,
      sendError: sent.error,
      problems: [...target.problems()],
    };
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
    outcome = await runOnce(result.kind, series, result.associations, timeoutMs);
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
  for (let e = error; e instanceof Error && parts.length < 4; e = e.cause)
    parts.push((e as NodeJS.ErrnoException).code ? `${e.message} [${(e as NodeJS.ErrnoException).code}]` : e.message);
  return parts.join(': ');
}

function describeRun(name: string, index: number, count: number, slices: number, bytes: number, run: RunResult): string {
  const ips = slices / run.seconds;
  const check = run.stored === slices ? `${run.stored}/${slices} stored` : `ONLY ${run.stored}/${slices} STORED (${run.detail})`;
  const cpu = `CPU ${cpuCell(slices, run.cpuSeconds, run.postgresCpuSeconds)} ms/image, machine ${run.machineBusyPercent.toFixed(0)} % busy`;
  return `  ${name} run ${index}/${count}: ${run.seconds.toFixed(2)} s, ${ips.toFixed(0)} images/s, ${(bytes / MB / run.seconds).toFixed(0)} MB/s, ${cpu}, RSS ${(run.idleRssBytes / MB).toFixed(0)} MB idle → ${(run.peakRssBytes / MB).toFixed(0)} MB peak, ${check}`;
}

/** The target's CPU milliseconds per image; dicomflow on PostgreSQL: "node + server". */
function cpuCell(slices: number, cpuSeconds: number, postgresCpuSeconds: number | undefined): string {
  const perImage = (seconds: number) => ((seconds * 1000) / slices).toFixed(1);
  return postgresCpuSeconds === undefined ? perImage(cpuSeconds) : `${perImage(cpuSeconds)} + ${perImage(postgresCpuSeconds)} PG`;
}

function medianSeconds(result: TargetResult): number {
  return median(result.runs.map((r) => r.seconds));
}

function imagesPerSecond(result: TargetResult): number {
  return result.slices / medianSeconds(result);
}

function storedCell(result: TargetResult): string {
  if (result.runs.length === 0) return '–';
  const short = result.runs
    .map((r, i) => (r.stored === result.slices ? undefined : `run ${i + 1}: ${r.stored}/${result.slices}`))
    .filter((s) => s !== undefined);
  return short.length === 0 ? `all ${result.slices}` : short.join('; ');
}

/** One run of the disk's durable-write cost, in a directory beside the targets' data (os.tmpdir()). */
function measureDurable(result: DurableResult, sources: Buffer[], objects: number, run: number, runs: number): void {
  const dir = makeTempDir('dicomflow-bench-durable-');
  try {
    const r = measureDurableWrite(dir, sources, objects);
    result.runs.push(r);
    console.log(
      `  durable write run ${run}/${runs}: ${r.objects} objects of ${(r.objectBytes / 1e3).toFixed(0)} kB, median ${ms(r.medianSeconds)} ms/object ` +
        `(fsync file ${ms(r.fsyncFileMedianSeconds)}, rename ${ms(r.renameMedianSeconds)}, fsync directory ${ms(r.fsyncDirectoryMedianSeconds)})`,
    );
  } catch (error) {
    const message = describeError(error);
    result.errors.push(message);
    console.log(`  durable write run ${run}/${runs} failed: ${message}`);
  } finally {
    removeTempDir(dir);
    execFileSync('sync');
  }
}

function ms(seconds: number): string {
  return (seconds * 1000).toFixed(2);
}

function measuredRow(results: TargetResult[], role: Role): TargetResult | undefined {
  return results.find((r) => r.role === role && r.runs.length > 0);
}

/** Why a row has no figure: not requested, or how it failed. */
function missingReason(results: TargetResult[], role: Role, notRequested: string): string {
  const row = results.find((r) => r.role === role);
  return row === undefined ? notRequested : `${row.name} failed: ${firstLine(row.errors[0])}`;
}

/** The faster of the two single-association storescp configurations: the stricter reading. */
function fasterStorescp(results: TargetResult[]): TargetResult | undefined {
  const storescps = [measuredRow(results, 'storescp'), measuredRow(results, 'storescp-16k')].filter((r) => r !== undefined);
  return storescps.length === 0 ? undefined : storescps.reduce((a, b) => (imagesPerSecond(a) >= imagesPerSecond(b) ? a : b));
}

interface Ceiling {
  imagesPerSecond: number;
  storescp: TargetResult;
  storescpSecondsPerObject: number;
  durableSecondsPerObject: number;
}

/** 1 / (storescp's seconds per object + the disk's durable write per object), both from this run. */
function durableCeiling(results: TargetResult[], durable: DurableResult): Ceiling | undefined {
  const storescp = fasterStorescp(results);
  if (storescp === undefined || durable.runs.length === 0) return undefined;
  const storescpSecondsPerObject = medianSeconds(storescp) / storescp.slices;
  const durableSecondsPerObject = median(durable.runs.map((r) => r.medianSeconds));
  return {
    imagesPerSecond: 1 / (storescpSecondsPerObject + durableSecondsPerObject),
    storescp,
    storescpSecondsPerObject,
    durableSecondsPerObject,
  };
}

function tableRows(results: TargetResult[]): string[][] {
  return results.map((r) => {
    if (r.runs.length === 0) return [r.name, '0', '–', '–', '–', '–', '–', '–', '–', '–', '–', `failed: ${firstLine(r.errors[0])}`];
    const ips = imagesPerSecond(r);
    // Against storescp over as many associations: --fork when there are several.
    const reference = measuredRow(results, r.associations === 1 ? 'storescp' : 'storescp-fork');
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
      cpuCell(
        r.slices,
        median(r.runs.map((run) => run.cpuSeconds)),
        r.runs[0].postgresCpuSeconds === undefined ? undefined : median(r.runs.map((run) => run.postgresCpuSeconds ?? 0)),
      ),
      median(r.runs.map((run) => run.machineBusyPercent)).toFixed(0),
      (median(r.runs.map((run) => run.idleRssBytes)) / MB).toFixed(0),
      (peak / MB).toFixed(0),
      storedCell(r) + (r.errors.length === 0 ? '' : `; ${r.errors.length} run(s) failed: ${firstLine(r.errors[0])}`),
    ];
  });
}

function verdict(met: boolean | undefined): string {
  return met === undefined ? '[not measured]' : met ? '[met]' : '[NOT MET]';
}

/** A target row: ours against a reference, the ratio, the wanted ratio and the verdict (or why there is none). */
function ratioRow(
  what: string,
  wanted: number,
  ours: TargetResult | undefined,
  against: { imagesPerSecond: number; label: string } | undefined,
  whyNot: () => string,
): string[] {
  const oursCell = ours === undefined ? '–' : `${imagesPerSecond(ours).toFixed(0)} (${ours.name})`;
  const againstCell = against === undefined ? '–' : `${against.imagesPerSecond.toFixed(0)} (${against.label})`;
  const wantedCell = `≥ ${wanted.toFixed(2)}×`;
  if (ours === undefined || against === undefined)
    return [what, oursCell, againstCell, '–', wantedCell, `${verdict(undefined)} ${whyNot()}`];
  const ratio = imagesPerSecond(ours) / against.imagesPerSecond;
  return [what, oursCell, againstCell, `${ratio.toFixed(2)}×`, wantedCell, verdict(ratio >= wanted)];
}

function asReference(result: TargetResult | undefined): { imagesPerSecond: number; label: string } | undefined {
  return result === undefined ? undefined : { imagesPerSecond: imagesPerSecond(result), label: result.name };
}

interface TargetContext {
  results: TargetResult[];
  big: TargetResult | undefined;
  bigRequested: boolean;
  ceiling: Ceiling | undefined;
  durable: DurableResult;
  associations: number;
  /** Why dicomflow on PostgreSQL has no rows: not requested, or not installed. */
  postgresAbsent: string;
}

/** Every target of issues 15 and 2 as one table: images/s on both sides, the ratio, the target beside it. */
function targetRows(context: TargetContext): string[][] {
  const { results, big, bigRequested, ceiling, durable, associations, postgresAbsent } = context;
  const sqlite = measuredRow(results, 'dicomflow-sqlite');
  const notSqlite = () => missingReason(results, 'dicomflow-sqlite', 'dicomflow on SQLite not requested (--backends)');
  const rows: string[][] = [
    ratioRow(
      '15: PostgreSQL node / SQLite node, 1 association',
      POSTGRES_VS_SQLITE_TARGET,
      measuredRow(results, 'dicomflow-postgres'),
      asReference(sqlite),
      () => (sqlite === undefined ? notSqlite() : missingReason(results, 'dicomflow-postgres', postgresAbsent)),
    ),
    ratioRow(
      `15: SQLite node / storescp --fork, ${associations} associations`,
      CONCURRENT_VS_FORK_TARGET,
      measuredRow(results, 'dicomflow-sqlite-n'),
      asReference(measuredRow(results, 'storescp-fork')),
      () =>
        associations === 1
          ? 'not requested (--associations 1)'
          : measuredRow(results, 'storescp-fork') === undefined
            ? missingReason(results, 'storescp-fork', 'storescp --fork not measured')
            : missingReason(results, 'dicomflow-sqlite-n', 'dicomflow on SQLite not requested (--backends)'),
    ),
    ratioRow(
      '15: SQLite node / durable ceiling, 1 association',
      DURABLE_CEILING_TARGET,
      sqlite,
      ceiling === undefined ? undefined : { imagesPerSecond: ceiling.imagesPerSecond, label: 'ceiling, below' },
      () =>
        sqlite === undefined
          ? notSqlite()
          : durable.runs.length === 0
            ? `the durable write failed: ${firstLine(durable.errors[0])}`
            : 'storescp failed',
    ),
  ];
  const orthanc = measuredRow(results, 'orthanc');
  rows.push(
    ratioRow('2: SQLite node (durable) / Orthanc, 1 association', 1, sqlite, asReference(orthanc), () =>
      sqlite === undefined ? notSqlite() : missingReason(results, 'orthanc', 'Orthanc is not installed (apt-get install orthanc)'),
    ),
  );
  const storescp = fasterStorescp(results);
  rows.push(
    ratioRow('2: SQLite node / the faster storescp, 1 association', STORESCP_SHARE_TARGET, sqlite, asReference(storescp), () =>
      sqlite === undefined ? notSqlite() : 'storescp failed',
    ),
  );
  const rssWanted = `< ${(RSS_TARGET_BYTES / MB).toFixed(0)} MB`;
  if (big !== undefined && big.runs.length > 0) {
    // Every run counts: one run's peak depends on when V8 happened to collect (bench/README.md).
    const peak = Math.max(...big.runs.map((r) => r.peakRssBytes));
    const short = big.runs.filter((r) => r.stored !== big.slices).length;
    rows.push([
      `2: peak RSS receiving a ${(big.bytes / 1e9).toFixed(1)} GB series, every run`,
      `${big.runs.map((r) => (r.peakRssBytes / MB).toFixed(0)).join(' / ')} MB` +
        (big.errors.length > 0 ? `, ${big.errors.length} run(s) failed` : '') +
        (short === 0 ? '' : ` (${short} run(s) did not store every object)`),
      '–',
      '–',
      rssWanted,
      verdict(peak < RSS_TARGET_BYTES),
    ]);
  } else {
    const why =
      big !== undefined
        ? `the --big run failed: ${firstLine(big.errors[0])}`
        : `run with --big (${bigRequested ? 'failed' : 'not requested'}${sqlite === undefined ? '' : `; ${(sqlite.bytes / MB).toFixed(0)} MB series above: ${(Math.max(...sqlite.runs.map((r) => r.peakRssBytes)) / MB).toFixed(0)} MB`})`;
    rows.push(['2: peak RSS receiving a 2 GB series', '–', '–', '–', rssWanted, `${verdict(undefined)} ${why}`]);
  }
  return rows;
}

function ceilingLine(ceiling: Ceiling | undefined, durable: DurableResult): string {
  const perRun = durable.runs.map((r) => r.medianSeconds);
  const spread = perRun.length === 0 ? '' : `, ${ms(Math.min(...perRun))}–${ms(Math.max(...perRun))} ms over the runs`;
  const write =
    durable.runs.length === 0
      ? `the durable write was not measured (${firstLine(durable.errors[0])})`
      : `${ms(median(perRun))} ms per object to fsync(file) + rename + fsync(directory) (median over ${durable.runs[0].objects} files of the series' size, median of ${durable.runs.length} runs${spread}; ` +
        `fsync file ${ms(median(durable.runs.map((r) => r.fsyncFileMedianSeconds)))}, rename ${ms(median(durable.runs.map((r) => r.renameMedianSeconds)))}, fsync directory ${ms(median(durable.runs.map((r) => r.fsyncDirectoryMedianSeconds)))} ms; on ${durable.filesystem}, where the targets' data directories are)`;
  if (ceiling === undefined) return `Durable ceiling: not computed; ${write}.`;
  return (
    `Durable ceiling = 1 / (storescp + durable write) = 1 / (${ms(ceiling.storescpSecondsPerObject)} + ${ms(ceiling.durableSecondsPerObject)} ms) = ${ceiling.imagesPerSecond.toFixed(0)} images/s: ` +
    `${ms(ceiling.storescpSecondsPerObject)} ms per object for ${ceiling.storescp.name} (its median send ÷ slices; the faster storescp here), ${write}.`
  );
}

function parseBackends(value: string | undefined): Backend[] {
  if (value === undefined) return [...BACKENDS];
  const names = value.split(',').map((b) => b.trim().toLowerCase());
  const unknown = names.find((b) => !(BACKENDS as readonly string[]).includes(b));
  if (unknown !== undefined || names.length === 0)
    throw new Error(`--backends takes ${BACKENDS.join(', ')} separated by commas, got "${value}"`);
  return BACKENDS.filter((b) => names.includes(b));
}

export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        slices: { type: 'string' },
        runs: { type: 'string' },
        backends: { type: 'string' },
        associations: { type: 'string' },
        'durable-objects': { type: 'string' },
        big: { type: 'boolean', default: false },
        'big-slices': { type: 'string' },
        'big-runs': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
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
  let slices: number, runs: number, bigSlices: number, bigRuns: number, associations: number, durableObjects: number, backends: Backend[];
  try {
    slices = positiveInt(values.slices, 'slices', 400);
    runs = positiveInt(values.runs, 'runs', 3);
    bigSlices = positiveInt(values['big-slices'], 'big-slices', 4000);
    bigRuns = positiveInt(values['big-runs'], 'big-runs', 3);
    associations = positiveInt(values.associations, 'associations', 4);
    durableObjects = positiveInt(values['durable-objects'], 'durable-objects', 100);
    backends = parseBackends(values.backends);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (associations > slices) {
    console.error(`--associations ${associations} is more than --slices ${slices}: every association needs an object\n\n${USAGE}`);
    return 2;
  }
  const missing = missingDcmtkTool(['storescu', 'storescp']);
  if (missing !== undefined) {
    console.error(missing);
    return 1;
  }
  const notes: string[] = [];
  let postgresAbsent = 'PostgreSQL not requested (--backends)';
  if (backends.includes('postgres') && postgresBinDir() === undefined) {
    postgresAbsent = 'PostgreSQL is not installed';
    // Like Orthanc: a reference that is not installed is left out, said so, and does not fail the bench.
    backends = backends.filter((b) => b !== 'postgres');
    notes.push('dicomflow on PostgreSQL: PostgreSQL is not installed (no pg_ctl on PATH or under /usr/lib/postgresql), not measured');
  }

  let cluster: PostgresCluster | undefined;
  let clusterProblem: string | undefined;
  const postgresDatabase = async () => {
    if (cluster === undefined) throw new Error(`no PostgreSQL cluster: ${clusterProblem ?? 'not started'}`);
    return cluster.createDatabase();
  };
  const postgresPids = () => (cluster === undefined ? [] : postmasterPids(cluster.port));
  const dicomflowKind = (backend: Backend, name: string) =>
    dicomflowTarget({ name, ...(backend === 'postgres' && { postgresDatabase, postgresPids }) });
  const version = orthancVersion();
  const planned: { role: Role; kind: TargetKind; associations: number }[] = [
    { role: 'storescp', kind: storescpTarget(STORESCP_REFERENCE, ['--max-pdu', '65536']), associations: 1 },
    { role: 'storescp-16k', kind: storescpTarget('storescp (default max PDU 16384)', []), associations: 1 },
    ...backends.map((b) => ({ role: `dicomflow-${b}` as Role, kind: dicomflowKind(b, `dicomflow ${BACKEND_NAMES[b]}`), associations: 1 })),
    ...(version === undefined ? [] : [{ role: 'orthanc' as Role, kind: orthancTarget(version), associations: 1 }]),
  ];
  if (associations > 1) {
    const forkName = `storescp --fork --max-pdu 65536, ${associations} associations`;
    planned.push({ role: 'storescp-fork', kind: storescpTarget(forkName, ['--fork', '--max-pdu', '65536']), associations });
    for (const b of backends)
      planned.push({
        role: `dicomflow-${b}-n` as Role,
        kind: dicomflowKind(b, `dicomflow ${BACKEND_NAMES[b]}, ${associations} associations`),
        associations,
      });
  }
  const results: TargetResult[] = [];
  let big: TargetResult | undefined;
  const durable: DurableResult = { runs: [], errors: [], filesystem: filesystemOf(fs.realpathSync(os.tmpdir())) };
  const loadBefore = os.loadavg()[0];
  // pg_ctl stop is synchronous: also on an exit nobody planned (Ctrl-C goes through cleanUp's exit).
  const stopCluster = () => cluster?.stop();
  process.once('exit', stopCluster);
  const root = makeTempDir('dicomflow-bench-ingest-');
  try {
    const series = await makeSeries(path.join(root, 'series'), slices);
    for (const p of planned) {
      results.push({ ...p, name: displayName(p.kind, version), slices, bytes: series.bytes, runs: [], errors: [], logged: new Set() });
    }
    if (backends.includes('postgres')) {
      const started = performance.now();
      try {
        cluster = await startPostgres();
        console.log(
          `PostgreSQL cluster on port ${cluster.port} (its defaults: fsync on; one for the whole bench, a fresh database per run), started in ${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
      } catch (error) {
        clusterProblem = describeError(error);
        console.log(`PostgreSQL cluster did not start: ${clusterProblem}`);
      }
    }
    // A few of the series' own files, written round-robin by the durable-write measurement.
    const sources = await Promise.all(series.files.slice(0, 8).map((file) => fs.promises.readFile(file)));
    // ~20 ms per image is slower than any target should be; a hung association fails the run instead of the bench.
    const timeoutMs = Math.max(60_000, slices * 20 + 30_000);
    // Round-robin over the targets, so that a machine getting slower or faster during the bench
    // affects every target alike.
    for (let run = 1; run <= runs; run++) {
      measureDurable(durable, sources, durableObjects, run, runs);
      for (const result of results) await measure(result, series, run, runs, timeoutMs);
    }
    if (values.big) {
      const bigDir = path.join(root, 'big');
      const bigSeries = await makeSeries(bigDir, bigSlices);
      const kind = dicomflowTarget({ name: `dicomflow SQLite, ${bigSlices} slices (--big)` });
      big = {
        role: 'big',
        name: kind.name,
        kind,
        associations: 1,
        slices: bigSlices,
        bytes: bigSeries.bytes,
        runs: [],
        errors: [],
        logged: new Set(),
      };
      for (let run = 1; run <= bigRuns; run++) await measure(big, bigSeries, run, bigRuns, Math.max(120_000, bigSlices * 20 + 60_000));
      removeTempDir(bigDir);
    }
  } finally {
    await cleanUp();
    stopCluster();
    process.off('exit', stopCluster);
  }
  const all = big === undefined ? results : [...results, big];
  const loadAfter = os.loadavg()[0];
  const ceiling = durableCeiling(results, durable);

  const headers = [
    'target',
    'runs',
    'median s',
    'min–max s',
    'images/s',
    'MB/s',
    'vs storescp (same associations)',
    'CPU ms/image',
    'machine busy %',
    'idle RSS MB',
    'peak RSS MB',
    'stored',
  ];
  console.log('');
  console.log(formatTable(headers, tableRows(all)));
  console.log('');
  console.log('Targets (issue: what), images/s:');
  console.log(
    formatTable(
      ['target', 'dicomflow', 'against', 'ratio', 'wanted', 'verdict'],
      targetRows({ results, big, bigRequested: values.big, ceiling, durable, associations, postgresAbsent }),
    ),
  );
  console.log(ceilingLine(ceiling, durable));
  console.log('');
  console.log('What each target does before it answers Success:');
  for (const result of results) console.log(`  ${result.name}: ${result.kind.durability}`);
  if (version === undefined) notes.push('Orthanc: not installed (apt-get install orthanc), not measured');
  for (const note of notes) console.log(`  ${note}`);
  console.log('');
  console.log(
    `storescu sends the whole series on one association, or split into ${associations} contiguous parts sent by ${associations} storescu at once (rows "${associations} associations"; ` +
      `storescp with --fork, one process per association), TCP_NODELAY=1 for every DCMTK program, Orthanc included; each run starts a fresh target ` +
      `with empty storage (dicomflow on PostgreSQL: a fresh database); wall time from the first storescu's start to the last one's exit; median of ${runs}. ` +
      `MB = 10^6 bytes of Part 10 files; peak RSS = VmHWM (or the highest 50 ms VmRSS sample) of the target's main process (storescp --fork: the parent, not its children).`,
  );
  // The bench itself keeps about one core busy (storescu plus the target); more than that means
  // other work competed for the CPU and the numbers are noisier than usual.
  const cores = os.availableParallelism();
  const busy = loadBefore > 0.5 ? ' — other processes were running: expect noisy numbers, compare targets within this run only' : '';
  console.log(
    `Machine: ${cores} cores, 1-minute load average ${loadBefore.toFixed(2)} before the bench, ${loadAfter.toFixed(2)} after${busy}.`,
  );
  const logged = all.filter((r) => r.logged.size > 0);
  if (logged.length > 0) {
    console.log('');
    console.log('Warnings and errors the targets logged (each distinct line once):');
    for (const r of logged) for (const line of r.logged) console.log(`  ${r.name}: ${line}`);
  }
  const failed =
    durable.errors.length > 0 ||
    all.some((r) => r.errors.length > 0 || r.runs.some((run) => run.stored !== r.slices || run.sendError !== undefined));
  return failed ? 1 : 0;
}
