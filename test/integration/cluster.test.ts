// Several nodes on one PostgreSQL index and one data directory (issue 9): any node receives,
// any node runs any job, a stable study fires once for the cluster, a file-set has one writer at
// a time, and a node killed mid-job has its job taken over once the lease expires.
// Runs in the postgres test project only (vitest.config.ts).
import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DicomdirStore } from '../../core/store/dicomdir-store.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import type { SqlDb } from '../../core/store/sql/sql-db.ts';
import { ctSeries } from '../fixtures/builder.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { spawnServer, startTestServer, tempDir } from '../helpers/server.ts';
import { freshPostgresDatabase } from '../helpers/test-index.ts';
import { until } from '../helpers/wait.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const testPlugins = path.join(repo, 'test/fixtures/plugins');
const LEASE_SECONDS = 3;
const run = promisify(execFile);

interface Node {
  name: string;
  config: string;
  dicomPort: number;
  httpPort: number;
  child: ChildProcess;
  output: () => string;
}

const started: ChildProcess[] = [];
const opened: SqlDb[] = [];
afterAll(async () => {
  for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.all(opened.map((db) => db.close()));
});

async function cluster(pipelines: Record<string, unknown>[], names: string[]) {
  const dataDir = tempDir();
  const pipelinesDir = tempDir('df-pipelines-');
  for (const p of pipelines) fs.writeFileSync(path.join(pipelinesDir, `${(p as { name: string }).name}.json`), JSON.stringify(p));
  const index = { backend: 'postgres' as const, url: await freshPostgresDatabase() };
  const nodes: Node[] = [];
  for (const name of names) {
    const config = path.join(tempDir(), 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dataDir,
        pipelinesDir,
        defaultPipeline: false,
        plugins: { directories: [testPlugins] },
        engine: { workerThreads: 1, concurrency: 4 },
        index,
        cluster: { nodeName: name, leaseSeconds: LEASE_SECONDS },
        log: { level: 'info' },
      }),
    );
    const [dicomPort, httpPort] = [await freePort(), await freePort()];
    const { child, output } = await spawnServer(['--config', config, '--port', String(dicomPort), '--http-port', String(httpPort)]);
    started.push(child);
    nodes.push({ name, config, dicomPort, httpPort, child, output });
  }
  const db = await openIndexDatabase({ dataDir, index });
  opened.push(db);
  return { dataDir, nodes, db };
}

const send = (port: number, files: string[]) => storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(port), ...files]);

describe('PostgreSQL unavailable', () => {
  it('refuses objects with a failure status while the index is down, stays up, and takes them again once it is back', async () => {
    const postgres = await startPostgres();
    try {
      const s = await startTestServer({ index: { backend: 'postgres', url: await postgres.createDatabase() } });
      try {
        const ct = await ctSeries(tempDir(), { slices: 3, rows: 32, cols: 32 });
        expect((await send(s.dicomPort, ct.files.slice(0, 1))).code).toBe(0);
        postgres.halt();
        const refused = await send(s.dicomPort, ct.files.slice(1, 2));
        // storescu reports the failure status; nothing was acknowledged.
        expect(refused.code).not.toBe(0);
        const health = await fetch(`http://127.0.0.1:${s.httpPort}/api/health`);
        expect(await health.json()).toMatchObject({ ok: false, index: false });
        postgres.start();
        expect((await send(s.dicomPort, ct.files.slice(1))).code).toBe(0);
        await s.engine.idle();
        expect((await s.index.instances('Import', {})).map((r) => r.instance.SOPInstanceUID).sort()).toEqual(
          [...ct.sopInstanceUids].sort(),
        );
      } finally {
        await s.close();
      }
    } finally {
      postgres.stop();
    }
  });
});

describe('PostgreSQL crashing', () => {
  it('keeps every object it acknowledged: commits are asynchronous, but a Success waits for the WAL flush', async () => {
    const postgres = await startPostgres();
    try {
      const url = await postgres.createDatabase();
      const s = await startTestServer({ index: { backend: 'postgres', url } });
      const ct = await ctSeries(tempDir(), { slices: 40, rows: 32, cols: 32 });
      try {
        expect((await send(s.dicomPort, ct.files)).code).toBe(0);
        // At once, while the engine still writes its jobs: whatever was acknowledged must survive.
        postgres.crash();
      } finally {
        await s.close().catch(() => undefined);
      }
      postgres.start();
      const db = await openIndexDatabase({ dataDir: tempDir(), index: { backend: 'postgres', url } });
      opened.push(db);
      const kept = (await db.all("SELECT sop_instance_uid FROM arrivals WHERE outcome = 'received'")).map((r) => r.sop_instance_uid);
      expect(kept.sort()).toEqual([...ct.sopInstanceUids].sort());
    } finally {
      postgres.stop();
    }
  });
});

describe('several nodes on one PostgreSQL index', () => {
  it('receives on any node, fires a study split across nodes once, and keeps one writer per file-set', async () => {
    const fileSet = path.join(tempDir(), 'fileset');
    const { nodes, db } = await cluster(
      [
        { name: 'study-done', trigger: { on: 'study', stableSeconds: 2 }, steps: [{ plugin: 'test-writes-file' }] },
        { name: 'burn', trigger: { on: 'instance' }, steps: [{ plugin: 'dicomdir', options: { root: fileSet } }] },
      ],
      ['node-a', 'node-b'],
    );
    const ct = await ctSeries(tempDir(), { slices: 8, rows: 32, cols: 32 });
    // Half the study to each node, at the same time.
    const [a, b] = await Promise.all([send(nodes[0].dicomPort, ct.files.slice(0, 4)), send(nodes[1].dicomPort, ct.files.slice(4))]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const jobs = () => db.all('SELECT pipeline, status, inputs FROM jobs ORDER BY id');
    await until(
      'every job done',
      async () => {
        const all = await jobs();
        return all.length === 9 && all.every((j) => j.status === 'succeeded') && all;
      },
      40_000,
    );
    const study = (await jobs()).filter((j) => j.pipeline === 'study-done');
    expect(study).toHaveLength(1);
    expect(JSON.parse(study[0].inputs)).toHaveLength(8);
    // Both nodes took jobs from the shared queue.
    const ranOn = await db.all('SELECT node, COUNT(*) AS n FROM jobs GROUP BY node ORDER BY node');
    expect(ranOn.map((r) => r.node)).toEqual(['node-a', 'node-b']);
    // The file-set written by both nodes holds every instance once.
    const filed = await new DicomdirStore(fileSet).instances({});
    expect(filed.map((i) => i.instance.SOPInstanceUID).sort()).toEqual([...ct.sopInstanceUids].sort());
    // What an operator sees from any host with the configuration: both nodes, alive.
    const { stdout } = await run(path.join(repo, 'node_modules/.bin/node'), [
      path.join(repo, 'server/cli.ts'),
      'nodes',
      '--config',
      nodes[0].config,
      '--json',
    ]);
    const listed = JSON.parse(stdout) as {
      backend: string;
      nodes: { name: string; alive: boolean; status: { dicom: { port: number } } }[];
    };
    expect(listed.backend).toBe('postgres');
    expect(listed.nodes.map((n) => [n.name, n.alive, n.status.dicom.port])).toEqual(nodes.map((n) => [n.name, true, n.dicomPort]));
  });

  it('takes over the job of a node killed mid-job once its lease expires', async () => {
    const { nodes, db } = await cluster(
      [{ name: 'slow', trigger: { on: 'instance' }, retry: { maxAttempts: 1 }, steps: [{ plugin: 'test-sleeps', options: { ms: 4000 } }] }],
      ['node-a', 'node-b'],
    );
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await send(nodes[0].dicomPort, ct.files)).code).toBe(0);
    // Killed once its step is under way (its start is recorded), not between claim and start.
    const running = await until(
      "the job's step to run",
      async () =>
        await db.get(
          "SELECT j.id, j.lease_owner FROM jobs j JOIN job_steps s ON s.job_id = j.id AND s.attempt = j.attempts WHERE j.status = 'running' AND s.status = 'running'",
        ),
      20_000,
    );
    const victim = nodes.find((n) => n.name === running.lease_owner)!;
    const survivor = nodes.find((n) => n !== victim)!;
    victim.child.kill('SIGKILL');
    const killedAt = Date.now();
    const job = await until(
      'the job to finish on the other node',
      async () => await db.get("SELECT * FROM jobs WHERE id = ? AND status IN ('succeeded', 'failed')", running.id),
      30_000,
    );
    // Taken over only after the lease ran out, and the kill did not use up its one attempt.
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(LEASE_SECONDS * 1000 - 1500);
    expect(job).toMatchObject({ status: 'succeeded', attempts: 2, interruptions: 1, node: survivor.name });
    expect(survivor.output()).toContain('jobs whose node stopped renewing their leases are queued again');
    const steps = await db.all('SELECT attempt, status FROM job_steps WHERE job_id = ? ORDER BY attempt', running.id);
    expect(steps).toEqual([
      { attempt: 1, status: 'running' },
      { attempt: 2, status: 'succeeded' },
    ]);
  });

  it('a job taken over by another node runs the pipeline version it was queued with, though that node loaded an edit', async () => {
    const gate = path.join(tempDir(), 'open');
    const versioned = (name: string) => ({
      name: 'versioned',
      trigger: { on: 'instance' },
      retry: { maxAttempts: 1 },
      steps: [
        { plugin: 'test-writes-file', options: { name } },
        { plugin: 'test-waits-for-file', options: { path: gate } },
      ],
    });
    const { dataDir, nodes, db } = await cluster([versioned('v1.txt')], ['node-a', 'node-b']);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await send(nodes[0].dicomPort, ct.files)).code).toBe(0);
    // Waiting at the gate: its first step wrote v1.txt.
    const running = await until(
      'the job to wait at the gate',
      async () =>
        await db.get(
          "SELECT j.id, j.lease_owner, j.pipeline_hash FROM jobs j JOIN job_steps s ON s.job_id = j.id AND s.attempt = 1 AND s.step_index = 0 WHERE j.status = 'running' AND s.status = 'succeeded'",
        ),
      20_000,
    );
    const victim = nodes.find((n) => n.name === running.lease_owner)!;
    const survivor = nodes.find((n) => n !== victim)!;
    const { pipelinesDir } = JSON.parse(fs.readFileSync(survivor.config, 'utf8')) as { pipelinesDir: string };
    fs.writeFileSync(path.join(pipelinesDir, 'versioned.json'), JSON.stringify(versioned('v2.txt')));
    // The node that takes the job over has the edit loaded before it can take it.
    const token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
    const loadedThere = async () => {
      const res = await fetch(`http://127.0.0.1:${survivor.httpPort}/api/pipelines/versioned`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return ((await res.json()) as { definition: { steps: { options: { name: string } }[] } }).definition.steps[0].options.name;
    };
    for (const end = Date.now() + 20_000; (await loadedThere()) !== 'v2.txt'; await new Promise((r) => setTimeout(r, 100))) {
      if (Date.now() > end) throw new Error('timed out waiting for the other node to load the edit');
    }
    victim.child.kill('SIGKILL');
    await until(
      'the other node to take the job over',
      async () => await db.get("SELECT 1 FROM jobs WHERE id = ? AND attempts = 2 AND status = 'running'", running.id),
      30_000,
    );
    fs.writeFileSync(gate, '');
    const job = await until(
      'the job to finish',
      async () => await db.get("SELECT * FROM jobs WHERE id = ? AND status IN ('succeeded', 'failed')", running.id),
      30_000,
    );
    expect(job).toMatchObject({ status: 'succeeded', attempts: 2, node: survivor.name, pipeline_hash: running.pipeline_hash });
    const outputs = await db.all('SELECT attempt, outputs FROM job_steps WHERE job_id = ? AND step_index = 0 ORDER BY attempt', running.id);
    expect(outputs.map((r) => [r.attempt, (JSON.parse(r.outputs) as { path: string }[]).map((o) => path.basename(o.path))])).toEqual([
      [1, ['v1.txt']],
      [2, ['v1.txt']],
    ]);
  });
});
