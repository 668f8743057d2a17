/**
 * A dicomflow server as its own process in a temp root, for the fuzzers: it must outlive every
 * case, so a crash shows as the process exiting rather than as the test runner dying. Its pino
 * lines (stdout) are parsed to check that each refusal was logged with a DF_ERR code.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { freePort } from '../helpers/net.ts';
import { spawnServer, tempDir } from '../helpers/server.ts';

export interface LogLine {
  level: number;
  msg: string;
  code?: string;
  peerPort?: number;
  associationId?: string;
  sopInstanceUid?: string;
  [key: string]: unknown;
}

export interface FuzzServer {
  root: string;
  dataDir: string;
  watchDir: string;
  host: string;
  port: number;
  child: ChildProcess;
  /** Log lines parsed so far. */
  logs(): LogLine[];
  /** Exit code or signal if the process has ended (a crash), else undefined. */
  exited(): string | undefined;
  stop(): Promise<void>;
}

export async function startFuzzServer(extraConfig: Record<string, unknown> = {}): Promise<FuzzServer> {
  const root = tempDir('df-fuzz-');
  const dataDir = path.join(root, 'data');
  const watchDir = path.join(root, 'watch');
  const pipelinesDir = path.join(root, 'pipelines');
  fs.mkdirSync(pipelinesDir);
  // Besides the default store-received: a DICOMDIR file-set fed from every arrival, the one
  // built-in step that lays files out from received objects.
  fs.writeFileSync(
    path.join(pipelinesDir, 'fuzz-dicomdir.json'),
    JSON.stringify({
      name: 'fuzz-dicomdir',
      trigger: { on: 'instance' },
      steps: [{ plugin: 'dicomdir', options: { root: path.join(dataDir, 'dicomdir'), fileSetId: 'FUZZ' } }],
    }),
  );
  const port = await freePort();
  const httpPort = await freePort();
  const config = {
    dataDir,
    pipelinesDir,
    // Short ARTIM and DIMSE timers end what a case leaves unfinished (dimse-runner.ts waits for
    // them); a long idle timer, so that a request met with silence is not ended by it. One host
    // plays every peer: it may hold every slot.
    dimse: {
      host: '127.0.0.1',
      port,
      maxPduLength: 16384,
      artimTimeoutSeconds: 2,
      pduTimeoutSeconds: 2,
      associationTimeoutSeconds: 120,
      maxAssociations: 64,
      maxAssociationsPerPeer: 64,
    },
    http: { host: '127.0.0.1', port: httpPort },
    storage: { minFreeMegabytes: 16 },
    engine: { workerThreads: 1, concurrency: 4 },
    watchFolders: [{ path: watchDir, stableSeconds: 0.3, pollSeconds: 0.2 }],
    log: { level: 'info' },
    ...extraConfig,
  };
  const configFile = path.join(root, 'config.json');
  fs.writeFileSync(configFile, JSON.stringify(config));
  const { child, output } = await spawnServer(['--config', configFile]);
  let parsedUpTo = 0;
  const lines: LogLine[] = [];
  let exit: string | undefined;
  child.on('exit', (code, signal) => (exit = signal ?? `exit code ${code}`));
  return {
    root,
    dataDir,
    watchDir,
    host: '127.0.0.1',
    port,
    child,
    logs() {
      const text = output();
      const end = text.lastIndexOf('\n') + 1;
      for (const line of text.slice(parsedUpTo, end).split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          lines.push(JSON.parse(line) as LogLine);
        } catch {
          // a non-JSON line (e.g. a warning from Node) is not a log entry
        }
      }
      parsedUpTo = end;
      return lines;
    },
    exited: () => exit,
    async stop() {
      if (exit === undefined) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    },
  };
}

/**
 * Files under `root` that are not inside one of `allowed` (relative folder names), and any file
 * at `sentinels` (absolute paths a traversal UID would have reached).
 */
export function filesOutsideRoots(root: string, allowed: string[], sentinels: string[] = []): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (entry.isDirectory()) continue;
    const rel = path.relative(root, path.join(entry.parentPath, entry.name));
    if (!allowed.some((a) => rel === a || rel.startsWith(a + path.sep))) out.push(rel);
  }
  for (const s of sentinels) if (fs.existsSync(s)) out.push(s);
  return out;
}

export interface IndexCount {
  /** Live objects per SOP Instance UID. */
  objects(sopInstanceUid: string): number;
  close(): void;
}

/** Reads the server's index while it runs (WAL: readers do not block it). */
export function openIndex(dataDir: string): IndexCount {
  const db = new Database(path.join(dataDir, 'index.sqlite'), { readonly: true, fileMustExist: true });
  const count = db.prepare('SELECT count(*) AS n FROM objects WHERE sop_instance_uid = ? AND deleted_at IS NULL');
  return {
    objects: (uid) => (count.get(uid) as { n: number }).n,
    close: () => db.close(),
  };
}
