// Everything a bench starts or creates is registered here, so that a thrown error, Ctrl-C or
// SIGTERM leaves no server running and no gigabytes in /tmp. Children are stopped by their own pid,
// never by name: other dicomflow, storescp or Orthanc processes on the machine are not ours.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let stopping = false;

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Registers a child so that it is stopped on exit, error or signal. */
export function trackChild<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  // A child started while the bench is being interrupted must not outlive it.
  if (stopping) child.kill('SIGKILL');
  return child;
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the child has exited. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (!isRunning(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (isRunning(child)) child.kill('SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** A new directory under the system's temporary directory, removed by `cleanUp` at the latest. */
export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Stops every tracked child and removes every temporary directory. */
export async function cleanUp(): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child, 3_000)));
  for (const dir of [...tempDirs]) removeTempDir(dir);
}

/**
 * Ctrl-C and SIGTERM clean up and exit (130 / 143); a last synchronous pass on 'exit' covers an
 * exit nobody planned (process.exit from a library, an uncaught error).
 */
export function installCleanupHandlers(): void {
  const onSignal = (signal: NodeJS.Signals, exitCode: number) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping child processes and removing temporary files…\n`);
    void cleanUp().finally(() => process.exit(exitCode));
  };
  process.once('SIGINT', () => onSignal('SIGINT', 130));
  process.once('SIGTERM', () => onSignal('SIGTERM', 143));
  process.once('exit', () => {
    for (const child of children) if (isRunning(child)) child.kill('SIGKILL');
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  });
}
