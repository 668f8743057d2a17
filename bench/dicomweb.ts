// DICOMweb in and out (issue 18): a CT series stored with one STOW-RS request and retrieved with
// one WADO-RS study request, by dicomflow and by Orthanc with its DICOMweb plugin, in the same
// run: seconds, MB/s and the server's peak RSS per direction. --big sends a ~2 GB series through
// dicomflow alone, several times, in with STOW-RS and out with WADO-RS, C-GET and C-MOVE (target:
// under 300 MB RSS in and out, every run).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ctSeries } from '../test/fixtures/builder.ts';
import { missingDcmtkTool, runDcmtk } from '../test/helpers/dcmtk.ts';
import { freePort, waitForPort } from '../test/helpers/net.ts';
import { ORTHANC_DICOMWEB_PLUGIN } from '../test/helpers/orthanc.ts';
import { cleanUp, makeTempDir, removeTempDir, stopChild, trackChild } from './support/cleanup.ts';
import { spawnDicomflow } from './support/dicomflow-process.ts';
import { procStatusBytes, RssSampler } from './support/memory.ts';
import { formatTable, median } from './support/table.ts';
import { orthancVersion } from './support/targets.ts';
import { positiveInt } from './support/args.ts';

export const description =
  'a CT series in with STOW-RS and out with WADO-RS, dicomflow beside Orthanc’s DICOMweb plugin: seconds, MB/s, peak RSS (--big: 2 GB through dicomflow)';

const USAGE = `npm run bench -- dicomweb [--slices N] [--runs R] [--big] [--big-slices N] [--big-runs R]

  --slices N      slices of 512×512×16 bit in the series (default 400, about 210 MB)
  --runs R        runs per server, round-robin (default 3); the median counts
  --big           also a ~2 GB series (--big-slices) through dicomflow, --big-runs times, each on a
                  fresh server: in with STOW-RS, out with WADO-RS, C-GET (getscu) and C-MOVE
                  (movescu); the peak RSS of every direction in every run against < 300 MB
  --big-slices N  slices of the big series (default 4000, about 2.1 GB)
  --big-runs R    runs of the big series (default 3)`;

const MB = 1e6;
const RSS_TARGET_BYTES = 300 * MB;
const MOVE_DESTINATION = 'BENCHMOVE';

interface Service {
  name: string;
  /** The DICOMweb service root (…/studies is appended). */
  root: string;
  headers: Record<string, string>;
  pid: number;
  /** dicomflow's DICOM port, and the port of the C-MOVE destination MOVEDEST it knows. */
  dicomPort?: number;
  moveDestinationPort?: number;
  stop(): Promise<void>;
}

interface Series {
  files: string[];
  bytes: number;
  studyInstanceUid: string;
}

interface Run {
  /** VmRSS at rest before the STOW and before the WADO. */
  idleBytes: number;
  restBeforeWadoBytes: number;
  stowSeconds: number;
  stowPeakBytes: number;
  wadoSeconds: number;
  wadoPeakBytes: number;
  wadoBytes: number;
  problems: string[];
}

async function startDicomflow(): Promise<Service> {
  const root = makeTempDir('dicomflow-bench-dw-');
  const dataDir = path.join(root, 'data');
  const configFile = path.join(root, 'config.json');
  const moveDestinationPort = await freePort();
  const remoteNodes = [{ aeTitle: MOVE_DESTINATION, host: '127.0.0.1', port: moveDestinationPort }];
  fs.writeFileSync(
    configFile,
    JSON.stringify({ dataDir, dimse: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 }, remoteNodes }),
  );
  const server = await spawnDicomflow(configFile);
  const token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  return {
    name: 'dicomflow',
    root: `http://127.0.0.1:${server.httpPort}/dicomweb/Import`,
    headers: { authorization: `Bearer ${token}` },
    pid: server.child.pid!,
    dicomPort: server.dicomPort,
    moveDestinationPort,
    async stop() {
      server.stopping();
      await stopChild(server.child);
      removeTempDir(root);
    },
  };
}

async function startOrthanc(version: string): Promise<Service> {
  const root = makeTempDir('dicomflow-bench-dw-orthanc-');
  const [dicomPort, httpPort] = [await freePort(), await freePort()];
  const configFile = path.join(root, 'orthanc.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      Name: 'dicomflow-bench',
      StorageDirectory: path.join(root, 'storage'),
      IndexDirectory: path.join(root, 'index'),
      DicomPort: dicomPort,
      HttpPort: httpPort,
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      Plugins: [ORTHANC_DICOMWEB_PLUGIN],
      DicomWeb: { Enable: true, Root: '/dicom-web/' },
    }),
  );
  const child = trackChild(spawn('Orthanc', [configFile], { cwd: root, stdio: ['ignore', 'ignore', 'ignore'] }));
  await waitForPort(httpPort, '127.0.0.1', 30_000);
  return {
    name: `Orthanc ${version} + DICOMweb plugin`,
    root: `http://127.0.0.1:${httpPort}/dicom-web`,
    headers: {},
    pid: child.pid!,
    async stop() {
      await stopChild(child, 15_000);
      removeTempDir(root);
    },
  };
}

/** Starts a fresh peak for /proc/<pid>/status VmHWM (proc(5): clear_refs "5"). */
function resetPeak(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** The series as one multipart/related body, read file by file as the request is sent. */
async function* stowBody(files: string[], boundary: string): AsyncGenerator<Buffer> {
  for (const file of files) {
    yield Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
    yield* fs.createReadStream(file, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
    yield Buffer.from('\r\n');
  }
  yield Buffer.from(`--${boundary}--\r\n`);
}

/** Counts a needle in a stream of chunks, matches across chunk edges included. */
function counter(needle: Buffer): { feed(chunk: Buffer): void; count: number } {
  let tail = Buffer.alloc(0);
  const state = {
    count: 0,
    feed(chunk: Buffer) {
      const joined = Buffer.concat([tail, chunk]);
      for (let at = joined.indexOf(needle); at >= 0; at = joined.indexOf(needle, at + needle.length)) state.count++;
      tail = Buffer.from(joined.subarray(Math.max(0, joined.length - needle.length + 1)));
    },
  };
  return state;
}

async function studyInstances(service: Service, studyInstanceUid: string): Promise<number> {
  const res = await fetch(`${service.root}/studies?StudyInstanceUID=${studyInstanceUid}&includefield=00201208`, {
    headers: { ...service.headers, accept: 'application/dicom+json' },
  });
  if (!res.ok) return 0;
  const [study] = (await res.json()) as Record<string, { Value?: unknown[] }>[];
  return Number(study?.['00201208']?.Value?.[0] ?? 0);
}

async function measure(service: Service, series: Series, timeoutMs: number): Promise<Run> {
  const problems: string[] = [];
  const boundary = 'dicomflow-bench-boundary';
  resetPeak(service.pid);
  let sampler = new RssSampler(service.pid);
  const idleBytes = sampler.startBytes;
  let started = performance.now();
  const stow = await fetch(`${service.root}/studies`, {
    method: 'POST',
    headers: {
      ...service.headers,
      'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      accept: 'application/dicom+json',
    },
    body: stowBody(series.files, boundary) as unknown as BodyInit,
    duplex: 'half',
    signal: AbortSignal.timeout(timeoutMs),
  } as RequestInit);
  const stowReply = (await stow.json()) as Record<string, { Value?: unknown[] }>;
  const stowSeconds = (performance.now() - started) / 1000;
  const stowPeakBytes = sampler.stop().peakBytes;
  const referenced = stowReply['00081199']?.Value?.length ?? 0;
  if (stow.status !== 200 || referenced !== series.files.length)
    problems.push(`STOW answered ${stow.status} with ${referenced}/${series.files.length} instances stored`);

  // dicomflow files arrivals in its store pipeline after the reply: wait until the study is whole.
  const deadline = Date.now() + timeoutMs;
  let filed = await studyInstances(service, series.studyInstanceUid);
  while (filed < series.files.length && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    filed = await studyInstances(service, series.studyInstanceUid);
  }
  if (filed !== series.files.length) problems.push(`QIDO counts ${filed}/${series.files.length} instances in the study`);

  resetPeak(service.pid);
  sampler = new RssSampler(service.pid);
  const restBeforeWadoBytes = sampler.startBytes;
  started = performance.now();
  const wado = await fetch(`${service.root}/studies/${series.studyInstanceUid}`, {
    headers: { ...service.headers, accept: 'multipart/related; type="application/dicom"' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  // Parts are counted by their delimiters: one per part, plus the closing one.
  const replyBoundary = /boundary="?([^";]+)"?/.exec(wado.headers.get('content-type') ?? '')?.[1] ?? 'none';
  const delimiters = counter(Buffer.from(`--${replyBoundary}`));
  let wadoBytes = 0;
  for await (const chunk of wado.body as unknown as AsyncIterable<Uint8Array>) {
    wadoBytes += chunk.byteLength;
    delimiters.feed(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  const wadoSeconds = (performance.now() - started) / 1000;
  const wadoPeakBytes = sampler.stop().peakBytes;
  const parts = delimiters.count - 1;
  if (wado.status !== 200 || parts !== series.files.length || wadoBytes < series.bytes)
    problems.push(`WADO answered ${wado.status} with ${parts}/${series.files.length} parts, ${wadoBytes} bytes`);
  return { idleBytes, restBeforeWadoBytes, stowSeconds, stowPeakBytes, wadoSeconds, wadoPeakBytes, wadoBytes, problems };
}

/** One direction of a big run: seconds, the server's RSS at rest before it and its peak during it. */
interface Direction {
  name: string;
  seconds: number;
  restBytes: number;
  peakBytes: number;
  problem?: string;
}

/** Runs `transfer` with a fresh peak (VmHWM reset, 50 ms samples) of the server process. */
async function direction(name: string, pid: number, transfer: () => Promise<string | undefined>): Promise<Direction> {
  resetPeak(pid);
  const sampler = new RssSampler(pid);
  const started = performance.now();
  const problem = await transfer();
  const seconds = (performance.now() - started) / 1000;
  return { name, seconds, restBytes: sampler.startBytes, peakBytes: sampler.stop().peakBytes, problem };
}

/**
 * The study out through DICOM: C-GET with getscu, or C-MOVE to movescu as the destination, both
 * receiving without storing (--ignore). A problem when not every instance arrived.
 */
async function dimseRetrieve(service: Service, series: Series, kind: 'C-GET' | 'C-MOVE', timeoutMs: number): Promise<string | undefined> {
  const keys = ['-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${series.studyInstanceUid}`];
  const peer = ['127.0.0.1', String(service.dicomPort)];
  const r =
    kind === 'C-GET'
      ? await runDcmtk('getscu', ['-v', '-aet', 'BENCHGET', '-aec', 'DICOMFLOW', '--ignore', ...keys, ...peer], { timeoutMs })
      : await runDcmtk(
          'movescu',
          [
            '-v',
            '-aet',
            MOVE_DESTINATION,
            '-aem',
            MOVE_DESTINATION,
            '-aec',
            'DICOMFLOW',
            '--port',
            String(service.moveDestinationPort),
            '--ignore',
            ...keys,
            ...peer,
          ],
          { timeoutMs },
        );
  const output = r.stdout + r.stderr;
  const received =
    kind === 'C-GET'
      ? Number(/Number of Completed Suboperations\s*:\s*(\d+)/.exec(output)?.[1] ?? 0)
      : (output.match(/Received Store Request/g) ?? []).length;
  if (r.code === 0 && received === series.files.length) return undefined;
  return `${kind} ended with ${r.timedOut ? 'a timeout' : `exit ${r.code}`}, ${received}/${series.files.length} instances received`;
}

/** The big series on a fresh dicomflow: in with STOW-RS, out with WADO-RS, C-GET and C-MOVE. */
async function measureBig(service: Service, series: Series, timeoutMs: number): Promise<{ idleBytes: number; directions: Direction[] }> {
  const idleBytes = procStatusBytes(service.pid, 'VmRSS') ?? 0;
  const run = await measure(service, series, timeoutMs);
  const directions: Direction[] = [
    {
      name: 'in: STOW-RS',
      seconds: run.stowSeconds,
      restBytes: run.idleBytes,
      peakBytes: run.stowPeakBytes,
      problem: run.problems.find((p) => !p.startsWith('WADO')),
    },
    {
      name: 'out: WADO-RS',
      seconds: run.wadoSeconds,
      restBytes: run.restBeforeWadoBytes,
      peakBytes: run.wadoPeakBytes,
      problem: run.problems.find((p) => p.startsWith('WADO')),
    },
  ];
  directions.push(await direction('out: C-GET', service.pid, () => dimseRetrieve(service, series, 'C-GET', timeoutMs)));
  directions.push(await direction('out: C-MOVE', service.pid, () => dimseRetrieve(service, series, 'C-MOVE', timeoutMs)));
  return { idleBytes, directions };
}

async function makeSeries(dir: string, slices: number): Promise<Series> {
  const series = await ctSeries(dir, { slices, rows: 512, cols: 512, uidSeed: `bench dicomweb ${slices}` });
  let bytes = 0;
  for (const file of series.files) bytes += (await fs.promises.readFile(file)).length;
  console.log(`generated ${slices} CT slices 512×512×16 bit, ${(bytes / MB).toFixed(0)} MB (page cache warmed)`);
  return { files: series.files, bytes, studyInstanceUid: series.studyInstanceUid };
}

export async function main(args: string[]): Promise<number> {
  let values;
  let slices: number, runs: number, bigSlices: number, bigRuns: number;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        slices: { type: 'string' },
        runs: { type: 'string' },
        big: { type: 'boolean', default: false },
        'big-slices': { type: 'string' },
        'big-runs': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
    slices = positiveInt(values.slices, 'slices', 400);
    runs = positiveInt(values.runs, 'runs', 3);
    bigSlices = positiveInt(values['big-slices'], 'big-slices', 4000);
    bigRuns = positiveInt(values['big-runs'], 'big-runs', 3);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const missing = values.big ? missingDcmtkTool(['getscu', 'movescu']) : undefined;
  if (missing !== undefined) {
    console.error(missing);
    return 1;
  }
  const version = orthancVersion();
  const withOrthanc = version !== undefined && fs.existsSync(ORTHANC_DICOMWEB_PLUGIN);
  const servers: { name: string; start: () => Promise<Service>; runs: Run[] }[] = [{ name: 'dicomflow', start: startDicomflow, runs: [] }];
  if (withOrthanc) servers.push({ name: `Orthanc ${version} + DICOMweb plugin`, start: () => startOrthanc(version), runs: [] });
  const big: { idleBytes: number; directions: Direction[] }[] = [];
  let bigBytes = 0;
  let failed = false;
  const loadBefore = os.loadavg()[0];
  const root = makeTempDir('dicomflow-bench-dicomweb-');
  try {
    const series = await makeSeries(path.join(root, 'series'), slices);
    const timeoutMs = Math.max(120_000, slices * 100);
    for (let run = 1; run <= runs; run++) {
      for (const server of servers) {
        const service = await server.start();
        try {
          const result = await measure(service, series, timeoutMs);
          server.runs.push(result);
          console.log(
            `run ${run}/${runs} ${server.name}: STOW ${result.stowSeconds.toFixed(2)} s, WADO ${result.wadoSeconds.toFixed(2)} s${result.problems.length ? ` — ${result.problems.join('; ')}` : ''}`,
          );
          failed ||= result.problems.length > 0;
        } finally {
          await service.stop();
        }
      }
    }
    if (values.big) {
      const bigSeries = await makeSeries(path.join(root, 'big'), bigSlices);
      bigBytes = bigSeries.bytes;
      try {
        for (let run = 1; run <= bigRuns; run++) {
          const service = await startDicomflow();
          try {
            const result = await measureBig(service, bigSeries, Math.max(600_000, bigSlices * 200));
            big.push(result);
            console.log(
              `big run ${run}/${bigRuns}: idle ${(result.idleBytes / MB).toFixed(0)} MB; ` +
                result.directions
                  .map(
                    (d) =>
                      `${d.name} ${d.seconds.toFixed(1)} s, peak ${(d.peakBytes / MB).toFixed(0)} MB${d.problem ? ` (${d.problem})` : ''}`,
                  )
                  .join('; '),
            );
            failed ||= result.directions.some((d) => d.problem !== undefined);
          } finally {
            await service.stop();
          }
        }
      } finally {
        removeTempDir(path.join(root, 'big'));
      }
    }
    const rows: string[][] = [];
    const row = (name: string, rs: Run[], bytes: number) => {
      const stow = median(rs.map((r) => r.stowSeconds));
      const wado = median(rs.map((r) => r.wadoSeconds));
      return [
        name,
        String(rs.length),
        (Math.max(...rs.map((r) => r.idleBytes)) / MB).toFixed(0),
        stow.toFixed(2),
        (bytes / MB / stow).toFixed(0),
        (Math.max(...rs.map((r) => r.stowPeakBytes)) / MB).toFixed(0),
        (Math.max(...rs.map((r) => r.restBeforeWadoBytes)) / MB).toFixed(0),
        wado.toFixed(2),
        (bytes / MB / wado).toFixed(0),
        (Math.max(...rs.map((r) => r.wadoPeakBytes)) / MB).toFixed(0),
      ];
    };
    for (const server of servers) if (server.runs.length > 0) rows.push(row(server.name, server.runs, series.bytes));
    console.log('');
    console.log(
      formatTable(
        [
          'server',
          'runs',
          'idle RSS MB',
          'STOW s',
          'STOW MB/s',
          'STOW peak RSS MB',
          'RSS before WADO MB',
          'WADO s',
          'WADO MB/s',
          'WADO peak RSS MB',
        ],
        rows,
      ),
    );
    console.log('');
    if (big.length > 0) {
      const names = big[0].directions.map((d) => d.name);
      const bigRows = names.map((name) => {
        const ds = big.map((b) => b.directions.find((d) => d.name === name)!);
        const peaks = ds.map((d) => d.peakBytes);
        return [
          name,
          String(ds.length),
          median(ds.map((d) => d.seconds)).toFixed(1),
          (bigBytes / MB / median(ds.map((d) => d.seconds))).toFixed(0),
          ds.map((d) => (d.restBytes / MB).toFixed(0)).join(' / '),
          peaks.map((p) => (p / MB).toFixed(0)).join(' / '),
          (Math.max(...peaks) / MB).toFixed(0),
          Math.max(...peaks) < RSS_TARGET_BYTES ? 'met' : 'NOT MET',
        ];
      });
      console.log(
        `dicomflow, ${bigSlices} slices (${(bigBytes / 1e9).toFixed(1)} GB), ${big.length} run(s), each on a fresh server (idle ${big.map((b) => (b.idleBytes / MB).toFixed(0)).join(' / ')} MB):`,
      );
      console.log(
        formatTable(
          ['direction', 'runs', 'median s', 'MB/s', 'RSS before, per run MB', 'peak RSS, per run MB', 'highest MB', 'target < 300 MB'],
          bigRows,
        ),
      );
      const peak = Math.max(...big.flatMap((b) => b.directions.map((d) => d.peakBytes)));
      console.log(
        `${peak < RSS_TARGET_BYTES ? 'met' : 'NOT met'}: peak RSS < 300 MB with a ${(bigBytes / 1e9).toFixed(1)} GB series in and out, in every direction of ${big.length} run(s): highest ${(peak / MB).toFixed(0)} MB`,
      );
    } else console.log('target: peak RSS < 300 MB with a 2 GB series in and out: run with --big');
    if (!withOrthanc)
      console.log('Orthanc with its DICOMweb plugin: not installed (apt-get install orthanc orthanc-dicomweb), not measured');
    console.log(
      'One STOW-RS request with the whole series (multipart/related, read from the files as it is sent) and one WADO-RS request for the study, ' +
        "read as it streams; each run on a fresh server with empty storage, round-robin. dicomflow answers STOW once every object is fsync'ed and indexed; " +
        'its WADO waits until the store pipeline has filed the study. --big: then C-GET (getscu --ignore) and C-MOVE (to movescu --ignore) of the same study, one after the other on the same server. ' +
        'Peak RSS: VmHWM (reset before each direction) or the highest 50 ms VmRSS sample of the server process. MB = 10^6 bytes.',
    );
    // The peaks depend on when V8 collects, which a busy machine shifts (bench/README.md).
    console.log(
      `Machine: ${os.availableParallelism()} cores, 1-minute load average ${loadBefore.toFixed(2)} before the bench, ${os.loadavg()[0].toFixed(2)} after.`,
    );
  } finally {
    await cleanUp();
  }
  return failed ? 1 : 0;
}
