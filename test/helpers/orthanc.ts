// Orthanc (Debian package `orthanc`) as a real peer for integration tests: its own storage and
// index in a temporary directory, DICOM on a given or free loopback port, REST on another.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './net.ts';
import { recordMissing } from './skip-reasons.ts';

export interface OrthancPeer {
  aeTitle: string;
  port: number;
  httpPort: number;
  /** SOP Instance UID → the stored file's bytes, as Orthanc gives them back. */
  instances(): Promise<Map<string, Buffer>>;
  log(): string;
  stop(): Promise<void>;
}

export function hasOrthanc(): boolean {
  try {
    execFileSync('Orthanc', ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    recordMissing('Orthanc is not installed (Debian: orthanc)');
    return false;
  }
}

/** Orthanc's DICOMweb plugin (Debian package `orthanc-dicomweb`). */
export const ORTHANC_DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';

export function hasOrthancDicomWeb(): boolean {
  return hasOrthanc() && fs.existsSync(ORTHANC_DICOMWEB_PLUGIN);
}

/** `config`: more of Orthanc's configuration (Plugins, DicomWeb…), merged over the defaults. */
export async function startOrthanc(
  options: { aeTitle?: string; port?: number; config?: Record<string, unknown> } = {},
): Promise<OrthancPeer> {
  const aeTitle = options.aeTitle ?? 'ORTHANC';
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-orthanc-'));
  const port = options.port ?? (await freePort());
  const httpPort = await freePort();
  const configFile = path.join(root, 'orthanc.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      Name: 'dicomflow-test',
      StorageDirectory: path.join(root, 'storage'),
      IndexDirectory: path.join(root, 'index'),
      DicomAet: aeTitle,
      DicomPort: port,
      HttpPort: httpPort,
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      // Any calling AE may store (Orthanc's default when DicomCheckCalledAet is off).
      DicomCheckCalledAet: false,
      ...options.config,
    }),
  );
  const child = spawn('Orthanc', [configFile], { cwd: root, env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (t: string) => (log += t));
  child.stderr.setEncoding('utf8').on('data', (t: string) => (log += t));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    fs.rmSync(root, { recursive: true, force: true });
  };
  const rest = async (url: string) => {
    const response = await fetch(`http://127.0.0.1:${httpPort}${url}`);
    if (!response.ok) throw new Error(`Orthanc GET ${url} answered ${response.status}`);
    return response;
  };
  try {
    await Promise.race([
      Promise.all([waitForPort(port), waitForPort(httpPort)]),
      exited.then(() => {
        throw new Error(`Orthanc exited before listening:\n${log}`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    aeTitle,
    port,
    httpPort,
    log: () => log,
    stop,
    async instances() {
      const ids = (await (await rest('/instances')).json()) as string[];
      const out = new Map<string, Buffer>();
      for (const id of ids) {
        const tags = (await (await rest(`/instances/${id}/simplified-tags`)).json()) as { SOPInstanceUID: string };
        out.set(tags.SOPInstanceUID, Buffer.from(await (await rest(`/instances/${id}/file`)).arrayBuffer()));
      }
      return out;
    },
  };
}
