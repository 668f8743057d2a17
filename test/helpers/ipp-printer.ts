// A real IPP printer for tests: CUPS's ippeveprinter (Debian cups-ipp-utils) on a loopback port.
//
// ippeveprinter will not start without DNS-SD ("Unable to initialize DNS-SD"), which means an
// avahi-daemon reachable over a D-Bus system bus. The helper starts its own: a private
// dbus-daemon on a socket in a temporary folder (DBUS_SYSTEM_BUS_ADDRESS points both avahi and
// ippeveprinter at it), and avahi limited to the loopback interface (no mDNS on the real network),
// in a private mount namespace so its fixed /run/avahi-daemon/pid does not clash with another
// test's avahi. Everything is stopped, by pid, in stop() (and at process exit).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './net.ts';
import { recordMissing } from './skip-reasons.ts';

export interface IppPrinter {
  /** ipp://localhost:PORT/ipp/print */
  uri: string;
  port: number;
  /** Where ippeveprinter keeps each job's document (-k): `<job-id>-<job-name>.<ext>`. */
  spoolDir: string;
  /** The documents received so far (not the output files of the print command, *.prn). */
  documents(): { jobId: number; file: string; bytes: Buffer }[];
  stop(): Promise<void>;
}

const TOOLS = ['ippeveprinter', 'avahi-daemon', 'dbus-daemon'];

/** Why the printer cannot run here, or undefined when it can. */
export function ippPrinterUnavailable(): string | undefined {
  const why = ippPrinterProblem();
  if (why) recordMissing(`IPP printer: ${why}`);
  return why;
}

function ippPrinterProblem(): string | undefined {
  for (const tool of TOOLS) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return `${tool} is not installed (Debian: cups-ipp-utils, avahi-daemon, dbus)`;
  }
  if (process.getuid?.() !== 0) return 'avahi-daemon needs root here';
  return undefined;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function start(command: string, args: string[], env: NodeJS.ProcessEnv, log: string[]): ChildProcess {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const collect = (chunk: Buffer) => log.push(chunk.toString());
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

async function waitFor(what: string, ready: () => boolean, log: string[], child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ready()) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${log.join('').trim()}`);
    if (Date.now() > end) throw new Error(`${what} not ready after ${timeoutMs} ms: ${log.join('').trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts ippeveprinter accepting PDF and JPEG on a free loopback port. Jobs are "printed" by
 * running /bin/true on the spooled document (a job completes in a moment instead of the
 * simulated ten seconds), and kept in the spool folder (-k).
 */
export async function startIppPrinter(options: { name?: string } = {}): Promise<IppPrinter> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'df-ipp-'));
  const spoolDir = path.join(dir, 'spool');
  fs.mkdirSync(spoolDir);
  const socket = path.join(dir, 'system_bus.sock');
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    fs.writeFileSync(
      path.join(dir, 'dbus.conf'),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy>
</busconfig>
`,
    );
    fs.writeFileSync(
      path.join(dir, 'avahi.conf'),
      '[server]\nuse-ipv4=yes\nuse-ipv6=yes\nallow-interfaces=lo\nenable-dbus=yes\n[publish]\npublish-addresses=no\npublish-hinfo=no\npublish-workstation=no\n',
    );
    const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}` };

    const dbusLog: string[] = [];
    const dbus = start('dbus-daemon', [`--config-file=${path.join(dir, 'dbus.conf')}`, '--nofork', '--nopidfile'], env, dbusLog);
    children.push(dbus);
    await waitFor('dbus-daemon', () => fs.existsSync(socket), dbusLog, dbus);

    const avahiArgs = ['--no-drop-root', '--no-chroot', '--no-rlimits', '--no-proc-title', '-f', path.join(dir, 'avahi.conf')];
    let avahiLog: string[] = [];
    let avahi = start(
      'unshare',
      [
        '-m',
        'sh',
        '-c',
        'mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && exec avahi-daemon "$@"',
        'sh',
        ...avahiArgs,
      ],
      env,
      avahiLog,
    );
    children.push(avahi);
    try {
      await waitFor('avahi-daemon', () => avahiLog.join('').includes('Server startup complete'), avahiLog, avahi);
    } catch (err) {
      // No mount namespace here (no CAP_SYS_ADMIN): share /run/avahi-daemon, fine while no other avahi runs.
      if (!/unshare|mount/.test(avahiLog.join(''))) throw err;
      avahiLog = [];
      avahi = start('avahi-daemon', avahiArgs, env, avahiLog);
      children.push(avahi);
      await waitFor('avahi-daemon', () => avahiLog.join('').includes('Server startup complete'), avahiLog, avahi);
    }

    const port = await freePort();
    const printerLog: string[] = [];
    // -n localhost: with 127.0.0.1 it fails on its IPv6 listener.
    const printer = start(
      'ippeveprinter',
      [
        '-p',
        String(port),
        '-n',
        'localhost',
        '-d',
        spoolDir,
        '-k',
        '-f',
        'application/pdf,image/jpeg',
        '-c',
        '/bin/true',
        options.name ?? 'dicomflow test printer',
      ],
      env,
      printerLog,
    );
    children.push(printer);
    await Promise.race([
      waitForPort(port, '127.0.0.1', 10_000),
      new Promise((_, reject) =>
        printer.once('exit', (code) => reject(new Error(`ippeveprinter exited with ${code}: ${printerLog.join('').trim()}`))),
      ),
    ]);
    return {
      uri: `ipp://localhost:${port}/ipp/print`,
      port,
      spoolDir,
      documents: () =>
        fs
          .readdirSync(spoolDir)
          .filter((f) => /^\d+-/.test(f) && !f.endsWith('.prn'))
          .map((f) => ({ jobId: Number(f.split('-')[0]), file: path.join(spoolDir, f), bytes: fs.readFileSync(path.join(spoolDir, f)) }))
          .sort((a, b) => a.jobId - b.jobId),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
