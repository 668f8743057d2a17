// Storage SCPs a bench sends to, each started as a child process on free loopback ports with a
// fresh data directory: dicomflow itself, DCMTK's storescp and Orthanc. Each can say how many
// objects it stored, counted its own way, so a bench checks correctness in passing.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, waitForPort } from '../../test/helpers/net.ts';
import { isRunning, makeTempDir, removeTempDir, stopChild, trackChild } from './cleanup.ts';
import { spawnDicomflow } from './dicomflow-process.ts';

export interface StoredCount {
  stored: number;
  /** How the count was made, and anything that disagrees with it. */
  detail: string;
}

export interface RunningTarget {
  aeTitle: string;
  port: number;
  pid: number;
  child: ChildProcess;
  /**
   * The process trees whose CPU time is the target's work: `target`, its own (with its worker or
   * forked processes), and `postgres`, the database server dicomflow on PostgreSQL commits to.
   */
  processGroups(): Record<string, number[]>;
  storedCount(): Promise<StoredCount>;
  /** Warnings and errors the target logged (bounded), for a report when a check fails. */
  problems(): string[];
  /** The first and last lines of its output. */
  log(): string[];
  /** Set once the process has ended: how. */
  exitStatus(): string | undefined;
  /** Stops the process and removes its data. */
  stop(): Promise<void>;
}

export interface TargetKind {
  name: string;
  /** One line for the report: what this target does to make an object durable. */
  durability: string;
  start(): Promise<RunningTarget>;
}

const LOG_LINES_KEPT = 60;
// Debian's DCMTK leaves Nagle's algorithm on unless this is set; Orthanc links the same library.
const DCMTK_ENV = { ...process.env, TCP_NODELAY: '1' };

/** Keeps the first and the last lines a process prints: start-up, and what it said before dying. */
class LogTail {
  readonly head: string[] = [];
  readonly tail: string[] = [];
  #dropped = 0;
  #partial = '';

  feed(text: string): string[] {
    const parts = (this.#partial + text).split('\n');
    this.#partial = parts.pop() ?? '';
    for (const line of parts) {
      if (this.head.length < LOG_LINES_KEPT / 2) {
        this.head.push(line);
        continue;
      }
      this.tail.push(line);
      if (this.tail.length > LOG_LINES_KEPT / 2) {
        this.tail.shift();
        this.#dropped++;
      }
    }
    return parts;
  }

  get lines(): string[] {
    const partial = this.#partial === '' ? [] : [this.#partial];
    return [...this.head, ...(this.#dropped > 0 ? [`… ${this.#dropped} lines not kept …`] : []), ...this.tail, ...partial];
  }
}

function exitStatus(child: ChildProcess): string | undefined {
  if (child.exitCode !== null) return `exited with code ${child.exitCode}`;
  if (child.signalCode !== null) return `killed by ${child.signalCode}`;
  return undefined;
}

function exitedEarly(child: ChildProcess, what: string, log: LogTail): Promise<never> {
  return new Promise((_resolve, reject) => {
    child.once('exit', (code, signal) =>
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready:\n${log.lines.join('\n')}`)),
    );
  });
}

async function readyOrStop<T>(child: ChildProcess, ready: Promise<T>, what: string, log: LogTail): Promise<T> {
  try {
    return await Promise.race([ready, exitedEarly(child, what, log)]);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
}

function countFiles(dir: string, suffix = ''): number {
  if (!fs.existsSync(dir)) return 0;
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(suffix)).length;
}

export interface DicomflowTargetOptions {
  /** The row's name (default "dicomflow"). */
  name?: string;
  /**
   * A fresh PostgreSQL database's URL for each start (`index: { backend: "postgres" }`); without
   * it, the default index: SQLite in the data directory.
   */
  postgresDatabase?: () => Promise<string>;
  /** The PostgreSQL server's processes, whose CPU time the node's commits cost. */
  postgresPids?: () => number[];
}

/** dicomflow serve with its default (durable) settings; only the addresses, data directory and index are set. */
export function dicomflowTarget(options: DicomflowTargetOptions = {}): TargetKind {
  const { name = 'dicomflow', postgresDatabase, postgresPids } = options;
  const index =
    postgresDatabase === undefined
      ? "its object and arrival rows are committed with the SQLite WAL fsync'ed (synchronous=FULL's guarantee)"
      : "its rows are committed to PostgreSQL (defaults: fsync on, synchronous_commit on, so the commit's WAL is flushed)";
  return {
    name,
    durability: `Success after the object file is fsync'ed and renamed into place (directory fsync'ed) and ${index}`,
    async start() {
      const root = makeTempDir('dicomflow-bench-df-');
      const dataDir = path.join(root, 'data');
      const configFile = path.join(root, 'config.json');
      let indexConfig = {};
      try {
        if (postgresDatabase !== undefined) indexConfig = { index: { backend: 'postgres', url: await postgresDatabase() } };
      } catch (error) {
        removeTempDir(root);
        throw error;
      }
      // Port 0: the server picks free ports and logs them in its ready line (no race with freePort).
      fs.writeFileSync(
        configFile,
        JSON.stringify({ dataDir, dimse: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 }, ...indexConfig }),
      );
      let server;
      try {
        server = await spawnDicomflow(configFile);
      } catch (error) {
        removeTempDir(root);
        throw error;
      }
      const { child } = server;
      const ports = { dicomPort: server.dicomPort, httpPort: server.httpPort };
      const token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
      return {
        aeTitle: 'DICOMFLOW',
        port: ports.dicomPort,
        pid: child.pid!,
        child,
        processGroups: () => ({ target: [child.pid!], ...(postgresPids !== undefined && { postgres: postgresPids() }) }),
        problems: () => server.problems,
        log: () => server.lastLines,
        exitStatus: () => [exitStatus(child), server.shutdownBeforeStop()].filter((s) => s !== undefined).join('; ') || undefined,
        async storedCount() {
          const response = await fetch(`http://127.0.0.1:${ports.httpPort}/api/status`, { headers: { authorization: `Bearer ${token}` } });
          if (!response.ok) throw new Error(`GET /api/status answered ${response.status}: ${await response.text()}`);
          const status = (await response.json()) as { received: { objects: number; failures: number; duplicates: number } };
          const files = countFiles(path.join(dataDir, 'storage/objects'), '.dcm');
          const { objects, failures, duplicates } = status.received;
          const detail = `api received.objects ${objects}, files in storage/objects ${files}, failures ${failures}, duplicates ${duplicates}`;
          return { stored: files === objects ? objects : Math.min(files, objects), detail };
        },
        async stop() {
          server.stopping();
          await stopChild(child);
          removeTempDir(root);
        },
      };
    },
  };
}

/** DCMTK storescp writing each object to a file; it answers Success without fsync. */
export function storescpTarget(name: string, extraArgs: string[]): TargetKind {
  return {
    name,
    durability: 'no fsync: Success once the file is written to the page cache',
    async start() {
      const dir = makeTempDir('dicomflow-bench-storescp-');
      const port = await freePort();
      const child = trackChild(
        spawn('storescp', ['-aet', 'STORESCP', ...extraArgs, '-od', dir, String(port)], {
          env: DCMTK_ENV,
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      const log = new LogTail();
      child.stdout!.setEncoding('utf8').on('data', (text: string) => log.feed(text));
      child.stderr!.setEncoding('utf8').on('data', (text: string) => log.feed(text));
      await readyOrStop(child, waitForPort(port), 'storescp', log);
      return {
        aeTitle: 'STORESCP',
        port,
        pid: child.pid!,
        child,
        processGroups: () => ({ target: [child.pid!] }),
        problems: () => log.lines,
        log: () => log.lines,
        exitStatus: () => exitStatus(child),
        async storedCount() {
          const stored = countFiles(dir);
          return { stored, detail: `files in -od directory ${stored}` };
        },
        async stop() {
          await stopChild(child);
          removeTempDir(dir);
        },
      };
    },
  };
}

export interface OrthancInfo {
  version: string;
  /** The settings that decide what its Success costs, as this version's defaults have them. */
  settings: string;
}

/** `Orthanc --version`'s first line ("Orthanc 1.10.1"), or undefined when Orthanc is not installed. */
export function orthancVersion(): string | undefined {
  try {
    const out = execFileSync('Orthanc', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    return /Orthanc\s+(\d+\.\d+\.\d+)/.exec(out)?.[1] ?? out.split('\n')[0];
  } catch {
    return undefined;
  }
}

function versionAtLeast(version: string, wanted: [number, number, number]): boolean {
  const parts = version.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if ((parts[i] ?? 0) !== wanted[i]) return (parts[i] ?? 0) > wanted[i];
  }
  return true;
}

/**
 * What Orthanc does with our configuration, which sets none of these (its defaults apply):
 * StorageCompression defaults to false in every version; SyncStorageArea (fsync of each stored
 * file) appeared in 1.7.4 defaulting to true; MaximumPduLength appeared in 1.9.0 at 16 KiB. The
 * SQLite index is opened with journal_mode=WAL and synchronous=NORMAL (strings in the binary:
 * `PRAGMA SYNCHRONOUS=NORMAL;`), so an index commit is not fsync'ed before Success.
 */
export function orthancSettings(version: string): string {
  const sync = versionAtLeast(version, [1, 7, 4])
    ? 'SyncStorageArea true (fsync of each file)'
    : 'no SyncStorageArea option (no fsync of files)';
  const pdu = versionAtLeast(version, [1, 9, 0]) ? 'MaximumPduLength 16384' : 'max PDU fixed by DCMTK';
  return `StorageCompression false (off), ${sync}, SQLite index WAL with synchronous=NORMAL (commits not fsync'ed), ${pdu}`;
}

/**
 * Orthanc with a generated configuration: its own storage and index, no plugins, no remote access.
 * `extra` adds settings (the C-FIND bench lets any AE query: DicomAlwaysAllowFind).
 */
export function orthancTarget(version: string, extra: Record<string, unknown> = {}): TargetKind {
  return {
    name: 'Orthanc',
    durability: orthancSettings(version),
    async start() {
      const root = makeTempDir('dicomflow-bench-orthanc-');
      const [dicomPort, httpPort] = [await freePort(), await freePort()];
      const config = {
        Name: 'dicomflow-bench',
        StorageDirectory: path.join(root, 'storage'),
        IndexDirectory: path.join(root, 'index'),
        DicomAet: 'ORTHANC',
        DicomPort: dicomPort,
        HttpPort: httpPort,
        RemoteAccessAllowed: false,
        AuthenticationEnabled: false,
        ...extra,
      };
      const configFile = path.join(root, 'orthanc.json');
      fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
      const child = trackChild(spawn('Orthanc', [configFile], { cwd: root, env: DCMTK_ENV, stdio: ['ignore', 'pipe', 'pipe'] }));
      const log = new LogTail();
      const problems: string[] = [];
      const onLines = (lines: string[]) => {
        // Orthanc's log lines start with the severity letter: W (warning) and E (error).
        for (const line of lines) if (/^E/.test(line) && problems.length < LOG_LINES_KEPT) problems.push(line);
      };
      child.stdout!.setEncoding('utf8').on('data', (text: string) => onLines(log.feed(text)));
      child.stderr!.setEncoding('utf8').on('data', (text: string) => onLines(log.feed(text)));
      await readyOrStop(child, waitForPort(dicomPort, '127.0.0.1', 30_000), 'Orthanc', log);
      return {
        aeTitle: 'ORTHANC',
        port: dicomPort,
        pid: child.pid!,
        child,
        processGroups: () => ({ target: [child.pid!] }),
        problems: () => problems,
        log: () => log.lines,
        exitStatus: () => exitStatus(child),
        async storedCount() {
          const response = await fetch(`http://127.0.0.1:${httpPort}/statistics`);
          if (!response.ok) throw new Error(`Orthanc GET /statistics answered ${response.status}`);
          const stats = (await response.json()) as { CountInstances: number };
          return { stored: stats.CountInstances, detail: `GET /statistics CountInstances ${stats.CountInstances}` };
        },
        async stop() {
          if (isRunning(child)) await stopChild(child, 15_000);
          removeTempDir(root);
        },
      };
    },
  };
}
