// Issue 8, crash safety: SIGKILL the server at seeded random moments while several storescu
// senders push their studies and the pipelines run (store, DICOMDIR, route to a real storescp,
// a worker step over each stable series), restart it on the same data directory, and check what
// a user relies on: every acknowledged object stored once, byte for byte; the DICOMDIR valid and
// complete; the outbox delivers what it owed; interrupted jobs complete; each stable group fired
// one job. Used by the short CI tests (test/integration/crash-pipelines.test.ts,
// test/integration/cluster-crash.test.ts) and the long runs of `npm run proof`:
//
//   node test/proof/crash-harness.ts --kill-points 20 --senders 6 --seed 42 [--json]
//   node test/proof/crash-harness.ts --nodes node-a,node-b --lease-seconds 3 --kill-points 10 …
//
// With --nodes (issue 9) several nodes share one PostgreSQL index (a PostgreSQL of the
// harness's own unless `cluster.indexUrl` names a fresh database) and one data directory. Each
// kill takes a random node; it stays down a random while (its jobs are taken over by another
// node once their lease runs out, or requeued by its own restart, whichever comes first) and
// restarts under the same name. The senders never stop: each association goes to a random live
// node, so while one node is down the others receive.
//
// The seed fixes the kill moments (a fifth of them within 200 ms of start-up, when the jobs the
// last kill interrupted run again), the nodes killed and each sender's association sizes; the
// scheduling of the processes still varies from run to run, so a replay hits the same moments,
// not the same bytes.
//
// Delivery to the destination is at least once: an object sent while the server was killed
// before the outbox row was marked delivered is sent again after the restart, and an object a
// sender sent again (its Success never came) is a second arrival the route pipeline forwards
// too. storescp names received files by SOP Instance UID, so a second copy replaces the first:
// the destination holds each object once. Wire sends above one per object are counted
// (`outbox.wireSends`), not treated as failures.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import { ctSeries, type BuiltSeries } from '../fixtures/builder.ts';
import { startStorescp, type DcmtkPeer } from '../helpers/dcmtk-peers.ts';
import { dcmdump, runDcmtk } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { splitPart10 } from '../helpers/part10.ts';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.ts';
import { spawnServer } from '../helpers/server.ts';
import { SERVER_NODE_FLAGS } from '../../server/node-flags.ts';
import { seededRandom } from '../fixtures/phantom.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const nodeBin = fs.existsSync(path.join(repo, 'node_modules/.bin/node')) ? path.join(repo, 'node_modules/.bin/node') : process.execPath;

export interface ClusterProofOptions {
  /** cluster.nodeName of each node; all share the data directory and the index. */
  nodes: string[];
  /** cluster.leaseSeconds: how long after a kill the other nodes take its jobs over. */
  leaseSeconds: number;
  /** A fresh, empty PostgreSQL database; without it the harness runs a PostgreSQL of its own. */
  indexUrl?: string;
  /** How long a killed node stays down before its restart (uniform in ms; default 100 ms to two leases). */
  downMs?: [number, number];
}

export interface CrashProofOptions {
  /** SIGKILLs, each followed by a restart. */
  killPoints: number;
  /** storescu processes sending at once, each its own study. */
  senders: number;
  /** Seeds the kill moments and the chunking of the sends: the same seed replays the run. */
  seed: number;
  /** Instances in each sender's study (default 60). */
  instancesPerSender?: number;
  /** A kill lands this many ms after the server became ready (uniform in [min, max]; one in five within 200 ms). */
  killDelayMs?: [number, number];
  /** How long the pipelines may take to settle after the last sends (default 180 s). */
  settleTimeoutMs?: number;
  /** Several nodes on one PostgreSQL index instead of one server on SQLite. */
  cluster?: ClusterProofOptions;
  /** Progress lines (the seed first, so a failure can be replayed). */
  log?: (line: string) => void;
  /** Keep the data, fixtures and destination directories (printed) instead of removing them. */
  keep?: boolean;
}

export interface CrashProofFigures {
  seed: number;
  killPoints: number;
  senders: number;
  /** Node names; one unnamed node for a lone server. */
  nodes: string[];
  /** SIGKILLs by node (the kill points, not the kills during restarts). */
  killsByNode: Record<string, number>;
  /** Restarts after which every acknowledged object was durable and the node's incoming/ cleared. */
  killsSurvived: number;
  /** Extra SIGKILLs of a restarting server (before or just after it was ready), not in killPoints. */
  killsDuringStartup: number;
  objectsSent: number;
  objectsAcknowledged: number;
  /** Sends whose Success never came (the kill cut them off); sent again in a later round. */
  sendsCutOff: number;
  /** Acknowledged, but not in the Import database at the end. */
  lost: number;
  /** SOP Instance UIDs indexed more than once in a database. */
  duplicatedInIndex: number;
  /** Indexed objects whose stored dataset differs from what was sent, or whose file is short or missing. */
  corrupt: number;
  jobs: {
    total: number;
    interrupted: number;
    interruptedCompleted: number;
    /** Running jobs of a killed node queued again by another node once their lease expired. */
    takenOver: number;
    /** Running jobs a node queued again at its own restart. */
    requeuedAtRestart: number;
    failed: number;
    stuck: number;
  };
  /** Stable-series groups: each generation fires one job; an arrival is matched once. */
  triggers: {
    seriesGroupsFired: number;
    seriesJobs: number;
    seriesRefired: number;
    seriesWithLateGenerations: number;
    instanceJobsTwice: number;
  };
  outbox: {
    owed: number;
    delivered: number;
    dead: number;
    stuck: number;
    atDestination: number;
    missingAtDestination: number;
    wireSends: number;
  };
  dicomdir: { valid: boolean; listed: number; missing: number };
  workerStep: { images: number; missing: number };
  durationMs: number;
  /** Every broken invariant, in words; empty when the run passed. */
  problems: string[];
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A live node's DICOM port for the next association (drawn with the sender's random), or none. */
type PickPort = (random: () => number) => number | undefined;

/**
 * One modality: sends its study in associations of a few objects each, like a scanner sending
 * as it reconstructs, and sends again whatever was not acknowledged. storescu -v logs
 * "Sending file: F" before each request and "Received Store Response (Success)" after it.
 */
class Sender {
  readonly name: string;
  readonly series: BuiltSeries;
  private readonly uidByFile: Map<string, string>;
  /** Files not yet acknowledged, in sending order. */
  readonly pending: string[];
  readonly acknowledged = new Set<string>();
  sendsCutOff = 0;
  otherResponses: string[] = [];
  private child: ChildProcess | undefined;

  /** Its own stream, so that the kill moments do not depend on how many associations a sender made. */
  private readonly random: () => number;

  constructor(name: string, series: BuiltSeries, random: () => number) {
    this.name = name;
    this.series = series;
    this.random = random;
    this.uidByFile = new Map(series.instances.map((i) => [path.resolve(i.file), i.sopInstanceUid]));
    this.pending = series.instances.map((i) => path.resolve(i.file));
  }

  /**
   * Sends until stopped or all is acknowledged, holding back the last `leave()` objects for
   * later, and pausing up to twice `gapMs()` after each association (a scanner reconstructing).
   */
  async sendUntil(port: PickPort, stop: { stopped: boolean }, leave: () => number = () => 0, gapMs: () => number = () => 0): Promise<void> {
    while (!stop.stopped && this.pending.length > 0) {
      const room = this.pending.length - leave();
      const to = room > 0 ? port(this.random) : undefined;
      if (to === undefined) {
        await sleep(100);
        continue;
      }
      const chunk = this.pending.slice(0, Math.min(room, 4 + Math.floor(this.random() * 16)));
      const done = await this.storescu(to, chunk);
      if (!done && !stop.stopped) await sleep(100);
      else if (gapMs() > 0) await sleep(this.random() * 2 * gapMs());
    }
  }

  /** Kills a storescu still running (it normally ends by itself when the server dies). */
  abort(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  private async storescu(port: number, files: string[]): Promise<boolean> {
    const child = spawn('storescu', ['-v', '-aet', this.name, '-aec', 'DICOMFLOW', '127.0.0.1', String(port), ...files], {
      env: { ...process.env, TCP_NODELAY: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let sending: string | undefined;
    let rest = '';
    const onText = (text: string): void => {
      rest += text;
      const lines = rest.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        const file = /Sending file: (.*)$/.exec(line)?.[1];
        if (file !== undefined) sending = path.resolve(file.trim());
        const response = /Received Store Response \(([^)]*)\)/.exec(line)?.[1];
        if (response === undefined) continue;
        if (response === 'Success' && sending !== undefined) {
          this.acknowledged.add(this.uidByFile.get(sending)!);
          const at = this.pending.indexOf(sending);
          if (at >= 0) this.pending.splice(at, 1);
        } else this.otherResponses.push(response);
        sending = undefined;
      }
    };
    child.stdout.setEncoding('utf8').on('data', onText);
    child.stderr.setEncoding('utf8').on('data', onText);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await exited(child);
    clearTimeout(timer);
    // A request sent whose response never came: the object may or may not be stored.
    if (sending !== undefined) this.sendsCutOff++;
    return child.exitCode === 0;
  }
}

type Row = Record<string, any>;

/** Reads of the index, the same SQL on SQLite and PostgreSQL (`?` placeholders). */
interface Query {
  all(sql: string, ...params: unknown[]): Promise<Row[]>;
  get(sql: string, ...params: unknown[]): Promise<Row | undefined>;
}

interface IndexAccess {
  /** The index as it is now. */
  read<T>(fn: (q: Query) => Promise<T>): Promise<T>;
  /** The index as a killed server left it, before anything recovers it. */
  readAsLeft<T>(fn: (q: Query) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** better-sqlite3 (a copy, read-only) behind the same asynchronous reads as the store contract. */
function queryOf(db: Database.Database): Query {
  return {
    all: async (sql, ...params) => db.prepare(sql).all(...params) as Row[],
    get: async (sql, ...params) => db.prepare(sql).get(...params) as Row | undefined,
  };
}

/** The lone server's index.sqlite, opened read-only for each read; what a kill left is read from a copy (opening it must not change it). */
function sqliteIndex(dataDir: string, work: string): IndexAccess {
  const file = path.join(dataDir, 'index.sqlite');
  const using = async <T>(db: Database.Database, fn: (q: Query) => Promise<T>): Promise<T> => {
    try {
      return await fn(queryOf(db));
    } finally {
      db.close();
    }
  };
  return {
    read: (fn) => using(new Database(file, { readonly: true, fileMustExist: true }), fn),
    readAsLeft: async (fn) => {
      const copy = path.join(work, 'snapshot');
      fs.mkdirSync(copy, { recursive: true });
      try {
        for (const suffix of ['', '-wal', '-shm'])
          if (fs.existsSync(`${file}${suffix}`)) fs.copyFileSync(`${file}${suffix}`, path.join(copy, `index.sqlite${suffix}`));
        return await using(new Database(path.join(copy, 'index.sqlite')), fn);
      } finally {
        fs.rmSync(copy, { recursive: true, force: true });
      }
    },
    close: async () => {},
  };
}

/** The cluster's PostgreSQL index, through the store contract; nothing there changes by reading it. */
async function postgresIndex(dataDir: string, url: string): Promise<IndexAccess> {
  const db = await openIndexDatabase({ dataDir, index: { backend: 'postgres', url } });
  const q: Query = { all: (sql, ...params) => db.all(sql, ...params), get: (sql, ...params) => db.get(sql, ...params) };
  return { read: (fn) => fn(q), readAsLeft: (fn) => fn(q), close: () => db.close() };
}

/** One server of the run: a lone one, or a cluster node (restarted under its name after each kill). */
interface ServerNode {
  /** cluster.nodeName; undefined for a lone server. */
  name: string | undefined;
  config: string;
  dicomPort: number;
  server?: Awaited<ReturnType<typeof spawnServer>>;
  live: boolean;
  /** The output of every process it ran, the killed ones too. */
  outputs: (() => string)[];
}

const nodeLabel = (n: ServerNode) => n.name ?? 'server';

async function startNode(n: ServerNode): Promise<void> {
  n.server = await spawnServer(['--config', n.config]);
  n.outputs.push(n.server.output);
  n.live = true;
}

async function killNode(n: ServerNode): Promise<void> {
  n.live = false;
  n.server!.child.kill('SIGKILL');
  await exited(n.server!.child);
}

async function stopNode(n: ServerNode): Promise<void> {
  const child = n.server?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  n.live = false;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited(child);
  clearTimeout(timer);
}

/** The sum of `field` over the log lines whose message is `msg`, in every process's output. */
function loggedTotal(nodes: ServerNode[], msg: string, field: string): number {
  let total = 0;
  for (const output of nodes.flatMap((n) => n.outputs)) {
    for (const line of output().split('\n')) {
      if (!line.includes(msg)) continue;
      try {
        const entry = JSON.parse(line) as Row;
        if (entry.msg === msg && typeof entry[field] === 'number') total += entry[field];
      } catch {
        // not a log line
      }
    }
  }
  return total;
}

/** Files of a node's incoming/ folder (its own subfolder on a cluster). */
function incomingFiles(dataDir: string, n: ServerNode): string[] {
  const dir = path.join(dataDir, 'storage', 'incoming', ...(n.name ? [n.name] : []));
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => path.join(dir, e.name));
}

function pipelineFiles(dir: string, dicomdirRoot: string, imagesDir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const write = (name: string, definition: Record<string, unknown>) =>
    fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ name, ...definition }, null, 2));
  // store-received is the built-in default pipeline (store step into Import).
  write('media', {
    trigger: { on: 'instance' },
    steps: [{ plugin: 'dicomdir', options: { root: dicomdirRoot, fileSetId: 'CRASHTEST' } }],
    retry: { maxAttempts: 5, backoffSeconds: 1 },
  });
  write('forward', {
    trigger: { on: 'instance' },
    steps: [{ plugin: 'route', options: { destination: 'PACS' } }],
    retry: { maxAttempts: 5, backoffSeconds: 1 },
  });
  // A worker step over each series once it is quiet: every image rendered to a JPEG.
  write('images', {
    trigger: { on: 'series', stableSeconds: 1 },
    steps: [{ plugin: 'convert-image', options: { folder: imagesDir, window: 'soft-tissue' } }],
    retry: { maxAttempts: 5, backoffSeconds: 1 },
  });
}

/**
 * Runs the fault injection and returns its figures; never throws for a broken invariant (they
 * are listed in `problems`), only when the run itself cannot be made (no DCMTK, a server that
 * does not start).
 */
export async function runCrashProof(options: CrashProofOptions): Promise<CrashProofFigures> {
  const started = Date.now();
  const log = options.log ?? (() => {});
  const random = seededRandom(options.seed);
  const [minDelay, maxDelay] = options.killDelayMs ?? [300, 2500];
  const perSender = options.instancesPerSender ?? 60;
  const cluster = options.cluster;
  const [minDown, maxDown] = cluster?.downMs ?? [100, (cluster?.leaseSeconds ?? 0) * 2000];
  log(
    `crash proof: seed ${options.seed}, ${options.killPoints} kill points, ${options.senders} senders × ${perSender} objects` +
      (cluster ? `, nodes ${cluster.nodes.join(', ')} on PostgreSQL, lease ${cluster.leaseSeconds} s` : ''),
  );

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomflow-crash-proof-'));
  const dataDir = path.join(work, 'data');
  const dicomdirRoot = path.join(work, 'dicomdir');
  const imagesDir = path.join(work, 'images');
  const pipelinesDir = path.join(work, 'pipelines');
  fs.mkdirSync(dataDir);
  pipelineFiles(pipelinesDir, dicomdirRoot, imagesDir);
  const problems: string[] = [];
  const nodes: ServerNode[] = [];
  let peer: DcmtkPeer | undefined;
  let postgres: PostgresCluster | undefined;
  let index: IndexAccess | undefined;
  const senders: Sender[] = [];
  // Ends the cluster's senders, which otherwise wait for a live node for ever.
  const stopSenders = { stopped: false };
  try {
    for (let i = 0; i < options.senders; i++) {
      const series = await ctSeries(path.join(work, 'fixtures', `s${i}`), {
        slices: perSender,
        rows: 64,
        cols: 64,
        patientId: `CRASH-${i}`,
        seed: options.seed * 100 + i + 1,
      });
      senders.push(new Sender(`SENDER${i}`, series, seededRandom(options.seed * 7919 + i + 1)));
    }
    const sourceDataset = new Map<string, Buffer>();
    for (const s of senders)
      for (const inst of s.series.instances)
        sourceDataset.set(inst.sopInstanceUid, Buffer.from(splitPart10(fs.readFileSync(inst.file)).dataset));

    peer = await startStorescp({ aeTitle: 'PACS', args: ['-v'] });
    let indexUrl = cluster?.indexUrl;
    if (cluster && indexUrl === undefined) {
      postgres = await startPostgres();
      indexUrl = await postgres.createDatabase();
    }
    for (const name of cluster?.nodes ?? [undefined]) {
      const [dicomPort, httpPort] = [await freePort(), await freePort()];
      const config = path.join(work, name ? `config-${name}.json` : 'config.json');
      fs.writeFileSync(
        config,
        JSON.stringify({
          dataDir,
          pipelinesDir,
          dimse: { port: dicomPort, host: '127.0.0.1' },
          http: { port: httpPort, host: '127.0.0.1' },
          storage: { minFreeMegabytes: 16 },
          engine: { workerThreads: 1 },
          remoteNodes: [
            {
              aeTitle: 'PACS',
              host: '127.0.0.1',
              port: peer.port,
              outbox: { maxAttempts: 100, initialRetrySeconds: 0.5, maxRetrySeconds: 2 },
            },
          ],
          ...(cluster
            ? { index: { backend: 'postgres', url: indexUrl }, cluster: { nodeName: name, leaseSeconds: cluster.leaseSeconds } }
            : {}),
        }),
      );
      nodes.push({ name, config, dicomPort, live: false, outputs: [] });
    }
    const interrupted = new Set<string>();
    let outboxSendingAtKill = 0;
    let killsSurvived = 0;
    let killsDuringStartup = 0;
    const killsByNode: Record<string, number> = Object.fromEntries(nodes.map((n) => [nodeLabel(n), 0]));
    // What a kill interrupted: the jobs and outbox entries the node held, as it left them.
    const noteInterrupted = (n: ServerNode): Promise<Row[]> =>
      index!.readAsLeft(async (q) => {
        const mine = n.name === undefined ? '' : ' AND lease_owner = ?';
        const owner = n.name === undefined ? [] : [n.name];
        const running = await q.all(`SELECT id, pipeline FROM jobs WHERE status = 'running'${mine}`, ...owner);
        outboxSendingAtKill += (await q.get(`SELECT count(*) AS n FROM outbox WHERE state = 'sending'${mine}`, ...owner))!.n;
        running.forEach((j) => interrupted.add(j.id));
        return running;
      });
    // Each association goes to a live node; none while a lone server is down.
    const pickPort: PickPort = (r) => {
      const live = nodes.filter((n) => n.live);
      return live.length <= 1 ? live[0]?.dicomPort : live[Math.floor(r() * live.length)].dicomPort;
    };

    for (const n of nodes) await startNode(n);
    index = cluster ? await postgresIndex(dataDir, indexUrl!) : sqliteIndex(dataDir, work);
    let lastStarted = nodes[nodes.length - 1];
    // On a cluster the senders never stop (the live nodes receive while one is down): round k of
    // the kills sends up to its share of each study, the rest is held back for later rounds, and
    // the associations are spread over a round (its length roughly: the kill delay, the time
    // down and a restart) so that kills land while objects arrive.
    let round = 1;
    const holdBack = (s: Sender) => Math.floor(s.series.instances.length * (1 - round / (options.killPoints + 1)));
    const roundMs = (minDelay + maxDelay) / 2 + (minDown + maxDown) / 2 + 1500;
    // 11.5: the mean association, 4 + 0…15 objects.
    const associationsPerRound = perSender / (options.killPoints + 1) / 11.5;
    const gap = () => (round <= options.killPoints ? roundMs / Math.max(1, associationsPerRound) / 2 : 0);
    const sendingThroughout = cluster ? senders.map((s) => s.sendUntil(pickPort, stopSenders, () => holdBack(s), gap)) : [];
    for (let kill = 1; kill <= options.killPoints; kill++) {
      round = kill;
      const stop = { stopped: false };
      const sending = cluster ? [] : senders.map((s) => s.sendUntil(pickPort, stop));
      // One kill in five comes right after start-up, while the jobs a kill interrupted run again.
      const early = random() < 0.2;
      const victim = early || nodes.length === 1 ? lastStarted : nodes[Math.floor(random() * nodes.length)];
      const delay = Math.round(early ? random() * 200 : minDelay + random() * (maxDelay - minDelay));
      await sleep(delay);
      stop.stopped = true;
      await killNode(victim);
      killsByNode[nodeLabel(victim)]++;
      const abortTimer = setTimeout(() => senders.forEach((s) => s.abort()), 10_000);
      await Promise.all(sending);
      clearTimeout(abortTimer);

      const runningJobs = await noteInterrupted(victim);
      const acknowledged = senders.reduce((n, s) => n + s.acknowledged.size, 0);
      log(
        `kill ${kill}/${options.killPoints}${cluster ? ` (${victim.name})` : ''} after ${delay} ms: ${acknowledged} acknowledged so far, ` +
          `${runningJobs.length} job(s) running (${[...new Set(runningJobs.map((j) => j.pipeline))].join(', ') || '-'})`,
      );
      if (cluster) {
        const down = Math.round(minDown + random() * (maxDown - minDown));
        await sleep(down);
        log(`  down ${down} ms`);
      }

      // Now and then the restart itself is killed, anywhere from loading the code to the
      // recovery (incoming/, the unclean-stop check, requeued jobs and outbox entries).
      if (random() < 0.15) {
        const at = Math.round(random() * 2500);
        const reachedReady = await killDuringStartup(victim, at);
        killsDuringStartup++;
        const more = await noteInterrupted(victim);
        log(
          `  and the restart killed after ${at} ms (${reachedReady ? 'it was ready' : 'before it was ready'}; ${more.length} job(s) running)`,
        );
      }

      const leftInIncoming = incomingFiles(dataDir, victim);
      await startNode(victim);
      lastStarted = victim;
      const found = await durableAfterRestart(index, dataDir, senders, leftInIncoming);
      if (found.length === 0) killsSurvived++;
      else problems.push(...found.map((p) => `after kill ${kill}: ${p}`));
    }

    // The last round: everything not yet acknowledged, with no kill.
    round = options.killPoints + 1;
    await Promise.all(cluster ? sendingThroughout : senders.map((s) => s.sendUntil(pickPort, { stopped: false })));
    for (const s of senders) {
      if (s.pending.length > 0) problems.push(`${s.name}: ${s.pending.length} object(s) never acknowledged without a kill`);
      if (s.otherResponses.length > 0)
        problems.push(`${s.name}: responses other than Success: ${[...new Set(s.otherResponses)].join(', ')}`);
    }
    const settled = await settle(index, options.settleTimeoutMs ?? 180_000);
    if (settled !== undefined) problems.push(`not settled: ${settled}`);

    const acknowledgedUids = new Set(senders.flatMap((s) => [...s.acknowledged]));
    const stored = await checkIndex(index, dataDir, acknowledgedUids, sourceDataset);
    const jobs = await checkJobs(index, nodes[0].config, interrupted);
    const triggers = await checkTriggers(index);
    const outbox = await checkOutbox(index, peer, acknowledgedUids, sourceDataset);
    const dicomdir = await checkDicomdir(dicomdirRoot, acknowledgedUids);
    const images = new Set(
      fs.existsSync(imagesDir)
        ? fs
            .readdirSync(imagesDir)
            .filter((n) => n.endsWith('.jpg'))
            .map((n) => n.slice(0, -4))
        : [],
    );
    const missingImages = [...acknowledgedUids].filter((uid) => !images.has(uid));
    problems.push(...stored.problems, ...jobs.problems, ...triggers.problems, ...outbox.problems, ...dicomdir.problems);
    if (missingImages.length > 0)
      problems.push(`worker step: ${missingImages.length} acknowledged object(s) without a JPEG (first ${missingImages[0]})`);
    if (outboxSendingAtKill > 0) log(`${outboxSendingAtKill} outbox entr(ies) were being sent at a kill`);

    const figures: CrashProofFigures = {
      seed: options.seed,
      killPoints: options.killPoints,
      senders: options.senders,
      nodes: nodes.map(nodeLabel),
      killsByNode,
      killsSurvived,
      killsDuringStartup,
      objectsSent: senders.reduce((n, s) => n + s.series.instances.length, 0),
      objectsAcknowledged: acknowledgedUids.size,
      sendsCutOff: senders.reduce((n, s) => n + s.sendsCutOff, 0),
      lost: stored.lost,
      duplicatedInIndex: stored.duplicated,
      corrupt: stored.corrupt,
      jobs: {
        ...jobs.figures,
        takenOver: loggedTotal(nodes, 'jobs whose node stopped renewing their leases are queued again', 'takenOver'),
        requeuedAtRestart: loggedTotal(nodes, 'jobs interrupted by a stop or crash are queued again', 'requeued'),
      },
      triggers: triggers.figures,
      outbox: outbox.figures,
      dicomdir: dicomdir.figures,
      workerStep: { images: images.size, missing: missingImages.length },
      durationMs: Date.now() - started,
      problems,
    };
    if (problems.length > 0)
      for (const n of nodes) log(`${nodeLabel(n)} output (last 4000 characters):\n${n.server?.output().slice(-4000)}`);
    return figures;
  } finally {
    stopSenders.stopped = true;
    await Promise.all(nodes.map(stopNode));
    senders.forEach((s) => s.abort());
    await index?.close();
    postgres?.stop();
    await peer?.stop();
    if (options.keep || problems.length > 0)
      log(`kept for inspection: ${work} (destination ${peer?.dir}${cluster && !postgres ? `, index ${cluster.indexUrl}` : ''})`);
    else {
      fs.rmSync(work, { recursive: true, force: true });
      if (peer) fs.rmSync(peer.dir, { recursive: true, force: true });
    }
  }
}

/** Starts the node's server and SIGKILLs it `afterMs` later, ready or not; says whether it was ready. */
async function killDuringStartup(n: ServerNode, afterMs: number): Promise<boolean> {
  const config = n.config;
  const child = spawn(nodeBin, [...SERVER_NODE_FLAGS, path.join(repo, 'server/cli.ts'), 'serve', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  n.outputs.push(() => output);
  await Promise.race([sleep(afterMs), exited(child)]);
  if (child.exitCode !== null)
    throw new Error(`the server exited by itself while starting (code ${child.exitCode}):\n${output.slice(-3000)}`);
  child.kill('SIGKILL');
  await exited(child);
  return output.includes('dicomflow is ready');
}

/**
 * Right after a restart: the half-received files the kill left in the node's incoming/ are gone,
 * each object acknowledged so far has a complete, durable arrival (its store job may still be
 * queued), and what is indexed already is whole and indexed once.
 */
async function durableAfterRestart(index: IndexAccess, dataDir: string, senders: Sender[], leftInIncoming: string[]): Promise<string[]> {
  const problems: string[] = [];
  const stillThere = leftInIncoming.filter((f) => fs.existsSync(f));
  if (stillThere.length > 0)
    problems.push(`${stillThere.length} half-received file(s) still in ${path.dirname(stillThere[0])} after the restart`);
  // Taken before reading: on a cluster the other nodes acknowledge more meanwhile.
  const acknowledged = senders.map((s) => ({ name: s.name, uids: [...s.acknowledged] }));
  await index.read(async (q) => {
    const indexed = await q.all(
      'SELECT i.database_name, i.sop_instance_uid, o.path, o.size FROM instances i JOIN objects o ON o.id = i.object_id',
    );
    const seen = new Set<string>();
    for (const r of indexed) {
      const key = `${r.database_name}|${r.sop_instance_uid}`;
      if (seen.has(key)) problems.push(`${r.sop_instance_uid} indexed twice in ${r.database_name}`);
      seen.add(key);
      const size = fs.statSync(path.join(dataDir, 'storage', r.path), { throwIfNoEntry: false })?.size;
      if (size !== r.size) problems.push(`${r.sop_instance_uid} indexed, but its file has ${size ?? 'no'} bytes of ${r.size}`);
    }
    const arrival =
      "SELECT o.path, o.size FROM arrivals a JOIN objects o ON o.id = a.object_id WHERE a.sop_instance_uid = ? AND a.outcome = 'received' AND o.deleted_at IS NULL";
    for (const s of acknowledged) {
      for (const uid of s.uids) {
        const whole = (await q.all(arrival, uid)).filter(
          (r) => fs.statSync(path.join(dataDir, 'storage', r.path), { throwIfNoEntry: false })?.size === r.size,
        );
        if (whole.length === 0) problems.push(`${uid} (${s.name}) acknowledged but no complete object holds it`);
      }
    }
  });
  return problems;
}

/** Waits until no arrival, job, stable group or outbox entry has work left; returns what is left on timeout. */
async function settle(index: IndexAccess, timeoutMs: number): Promise<string | undefined> {
  const end = Date.now() + timeoutMs;
  let left = '';
  while (Date.now() < end) {
    const figures = await index.read(async (q) => {
      const n = async (sql: string) => (await q.get(sql))!.n as number;
      return {
        arrivals: await n('SELECT count(*) AS n FROM arrivals WHERE processed_at IS NULL'),
        jobs: await n("SELECT count(*) AS n FROM jobs WHERE status IN ('queued', 'running')"),
        groups: await n("SELECT count(*) AS n FROM trigger_groups WHERE state = 'open'"),
        outbox: await n("SELECT count(*) AS n FROM outbox WHERE state IN ('queued', 'sending')"),
      };
    });
    left = Object.entries(figures)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ');
    if (left === '') return undefined;
    await sleep(500);
  }
  return `after ${timeoutMs / 1000} s still ${left}`;
}

async function checkIndex(index: IndexAccess, dataDir: string, acknowledged: Set<string>, sent: Map<string, Buffer>) {
  const problems: string[] = [];
  const rows = await index.read((q) =>
    q.all('SELECT i.database_name, i.sop_instance_uid, o.path, o.size, o.deleted_at FROM instances i JOIN objects o ON o.id = i.object_id'),
  );
  const count = new Map<string, number>();
  let corrupt = 0;
  for (const r of rows) {
    const key = `${r.database_name}|${r.sop_instance_uid}`;
    count.set(key, (count.get(key) ?? 0) + 1);
    const file = path.join(dataDir, 'storage', r.path);
    let bytes: Buffer | undefined;
    try {
      bytes = fs.readFileSync(file);
    } catch {
      // missing: below
    }
    const what =
      r.deleted_at !== null
        ? 'indexed but its object is marked deleted'
        : bytes === undefined
          ? `its file ${r.path} is missing`
          : bytes.length !== r.size
            ? `its file has ${bytes.length} bytes, ${r.size} indexed`
            : !splitPart10(bytes).dataset.equals(sent.get(r.sop_instance_uid) ?? Buffer.alloc(0))
              ? 'its stored dataset differs from what was sent'
              : undefined;
    if (what !== undefined) {
      corrupt++;
      problems.push(`index ${r.database_name}: ${r.sop_instance_uid} ${what}`);
    }
  }
  const duplicated = [...count.values()].filter((n) => n > 1).length;
  if (duplicated > 0) problems.push(`${duplicated} SOP Instance UID(s) indexed more than once`);
  const lostUids = [...acknowledged].filter((uid) => !count.has(`Import|${uid}`));
  if (lostUids.length > 0) problems.push(`${lostUids.length} acknowledged object(s) not in the Import database (first ${lostUids[0]})`);
  return { lost: lostUids.length, duplicated, corrupt, problems };
}

async function checkJobs(index: IndexAccess, config: string, interrupted: Set<string>) {
  const problems: string[] = [];
  const rows = await index.read((q) => q.all('SELECT id, pipeline, status, attempts, error FROM jobs'));
  const failed = rows.filter((r) => r.status === 'failed' || r.status === 'cancelled');
  const stuck = rows.filter((r) => r.status === 'queued' || r.status === 'running');
  for (const f of failed.slice(0, 5)) problems.push(`job ${f.id} (${f.pipeline}) ${f.status} after ${f.attempts} attempt(s): ${f.error}`);
  if (failed.length > 5) problems.push(`… ${failed.length} jobs failed in all`);
  if (stuck.length > 0) problems.push(`${stuck.length} job(s) still queued or running`);
  // What an operator sees: `dicomflow jobs` lists the interrupted jobs as succeeded.
  const listed = await new Promise<string>((resolve, reject) => {
    const child = spawn(nodeBin, [path.join(repo, 'server/cli.ts'), 'jobs', '--config', config, '--json', '--limit', '100000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`dicomflow jobs exited with ${code}: ${err}`))));
  });
  const status = new Map((JSON.parse(listed) as { id: string; status: string }[]).map((j) => [j.id, j.status]));
  const notCompleted = [...interrupted].filter((id) => status.get(id) !== 'succeeded');
  if (notCompleted.length > 0)
    problems.push(
      `${notCompleted.length} interrupted job(s) not shown succeeded by \`dicomflow jobs\`: ${notCompleted
        .slice(0, 3)
        .map((id) => `${id} ${status.get(id) ?? 'not listed'}`)
        .join(', ')}`,
    );
  return {
    figures: {
      total: rows.length,
      interrupted: interrupted.size,
      interruptedCompleted: interrupted.size - notCompleted.length,
      failed: failed.length,
      stuck: stuck.length,
    },
    problems,
  };
}

/**
 * Exactly once, whichever node decided: an arrival is matched once (one job per instance
 * pipeline), and each generation of a stable group fires one job (a later generation is a late
 * arrival after the group fired, which the default `lateArrivals: whole` answers with a new job).
 */
async function checkTriggers(index: IndexAccess) {
  const problems: string[] = [];
  const { groups, jobs } = await index.read(async (q) => ({
    groups: await q.all("SELECT pipeline, uid, generation, state, job_id FROM trigger_groups WHERE level = 'series'"),
    jobs: await q.all(
      "SELECT id, pipeline, trigger_on, trigger_uid, inputs FROM jobs WHERE rerun_of IS NULL AND trigger_on IN ('instance', 'series')",
    ),
  }));
  const fired = groups.filter((g) => g.state === 'fired');
  const seriesJobs = jobs.filter((j) => j.trigger_on === 'series');
  const firedJob = new Map<string, number>();
  for (const g of fired) firedJob.set(g.job_id, (firedJob.get(g.job_id) ?? 0) + 1);
  const seriesJobIds = new Set(seriesJobs.map((j) => j.id));
  const withoutJob = fired.filter((g) => !seriesJobIds.has(g.job_id));
  if (withoutJob.length > 0)
    problems.push(
      `${withoutJob.length} fired series group(s) whose job is not there (first ${withoutJob[0].pipeline} ${withoutJob[0].uid} generation ${withoutJob[0].generation})`,
    );
  const shared = [...firedJob.values()].filter((n) => n > 1).length;
  if (shared > 0) problems.push(`${shared} job(s) recorded as the firing of several series groups`);
  // A group fired twice leaves a job no group names (the second firing overwrote job_id).
  const refired = seriesJobs.filter((j) => !firedJob.has(j.id));
  if (refired.length > 0)
    problems.push(
      `${refired.length} series job(s) beyond one per fired generation (first ${refired[0].pipeline} ${refired[0].trigger_uid})`,
    );
  const byArrival = new Map<string, number>();
  for (const j of jobs.filter((j) => j.trigger_on === 'instance'))
    byArrival.set(`${j.pipeline}|${j.inputs}`, (byArrival.get(`${j.pipeline}|${j.inputs}`) ?? 0) + 1);
  const instanceJobsTwice = [...byArrival.values()].filter((n) => n > 1).length;
  if (instanceJobsTwice > 0)
    problems.push(`${instanceJobsTwice} arrival(s) matched more than once (an instance pipeline queued several jobs for one arrival)`);
  const lateGenerations = new Set(fired.filter((g) => g.generation > 1).map((g) => `${g.pipeline}|${g.uid}`));
  return {
    figures: {
      seriesGroupsFired: fired.length,
      seriesJobs: seriesJobs.length,
      seriesRefired: refired.length,
      seriesWithLateGenerations: lateGenerations.size,
      instanceJobsTwice,
    },
    problems,
  };
}

async function checkOutbox(index: IndexAccess, peer: DcmtkPeer, acknowledged: Set<string>, sent: Map<string, Buffer>) {
  const problems: string[] = [];
  const { states, owedUids } = await index.read(async (q) => ({
    states: await q.all("SELECT state, count(*) AS n FROM outbox WHERE destination = 'PACS' GROUP BY state"),
    owedUids: new Set((await q.all("SELECT DISTINCT sop_instance_uid AS uid FROM outbox WHERE destination = 'PACS'")).map((r) => r.uid)),
  }));
  const by = (state: string) => states.find((s) => s.state === state)?.n ?? 0;
  const owed = states.reduce((n, s) => n + s.n, 0);
  if (by('dead') > 0) problems.push(`outbox: ${by('dead')} dead letter(s)`);
  if (by('queued') + by('sending') > 0) problems.push(`outbox: ${by('queued') + by('sending')} entr(ies) not delivered`);
  const notOwed = [...acknowledged].filter((uid) => !owedUids.has(uid));
  if (notOwed.length > 0) problems.push(`outbox: ${notOwed.length} acknowledged object(s) never queued for PACS (first ${notOwed[0]})`);
  // What the destination holds: each acknowledged object once (storescp names files by UID), byte for byte.
  const atDestination = new Map<string, number>();
  for (const name of fs.readdirSync(peer.dir)) {
    if (name.startsWith('.')) continue;
    const parts = splitPart10(fs.readFileSync(path.join(peer.dir, name)));
    atDestination.set(parts.sopInstanceUid, (atDestination.get(parts.sopInstanceUid) ?? 0) + 1);
    if (!parts.dataset.equals(sent.get(parts.sopInstanceUid) ?? Buffer.alloc(0)))
      problems.push(`destination: ${name} differs from what was sent`);
  }
  const missing = [...acknowledged].filter((uid) => !atDestination.has(uid));
  if (missing.length > 0) problems.push(`destination: ${missing.length} acknowledged object(s) missing (first ${missing[0]})`);
  const twice = [...atDestination.values()].filter((n) => n > 1).length;
  if (twice > 0) problems.push(`destination: ${twice} object(s) stored in more than one file`);
  const wireSends = (peer.log().match(/Received Store Request/g) ?? []).length;
  return {
    figures: {
      owed,
      delivered: by('delivered'),
      dead: by('dead'),
      stuck: by('queued') + by('sending'),
      atDestination: atDestination.size,
      missingAtDestination: missing.length,
      wireSends,
    },
    problems,
  };
}

async function checkDicomdir(root: string, acknowledged: Set<string>) {
  const problems: string[] = [];
  const file = path.join(root, 'DICOMDIR');
  if (!fs.existsSync(file))
    return { figures: { valid: false, listed: 0, missing: acknowledged.size }, problems: ['no DICOMDIR was written'] };
  const dump = await dcmdump([file]);
  if (dump.code !== 0 || dump.stderr !== '' || /^[WE]: /m.test(dump.stdout))
    problems.push(
      `DICOMDIR: dcmdump complains: ${(dump.stderr || dump.stdout.match(/^[WE]: .*$/m)?.[0] || `exit ${dump.code}`).slice(0, 300)}`,
    );
  const vfy = await runDcmtk('dciodvfy', [file]);
  const errors = `${vfy.stdout}${vfy.stderr}`.split('\n').filter((l) => /^Error/.test(l));
  if (errors.length > 0) problems.push(`DICOMDIR: dciodvfy: ${errors.slice(0, 3).join('; ')}`);
  const search = await dcmdump(['-Un', '+P', 'ReferencedSOPInstanceUIDInFile', '+P', 'ReferencedFileID', file]);
  const listed = [...search.stdout.matchAll(/\(0004,1511\) UI \[([^\]]*)\]/g)].map((m) => m[1].replace(/\0+$/, ''));
  const fileIds = [...search.stdout.matchAll(/\(0004,1500\) CS \[([^\]]*)\]/g)].map((m) => m[1].trim());
  const listedSet = new Set(listed);
  if (listedSet.size !== listed.length) problems.push(`DICOMDIR: ${listed.length - listedSet.size} instance(s) listed more than once`);
  const missing = [...acknowledged].filter((uid) => !listedSet.has(uid));
  if (missing.length > 0) problems.push(`DICOMDIR: ${missing.length} acknowledged instance(s) not listed (first ${missing[0]})`);
  const absent = fileIds.filter((id) => !fs.existsSync(path.join(root, ...id.split('\\'))));
  if (absent.length > 0) problems.push(`DICOMDIR: ${absent.length} referenced file(s) missing (first ${absent[0]})`);
  return { figures: { valid: problems.length === 0, listed: listedSet.size, missing: missing.length }, problems };
}

// `node test/proof/crash-harness.ts --kill-points 20 --senders 6 --seed 7 [--per-sender 80] [--json] [--keep]
//    [--nodes node-a,node-b [--lease-seconds 3] [--index-url postgres://…/fresh-database]]`
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      'kill-points': { type: 'string', default: '20' },
      senders: { type: 'string', default: '6' },
      seed: { type: 'string', default: String(Date.now() % 1_000_000) },
      'per-sender': { type: 'string' },
      nodes: { type: 'string' },
      'lease-seconds': { type: 'string', default: '3' },
      'index-url': { type: 'string' },
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
  });
  const figures = await runCrashProof({
    killPoints: Number(values['kill-points']),
    senders: Number(values.senders),
    seed: Number(values.seed),
    instancesPerSender: values['per-sender'] === undefined ? undefined : Number(values['per-sender']),
    cluster:
      values.nodes === undefined
        ? undefined
        : { nodes: values.nodes.split(','), leaseSeconds: Number(values['lease-seconds']), indexUrl: values['index-url'] },
    keep: values.keep,
    log: (line) => console.error(line),
  });
  console.log(values.json ? JSON.stringify(figures, null, 2) : figures);
  process.exitCode = figures.problems.length === 0 ? 0 : 1;
}
