import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stopChild, trackChild } from './cleanup.ts';
import { SERVER_NODE_FLAGS } from '../../server/node-flags.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const LOG_LINES_KEPT = 60;

export interface DicomflowProcess {
  child: ChildProcess;
  dicomPort: number;
  httpPort: number;
  /** Its warnings and errors (pino level ≥ 40) and lines that are not JSON, the first few. */
  problems: string[];
  /** The last lines it printed. */
  lastLines: string[];
  /** Set when it logged "shutting down" before stopping() was called: a signal from elsewhere. */
  shutdownBeforeStop(): string | undefined;
  /** From now on a "shutting down" line is expected. */
  stopping(): void;
}

/**
 * `dicomflow serve --config FILE` as a child process, read through its JSON log: resolves once it
 * logs "dicomflow is ready" with the ports it got (configure ports 0: no race over free ports).
 */
export async function spawnDicomflow(configFile: string): Promise<DicomflowProcess> {
  const nodeBin = fs.existsSync(path.join(repoRoot, 'node_modules/.bin/node'))
    ? path.join(repoRoot, 'node_modules/.bin/node')
    : process.execPath;
  const child = trackChild(
    spawn(nodeBin, [...SERVER_NODE_FLAGS, path.join(repoRoot, 'server/cli.ts'), 'serve', '--config', configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const problems: string[] = [];
  const lastLines: string[] = [];
  let partial = '';
  let stopping = false;
  let shutdownBeforeStop: string | undefined;
  let onReady: (ports: { dicomPort: number; httpPort: number }) => void = () => {};
  const ready = new Promise<{ dicomPort: number; httpPort: number }>((resolve) => (onReady = resolve));
  const onData = (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      lastLines.push(line);
      if (lastLines.length > LOG_LINES_KEPT) lastLines.shift();
      let entry: { level?: number; msg?: string; signal?: string; dicomPort?: number; httpPort?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        if (line.trim() !== '' && problems.length < LOG_LINES_KEPT) problems.push(line);
        continue;
      }
      // cli.ts logs this when it gets SIGINT/SIGTERM; before stop() that signal came from elsewhere.
      if (entry.msg === 'shutting down' && !stopping) {
        shutdownBeforeStop ??= `logged "shutting down" (${String(entry.signal)}) before the bench stopped it: something outside the bench signalled it`;
      }
      if (entry.msg === 'dicomflow is ready' && entry.dicomPort !== undefined && entry.httpPort !== undefined)
        onReady({ dicomPort: entry.dicomPort, httpPort: entry.httpPort });
      // pino levels: 40 warn, 50 error, 60 fatal.
      if ((entry.level ?? 0) >= 40 && problems.length < LOG_LINES_KEPT) problems.push(line);
    }
  };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  const failed = new Promise<never>((_resolve, reject) => {
    child.once('exit', (code, signal) =>
      reject(new Error(`dicomflow exited (${code ?? signal}) before it was ready:\n${lastLines.join('\n')}`)),
    );
    setTimeout(() => reject(new Error(`dicomflow did not log "dicomflow is ready" within 30 s:\n${lastLines.join('\n')}`)), 30_000).unref();
  });
  failed.catch(() => {});
  let ports: { dicomPort: number; httpPort: number };
  try {
    ports = await Promise.race([ready, failed]);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return {
    child,
    ...ports,
    problems,
    lastLines,
    shutdownBeforeStop: () => shutdownBeforeStop,
    stopping: () => {
      stopping = true;
    },
  };
}
