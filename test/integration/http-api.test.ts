import fs from 'node:fs';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import { ctSeries, type BuiltSeries } from '../fixtures/builder.ts';
import { apiClient, openEvents } from '../helpers/api.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const repo = path.resolve(import.meta.dirname, '../..');

/**
 * The HTTP API end to end over real sockets: every route without a token, and with the users
 * of PMOD's ATL_Manager case: a manager with write on Import and StudyA, an operator who reads
 * Import, a reader of StudyB and a reader of StudyA.
 */
describe('HTTP API', () => {
  let s: Awaited<ReturnType<typeof startTestServer>>;
  let ct: BuiltSeries;
  const token: Record<string, string> = {};
  const as = (user: string) => apiClient(s.httpPort, token[user]);

  beforeAll(async () => {
    const pipelinesDir = tempDir();
    fs.writeFileSync(
      path.join(pipelinesDir, 'tac.json'),
      JSON.stringify({
        name: 'tac',
        trigger: { on: 'series', stableSeconds: 0.3 },
        steps: [{ plugin: 'test-time-activity', options: { ms: 100 } }],
      }),
    );
    s = await startTestServer({
      pipelinesDir,
      plugins: { directories: [path.join(repo, 'test/fixtures/plugins')] },
      databases: [{ name: 'Import' }, { name: 'StudyA' }, { name: 'StudyB' }],
      users: [
        { name: 'alice', role: 'manager', databases: { Import: 'write', StudyA: 'write' } },
        { name: 'olga', role: 'operator', databases: { Import: 'read' } },
        { name: 'rita', role: 'reader', databases: { StudyB: 'read' } },
        { name: 'sam', role: 'reader', databases: { StudyA: 'read' } },
      ],
      engine: { workerThreads: 1 },
    });
    token.admin = s.adminToken;
    for (const user of ['alice', 'olga', 'rita', 'sam']) token[user] = (await issueToken(s.tokens, s.users, user)).token;
    ct = await ctSeries(tempDir(), { slices: 2, rows: 16, cols: 16 });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
    await until('the tac job', async () => (await s.jobs.listJobs({ pipeline: 'tac', status: 'succeeded' }))[0]);
    await s.engine.idle();
  });
  afterAll(() => s?.close());

  it('answers the health probe without a token and every other route only with a valid one', async () => {
    expect(await apiClient(s.httpPort).get('/api/health')).toMatchObject({
      status: 200,
      body: { ok: true, dicom: true, index: true, storage: true },
    });
    const doc = (await as('admin').get('/api/openapi.json')).body;
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => [m.toUpperCase(), p] as const),
    );
    expect(routes.length).toBeGreaterThan(25);
    for (const [method, template] of routes) {
      const route = template.replace(/\{[^}]+\}/g, '1');
      for (const client of [apiClient(s.httpPort), apiClient(s.httpPort, 'dft_not-a-token')]) {
        const reply = await client.call(method, route);
        if (template === '/api/health') expect(reply.status).toBe(200);
        else
          expect({ method, route, status: reply.status, code: reply.body.code }).toEqual({
            method,
            route,
            status: 401,
            code: 'DF_ERR_UNAUTHORIZED',
          });
      }
    }
  });

  it('serves an OpenAPI 3.1 document that validates and names every route with its error replies', async () => {
    const doc = (await as('sam').get('/api/openapi.json')).body;
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.paths['/api/health'].get.security).toEqual([]);
    expect(doc.paths['/api/jobs/{id}/rerun'].post.responses).toHaveProperty('403');
    expect(doc.paths['/api/databases/{db}/transfer'].post.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
  });

  it('refuses unknown properties and wrong types with DF_ERR_REQUEST_INVALID naming the field', async () => {
    const extra = await as('alice').post('/api/databases/Import/transfer', {
      to: 'StudyA',
      mode: 'move',
      level: 'study',
      uid: ct.studyInstanceUid,
      force: true,
    });
    expect(extra).toMatchObject({ status: 400, body: { code: 'DF_ERR_REQUEST_INVALID' } });
    expect(extra.body.message).toContain('"force"');
    expect((await as('olga').get('/api/jobs?limit=0')).body).toMatchObject({ code: 'DF_ERR_REQUEST_INVALID' });
    expect((await as('olga').get('/api/jobs?sort=asc')).body.message).toContain('"sort"');
    expect(await as('olga').get('/api/nothing-here')).toMatchObject({ status: 404, body: { code: 'DF_ERR_ROUTE_UNKNOWN' } });
  });

  it('shows status (with the nodes sharing the index), the user and recent arrivals within the rights of the token', async () => {
    const status = await as('olga').get('/api/status');
    expect(status.status).toBe(200);
    expect(status.body.received).toMatchObject({ objects: 2 });
    expect(status.body.engine.pool).toHaveProperty('utilization');
    expect(status.body.databases.map((d: { name: string }) => d.name)).toEqual(['Import']);
    expect((await as('admin').get('/api/status')).body.databases).toHaveLength(3);
    // One node on SQLite: this one, alive, with the load it reported at its last heartbeat.
    expect(status.body.cluster).toMatchObject({
      backend: expect.stringMatching(/^(sqlite|postgres)$/),
      node: s.cluster.name,
      heartbeatSeconds: expect.any(Number),
    });
    expect(status.body.cluster.nodes).toEqual([
      expect.objectContaining({
        name: s.cluster.name,
        alive: true,
        self: true,
        status: expect.objectContaining({ pid: process.pid, dicom: expect.objectContaining({ port: s.dicomPort }) }),
      }),
    ]);
    expect(status.body.engine.queuedByPipeline).toEqual({});
    expect((await as('rita').get('/api/me')).body).toEqual({
      name: 'rita',
      role: 'reader',
      databases: [{ name: 'StudyB', right: 'read' }],
    });
    expect((await as('admin').get('/api/me')).body).toMatchObject({ name: 'admin', role: 'admin' });
    const arrivals = await as('olga').get('/api/arrivals?limit=10');
    expect(arrivals.body.map((a: { sopInstanceUid: string }) => a.sopInstanceUid).sort()).toEqual([...ct.sopInstanceUids].sort());
    expect(arrivals.body[0]).toMatchObject({ database: 'Import', callingAeTitle: 'STORESCU', source: 'network' });
    expect((await as('rita').get('/api/arrivals')).body).toEqual([]);
  });

  it('lists jobs with filters and paging, and shows a job with steps, logs and outputs to download', async () => {
    const first = await as('olga').get('/api/jobs?limit=1');
    expect(first.status).toBe(200);
    expect(first.body.jobs).toHaveLength(1);
    const all = (await as('olga').get('/api/jobs?limit=500')).body.jobs as { id: string }[];
    if (all.length > 1) {
      expect(first.body.next).toBe(first.body.jobs[0].id);
      const second = await as('olga').get(`/api/jobs?limit=1&before=${first.body.next}`);
      expect(second.body.jobs[0].id).toBe(all[1].id);
    }
    const tac = (await as('olga').get('/api/jobs?pipeline=tac&status=succeeded')).body.jobs;
    expect(tac).toHaveLength(1);
    expect((await as('olga').get('/api/jobs?pipeline=tac&status=failed')).body.jobs).toEqual([]);

    const detail = await as('olga').get(`/api/jobs/${tac[0].id}`);
    expect(detail.body).toMatchObject({
      id: tac[0].id,
      pipeline: 'tac',
      status: 'succeeded',
      progress: 1,
      triggerOn: 'series',
      inputs: expect.any(Array),
    });
    expect(detail.body.steps[0]).toMatchObject({ id: 'test-time-activity', status: 'succeeded' });
    const logs = await as('olga').get(`/api/jobs/${tac[0].id}/logs`);
    expect(logs.body).toContainEqual(expect.objectContaining({ step: 'test-time-activity', level: 'info', message: 'curve written' }));
    const outputs = (await as('olga').get(`/api/jobs/${tac[0].id}/outputs`)).body as {
      index: number;
      kind: string;
      downloadable: boolean;
      rows?: unknown[];
    }[];
    expect(outputs.find((o) => o.kind === 'table')).toMatchObject({
      name: 'time-activity-curve',
      downloadable: false,
      rows: expect.arrayContaining([expect.objectContaining({ timeSeconds: 30 })]),
    });
    const csv = outputs.find((o) => o.kind === 'file')!;
    const download = await as('olga').get(`/api/jobs/${tac[0].id}/outputs/${csv.index}`);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-disposition')).toBe('attachment; filename="tac.csv"');
    expect(download.body).toMatch(/^timeSeconds,wholeBrainKbqPerMl,cerebellumKbqPerMl\n0,0,0\n30,/);
    expect(await as('olga').get(`/api/jobs/${tac[0].id}/outputs/99`)).toMatchObject({
      status: 404,
      body: { code: 'DF_ERR_OUTPUT_UNKNOWN' },
    });
    expect(await as('olga').get('/api/jobs/no-such-job')).toMatchObject({ status: 404, body: { code: 'DF_ERR_JOB_UNKNOWN' } });

    // Jobs show what was received: a reader of StudyB sees none of the jobs on Import's arrivals.
    expect((await as('rita').get('/api/jobs')).body.jobs).toEqual([]);
    for (const route of ['', '/logs', '/outputs', `/outputs/${csv.index}`]) {
      expect(await as('rita').get(`/api/jobs/${tac[0].id}${route}`)).toMatchObject({ status: 403, body: { code: 'DF_ERR_FORBIDDEN' } });
    }
    expect((await as('admin').get('/api/jobs?pipeline=tac')).body.jobs).toHaveLength(1);
  });

  it('reruns and cancels for operators and up, records who did it, and refuses readers', async () => {
    const [original] = (await as('olga').get('/api/jobs?pipeline=tac&status=succeeded')).body.jobs;
    expect(await as('rita').post(`/api/jobs/${original.id}/rerun`, {})).toMatchObject({ status: 403, body: { code: 'DF_ERR_FORBIDDEN' } });
    expect(await as('rita').post(`/api/jobs/${original.id}/cancel`)).toMatchObject({ status: 403, body: { code: 'DF_ERR_FORBIDDEN' } });
    expect((await as('olga').post(`/api/jobs/${original.id}/rerun`, { onBehalfOf: 'alice' })).status).toBe(403);

    const rerun = await as('olga').post(`/api/jobs/${original.id}/rerun`, {});
    expect(rerun.status).toBe(202);
    const done = await until('the rerun', async () =>
      (await s.jobs.getJob(rerun.body.jobId))?.status === 'succeeded' ? await s.jobs.getJob(rerun.body.jobId) : undefined,
    );
    expect(done).toMatchObject({ rerunOf: original.id, triggerOn: 'rerun', createdBy: 'olga', inputs: original.inputs });
    expect((await as('olga').post(`/api/jobs/${rerun.body.jobId}/cancel`)).body).toEqual({ cancelled: false });

    const onBehalf = await as('admin').post(`/api/jobs/${original.id}/rerun`, { onBehalfOf: 'alice' });
    expect((await s.jobs.getJob(onBehalf.body.jobId))?.createdBy).toBe('alice');
    const cancelled = await as('alice').post(`/api/jobs/${onBehalf.body.jobId}/cancel`);
    expect(cancelled.status).toBe(200);
    await s.engine.idle();

    expect(await as('olga').get('/api/audit')).toMatchObject({ status: 403 });
    const audit = (await as('admin').get('/api/audit')).body as { user: string; action: string; details: Record<string, unknown> }[];
    expect(audit).toContainEqual(
      expect.objectContaining({
        user: 'olga',
        action: 'rerun',
        details: expect.objectContaining({ jobId: original.id, newJobId: rerun.body.jobId }),
      }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ user: 'admin', action: 'rerun', details: expect.objectContaining({ onBehalfOf: 'alice' }) }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ user: 'alice', action: 'cancel', details: expect.objectContaining({ jobId: onBehalf.body.jobId }) }),
    );
  });

  it('lists, shows, validates and reloads pipelines', async () => {
    const list = (await as('rita').get('/api/pipelines')).body;
    expect(list.pipelines.map((p: { name: string }) => p.name)).toContain('tac');
    expect(list.problems).toEqual([]);
    const tac = await as('rita').get('/api/pipelines/tac');
    expect(tac.body).toMatchObject({
      name: 'tac',
      enabled: true,
      steps: [{ id: 'test-time-activity', plugin: 'test-time-activity' }],
      definition: { trigger: { on: 'series' } },
    });
    expect(await as('rita').get('/api/pipelines/nope')).toMatchObject({ status: 404, body: { code: 'DF_ERR_PIPELINE_UNKNOWN' } });

    const valid = await as('rita').post('/api/pipelines/validate', {
      name: 'x',
      trigger: { on: 'instance' },
      steps: [{ plugin: 'count-instances' }],
    });
    expect(valid.body).toEqual({ valid: true, problems: [] });
    const invalid = await as('rita').post('/api/pipelines/validate', {
      name: 'x',
      trigger: { on: 'sometimes' },
      steps: [{ plugin: 'no-such-step' }],
    });
    expect(invalid.body.valid).toBe(false);
    expect(invalid.body.problems.map((p: { pointer: string }) => p.pointer)).toEqual(expect.arrayContaining(['/trigger/on']));

    expect(await as('olga').post('/api/pipelines/reload')).toMatchObject({ status: 403 });
    const reloaded = await as('admin').post('/api/pipelines/reload');
    expect(reloaded).toMatchObject({ status: 200, body: { loaded: expect.arrayContaining(['tac']), problems: [] } });
  });

  it('runs a pipeline by hand on a study or series of a database the user may read', async () => {
    const study = { database: 'Import', study: ct.studyInstanceUid };
    expect(await as('rita').post('/api/pipelines/tac/run', study)).toMatchObject({ status: 403 });
    expect(await as('olga').post('/api/pipelines/tac/run', { database: 'StudyA', study: ct.studyInstanceUid })).toMatchObject({
      status: 403,
      body: { code: 'DF_ERR_FORBIDDEN' },
    });
    expect(await as('olga').post('/api/pipelines/tac/run', { ...study, series: ct.seriesInstanceUid })).toMatchObject({
      status: 400,
      body: { code: 'DF_ERR_REQUEST_INVALID' },
    });
    expect(await as('olga').post('/api/pipelines/tac/run', { database: 'Import', study: '1.2.3' })).toMatchObject({
      status: 404,
      body: { code: 'DF_ERR_NOT_FOUND' },
    });
    expect(await as('olga').post('/api/pipelines/nope/run', study)).toMatchObject({
      status: 404,
      body: { code: 'DF_ERR_PIPELINE_UNKNOWN' },
    });

    const run = await as('olga').post('/api/pipelines/tac/run', { database: 'Import', series: ct.seriesInstanceUid });
    expect(run.status).toBe(202);
    const job = await until('the manual job', async () =>
      (await s.jobs.getJob(run.body.jobId))?.status === 'succeeded' ? await s.jobs.getJob(run.body.jobId) : undefined,
    );
    expect(job).toMatchObject({ triggerOn: 'manual', triggerUid: ct.seriesInstanceUid, createdBy: 'olga' });
    expect(job!.inputs).toHaveLength(2);
    const audit = (await as('admin').get('/api/audit')).body;
    expect(audit).toContainEqual(
      expect.objectContaining({
        user: 'olga',
        action: 'run',
        details: expect.objectContaining({ pipeline: 'tac', jobId: run.body.jobId }),
      }),
    );
  });

  it('ATL_Manager: a manager moves a received study from Import to a study database; a reader of another database cannot see it', async () => {
    const uid = ct.studyInstanceUid;
    const studiesIn = async (user: string, db: string) => (await as(user).get(`/api/databases/${db}/studies`)).body;
    expect((await studiesIn('alice', 'Import')).map((r: { study: { StudyInstanceUID: string } }) => r.study.StudyInstanceUID)).toEqual([
      uid,
    ]);

    const move = { to: 'StudyA', mode: 'move', level: 'study', uid };
    expect(await as('olga').post('/api/databases/Import/transfer', move)).toMatchObject({
      status: 403,
      body: { code: 'DF_ERR_FORBIDDEN' },
    });
    expect(await as('alice').post('/api/databases/Import/transfer', { ...move, to: 'StudyB' })).toMatchObject({
      status: 403,
      body: { code: 'DF_ERR_FORBIDDEN' },
    });
    expect(await as('alice').post('/api/databases/Import/transfer', { ...move, to: 'Nowhere' })).toMatchObject({
      status: 404,
      body: { code: 'DF_ERR_DATABASE_UNKNOWN' },
    });
    const moved = await as('alice').post('/api/databases/Import/transfer', move);
    expect(moved).toMatchObject({ status: 200, body: { instances: 2, filed: 2, duplicates: 0 } });

    expect(await studiesIn('alice', 'Import')).toEqual([]);
    const inStudyA = await studiesIn('sam', 'StudyA');
    expect(inStudyA).toHaveLength(1);
    expect(inStudyA[0]).toMatchObject({
      study: { StudyInstanceUID: uid },
      numberOfSeries: 1,
      numberOfInstances: 2,
      modalitiesInStudy: ['CT'],
    });
    // The reader of StudyB: not listed, not browsable, not in their status.
    expect((await as('rita').get('/api/databases')).body.map((d: { name: string }) => d.name)).toEqual(['StudyB']);
    expect(await as('rita').get('/api/databases/StudyA/studies')).toMatchObject({ status: 403, body: { code: 'DF_ERR_FORBIDDEN' } });
    expect(await as('rita').get(`/api/databases/StudyA/studies/${uid}/series`)).toMatchObject({ status: 403 });

    const series = (await as('sam').get(`/api/databases/StudyA/studies/${uid}/series`)).body;
    expect(series).toEqual([
      expect.objectContaining({ series: expect.objectContaining({ SeriesInstanceUID: ct.seriesInstanceUid }), numberOfInstances: 2 }),
    ]);
    const instances = (await as('sam').get(`/api/databases/StudyA/studies/${uid}/series/${ct.seriesInstanceUid}/instances`)).body;
    expect(instances).toHaveLength(2);
    expect(instances[0]).toMatchObject({ createdBy: 'alice', source: 'move' });
    expect((await as('sam').get('/api/databases/StudyA/patients')).body[0]).toMatchObject({ numberOfStudies: 1, numberOfInstances: 2 });
    expect(await as('sam').get('/api/databases/Nowhere/patients')).toMatchObject({
      status: 404,
      body: { code: 'DF_ERR_DATABASE_UNKNOWN' },
    });
    expect(await as('sam').get('/api/databases/StudyA/studies/1.2.3/series')).toMatchObject({
      status: 404,
      body: { code: 'DF_ERR_NOT_FOUND' },
    });

    // Copy back needs read on StudyA and write on Import: alice has both.
    expect(await as('alice').post('/api/databases/StudyA/transfer', { ...move, to: 'Import', mode: 'copy' })).toMatchObject({
      status: 200,
      body: { filed: 2 },
    });
    const audit = (await as('admin').get('/api/audit')).body;
    expect(audit).toContainEqual(
      expect.objectContaining({ user: 'alice', action: 'move', details: expect.objectContaining({ from: 'Import', to: 'StudyA', uid }) }),
    );
    expect(audit).toContainEqual(expect.objectContaining({ user: 'alice', action: 'copy' }));
  });

  it('streams arrivals and job progress as server-sent events, only to readers of their database', async () => {
    const olga = await openEvents(s.httpPort, token.olga);
    const rita = await openEvents(s.httpPort, token.rita);
    expect([olga.status, rita.status]).toEqual([200, 200]);
    try {
      const more = await ctSeries(tempDir(), { slices: 1, rows: 16, cols: 16 });
      expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...more.files])).code).toBe(0);
      const arrival = await until('the arrival event', async () => olga.events.find((e) => e.event === 'arrival'));
      expect(arrival.data).toMatchObject({ sopInstanceUid: more.sopInstanceUids[0], database: 'Import', callingAeTitle: 'STORESCU' });
      const finished = await until('the job end event', async () =>
        olga.events.find((e) => e.event === 'job' && e.data.type === 'finished' && e.data.pipeline === 'tac'),
      );
      expect(finished.data).toMatchObject({ pipeline: 'tac', status: 'succeeded' });
      const types = olga.events.filter((e) => e.event === 'job' && e.data.jobId === finished.data.jobId).map((e) => e.data.type);
      expect(types[0]).toBe('queued');
      expect(types).toContain('started');
      expect(types).toContain('progress');
      expect(types.at(-1)).toBe('finished');
      // rita reads StudyB only: neither the Import arrival nor its job (test/integration/http-events.test.ts checks the ordering).
      expect(rita.events.filter((e) => e.event === 'arrival')).toEqual([]);
      expect(rita.events.filter((e) => e.event === 'job' && e.data.jobId === finished.data.jobId)).toEqual([]);
    } finally {
      olga.close();
      rita.close();
    }
  });

  it('exposes Prometheus metrics: arrivals, bytes, job durations by pipeline, failures, the nodes sharing the index', async () => {
    const text = (await as('sam').get('/api/metrics')).body as string;
    expect(text).toMatch(/^dicomflow_arrivals_total\{source="network",database="Import"\} 3$/m);
    expect(text).toMatch(/^dicomflow_received_objects_total 3$/m);
    expect(text).toMatch(/^dicomflow_received_bytes_total [1-9]\d*$/m);
    expect(text).toMatch(/^dicomflow_job_duration_seconds_count\{pipeline="tac",status="succeeded"\} [1-9]$/m);
    expect(text).toMatch(/^# TYPE dicomflow_job_failures_total counter$/m);
    expect(text).toMatch(/^dicomflow_jobs\{status="queued"\} 0$/m);
    expect(text).toMatch(/^dicomflow_associations_open 0$/m);
    expect(text).toContain(`dicomflow_node_alive{node="${s.cluster.name}"} 1`);
    const node = (metric: string) => text.split('\n').find((l) => l.startsWith(`${metric}{node="${s.cluster.name}"} `));
    expect(node('dicomflow_node_running_jobs')).toMatch(/ \d+$/);
    expect(node('dicomflow_node_pool_utilization_ratio')).toMatch(/ [\d.]+$/);
    expect(text).toMatch(/^# TYPE dicomflow_jobs_queued gauge$/m);
  });

  it('lets admins make and revoke tokens; a revoked token opens nothing', async () => {
    expect(await as('olga').get('/api/tokens')).toMatchObject({ status: 403 });
    expect(await as('olga').post('/api/tokens', { user: 'olga' })).toMatchObject({ status: 403 });
    expect(await as('admin').post('/api/tokens', { user: 'nobody' })).toMatchObject({ status: 400, body: { code: 'DF_ERR_USAGE' } });
    const made = await as('admin').post('/api/tokens', { user: 'sam', description: 'wall display' });
    expect(made.status).toBe(201);
    expect(made.body.token).toMatch(/^dft_/);
    expect((await apiClient(s.httpPort, made.body.token).get('/api/me')).body.name).toBe('sam');
    const listed = (await as('admin').get('/api/tokens')).body;
    expect(listed).toContainEqual(expect.objectContaining({ id: made.body.id, user: 'sam', description: 'wall display' }));
    expect(JSON.stringify(listed)).not.toContain(made.body.token);
    expect(await as('olga').del(`/api/tokens/${made.body.id}`)).toMatchObject({ status: 403 });
    expect((await as('admin').del(`/api/tokens/${made.body.id}`)).status).toBe(204);
    expect(await apiClient(s.httpPort, made.body.token).get('/api/me')).toMatchObject({
      status: 401,
      body: { code: 'DF_ERR_UNAUTHORIZED' },
    });
    expect(await as('admin').del(`/api/tokens/${made.body.id}`)).toMatchObject({ status: 404, body: { code: 'DF_ERR_TOKEN_UNKNOWN' } });
  });
});
