// Sustained load (issue 8): 8 storescu senders at once for N minutes, each sending one new CT
// series after another, while a series-trigger pipeline (count-instances, in the worker pool)
// fires on every series. Every 10 s: objects stored, throughput, RSS and open files of the
// server. At the end, from the server's own index: arrival-to-job latency (last object of a
// series → its job created, and → finished), jobs succeeded, objects acknowledged vs stored.
// Memory and open files must not grow: the first and last thirds of the run are compared.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { ctSeries } from '../test/fixtures/builder.ts';
import { missingDcmtkTool, storescu } from '../test/helpers/dcmtk.ts';
import { makeTempDir, removeTempDir, stopChild } from './support/cleanup.ts';
import { spawnDicomflow } from './support/dicomflow-process.ts';
import { procStatusBytes } from './support/memory.ts';
import { formatTable, median } from './support/table.ts';

export const description =
  '8 concurrent storescu senders for N minutes with a series-trigger pipeline: throughput, arrival-to-job latency, RSS and open files over time';

const USAGE = `npm run bench -- load [--minutes M] [--senders S] [--slices K] [--size N] [--stable-seconds T]

  --minutes M         how long the senders send (default 1; 10 for the issue's run)
  --senders S         concurrent storescu processes (default 8)
  --slices K          objects per series (default 20)
  --size N            rows = columns of each slice, 16-bit (default 256: 128 KiB per object)
  --stable-seconds T  the pipeline's series stableSeconds (default 2)`;

interface Sample {
  atSeconds: number;
  objects: number;
  rssBytes: number;
  /** V8 heap in use and memory outside it (Buffers), from the server's /api/metrics: tells a JS leak from native growth. */
  heapBytes: number;
  externalBytes: number;
  openFiles: number;
}

async function heapFigures(httpPort: number, token: string): Promise<{ heapBytes: number; externalBytes: number }> {
  try {
    const text = await fetch(`http://127.0.0.1:${httpPort}/api/metrics`, { headers: { authorization: `Bearer ${token}` } }).then((r) =>
      r.text(),
    );
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { heapBytes: value('nodejs_heap_size_used_bytes'), externalBytes: value('nodejs_external_memory_bytes') };
  } catch {
    return { heapBytes: NaN, externalBytes: NaN };
  }
}

function openFiles(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      minutes: { type: 'string', default: '1' },
      senders: { type: 'string', default: '8' },
      slices: { type: 'string', default: '20' },
      size: { type: 'string', default: '256' },
      'stable-seconds': { type: 'string', default: '2' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const missing = missingDcmtkTool(['storescu']);
  if (missing !== undefined) {
    console.error(missing);
    return 1;
  }
  const minutes = Number(values.minutes);
  const senders = Number(values.senders);
  const slices = Number(values.slices);
  const size = Number(values.size);
  const stableSeconds = Number(values['stable-seconds']);

  const root = makeTempDir('dicomflow-bench-load-');
  const dataDir = path.join(root, 'data');
  const pipelinesDir = path.join(root, 'pipelines');
  fs.mkdirSync(pipelinesDir);
  fs.writeFileSync(
    path.join(pipelinesDir, 'per-series.json'),
    JSON.stringify({ name: 'per-series', trigger: { on: 'series', stableSeconds }, steps: [{ plugin: 'count-instances' }] }),
  );
  const configFile = path.join(root, 'config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({ dataDir, pipelinesDir, dimse: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 } }),
  );
  const server = await spawnDicomflow(configFile);
  const pid = server.child.pid!;
  console.log(
    `load: ${senders} storescu senders × ${minutes} min, series of ${slices} × ${size}² 16-bit CT, series trigger stableSeconds ${stableSeconds}; server pid ${pid}`,
  );

  const started = Date.now();
  const endAt = started + minutes * 60_000;
  let acknowledged = 0;
  let failedSends = 0;
  const samples: Sample[] = [];
  const db = () => new Database(path.join(dataDir, 'index.sqlite'), { readonly: true, fileMustExist: true });
  const storedObjects = () => {
    const d = db();
    try {
      return (d.prepare('SELECT count(*) AS n FROM objects WHERE deleted_at IS NULL').get() as { n: number }).n;
    } finally {
      d.close();
    }
  };
  const token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  const sample = async () => {
    const atSeconds = Math.round((Date.now() - started) / 1000);
    const heap = await heapFigures(server.httpPort, token);
    samples.push({ atSeconds, objects: storedObjects(), rssBytes: procStatusBytes(pid, 'VmRSS') ?? 0, openFiles: openFiles(pid), ...heap });
  };
  await sample();
  const sampler = setInterval(() => void sample(), 10_000);

  // Each sender: make a new series (fresh UIDs), send it with one storescu association, repeat.
  const sender = async (n: number) => {
    let round = 0;
    while (Date.now() < endAt) {
      const dir = path.join(root, `sender-${n}-${round++}`);
      const series = await ctSeries(dir, { slices, rows: size, cols: size });
      const r = await storescu(['-aet', `LOAD${n}`, '-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...series.files], {
        timeoutMs: 300_000,
      });
      if (r.code === 0) acknowledged += series.files.length;
      else failedSends++;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  await Promise.all(Array.from({ length: senders }, (_, n) => sender(n)));
  const sendSeconds = (Date.now() - started) / 1000;
  // Let the last series become stable and their jobs run.
  const drainUntil = Date.now() + (stableSeconds + 60) * 1000;
  const pending = () => {
    const d = db();
    try {
      return (d.prepare("SELECT count(*) AS n FROM jobs WHERE status IN ('queued', 'running')").get() as { n: number }).n;
    } finally {
      d.close();
    }
  };
  await new Promise((r) => setTimeout(r, (stableSeconds + 1) * 1000));
  while (pending() > 0 && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 500));
  clearInterval(sampler);
  await sample();

  const d = db();
  const jobs = d
    .prepare(
      `SELECT j.status, j.created_at AS createdAt, j.finished_at AS finishedAt, (SELECT max(a.received_at) FROM arrivals a WHERE a.series_instance_uid = j.trigger_uid) AS lastArrival
         FROM jobs j WHERE j.pipeline = 'per-series'`,
    )
    .all() as { status: string; createdAt: string; finishedAt: string | null; lastArrival: string | null }[];
  const stored = storedObjects();
  const seriesCount = (d.prepare('SELECT count(DISTINCT series_instance_uid) AS n FROM arrivals').get() as { n: number }).n;
  d.close();
  server.stopping();
  await stopChild(server.child);

  const toCreated = jobs
    .filter((j) => j.lastArrival)
    .map((j) => Date.parse(j.createdAt) - Date.parse(j.lastArrival!) - stableSeconds * 1000);
  const toFinished = jobs
    .filter((j) => j.lastArrival && j.finishedAt)
    .map((j) => Date.parse(j.finishedAt!) - Date.parse(j.lastArrival!) - stableSeconds * 1000);
  const third = Math.max(1, Math.floor(samples.length / 3));
  const early = samples.slice(1, 1 + third);
  const late = samples.slice(-third);
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

  console.log('\nover time:');
  console.log(
    formatTable(
      ['t (s)', 'objects', 'objects/s', 'RSS (MB)', 'heap (MB)', 'external (MB)', 'open files'],
      samples.map((s, i) => {
        const prev = samples[i - 1];
        const rate = prev ? (s.objects - prev.objects) / Math.max(1, s.atSeconds - prev.atSeconds) : 0;
        return [
          String(s.atSeconds),
          String(s.objects),
          rate.toFixed(0),
          (s.rssBytes / 1e6).toFixed(0),
          (s.heapBytes / 1e6).toFixed(0),
          (s.externalBytes / 1e6).toFixed(0),
          String(s.openFiles),
        ];
      }),
    ),
  );
  console.log('\nsummary:');
  console.log(
    formatTable(
      ['figure', 'value'],
      [
        ['objects acknowledged (storescu)', String(acknowledged)],
        ['objects stored (index)', String(stored)],
        ['lost (acknowledged, not stored)', String(Math.max(0, acknowledged - stored))],
        ['storescu runs that failed', String(failedSends)],
        ['throughput while sending', `${(stored / sendSeconds).toFixed(0)} objects/s`],
        ['series / series jobs / succeeded', `${seriesCount} / ${jobs.length} / ${jobs.filter((j) => j.status === 'succeeded').length}`],
        [
          'last arrival → job created, beyond stableSeconds: p50 / p99',
          `${median(toCreated).toFixed(0)} / ${percentile(toCreated, 99).toFixed(0)} ms`,
        ],
        [
          'last arrival → job finished, beyond stableSeconds: p50 / p99',
          `${median(toFinished).toFixed(0)} / ${percentile(toFinished, 99).toFixed(0)} ms`,
        ],
        [
          'RSS first third → last third (avg)',
          `${(avg(early.map((s) => s.rssBytes)) / 1e6).toFixed(0)} → ${(avg(late.map((s) => s.rssBytes)) / 1e6).toFixed(0)} MB`,
        ],
        [
          'open files first third → last third (avg)',
          `${avg(early.map((s) => s.openFiles)).toFixed(0)} → ${avg(late.map((s) => s.openFiles)).toFixed(0)}`,
        ],
      ],
    ),
  );
  if (server.problems.length > 0)
    console.log(`\nserver warnings/errors (first ${server.problems.length}):\n${server.problems.slice(0, 10).join('\n')}`);
  removeTempDir(root);
  return acknowledged > stored || jobs.some((j) => j.status === 'failed') ? 1 : 0;
}
