// DCMTK storescu as the benches' sender: one association per process, its files on the command line.
import { spawn } from 'node:child_process';
import { trackChild } from './cleanup.ts';

/** The items split into `parts` contiguous runs of nearly equal length (one per association). */
export function split<T>(items: readonly T[], parts: number): T[][] {
  return Array.from({ length: parts }, (_, i) =>
    items.slice(Math.floor((i * items.length) / parts), Math.floor(((i + 1) * items.length) / parts)),
  );
}

/**
 * `storescu -aet BENCHSCU -aec <aeTitle> 127.0.0.1 <port> FILE…`, with TCP_NODELAY=1 (Debian's
 * DCMTK leaves Nagle's algorithm on otherwise). Resolves once it exits: undefined when it exited
 * 0 without a word on stderr, else its complaint (how it ended, then its stderr).
 */
export function storescu(aeTitle: string, port: number, files: readonly string[], timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = trackChild(
      spawn('storescu', ['-aet', 'BENCHSCU', '-aec', aeTitle, '127.0.0.1', String(port), ...files], {
        env: { ...process.env, TCP_NODELAY: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      }),
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      if (stderr.length < 20_000) stderr += text;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && stderr.trim() === '') return resolve(undefined);
      const ended = signal === 'SIGKILL' ? `killed after ${timeoutMs / 1000} s` : `exited with ${code ?? signal}`;
      resolve(`storescu to port ${port} ${ended}${stderr.trim() ? `:\n${stderr.trim()}` : ''}`);
    });
  });
}
