import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import { testIndexConfig } from '../helpers/test-index.ts';
import { afterAll, describe, expect, it } from 'vitest';
import { ctSeries, mrSeries } from '../fixtures/builder.ts';
import { echoscu, storescu } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { until } from '../helpers/wait.ts';
import { apiClient } from '../helpers/api.ts';
import { spawnServer, startTestServer, tempDir } from '../helpers/server.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');
const testPlugins = path.join(repo, 'test/fixtures/plugins');
const servers: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

function pipelinesDir(pipelines: Record<string, unknown>[]): string {
  const dir = tempDir('df-pipelines-');
  for (const p of pipelines) fs.writeFileSync(path.join(dir, `${(p as { name: string }).name}.json`), JSON.stringify(p, null, 2));
  return dir;
}

async function server(pipelines: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  const s = await startTestServer({
    pipelinesDir: pipelinesDir(pipelines),
    defaultPipeline: false,
    plugins: { directories: [testPlugins] },
    engine: { workerThreads: 2 },
    ...extra,
  });
  servers.push(s);
  return s;
}

const send = (port: number, files: string[], aet = 'STORESCU', aec = 'DICOMFLOW') =>
  storescu(['-aet', aet, '-aec', aec, '127.0.0.1', String(port), ...files]);

describe('triggers', () => {
  it('instance trigger with conditions on SOP class and calling AE title', async () => {
    const s = await server([
      {
        name: 'ct-from-ctscu',
        trigger: { on: 'instance', when: { sopClass: { equals: 'CTImageStorage' }, callingAeTitle: { oneOf: ['CTSCU'] } } },
        steps: [{ plugin: 'test-writes-file' }],
      },
    ]);
    const dir = tempDir();
    const ct = await ctSeries(path.join(dir, 'ct'), { slices: 3, rows: 32, cols: 32 });
    const mr = await mrSeries(path.join(dir, 'mr'), { slices: 2, rows: 32, cols: 32 });
    expect((await send(s.dicomPort, [...ct.files, ...mr.files], 'CTSCU')).code).toBe(0);
    expect((await send(s.dicomPort, ct.files, 'OTHERSCU')).code).toBe(0);
    await s.engine.idle();
    const jobs = await s.jobs.listJobs({ pipeline: 'ct-from-ctscu' });
    expect(jobs).toHaveLength(3);
    expect(jobs.every((j) => j.status === 'succeeded' && j.contributors.callingAeTitles.join() === 'CTSCU')).toBe(true);
    const detail = (await s.jobs.getJob(jobs[0].id))!;
    const file = detail.steps![0].outputs[0].path!;
    expect(ct.sopInstanceUids).toContain(fs.readFileSync(file, 'utf8').trim());
    // Arrivals that match no pipeline are fine and visible.
    expect(s.engine.stats.arrivalsWithoutPipeline).toBe(5);
  });

  it('conditions may test any top-level attribute, not only the indexed ones', async () => {
    const s = await server([
      {
        name: 'thin-slices',
        trigger: { on: 'instance', when: { attributes: { SliceThickness: { range: { max: 2 } }, KVP: { exists: true } } } },
        steps: [{ plugin: 'test-writes-file' }],
      },
    ]);
    const thin = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32, sliceThicknessMm: 1.25 });
    const thick = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32, sliceThicknessMm: 5 });
    expect((await send(s.dicomPort, [...thin.files, ...thick.files])).code).toBe(0);
    await s.engine.idle();
    const jobs = await s.jobs.listJobs({ pipeline: 'thin-slices' });
    expect(jobs.map((j) => j.triggerUid).sort()).toEqual([...thin.sopInstanceUids].sort());
  });

  it('series trigger fires once after stableSeconds, knows every contributor, and handles late arrivals', async () => {
    const s = await server([
      {
        name: 'series-late-only',
        trigger: { on: 'series', stableSeconds: 3, lateArrivals: 'late-only' },
        steps: [{ plugin: 'test-writes-file' }],
      },
      { name: 'series-whole', trigger: { on: 'series', stableSeconds: 3, lateArrivals: 'whole' }, steps: [{ plugin: 'test-writes-file' }] },
    ]);
    const ct = await ctSeries(tempDir(), { slices: 6, rows: 32, cols: 32 });
    // Two senders one after the other, well within the window.
    expect((await send(s.dicomPort, ct.files.slice(0, 3), 'SCU_A')).code).toBe(0);
    expect((await send(s.dicomPort, ct.files.slice(3, 5), 'SCU_B')).code).toBe(0);
    const first = await until('series jobs', async () => {
      const j = await s.jobs.listJobs({ pipeline: 'series-late-only' });
      return j.length === 1 && j[0].status === 'succeeded' ? j[0] : undefined;
    });
    expect(first.inputs).toHaveLength(5);
    // Counted from the last arrival, by the server's own clock: the job came stableSeconds after it.
    const lastArrivalMs = Math.max(...(await s.index.recentArrivals(10)).map((a) => Date.parse(a.receivedAt)));
    expect(Date.parse(first.createdAt) - lastArrivalMs).toBeGreaterThanOrEqual(3000);
    expect(first.triggerOn).toBe('series');
    expect(first.triggerUid).toBe(ct.seriesInstanceUid);
    expect(first.contributors.callingAeTitles).toEqual(['SCU_A', 'SCU_B']);
    expect(first.contributors.peerAddresses).toEqual(['127.0.0.1']);
    // A late slice: a new job over the late object only, or over the whole series.
    expect((await send(s.dicomPort, ct.files.slice(5), 'SCU_C')).code).toBe(0);
    const late = await until('late jobs', async () => {
      const lateOnly = await s.jobs.listJobs({ pipeline: 'series-late-only', status: 'succeeded' });
      const whole = await s.jobs.listJobs({ pipeline: 'series-whole', status: 'succeeded' });
      return lateOnly.length === 2 && whole.length === 2 ? { lateOnly, whole } : undefined;
    });
    expect(late.lateOnly[0].inputs).toHaveLength(1);
    expect(late.whole[0].inputs).toHaveLength(6);
  });

  it('an operator can force a series complete', async () => {
    const s = await server([
      { name: 'slow-series', trigger: { on: 'series', stableSeconds: 3600 }, steps: [{ plugin: 'test-writes-file' }] },
    ]);
    const ct = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32 });
    expect((await send(s.dicomPort, ct.files)).code).toBe(0);
    await s.engine.idle();
    expect(await s.jobs.listJobs({})).toHaveLength(0);
    expect(await s.engine.forceComplete('series', ct.seriesInstanceUid)).toBe(1);
    await s.engine.idle();
    const jobs = await s.jobs.listJobs({});
    expect(jobs.map((j) => [j.status, j.inputs.length])).toEqual([['succeeded', 2]]);
  });

  it('a study half received before a restart fires once after it', async () => {
    const data = tempDir();
    // A quiet period longer than any restart takes here, so the study cannot go stable between
    // the two halves however slow the machine; it is completed by hand once the second half is in.
    const pipelines = pipelinesDir([
      { name: 'study-stable', trigger: { on: 'study', stableSeconds: 600 }, steps: [{ plugin: 'test-writes-file' }] },
    ]);
    const config = { dataDir: data, pipelinesDir: pipelines, defaultPipeline: false, plugins: { directories: [testPlugins] } };
    const ct = await ctSeries(tempDir(), { slices: 4, rows: 32, cols: 32, patientId: 'RESTART' });
    const mr = await mrSeries(tempDir(), { slices: 2, rows: 32, cols: 32, studyUid: ct.studyInstanceUid, patientId: 'RESTART' });
    const first = await startTestServer(config);
    expect((await send(first.dicomPort, ct.files)).code).toBe(0);
    await first.engine.idle();
    await first.close();
    const second = await startTestServer(config);
    servers.push(second);
    expect((await send(second.dicomPort, mr.files)).code).toBe(0);
    await second.engine.idle();
    expect(await second.jobs.listJobs({})).toHaveLength(0);
    // The group kept across the restart holds both halves and fires once.
    expect(await second.engine.forceComplete('study', ct.studyInstanceUid)).toBe(1);
    const job = await until('the study job', async () => (await second.jobs.listJobs({ status: 'succeeded' }))[0]);
    expect(job.inputs).toHaveLength(6);
    expect(await second.engine.forceComplete('study', ct.studyInstanceUid)).toBe(0);
    await second.engine.idle();
    expect(await second.jobs.listJobs({})).toHaveLength(1);
  });
});

describe('external programs', () => {
  it('fills placeholders and environment, and a value with shell metacharacters stays inert text', async () => {
    const dir = tempDir('df-script-');
    const canary = path.join(dir, 'pwned');
    const script = path.join(dir, 'record.sh');
    fs.writeFileSync(
      script,
      '#!/bin/sh\nprintf "%s\\n" "$@" > "$DF_OUTPUT_DIR/args.txt"\nenv | grep "^DF_" | sort > "$DF_OUTPUT_DIR/env.txt"\nls "$DF_FOLDER" > "$DF_OUTPUT_DIR/folder.txt"\n',
    );
    fs.chmodSync(script, 0o755);
    const s = await server([
      {
        name: 'script',
        trigger: { on: 'instance' },
        steps: [
          {
            plugin: 'run-program',
            options: {
              program: script,
              forEach: 'instance',
              args: [
                '--file',
                '{file}',
                '--from',
                '{callingAeTitle}',
                '--to',
                '{calledAeTitle}',
                '--peer',
                '{peerHost}',
                '--study',
                '{studyInstanceUid}',
                '--series',
                '{seriesInstanceUid}',
                '--sop',
                '{sopInstanceUid}',
                '--patient',
                '{patientId}',
              ],
              collectOutputs: true,
            },
          },
        ],
      },
    ]);
    const hostile = `x"; touch ${canary}; $(touch ${canary}) \`touch ${canary}\``.slice(0, 64);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32, patientId: hostile });
    expect((await send(s.dicomPort, ct.files, 'SCRIPTSCU')).code).toBe(0);
    await s.engine.idle();
    const [job] = await s.jobs.listJobs({ pipeline: 'script' });
    expect(job.status).toBe('succeeded');
    const outputs = (await s.jobs.getJob(job.id))!.steps![0].outputs.map((o) => o.path!);
    const args = fs
      .readFileSync(outputs.find((p) => p.endsWith('args.txt'))!, 'utf8')
      .trim()
      .split('\n');
    const arg = (flag: string) => args[args.indexOf(flag) + 1];
    expect(arg('--from')).toBe('SCRIPTSCU');
    expect(arg('--to')).toBe('DICOMFLOW');
    expect(arg('--peer')).toBe('127.0.0.1');
    expect(arg('--study')).toBe(ct.studyInstanceUid);
    expect(arg('--series')).toBe(ct.seriesInstanceUid);
    expect(arg('--sop')).toBe(ct.sopInstanceUids[0]);
    expect(arg('--patient')).toBe(hostile);
    expect(fs.existsSync(arg('--file'))).toBe(true);
    const env = fs.readFileSync(outputs.find((p) => p.endsWith('env.txt'))!, 'utf8');
    expect(env).toContain(`DF_CALLING_AE_TITLE=SCRIPTSCU`);
    expect(env).toContain(`DF_SOP_INSTANCE_UID=${ct.sopInstanceUids[0]}`);
    expect(env).toContain(`DF_PATIENT_ID=${hostile}`);
    // The job's context, from the step context (the node name no longer leaks in from the server's environment).
    expect(env).toContain(`DF_NODE_NAME=${s.engine.nodeId}\n`);
    expect(env).toContain(`DF_PIPELINE_VERSION=${s.pipelines.get('script')!.hash}\n`);
    expect(env).toContain(`DF_DATABASE=${s.config.defaultDatabase}\n`);
    expect(fs.readFileSync(outputs.find((p) => p.endsWith('folder.txt'))!, 'utf8').trim()).toBe('00001.dcm');
    expect(fs.existsSync(canary)).toBe(false);
  });

  it('a non-zero exit fails the job with the exit code and stderr in its log', async () => {
    const s = await server([
      {
        name: 'fails',
        trigger: { on: 'instance' },
        retry: { maxAttempts: 1 },
        steps: [{ plugin: 'run-program', options: { program: '/bin/sh', args: ['-c', 'echo broken pipe >&2; exit 7'] } }],
      },
    ]);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    await send(s.dicomPort, ct.files);
    await s.engine.idle();
    const job = (await s.jobs.getJob((await s.jobs.listJobs({}))[0].id))!;
    expect(job.status).toBe('failed');
    expect(job.errorCode).toBe('DF_ERR_STEP_FAILED');
    expect(job.error).toMatch(/exited with code 7: broken pipe/);
    expect(job.steps![0].log.some((l) => l.message === 'program ended' && l.data?.exitCode === 7)).toBe(true);
  });
});

describe('failing steps never take the server down', () => {
  it('a step that throws, one that times out and one that kills its worker each fail their job clearly', async () => {
    const s = await server([
      {
        name: 'throws',
        trigger: { on: 'instance' },
        retry: { maxAttempts: 1 },
        steps: [{ plugin: 'test-throws', options: { message: 'kaputt' } }],
      },
      { name: 'throws-main', trigger: { on: 'instance' }, retry: { maxAttempts: 1 }, steps: [{ plugin: 'test-throws-main' }] },
      {
        name: 'times-out',
        trigger: { on: 'instance' },
        retry: { maxAttempts: 1 },
        steps: [{ plugin: 'test-sleeps', options: { ms: 60000 }, timeoutSeconds: 1 }],
      },
      { name: 'kills-worker', trigger: { on: 'instance' }, retry: { maxAttempts: 1 }, steps: [{ plugin: 'test-kills-worker' }] },
      { name: 'works', trigger: { on: 'instance' }, steps: [{ plugin: 'test-burns-cpu', options: { slices: 2, size: 1000 } }] },
    ]);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await send(s.dicomPort, ct.files)).code).toBe(0);
    await s.engine.idle();
    const byPipeline = Object.fromEntries((await s.jobs.listJobs({})).map((j) => [j.pipeline, j]));
    expect(byPipeline.throws).toMatchObject({ status: 'failed', errorCode: 'DF_ERR_STEP_FAILED' });
    expect(byPipeline.throws.error).toMatch(/step "test-throws" \(plugin test-throws@1\.0\.0\) of job .* failed: kaputt/);
    expect((await s.jobs.getJob(byPipeline.throws.id))!.steps![0].log.map((l) => l.message)).toContain('about to throw');
    expect(byPipeline['throws-main']).toMatchObject({ status: 'failed', errorCode: 'DF_ERR_STEP_FAILED' });
    expect(byPipeline['times-out'].error).toMatch(/exceeded its timeout of 1 s/);
    expect(byPipeline['kills-worker']).toMatchObject({ status: 'failed', errorCode: 'DF_ERR_STEP_FAILED' });
    expect(byPipeline.works.status).toBe('succeeded');
    // The pool and the server go on.
    expect((await echoscu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort)])).code).toBe(0);
    const again = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    await send(s.dicomPort, again.files);
    await s.engine.idle();
    expect(await s.jobs.listJobs({ pipeline: 'works', status: 'succeeded' })).toHaveLength(2);
  });

  it('a main-thread step fans its parts out to the pool with ctx.runTask; a failing part fails the job', async () => {
    const s = await server([
      { name: 'fans-out', trigger: { on: 'instance' }, steps: [{ plugin: 'test-fans-out', options: { parts: 4 } }] },
      {
        name: 'part-fails',
        trigger: { on: 'instance' },
        retry: { maxAttempts: 1 },
        steps: [{ plugin: 'test-fans-out', options: { parts: 2, fail: true } }],
      },
    ]);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await send(s.dicomPort, ct.files)).code).toBe(0);
    await s.engine.idle();
    const byPipeline = Object.fromEntries(
      await Promise.all((await s.jobs.listJobs({})).map(async (j) => [j.pipeline, (await s.jobs.getJob(j.id))!] as const)),
    );
    expect(byPipeline['fans-out'].status).toBe('succeeded');
    const rows = byPipeline['fans-out'].steps![0].outputs.find((o) => o.kind === 'table')!.rows as {
      part: number;
      sum: number;
      isFloat32: boolean;
      threadId: number;
      pid: number;
    }[];
    for (const row of rows) {
      const expected = Array.from({ length: 1000 }, (_, i) => (row.part + i / 1000) ** 2).reduce((a, b) => a + b, 0);
      expect(row.sum).toBeCloseTo(expected, -1);
      expect(row.isFloat32).toBe(true);
      // A worker process (the default isolation), not the server's own thread.
      expect(row.pid !== process.pid || row.threadId > 0).toBe(true);
    }
    expect(byPipeline['part-fails']).toMatchObject({ status: 'failed', errorCode: 'DF_ERR_STEP_FAILED' });
    expect(byPipeline['part-fails'].error).toMatch(/task failed on purpose/);
  });

  it('maxConcurrentJobs keeps a pipeline to that many running jobs while others run freely', async () => {
    const s = await server([
      { name: 'limited', trigger: { on: 'instance' }, maxConcurrentJobs: 1, steps: [{ plugin: 'test-waits', options: { ms: 300 } }] },
      { name: 'free', trigger: { on: 'instance' }, steps: [{ plugin: 'test-waits', options: { ms: 300 } }] },
    ]);
    const ct = await ctSeries(tempDir(), { slices: 3, rows: 32, cols: 32 });
    expect((await send(s.dicomPort, ct.files)).code).toBe(0);
    await s.engine.idle();
    const mostAtOnce = async (pipeline: string) => {
      const jobs = (await s.jobs.listJobs({ pipeline })).map((j) => ({ start: Date.parse(j.startedAt!), end: Date.parse(j.finishedAt!) }));
      expect(jobs).toHaveLength(3);
      return Math.max(...jobs.map((a) => jobs.filter((b) => b.start < a.end && a.start < b.end).length));
    };
    expect(await mostAtOnce('limited')).toBe(1);
    expect(await mostAtOnce('free')).toBeGreaterThan(1);
  });

  it('retries a failing job per the pipeline’s policy', async () => {
    const s = await server([
      {
        name: 'flaky',
        trigger: { on: 'instance' },
        retry: { maxAttempts: 2, backoffSeconds: 0.2 },
        steps: [{ plugin: 'test-throws-main' }],
      },
    ]);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    await send(s.dicomPort, ct.files);
    await s.engine.idle();
    const job = (await s.jobs.getJob((await s.jobs.listJobs({}))[0].id))!;
    expect(job).toMatchObject({ status: 'failed', attempts: 2 });
    expect(job.steps!.map((st) => st.attempt)).toEqual([1, 2]);
  });
});

describe('durability and operations', () => {
  it('a job interrupted by kill -9 runs again after restart', async () => {
    const data = tempDir();
    const pipelines = pipelinesDir([
      { name: 'slow', trigger: { on: 'instance' }, steps: [{ plugin: 'test-sleeps', options: { ms: 2500 } }] },
    ]);
    const index = await testIndexConfig();
    fs.writeFileSync(
      path.join(data, 'config.json'),
      JSON.stringify({
        pipelinesDir: pipelines,
        defaultPipeline: false,
        plugins: { directories: [testPlugins] },
        log: { level: 'info' },
        ...index,
      }),
    );
    const args = async () => [
      '--config',
      path.join(data, 'config.json'),
      '--data',
      data,
      '--port',
      String(await freePort()),
      '--http-port',
      String(await freePort()),
    ];
    const firstArgs = await args();
    const first = await spawnServer(firstArgs);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await send(Number(firstArgs[5]), ct.files)).code).toBe(0);
    const db = await openIndexDatabase({ dataDir: data, ...index });
    await until('the job to run', async () => ((await db.get("SELECT 1 FROM jobs WHERE status = 'running'")) ? true : undefined));
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const second = await spawnServer(await args());
    try {
      const job = await until(
        'the job to finish',
        async () => (await db.get("SELECT * FROM jobs WHERE status = 'succeeded'")) as { attempts: number } | undefined,
      );
      expect(job.attempts).toBe(2);
    } finally {
      await db.close();
      second.child.kill('SIGTERM');
    }
  });

  it('cancels a running job from the CLI; the worker step is stopped and the server goes on', async () => {
    const s = await server([{ name: 'long', trigger: { on: 'instance' }, steps: [{ plugin: 'test-sleeps', options: { ms: 60000 } }] }]);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    await send(s.dicomPort, ct.files);
    const job = await until('the job to run', async () => (await s.jobs.listJobs({ status: 'running' }))[0]);
    const { stdout } = await run(node, [cli, 'cancel', job.id, '--data', s.dataDir]);
    expect(stdout).toContain(`job ${job.id} cancelled`);
    await s.engine.idle();
    expect(await s.jobs.getJob(job.id)).toMatchObject({ status: 'cancelled' });
    expect((await echoscu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort)])).code).toBe(0);
  });

  it('reruns a job from the CLI while the server runs, linked to the original', async () => {
    const s = await server([{ name: 'rerunnable', trigger: { on: 'instance' }, steps: [{ plugin: 'test-writes-file' }] }]);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    await send(s.dicomPort, ct.files);
    await s.engine.idle();
    const [original] = await s.jobs.listJobs({});
    const { stdout } = await run(node, [cli, 'rerun', original.id, '--data', s.dataDir, '--user', 'alice']);
    const rerunId = stdout.trim();
    const rerun = await until('the rerun', async () => {
      const j = await s.jobs.getJob(rerunId);
      return j?.status === 'succeeded' ? j : undefined;
    });
    expect(rerun).toMatchObject({ rerunOf: original.id, triggerOn: 'rerun', createdBy: 'alice', inputs: original.inputs });
    const { stdout: listed } = await run(node, [cli, 'jobs', '--data', s.dataDir, '--json']);
    expect(JSON.parse(listed).map((j: { id: string }) => j.id)).toEqual([rerunId, original.id]);
  });

  it('an invalid pipeline file is reported with pointer and line, and never replaces the valid one', async () => {
    const s = await server([{ name: 'editable', trigger: { on: 'instance' }, steps: [{ plugin: 'test-writes-file' }] }]);
    const file = path.join(s.config.pipelinesDir, 'editable.json');
    fs.writeFileSync(
      file,
      '{\n  "name": "editable",\n  "trigger": { "on": "instance" },\n  "steps": [{ "plugin": "test-writes-file", "timeoutSeconds": "soon" }]\n}\n',
    );
    await until('the reload', async () => (s.pipelines.problems().length > 0 ? true : undefined));
    const [problem] = s.pipelines.problems();
    expect(problem).toMatchObject({ pointer: '/steps/0/timeoutSeconds', line: 4 });
    expect(s.pipelines.get('editable')?.steps[0].timeoutSeconds).toBe(600);
    const result = await run(node, [cli, 'validate', file]).catch((e: { code: number; stderr: string }) => e);
    expect((result as { code: number }).code).toBe(1);
    expect((result as { stderr: string }).stderr).toContain(`${file}:4:`);
    expect((result as { stderr: string }).stderr).toContain('/steps/0/timeoutSeconds: must be number');
  });
});

describe('pipeline versions', () => {
  // Which file the test-writes-file step of an attempt wrote: the option the version gave it.
  const written = (job: { steps?: { attempt: number; index: number; outputs: { path?: string }[] }[] } | undefined, attempt: number) =>
    job?.steps
      ?.filter((st) => st.attempt === attempt && st.index === 0)
      .flatMap((st) => st.outputs.map((o) => path.basename(o.path ?? '')));
  const versioned = (name: string, gate: string) => ({
    name: 'versioned',
    trigger: { on: 'instance' },
    retry: { maxAttempts: 2, backoffSeconds: 0 },
    steps: [
      { plugin: 'test-writes-file', options: { name } },
      { plugin: 'test-waits-for-file', options: { path: gate } },
      { plugin: 'test-throws-main' },
    ],
  });

  it('a retry runs the version the job was queued with after the file is edited; a rerun runs it, or the current one when asked, also after a restart', async () => {
    const gate = path.join(tempDir(), 'open');
    const dir = pipelinesDir([versioned('v1.txt', gate)]);
    const file = path.join(dir, 'versioned.json');
    const config = { pipelinesDir: dir, defaultPipeline: false, plugins: { directories: [testPlugins] }, engine: { workerThreads: 1 } };
    const s = await startTestServer(config);
    servers.push(s);
    const v1 = s.pipelines.get('versioned')!.hash;
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await send(s.dicomPort, ct.files)).code).toBe(0);
    const job = await until('the first attempt to wait at the gate', async () => (await s.jobs.listJobs({ status: 'running' }))[0]);
    // Edited while its first attempt runs: the retry must not pick this up.
    fs.writeFileSync(file, JSON.stringify(versioned('v2.txt', gate)));
    const v2 = await until('the edit to load', async () =>
      s.pipelines.get('versioned')!.hash !== v1 ? s.pipelines.get('versioned')!.hash : undefined,
    );
    fs.writeFileSync(gate, '');
    const failed = await until('both attempts', async () =>
      (await s.jobs.getJob(job.id))?.status === 'failed' ? await s.jobs.getJob(job.id) : undefined,
    );
    expect(failed).toMatchObject({ attempts: 2, pipelineHash: v1 });
    expect(written(failed, 1)).toEqual(['v1.txt']);
    expect(written(failed, 2)).toEqual(['v1.txt']);

    const api = apiClient(s.httpPort, s.adminToken);
    expect((await api.get(`/api/jobs/${job.id}`)).body).toMatchObject({
      pipelineVersion: v1,
      currentPipelineVersion: v2,
      pipelineVersionIsCurrent: false,
    });
    const original = await api.post(`/api/jobs/${job.id}/rerun`, {});
    expect(original).toMatchObject({ status: 202, body: { pipelineVersion: v1 } });
    const current = await api.post(`/api/jobs/${job.id}/rerun`, { pipelineVersion: 'current' });
    expect(current).toMatchObject({ status: 202, body: { pipelineVersion: v2 } });
    const ended = (id: string) =>
      until(`job ${id}`, async () => ((await s.jobs.getJob(id))?.status === 'failed' ? await s.jobs.getJob(id) : undefined));
    expect(written(await ended(original.body.jobId), 1)).toEqual(['v1.txt']);
    expect(written(await ended(current.body.jobId), 1)).toEqual(['v2.txt']);
    expect((await api.get(`/api/jobs/${current.body.jobId}`)).body).toMatchObject({ pipelineVersion: v2, pipelineVersionIsCurrent: true });
    expect(await api.post(`/api/jobs/${job.id}/rerun`, { pipelineVersion: 'newest' })).toMatchObject({
      status: 400,
      body: { code: 'DF_ERR_REQUEST_INVALID' },
    });

    // A fresh process knows the edited file only; the original version comes from the index.
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    const again = await startTestServer({ ...config, dataDir: s.dataDir });
    servers.push(again);
    const { stdout, stderr } = await run(node, [cli, 'rerun', job.id, '--data', s.dataDir]);
    expect(stderr).toContain(`runs pipeline version ${v1} (original)`);
    expect(
      written(
        await until('the rerun after restart', async () =>
          (await again.jobs.getJob(stdout.trim()))?.status === 'failed' ? await again.jobs.getJob(stdout.trim()) : undefined,
        ),
        1,
      ),
    ).toEqual(['v1.txt']);
    const shown = await run(node, [cli, 'job', job.id, '--data', s.dataDir]);
    expect(shown.stdout).toContain(`pipeline version ${v1} (edited since: loaded now is ${v2})`);
    const fromCurrent = await run(node, [cli, 'rerun', job.id, '--data', s.dataDir, '--pipeline-version', 'current']);
    expect(fromCurrent.stderr).toContain(`runs pipeline version ${v2} (current)`);

    // With no server running, the CLI loads the pipelines and the kept version itself.
    await again.close();
    servers.splice(servers.indexOf(again), 1);
    const configFile = path.join(again.dataDir, 'config.json');
    const direct = await run(node, [cli, 'rerun', job.id, '--config', configFile]);
    expect(direct.stderr).toContain(`runs pipeline version ${v1} (original)`);
    const directCurrent = await run(node, [cli, 'rerun', job.id, '--config', configFile, '--pipeline-version', 'current']);
    expect(directCurrent.stderr).toContain(`runs pipeline version ${v2} (current)`);
    const listed = JSON.parse((await run(node, [cli, 'jobs', '--config', configFile, '--json'])).stdout) as {
      id: string;
      pipelineHash: string;
    }[];
    expect(listed.find((j) => j.id === direct.stdout.trim())?.pipelineHash).toBe(v1);
    expect(listed.find((j) => j.id === directCurrent.stdout.trim())?.pipelineHash).toBe(v2);
  });
});
