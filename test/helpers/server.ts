import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../core/config/load.ts';
import { startServer, type RunningServer } from '../../server/app.ts';
import { SERVER_NODE_FLAGS } from '../../server/node-flags.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');

export { tempDir } from './temp.ts';
import { tempDir } from './temp.ts';
import { testIndexConfig } from './test-index.ts';

const indexOfDataDir = new Map<string, unknown>();

/** A real server in this process on free ports, with its own data directory. */
export async function startTestServer(
  config: Record<string, unknown> = {},
  logger?: pino.Logger,
): Promise<RunningServer & { dataDir: string }> {
  const dataDir = tempDir();
  const file = path.join(dataDir, 'config.json');
  const base = {
    dataDir,
    pipelinesDir: path.join(repoRoot, 'pipelines'),
    dimse: { port: 0, host: '127.0.0.1' },
    http: { port: 0, host: '127.0.0.1' },
    storage: { minFreeMegabytes: 16 },
    log: { level: 'warn' },
  };
  // The postgres test project runs each server on a database of its own; a server restarted on
  // the same data directory finds the index it left.
  const given = typeof config.dataDir === 'string' ? indexOfDataDir.get(config.dataDir) : undefined;
  const index = config.index !== undefined ? {} : given ? { index: given } : await testIndexConfig();
  if (index.index) indexOfDataDir.set(typeof config.dataDir === 'string' ? config.dataDir : dataDir, index.index);
  fs.writeFileSync(file, JSON.stringify(merge({ ...base, ...index }, config)));
  const server = await startServer(loadConfig(file), logger ?? pino({ level: process.env.DF_TEST_LOG ?? 'silent' }));
  return Object.assign(server, { dataDir });
}

function merge(a: Record<string, any>, b: Record<string, any>): Record<string, any> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object' ? merge(a[k], v) : v;
  }
  return out;
}

const nodeBin = path.join(repoRoot, 'node_modules/.bin/node');

/** `dicomflow serve` as its own process, for tests that kill it. */
export async function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(
    fs.existsSync(nodeBin) ? nodeBin : process.execPath,
    [...SERVER_NODE_FLAGS, path.join(repoRoot, 'server/cli.ts'), 'serve', ...args],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 20_000);
    const check = () => {
      if (out.includes('dicomflow is ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
  return { child, output: () => out };
}
