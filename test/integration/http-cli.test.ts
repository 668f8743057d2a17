import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import { ctSeries, type BuiltSeries } from '../fixtures/builder.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const node = fs.existsSync(path.join(repo, 'node_modules/.bin/node')) ? path.join(repo, 'node_modules/.bin/node') : process.execPath;
const cli = path.join(repo, 'server/cli.ts');

async function dicomflow(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(node, [cli, ...args], { env: { ...process.env, ...env }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** CLI parity: jobs, job, rerun, cancel, run and token against a running server's API. */
describe('dicomflow CLI through the HTTP API', () => {
  let s: Awaited<ReturnType<typeof startTestServer>>;
  let ct: BuiltSeries;
  let config: string;

  beforeAll(async () => {
    const pipelinesDir = tempDir();
    fs.writeFileSync(
      path.join(pipelinesDir, 'tac.json'),
      JSON.stringify({
        name: 'tac',
        trigger: { on: 'series', stableSeconds: 0.3 },
        steps: [{ plugin: 'test-time-activity', options: { ms: 800 } }],
      }),
    );
    s = await startTestServer({
      pipelinesDir,
      plugins: { directories: [path.join(repo, 'test/fixtures/plugins')] },
      databases: [{ name: 'Import' }, { name: 'StudyA' }],
      users: [
        { name: 'olga', role: 'operator', databases: { Import: 'read' } },
        { name: 'rita', role: 'reader', databases: { StudyA: 'read' } },
      ],
    });
    config = path.join(s.dataDir, 'config.json');
    ct = await ctSeries(tempDir(), { slices: 2, rows: 16, cols: 16 });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
    await until('the tac job', async () => (await s.jobs.listJobs({ pipeline: 'tac', status: 'succeeded' }))[0]);
    await s.engine.idle();
  });
  afterAll(() => s?.close());

  it('token create prints a token once and keeps only its hash; the token opens the API as its user', async () => {
    const made = await dicomflow(['token', 'create', '--user', 'olga', '--description', 'cli test', '--config', config]);
    expect(made.code).toBe(0);
    const token = made.stdout.trim();
    expect(token).toMatch(/^dft_[\w-]{32}$/);
    expect(made.stderr).toContain('shown this once');
    const me = await fetch(`http://127.0.0.1:${s.httpPort}/api/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(await me.json()).toMatchObject({ name: 'olga', role: 'operator' });
    const stored = await s.index.connection.all<{ token_hash: string }>('SELECT token_hash FROM api_tokens');
    expect(stored.map((r) => r.token_hash)).not.toContain(token);
    expect(fs.readFileSync(path.join(s.dataDir, 'index.sqlite')).includes(Buffer.from(token))).toBe(false);

    const listed = await dicomflow(['token', 'list', '--json', '--config', config]);
    const [record] = JSON.parse(listed.stdout);
    expect(record).toMatchObject({ user: 'olga', description: 'cli test' });
    expect((await dicomflow(['token', 'create', '--user', 'nobody', '--config', config])).code).toBe(1);
    expect((await dicomflow(['token', 'revoke', record.id, '--config', config])).stdout).toContain('revoked');
    expect((await fetch(`http://127.0.0.1:${s.httpPort}/api/me`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  it('jobs, job, rerun and cancel go through the API with the rights of the token', async () => {
    const listed = await dicomflow(['jobs', '--data', s.dataDir, '--json', '--pipeline', 'tac']);
    expect(listed.code).toBe(0);
    const [job] = JSON.parse(listed.stdout);
    expect(job).toMatchObject({ pipeline: 'tac', status: 'succeeded' });
    const shown = await dicomflow(['job', job.id, '--data', s.dataDir]);
    expect(shown.stdout).toContain(`job ${job.id}  pipeline tac  succeeded  100%`);
    expect(shown.stdout).toContain('curve written');

    // A reader's token: the API refuses, so the command went through it.
    const rita = (await dicomflow(['token', 'create', '--user', 'rita', '--config', config])).stdout.trim();
    const refused = await dicomflow(['rerun', job.id, '--data', s.dataDir], { DICOMFLOW_TOKEN: rita });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('DF_ERR_FORBIDDEN');
    expect(refused.stderr).toContain('user "rita" is a reader');

    const olga = (await dicomflow(['token', 'create', '--user', 'olga', '--config', config])).stdout.trim();
    const rerun = await dicomflow(['rerun', job.id, '--data', s.dataDir, '--wait'], { DICOMFLOW_TOKEN: olga });
    expect(rerun.code).toBe(0);
    const rerunId = rerun.stdout.trim();
    expect(rerun.stderr).toMatch(new RegExp(`job ${rerunId} succeeded in \\d+\\.\\d+ s`));
    expect(await s.jobs.getJob(rerunId)).toMatchObject({ rerunOf: job.id, createdBy: 'olga', status: 'succeeded' });
    expect(await s.index.auditLog(10)).toContainEqual(
      expect.objectContaining({ user: 'olga', action: 'rerun', details: expect.objectContaining({ newJobId: rerunId }) }),
    );
    expect((await dicomflow(['cancel', rerunId, '--data', s.dataDir], { DICOMFLOW_TOKEN: olga })).stdout).toContain('had already ended');
  });

  it('run PIPELINE --series UID --wait starts a manual job, follows it with a progress bar, and exits 0 when it succeeds', async () => {
    await s.index.transfer({
      from: 'Import',
      to: 'StudyA',
      level: 'study',
      uid: ct.studyInstanceUid,
      mode: 'copy',
      user: 'admin',
      source: 'move',
      createdBy: 'admin',
    });
    const run = await dicomflow(['run', 'tac', '--series', ct.seriesInstanceUid, '--db', 'StudyA', '--wait', '--data', s.dataDir]);
    expect(run.code).toBe(0);
    const jobId = run.stdout.trim();
    expect(await s.jobs.getJob(jobId)).toMatchObject({
      triggerOn: 'manual',
      triggerUid: ct.seriesInstanceUid,
      createdBy: 'admin',
      status: 'succeeded',
    });
    expect(run.stderr).toContain(`job ${jobId} succeeded`);
    const unknown = await dicomflow(['run', 'tac', '--study', '1.2.3', '--data', s.dataDir]);
    expect(unknown).toMatchObject({ code: 1 });
    expect(unknown.stderr).toContain('DF_ERR_NOT_FOUND');
    expect((await dicomflow(['run', 'tac', '--data', s.dataDir])).code).toBe(2);
  });

  it('without a running server, jobs and job read the data directory and run says no server answers', async () => {
    const dataDir = tempDir();
    const closedPort = await freePort();
    // A server ran here (its index is there) and stopped without removing its file (kill -9):
    // its pid is gone.
    await (await openIndexDatabase({ dataDir })).close();
    fs.writeFileSync(
      path.join(dataDir, 'server.json'),
      JSON.stringify({ pid: 2 ** 22 + 12345, httpPort: closedPort, httpHost: '127.0.0.1' }),
    );
    const listed = await dicomflow(['jobs', '--data', dataDir, '--json']);
    expect(listed).toMatchObject({ code: 0 });
    expect(JSON.parse(listed.stdout)).toEqual([]);
    const run = await dicomflow(['run', 'tac', '--study', '1.2.3', '--data', dataDir]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('DF_ERR_SERVER_UNREACHABLE');
    const named = await dicomflow(['jobs', '--data', dataDir, '--server', `http://127.0.0.1:${closedPort}`, '--token', 'x']);
    expect(named.stderr).toContain('DF_ERR_SERVER_UNREACHABLE');
  });
});
