import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './net.ts';

/**
 * A throwaway PostgreSQL cluster for tests and benches: initdb and pg_ctl of the machine's
 * PostgreSQL, on a free loopback port, run as the `postgres` user when we are root (initdb
 * refuses root). Trust authentication on loopback only; removed by stop().
 */
export interface PostgresCluster {
  port: number;
  /** The URL of the maintenance database. */
  url: string;
  createDatabase(name?: string): Promise<string>;
  /** Stops the server, keeping its data (an outage); start() brings it back on the same port. */
  halt(): void;
  /** Stops it as a crash or power cut would: no checkpoint, recovery from the WAL at start(). */
  crash(): void;
  start(): void;
  stop(): void;
  /**
   * Freezes every process of the server (SIGSTOP), as a hung disk or a partition would: nothing
   * answers, connections stay open, new ones are not accepted. thaw() lets it go on.
   */
  freeze(): void;
  thaw(): void;
}

/** The postmaster and every process under it. */
function processTree(root: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ")".
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(parents.get(tree[i]) ?? []));
  return tree;
}

export function postgresBinDir(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v pg_ctl'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return path.dirname(onPath);
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs.readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (fs.existsSync(path.join(root, v, 'bin', 'pg_ctl'))) return path.join(root, v, 'bin');
  return undefined;
}

const asRoot = process.getuid?.() === 0;

function run(bin: string, args: string[]): string {
  const command = asRoot ? 'runuser' : bin;
  const argv = asRoot ? ['-u', 'postgres', '--', bin, ...args] : args;
  return execFileSync(command, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A new, empty database beside the one `url` names; returns its URL. */
export async function createDatabase(url: string, name = `df_${process.pid}_${Math.random().toString(36).slice(2, 10)}`): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return url.replace(/\/[^/]*$/, `/${name}`);
}

export async function startPostgres(): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed (no pg_ctl on PATH or under /usr/lib/postgresql)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'df-pg-'));
  const dataDir = path.join(dir, 'data');
  if (asRoot) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  run(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'dicomflow', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-instructions']);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses='127.0.0.1'",
    '-c max_connections=200',
    '-c shared_buffers=64MB',
    '-c log_min_messages=warning',
  ].join(' ');
  const start = () => run(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-o', options, '-l', path.join(dir, 'log'), '-w', '-t', '30', 'start']);
  start();
  const url = `postgres://dicomflow@127.0.0.1:${port}/postgres`;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      run(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already gone
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const postmaster = () => Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return {
    port,
    url,
    createDatabase: (name?: string) => createDatabase(url, name),
    halt: () => run(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop']),
    freeze: () => processTree(postmaster()).forEach((pid) => process.kill(pid, 'SIGSTOP')),
    thaw: () => processTree(postmaster()).forEach((pid) => process.kill(pid, 'SIGCONT')),
    crash: () => run(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']),
    start,
    stop,
  };
}
