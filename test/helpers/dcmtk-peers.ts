// DCMTK peers run as child processes for integration tests: storescp as a storage destination,
// dcmqrscp as a query/retrieve archive. Each listens on a free loopback port and is stopped by
// its own pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './net.ts';

export interface DcmtkPeer {
  port: number;
  aeTitle: string;
  /** Where received objects land (storescp -od, dcmqrscp's storage area). */
  dir: string;
  process: ChildProcess;
  /** Everything the peer logged so far (stdout and stderr). */
  log(): string;
  stop(): Promise<void>;
}

function startPeer(tool: string, args: string[], port: number, aeTitle: string, dir: string): Promise<DcmtkPeer> {
  const child = spawn(tool, args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (log += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (log += text));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const peer: DcmtkPeer = {
    port,
    aeTitle,
    dir,
    process: child,
    log: () => log,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  return Promise.race([
    waitForPort(port).then(() => peer),
    exited.then(() => {
      throw new Error(`${tool} exited before listening on port ${port}:\n${log}`);
    }),
  ]).catch(async (error: unknown) => {
    await peer.stop();
    throw error;
  });
}

export interface StorescpOptions {
  aeTitle?: string;
  /** Directory for received files; default a new temporary one. */
  outDir?: string;
  /** Extra storescp options, e.g. ['--refuse'] or ['--abort-after']. */
  args?: string[];
  /** Listen on this port (a destination configured before its peer starts); default a free one. */
  port?: number;
}

/**
 * storescp in bit-preserving mode (+B): each received data set is written exactly as it arrived,
 * after a new meta group, so a test can compare bytes.
 */
export async function startStorescp(options: StorescpOptions = {}): Promise<DcmtkPeer> {
  const port = options.port ?? (await freePort());
  const aeTitle = options.aeTitle ?? 'STORESCP';
  const dir = options.outDir ?? (await mkdtemp(path.join(os.tmpdir(), 'dicomflow-storescp-')));
  const args = ['-aet', aeTitle, '+B', '-od', dir, ...(options.args ?? []), String(port)];
  return startPeer('storescp', args, port, aeTitle, dir);
}

export interface DcmqrscpOptions {
  aeTitle?: string;
  /** Directory for the configuration and the storage area; default a new temporary one. */
  baseDir?: string;
}

/**
 * dcmqrscp as a small archive that accepts C-STORE from anyone and answers C-FIND.
 * It runs in its default forking mode: Debian's DCMTK 3.6.7 dcmqrscp --single-process crashes
 * (SIGSEGV) once the first association is released.
 */
export async function startDcmqrscp(options: DcmqrscpOptions = {}): Promise<DcmtkPeer> {
  const port = await freePort();
  const aeTitle = options.aeTitle ?? 'QRSCP';
  const baseDir = options.baseDir ?? (await mkdtemp(path.join(os.tmpdir(), 'dicomflow-dcmqrscp-')));
  const dir = path.join(baseDir, 'db');
  await mkdir(dir, { recursive: true });
  const config = path.join(baseDir, 'dcmqrscp.cfg');
  await writeFile(
    config,
    [
      `NetworkTCPPort  = ${port}`,
      'MaxPDUSize      = 16384',
      'MaxAssociations = 16',
      '',
      'HostTable BEGIN',
      'HostTable END',
      '',
      'VendorTable BEGIN',
      'VendorTable END',
      '',
      'AETable BEGIN',
      `${aeTitle}  ${dir}  RW  (200, 1024mb)  ANY`,
      'AETable END',
      '',
    ].join('\n'),
  );
  return startPeer('dcmqrscp', ['-c', config, String(port)], port, aeTitle, dir);
}
