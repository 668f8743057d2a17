// Scale-out on one machine: 1, 2 and 3 dicomflow nodes sharing one PostgreSQL index and one data
// directory. For each node count (fresh database, fresh data directory, one PostgreSQL cluster for
// the whole bench): ingest images/s with one storescu per node in parallel, and motion-correction
// jobs/hour with the same jobs queued for the cluster. One node on the default embedded SQLite
// index takes the same two phases first, so the table shows what the shared index costs a node. Machine CPU, the CPU seconds of the nodes
// (worker processes included), of PostgreSQL and of the senders, and disk writes are measured over
// each phase, so the table shows what limits the scaling. DCMTK storescp takes the same ingest
// load in the same run, as the ceiling beside the ingest figures.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openIndexDatabase, type IndexLocation } from '../core/store/sql/open.ts';
import type { SqlDb } from '../core/store/sql/sql-db.ts';
import { ctSeries } from '../test/fixtures/builder.ts';
import { dynamicPetWithKnownMotion } from '../test/fixtures/dynamic-brain-phantom.ts';
import { missingDcmtkTool } from '../test/helpers/dcmtk.ts';
import { postgresBinDir, startPostgres, type PostgresCluster } from '../test/helpers/postgres.ts';
import { cleanUp, makeTempDir, removeTempDir, stopChild } from './support/cleanup.ts';
import { spawnDicomflow, type DicomflowProcess } from './support/dicomflow-process.ts';
import { postmasterPids, snapshot, usageBetween, type ProcSnapshot, type Usage } from './support/proc-usage.ts';
import { formatTable } from './support/table.ts';
import { split, storescu } from './support/storescu.ts';
import { storescpTarget } from './support/targets.ts';

export const description =
  '1 node on SQLite, then 1, 2, 3 nodes on one PostgreSQL index: ingest images/s and motion-correction jobs/h, with the CPU/disk use that limits them';

const USAGE = `npm run bench -- scale [--nodes 1,2,3] [--slices N] [--size N] [--jobs K] [--pet-size CxRxS]

  --nodes     node counts to measure on the PostgreSQL index, comma-separated (default 1,2,3);
              one node on the default SQLite index is always measured first
  --slices    CT slices sent per node count, split evenly over the nodes (default 900)
  --size      rows = columns of each 16-bit CT slice (default 512: 525 KB per object)
  --jobs      motion-correction jobs queued per node count (default 18)
  --pet-size  grid of the dynamic PET phantom, columns×rows×slices per frame, 9 frames (default 64x64x32)

Environment: DF_BENCH_SCALE_NODES, _SLICES, _SIZE, _JOBS, _PET_SIZE set the same defaults.`;

const MB = 1e6;
const MOCO_PIPELINE = 'bench-moco';
const AE_TITLE = 'DICOMFLOW';
// The seed's options (pipelines/seed-dynamic-pet.json): frames from 2 min on, against the sum of
// the last three, NMI, 6 mm smoothing.
const MOCO_OPTIONS = { startSec: 120, reference: { kind: 'sum-late', lateFrames: 3 }, cost: 'nmi', fwhmMm: 6 };

interface Options {
  nodeCounts: number[];
  slices: number;
  size: number;
  jobs: number;
  petGrid: [number, number, number];
}

interface Phase {
  seconds: number;
  usage: Usage;
}

interface IngestResult extends Phase {
  /** storescu start → the last storescu exited (every object acknowledged). */
  ackSeconds: number;
  /** storescu start → every object filed into Import (the default pipeline's jobs done). */
  filedSeconds: number;
  perNodeReceived: number[];
}

interface MotionResult extends Phase {
  perNodeJobs: number[];
  jobSecondsMedian: number;
  /** Per job, first to last of its derived instances stored (the engine stores them one by one after the step's work). */
  storingSecondsMedian: number;
  derivedPerJob: number;
}

/** Which index the row's nodes use; the reference row is DCMTK storescp. */
type RowKind = 'reference' | 'sqlite' | 'postgres';

interface Row {
  label: string;
  kind: RowKind;
  ingest?: IngestResult;
  motion?: MotionResult;
  errors: string[];
  problems: string[];
}

interface Node {
  name: string;
  process: DicomflowProcess;
}

function intOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

function parseOptions(args: string[]): Options | 'help' {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string' },
      slices: { type: 'string' },
      size: { type: 'string' },
      jobs: { type: 'string' },
      'pet-size': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const env = (name: string) => process.env[`DF_BENCH_SCALE_${name}`];
  const nodeCounts = (values.nodes ?? env('NODES') ?? '1,2,3').split(',').map((n) => intOption(n.trim(), 'nodes', 1));
  const petGrid = (values['pet-size'] ?? env('PET_SIZE') ?? '64x64x32').split('x').map((n) => intOption(n, 'pet-size', 1));
  if (petGrid.length !== 3) throw new Error('--pet-size must be columns×rows×slices, e.g. 64x64x32');
  return {
    nodeCounts,
    slices: intOption(values.slices ?? env('SLICES'), 'slices', 900),
    size: intOption(values.size ?? env('SIZE'), 'size', 512),
    jobs: intOption(values.jobs ?? env('JOBS'), 'jobs', 18),
    petGrid: petGrid as [number, number, number],
  };
}

/** One storescu association with the given files; resolves with its complaint (first lines), if any. */
async function sendFiles(port: number, files: string[], timeoutMs: number): Promise<string | undefined> {
  return (await storescu(AE_TITLE, port, files, timeoutMs))?.split('\n').slice(0, 4).join(' | ');
}

async function poll<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Starts `count` nodes on one data directory and one database, one after the other (the first
 * creates the schema). Each has its own name and free ports; the rest is the default configuration.
 * Without `indexUrl`, one node on the default index: SQLite in the data directory.
 */
async function startNodes(count: number, root: string, indexUrl: string | undefined): Promise<Node[]> {
  const dataDir = path.join(root, 'data');
  const pipelinesDir = path.join(root, 'pipelines');
  fs.mkdirSync(pipelinesDir, { recursive: true });
  // Manual runs only: a condition no arrival meets, so the bench decides when jobs are queued.
  fs.writeFileSync(
    path.join(pipelinesDir, `${MOCO_PIPELINE}.json`),
    JSON.stringify({
      name: MOCO_PIPELINE,
      description: 'Motion correction as in seed-dynamic-pet, run by the scale bench through POST /api/pipelines/bench-moco/run.',
      trigger: { on: 'series', when: { attributes: { SeriesDescription: { equals: 'scale bench: manual runs only' } } } },
      retry: { maxAttempts: 1 },
      steps: [{ plugin: 'motion-correction', options: MOCO_OPTIONS }],
    }),
  );
  const nodes: Node[] = [];
  for (let i = 1; i <= count; i++) {
    const name = `node-${i}`;
    const configFile = path.join(root, `${name}.json`);
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        dataDir,
        pipelinesDir,
        dimse: { host: '127.0.0.1', port: 0 },
        http: { host: '127.0.0.1', port: 0 },
        ...(indexUrl === undefined ? {} : { index: { backend: 'postgres', url: indexUrl }, cluster: { nodeName: name, leaseSeconds: 30 } }),
      }),
    );
    nodes.push({ name, process: await spawnDicomflow(configFile) });
  }
  return nodes;
}

async function api<T>(node: Node, token: string, route: string, body?: unknown): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${node.process.httpPort}${route}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${node.name} ${route} answered ${response.status}: ${text.slice(0, 300)}`);
  return (route === '/api/metrics' ? text : JSON.parse(text)) as T;
}

/** Objects filed in Import, and jobs not finished yet / failed, straight from the nodes' index. */
async function indexCounts(db: SqlDb, seriesUid: string): Promise<{ filed: number; pending: number; failed: number }> {
  const row = (await db.get(
    `SELECT (SELECT count(*) FROM instances i JOIN series s ON s.id = i.series_row_id WHERE s.database_name = 'Import' AND s.series_instance_uid = ?) AS filed,
              (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')) AS pending,
              (SELECT count(*) FROM jobs WHERE status = 'failed') AS failed`,
    seriesUid,
  ))!;
  return { filed: Number(row.filed), pending: Number(row.pending), failed: Number(row.failed) };
}

/** The middle value (mean of the two middle ones for an even count); NaN for none. */
function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Seconds between two ISO timestamps as the index stores them. */
const secondsBetween = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;

/** `sync`, so that one phase's write-back does not land in the next one's figures. */
function flush(): void {
  execFileSync('sync');
}

/** Ends a phase: CPU figures first (sync idles the CPU), disk figures after the sync. */
function endPhase(before: ProcSnapshot, groups: Record<string, number[]>): Usage {
  const usage = usageBetween(before, snapshot(), groups);
  flush();
  usage.diskWrittenBytes = usageBetween(before, snapshot(), {}).diskWrittenBytes;
  return usage;
}

async function measureIngest(
  nodes: Node[],
  token: string,
  db: SqlDb,
  ct: { files: string[]; seriesUid: string },
  groups: () => Record<string, number[]>,
): Promise<IngestResult> {
  const parts = split(ct.files, nodes.length);
  const timeoutMs = Math.max(60_000, ct.files.length * 50 + 30_000);
  flush();
  const before = snapshot();
  const started = performance.now();
  const complaints = await Promise.all(parts.map((files, i) => sendFiles(nodes[i].process.dicomPort, files, timeoutMs)));
  const ackSeconds = (performance.now() - started) / 1000;
  const failed = complaints.filter((c) => c !== undefined);
  if (failed.length > 0) throw new Error(failed.join('\n'));
  // The default pipeline files each object into Import in a job of its own: wait for all of them.
  const final = await poll(
    'every CT object filed into Import',
    async () => {
      const c = await indexCounts(db, ct.seriesUid);
      return c.failed > 0 || (c.filed >= ct.files.length && c.pending === 0) ? c : undefined;
    },
    timeoutMs,
  );
  const filedSeconds = (performance.now() - started) / 1000;
  const usage = endPhase(before, groups());
  if (final.failed > 0) throw new Error(`${final.failed} job(s) failed while filing the CT objects`);
  if (final.filed !== ct.files.length) throw new Error(`${final.filed} of ${ct.files.length} CT objects filed into Import`);
  const perNodeReceived = await Promise.all(
    nodes.map(async (n) => (await api<{ received: { objects: number } }>(n, token, '/api/status')).received.objects),
  );
  const received = perNodeReceived.reduce((a, b) => a + b, 0);
  if (received !== ct.files.length)
    throw new Error(`the nodes' /api/status received.objects add up to ${received}, not ${ct.files.length}`);
  return { seconds: filedSeconds, ackSeconds, filedSeconds, perNodeReceived, usage };
}

/** Jobs of the motion-correction pipeline this node finished with `status`, from its own /api/metrics. */
async function jobsFinishedOn(node: Node, token: string): Promise<number> {
  const text = await api<string>(node, token, '/api/metrics');
  const match = new RegExp(`^dicomflow_job_duration_seconds_count\\{pipeline="${MOCO_PIPELINE}",status="succeeded"\\} (\\d+)`, 'm').exec(
    text,
  );
  return match === null ? 0 : Number(match[1]);
}

async function measureMotion(
  nodes: Node[],
  token: string,
  db: SqlDb,
  pet: { files: string[]; seriesUid: string },
  jobs: number,
  groups: () => Record<string, number[]>,
): Promise<MotionResult> {
  // Untimed: the series arrives at the first node and is filed into Import.
  const complaint = await sendFiles(nodes[0].process.dicomPort, pet.files, 120_000);
  if (complaint !== undefined) throw new Error(complaint);
  await poll(
    'the PET series filed into Import',
    async () => {
      const c = await indexCounts(db, pet.seriesUid);
      return c.filed >= pet.files.length && c.pending === 0 ? c : undefined;
    },
    60_000,
  );
  flush();
  const before = snapshot();
  const started = performance.now();
  // Queued round-robin through the nodes' APIs; whichever node is free claims the next one.
  const ids: string[] = [];
  for (let j = 0; j < jobs; j++) {
    const { jobId } = await api<{ jobId: string }>(nodes[j % nodes.length], token, `/api/pipelines/${MOCO_PIPELINE}/run`, {
      database: 'Import',
      series: pet.seriesUid,
    });
    ids.push(jobId);
  }
  const done = await poll(
    `${jobs} motion-correction jobs finished`,
    async () => {
      const rows = await db.all('SELECT status, count(*) AS n FROM jobs WHERE pipeline = ? GROUP BY status', MOCO_PIPELINE);
      const by = Object.fromEntries(rows.map((r) => [r.status as string, Number(r.n)]));
      return (by.failed ?? 0) > 0 || (by.succeeded ?? 0) >= jobs ? by : undefined;
    },
    jobs * 120_000,
    200,
  );
  const seconds = (performance.now() - started) / 1000;
  const usage = endPhase(before, groups());
  if ((done.failed ?? 0) > 0) {
    const failed = await db.get("SELECT error FROM jobs WHERE pipeline = ? AND status = 'failed' LIMIT 1", MOCO_PIPELINE);
    throw new Error(`${done.failed} motion-correction job(s) failed: ${failed?.error}`);
  }
  // Medians in JS: the same statements run on SQLite and PostgreSQL (no percentile_cont there).
  const queued = new Set(ids);
  const jobSeconds = (await db.all('SELECT id, started_at, finished_at FROM jobs WHERE pipeline = ?', MOCO_PIPELINE))
    .filter((r) => queued.has(r.id as string))
    .map((r) => secondsBetween(r.started_at as string, r.finished_at as string));
  // Each job's derived series has UIDs of its own: its arrivals' first and last times. ISO
  // timestamps of one format sort as text, so min/max are the first and last.
  const perJob = await db.all(
    `SELECT min(received_at) AS first, max(received_at) AS last, count(*) AS n
       FROM arrivals WHERE source = 'pipeline' AND created_by = ? GROUP BY series_instance_uid`,
    `pipeline ${MOCO_PIPELINE}`,
  );
  const perNodeJobs = await Promise.all(nodes.map((n) => jobsFinishedOn(n, token)));
  const counted = perNodeJobs.reduce((a, b) => a + b, 0);
  if (counted !== jobs) throw new Error(`the nodes' metrics count ${counted} succeeded motion-correction jobs, not ${jobs}`);
  return {
    seconds,
    usage,
    perNodeJobs,
    jobSecondsMedian: median(jobSeconds),
    storingSecondsMedian: median(perJob.map((r) => secondsBetween(r.first as string, r.last as string))),
    derivedPerJob: median(perJob.map((r) => Number(r.n))),
  };
}

/**
 * `count` nodes on a fresh database of the PostgreSQL cluster, or, without a cluster, one node on
 * the default SQLite index; a fresh data directory either way.
 */
async function measureNodes(
  count: number,
  cluster: PostgresCluster | undefined,
  ct: { files: string[]; seriesUid: string },
  pet: { files: string[]; seriesUid: string },
  options: Options,
): Promise<Row> {
  const kind: RowKind = cluster === undefined ? 'sqlite' : 'postgres';
  const row: Row = {
    label: `${count} node${count === 1 ? '' : 's'}${kind === 'sqlite' ? ', SQLite' : ''}`,
    kind,
    errors: [],
    problems: [],
  };
  const root = makeTempDir(`dicomflow-bench-scale-${kind}-${count}-`);
  const indexUrl = cluster && (await cluster.createDatabase(`scale_${count}_${Date.now().toString(36)}`));
  const where: IndexLocation = {
    dataDir: path.join(root, 'data'),
    index: indexUrl === undefined ? undefined : { backend: 'postgres', url: indexUrl },
  };
  let db: SqlDb | undefined;
  let nodes: Node[] = [];
  try {
    nodes = await startNodes(count, root, indexUrl);
    // Opened once the nodes have created the schema; the nodes' own index, read the same way on both back ends.
    db = await openIndexDatabase(where);
    const token = fs.readFileSync(path.join(root, 'data', 'admin-token'), 'utf8').trim();
    const groups = (): Record<string, number[]> => ({
      dicomflow: nodes.map((n) => n.process.child.pid!),
      ...(cluster && { postgres: postmasterPids(cluster.port) }),
    });
    try {
      row.ingest = await measureIngest(nodes, token, db, ct, groups);
      const i = row.ingest;
      console.log(
        `  ${row.label}, ingest: ${ct.files.length} objects acknowledged in ${i.ackSeconds.toFixed(2)} s (${(ct.files.length / i.ackSeconds).toFixed(0)} images/s), ` +
          `all filed into Import after ${i.filedSeconds.toFixed(2)} s; received per node ${i.perNodeReceived.join(' / ')}; machine CPU ${cpuPercent(i.usage)}`,
      );
    } catch (error) {
      row.errors.push(`ingest: ${(error as Error).message}`);
      console.log(`  ${row.label}, ingest failed: ${(error as Error).message}`);
    }
    try {
      row.motion = await measureMotion(nodes, token, db, pet, options.jobs, groups);
      const m = row.motion;
      console.log(
        `  ${row.label}, motion correction: ${options.jobs} jobs in ${m.seconds.toFixed(1)} s (${((options.jobs / m.seconds) * 3600).toFixed(0)} jobs/h), ` +
          `median job ${m.jobSecondsMedian.toFixed(1)} s, of which storing its ${m.derivedPerJob} derived instances ${m.storingSecondsMedian.toFixed(1)} s; jobs per node ${m.perNodeJobs.join(' / ')}; machine CPU ${cpuPercent(m.usage)}`,
      );
    } catch (error) {
      row.errors.push(`motion: ${(error as Error).message}`);
      console.log(`  ${row.label}, motion correction failed: ${(error as Error).message}`);
    }
  } catch (error) {
    row.errors.push((error as Error).message);
    console.log(`  ${row.label} failed: ${(error as Error).message}`);
  } finally {
    for (const n of nodes) row.problems.push(...n.process.problems.map((line) => `${n.name}: ${line}`));
    await db?.close();
    for (const n of nodes) n.process.stopping();
    await Promise.all(nodes.map((n) => stopChild(n.process.child)));
    removeTempDir(root);
  }
  return row;
}

/** The same CT load, on one association, to DCMTK storescp: the ceiling beside the ingest rows. */
async function measureStorescp(ct: { files: string[]; dir: string }): Promise<Row> {
  const row: Row = { label: 'storescp (reference)', kind: 'reference', errors: [], problems: [] };
  const target = await storescpTarget('storescp', ['--max-pdu', '65536']).start();
  try {
    flush();
    const before = snapshot();
    const started = performance.now();
    const complaint = await sendFiles(target.port, ct.files, Math.max(60_000, ct.files.length * 50 + 30_000));
    const seconds = (performance.now() - started) / 1000;
    const usage = endPhase(before, { dicomflow: [], storescp: [target.pid] });
    const { stored, detail } = await target.storedCount();
    if (complaint !== undefined) row.errors.push(complaint);
    if (stored !== ct.files.length) row.errors.push(`only ${stored}/${ct.files.length} stored (${detail})`);
    row.ingest = { seconds, ackSeconds: seconds, filedSeconds: seconds, perNodeReceived: [stored], usage };
    console.log(
      `  storescp: ${ct.files.length} objects in ${seconds.toFixed(2)} s (${(ct.files.length / seconds).toFixed(0)} images/s), ${stored} files written; machine CPU ${cpuPercent(usage)}`,
    );
  } finally {
    await target.stop();
  }
  return row;
}

/** "93 % (91 + 95)": the machine and each core. */
const cpuPercent = (u: Usage) => `${u.busyPercent.toFixed(0)} % (${u.corePercents.map((p) => p.toFixed(0)).join(' + ')})`;

const pair = (a: string | undefined, b: string | undefined) => `${a ?? '–'} / ${b ?? '–'}`;

/** The row speed-ups are measured against: the first PostgreSQL node count (1 node by default). */
const baselineOf = (rows: Row[], phase: 'ingest' | 'motion') => rows.find((r) => r.kind === 'postgres' && r[phase] !== undefined);

function tableRows(rows: Row[], slices: number, jobs: number): string[][] {
  const baseline = baselineOf(rows, 'ingest');
  const baselineMotion = baselineOf(rows, 'motion');
  return rows.map((r) => {
    const reference = r.kind === 'reference';
    const ips = r.ingest && slices / r.ingest.ackSeconds;
    const filed = r.ingest && !reference ? (slices / r.ingest.filedSeconds).toFixed(0) : '–';
    const jph = r.motion && (jobs / r.motion.seconds) * 3600;
    const ingestSpeedup =
      ips !== undefined && baseline?.ingest && !reference ? (ips / (slices / baseline.ingest.ackSeconds)).toFixed(2) : '–';
    const motionSpeedup =
      jph !== undefined && baselineMotion?.motion ? (jph / ((jobs / baselineMotion.motion.seconds) * 3600)).toFixed(2) : '–';
    const i = r.ingest?.usage;
    const m = r.motion?.usage;
    const cpu = (u: Usage | undefined, group: string) => (u === undefined ? undefined : u.cpuSeconds[group].toFixed(1));
    return [
      r.label,
      ips === undefined ? '–' : ips.toFixed(0),
      ingestSpeedup,
      filed,
      jph === undefined ? '–' : jph.toFixed(0),
      motionSpeedup,
      r.motion ? r.motion.perNodeJobs.join('/') : '–',
      pair(i?.busyPercent.toFixed(0), m?.busyPercent.toFixed(0)),
      pair(i?.iowaitPercent.toFixed(0), m?.iowaitPercent.toFixed(0)),
      reference ? `${cpu(i, 'storescp')} (storescp) / –` : pair(cpu(i, 'dicomflow'), cpu(m, 'dicomflow')),
      r.kind === 'postgres' ? pair(cpu(i, 'postgres'), cpu(m, 'postgres')) : '– / –',
      i === undefined ? '–' : i.exitedChildrenCpuSeconds.toFixed(1),
      pair(i && (i.diskWrittenBytes / MB).toFixed(0), m && (m.diskWrittenBytes / MB).toFixed(0)),
    ];
  });
}

/** Where a phase's CPU time went: shares of the machine's busy time, largest first. */
function cpuShares(usage: Usage, cores: number, sendersIncluded: boolean): string {
  const busySeconds = (usage.busyPercent / 100) * cores * usage.seconds;
  const parts: [string, number][] = [
    ['dicomflow', usage.cpuSeconds.dicomflow ?? 0],
    ['PostgreSQL', usage.cpuSeconds.postgres ?? 0],
  ];
  if (sendersIncluded) parts.push(['storescu', usage.exitedChildrenCpuSeconds]);
  parts.push(['the bench', usage.selfCpuSeconds]);
  const accounted = parts.reduce((a, [, s]) => a + s, 0);
  parts.push(['other processes and the kernel', Math.max(0, busySeconds - accounted)]);
  return parts
    .sort((a, b) => b[1] - a[1])
    .map(([name, s]) => `${name} ${busySeconds > 0 ? ((100 * s) / busySeconds).toFixed(0) : '–'} %`)
    .join(', ');
}

const SATURATED_PERCENT = 85;

/** Why a phase below saturation does not fill the cores: what its nodes wait for. */
function waitsFor(row: Row, phase: 'ingest' | 'motion'): string {
  if (phase === 'ingest')
    return `each association waits for its object's fsyncs and ${row.kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'} commits before the next`;
  const m = row.motion!;
  return `each job spends ${m.storingSecondsMedian.toFixed(1)} of its ${m.jobSecondsMedian.toFixed(1)} s storing its ${m.derivedPerJob} derived instances one after another`;
}

/** One line per phase naming the PostgreSQL rows' limit, from the machine's CPU and I/O-wait figures. */
function verdict(rows: Row[], phase: 'ingest' | 'motion', cores: number): string {
  const measured = rows.filter((r) => r.kind === 'postgres' && r[phase] !== undefined);
  const name = phase === 'ingest' ? 'ingest' : 'motion correction';
  if (measured.length === 0) return `${name}: not measured`;
  const rate = (r: Row) => (phase === 'ingest' ? 1 / r.ingest!.ackSeconds : 1 / r.motion!.seconds);
  const first = measured[0];
  const best = measured.reduce((a, b) => (rate(b) > rate(a) ? b : a));
  const gains = measured
    .slice(1)
    .map((r) => `${r.label} ${(rate(r) / rate(first)).toFixed(2)}×`)
    .join(', ');
  const scaling = measured.length > 1 ? `; against ${first.label}: ${gains} (best: ${best.label})` : '';
  const busy = (r: Row) => r[phase]!.usage.busyPercent.toFixed(0);
  const saturated = measured.find((r) => r[phase]!.usage.busyPercent >= SATURATED_PERCENT);
  if (saturated !== undefined) {
    const u = saturated[phase]!.usage;
    const before =
      saturated === first ? '' : `; ${first.label} leaves the cores ${100 - Number(busy(first))} % idle (${waitsFor(first, phase)})`;
    return `${name}: CPU saturated at ${saturated.label}: ${cores} cores ${u.busyPercent.toFixed(0)} % busy (${cpuShares(u, cores, phase === 'ingest')})${before}${scaling}`;
  }
  const last = measured[measured.length - 1];
  const u = last[phase]!.usage;
  if (u.iowaitPercent >= 20)
    return `${name}: disk-bound: ${u.iowaitPercent.toFixed(0)} % I/O wait at ${last.label}, CPU ${busy(last)} %${scaling}`;
  return `${name}: neither CPU (${busy(last)} % at ${last.label}) nor disk (${u.iowaitPercent.toFixed(0)} % I/O wait) saturated: latency-bound, ${waitsFor(last, phase)}${scaling}`;
}

/** What the shared PostgreSQL index costs one node: the SQLite row beside the first PostgreSQL row. */
function indexCost(rows: Row[], slices: number, jobs: number): string {
  const sqlite = rows.find((r) => r.kind === 'sqlite');
  const postgres = rows.find((r) => r.kind === 'postgres');
  if (sqlite === undefined || postgres === undefined) return 'SQLite against PostgreSQL: not measured';
  const compare = (
    name: string,
    unit: string,
    a: number | undefined,
    b: number | undefined,
    busyA: number | undefined,
    busyB: number | undefined,
  ) =>
    a === undefined || b === undefined
      ? `${name} not measured`
      : `${name} ${a.toFixed(0)} against ${b.toFixed(0)} ${unit} (PostgreSQL ${(b / a).toFixed(2)}× of SQLite; machine CPU ${busyA!.toFixed(0)} % against ${busyB!.toFixed(0)} %)`;
  const ips = (r: Row) => r.ingest && slices / r.ingest.ackSeconds;
  const jph = (r: Row) => r.motion && (jobs / r.motion.seconds) * 3600;
  return (
    `${sqlite.label} against ${postgres.label} (PostgreSQL): ` +
    `${compare('ingest', 'img/s', ips(sqlite), ips(postgres), sqlite.ingest?.usage.busyPercent, postgres.ingest?.usage.busyPercent)}; ` +
    `${compare('motion correction', 'jobs/h', jph(sqlite), jph(postgres), sqlite.motion?.usage.busyPercent, postgres.motion?.usage.busyPercent)}`
  );
}

export async function main(args: string[]): Promise<number> {
  let options: Options;
  try {
    const parsed = parseOptions(args);
    if (parsed === 'help') {
      console.log(USAGE);
      return 0;
    }
    options = parsed;
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const missing = missingDcmtkTool(['storescu', 'storescp']);
  if (missing !== undefined) {
    console.error(missing);
    return 1;
  }
  if (postgresBinDir() === undefined) {
    console.error('PostgreSQL is not installed (no pg_ctl on PATH or under /usr/lib/postgresql)');
    return 1;
  }
  const cores = os.availableParallelism();
  const loadBefore = os.loadavg()[0];
  const benchStarted = performance.now();
  const rows: Row[] = [];
  let cluster: PostgresCluster | undefined;
  // pg_ctl stop is synchronous: also on an exit nobody planned (Ctrl-C goes through cleanUp's exit).
  const stopCluster = () => cluster?.stop();
  process.once('exit', stopCluster);
  const root = makeTempDir('dicomflow-bench-scale-');
  try {
    let started = performance.now();
    const ctBuilt = await ctSeries(path.join(root, 'ct'), {
      slices: options.slices,
      rows: options.size,
      cols: options.size,
      uidSeed: `bench scale ${options.slices}x${options.size}`,
    });
    let bytes = 0;
    for (const file of ctBuilt.files) bytes += (await fs.promises.readFile(file)).length; // warm the page cache
    const ct = { files: ctBuilt.files, dir: path.join(root, 'ct'), seriesUid: ctBuilt.seriesInstanceUid };
    const [c, r, s] = options.petGrid;
    const { series: petBuilt } = await dynamicPetWithKnownMotion(path.join(root, 'pet'), {
      grid: { dims: [c, r, s], spacingMm: [(3 * 64) / c, (3 * 64) / r, (3.2 * 32) / s] },
    });
    const pet = { files: petBuilt.files, seriesUid: petBuilt.seriesInstanceUid };
    console.log(
      `generated ${options.slices} CT slices ${options.size}×${options.size}×16 bit (${(bytes / MB).toFixed(0)} MB) and a dynamic PET phantom of 9 frames × ${c}×${r}×${s} (${pet.files.length} files) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    started = performance.now();
    cluster = await startPostgres();
    console.log(
      `PostgreSQL cluster on port ${cluster.port} (one for the whole bench; a fresh database per node count), started in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );

    rows.push(await measureStorescp(ct));
    rows.push(await measureNodes(1, undefined, ct, pet, options));
    for (const count of options.nodeCounts) rows.push(await measureNodes(count, cluster, ct, pet, options));
  } finally {
    await cleanUp();
    stopCluster();
    process.off('exit', stopCluster);
  }

  const headers = [
    'nodes',
    'ingest img/s',
    'speed-up',
    'filed img/s',
    'motion jobs/h',
    'speed-up',
    'jobs per node',
    'machine CPU %',
    'I/O wait %',
    'dicomflow CPU s',
    'postgres CPU s',
    'storescu CPU s',
    'disk MB written',
  ];
  console.log('');
  console.log(formatTable(headers, tableRows(rows, options.slices, options.jobs)));
  console.log('');
  console.log(`Limit (saturated = machine CPU ≥ ${SATURATED_PERCENT} % over the phase):`);
  console.log(`  ${verdict(rows, 'ingest', cores)}`);
  console.log(`  ${verdict(rows, 'motion', cores)}`);
  console.log(`  ${indexCost(rows, options.slices, options.jobs)}`);
  console.log('');
  console.log(
    `Ingest: ${options.slices} CT slices of ${options.size}×${options.size}×16 bit split evenly over the nodes, one storescu association per node, all at once; ` +
      `img/s = slices ÷ (first storescu start → last storescu exit); filed img/s = slices ÷ (start → every object filed into Import by the default pipeline, which files in each arrival's own commit: the same as img/s unless that filing failed and fell back to a job). ` +
      `Motion: ${options.jobs} runs of a motion-correction pipeline (seed-dynamic-pet's step options) on one dynamic PET phantom, queued through the nodes' APIs in turn; jobs/h from the first POST to the last job succeeded. ` +
      `Speed-ups are against the first PostgreSQL row (${baselineOf(rows, 'ingest')?.label ?? 'none'}), the SQLite row's too. ` +
      `Cells "a / b" are the ingest / motion phases. CPU s: the node processes with their worker processes; the PostgreSQL postmaster with its backends (– for SQLite, which runs inside the node); storescu as reaped by the bench. ` +
      `Disk MB: sectors written to the machine's disks over the phase, a sync included. "1 node, SQLite" runs on the default embedded index; every PostgreSQL node count on a fresh database; each row on a fresh data directory.`,
  );
  const loadAfter = os.loadavg()[0];
  console.log(
    `Machine: ${cores} cores, 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after; the bench took ${((performance.now() - benchStarted) / 1000).toFixed(0)} s` +
      (loadBefore > 0.5 ? ' — other processes were running: expect noisy numbers' : ''),
  );
  const problems = rows.flatMap((r) => r.problems.map((p) => `${r.label}: ${p.slice(0, 600)}`));
  if (problems.length > 0) {
    console.log('');
    console.log('Warnings and errors the nodes logged (first 20):');
    for (const line of problems.slice(0, 20)) console.log(`  ${line}`);
  }
  const errors = rows.flatMap((r) => r.errors.map((e) => `${r.label}: ${e}`));
  if (errors.length > 0) {
    console.log('');
    console.log('Failures:');
    for (const line of errors) console.log(`  ${line}`);
  }
  return errors.length > 0 ? 1 : 0;
}
