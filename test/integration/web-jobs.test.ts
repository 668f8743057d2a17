import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import { ensureWebBuilt } from '../../server/http/web.ts';
import { ctSeries, mrSeries } from '../fixtures/builder.ts';
import { hasTool, storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';
import { SCREENS } from '../helpers/screens.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');
const CHROMIUM = '/usr/bin/chromium';

const CT_SLICES = 150;
const MR_SLICES = 70;
const INPUTS = CT_SLICES + MR_SLICES;

/**
 * The jobs an operator meets, at a size where lists and pages must sum up: 220 instances of
 * one study in two series make 220 instance jobs (grouped into rows per series), and one study
 * job over all 220 (inputs per series, a plot, 220 derived instances counted, one archive, a
 * paged log); the arrivals list shows one row per series. API, CLI and the page in Chromium.
 */
describe.skipIf(!hasTool('storescu') || !fs.existsSync(CHROMIUM))('jobs and arrivals that sum up', () => {
  let s: Awaited<ReturnType<typeof startTestServer>>;
  let browser: Browser;
  const token: Record<string, string> = {};
  let ct: Awaited<ReturnType<typeof ctSeries>>;
  let mr: Awaited<ReturnType<typeof mrSeries>>;
  let studyJobId: string;
  let pipelinesDir: string;

  const api = async (user: string, route: string) => {
    const res = await fetch(`http://127.0.0.1:${s.httpPort}${route}`, { headers: { authorization: `Bearer ${token[user]}` } });
    const type = res.headers.get('content-type') ?? '';
    return {
      status: res.status,
      headers: res.headers,
      body: type.includes('json') ? await res.json() : Buffer.from(await res.arrayBuffer()),
    };
  };

  beforeAll(async () => {
    const built = await ensureWebBuilt();
    if (built.error) throw new Error(`building the web page failed: ${built.error}`);
    fs.mkdirSync(SCREENS, { recursive: true });
    pipelinesDir = tempDir();
    fs.writeFileSync(
      path.join(pipelinesDir, 'per-instance.json'),
      JSON.stringify({ name: 'per-instance', trigger: { on: 'instance' }, steps: [{ plugin: 'count-instances' }] }),
    );
    fs.writeFileSync(
      path.join(pipelinesDir, 'whole-study.json'),
      JSON.stringify({
        name: 'whole-study',
        // Quiet long enough that a loaded machine's pauses in sending do not split the study.
        trigger: { on: 'study', stableSeconds: 4 },
        steps: [{ plugin: 'test-logs-and-plots' }, { plugin: 'deidentify', options: { burnedInAnnotation: 'refuse' } }],
      }),
    );
    s = await startTestServer({
      pipelinesDir,
      plugins: { directories: [path.join(repo, 'test/fixtures/plugins')] },
      databases: [{ name: 'Import' }, { name: 'Other' }],
      users: [
        { name: 'olga', role: 'operator', databases: { Import: 'read' } },
        { name: 'rita', role: 'reader', databases: { Other: 'read' } },
      ],
    });
    expect(s.pipelines.problems()).toEqual([]);
    for (const user of ['olga', 'rita']) token[user] = (await issueToken(s.tokens, s.users, user)).token;
    token.admin = s.adminToken;
    const dir = tempDir();
    const patient = { patientName: 'Quillon^Marisa', patientId: 'QM4471' };
    ct = await ctSeries(path.join(dir, 'ct'), { ...patient, uidSeed: 'web-jobs', slices: CT_SLICES, rows: 8, cols: 8 });
    mr = await mrSeries(path.join(dir, 'mr'), {
      ...patient,
      uidSeed: 'web-jobs',
      studyUid: ct.studyInstanceUid,
      seriesNumber: 2,
      slices: MR_SLICES,
      rows: 8,
      cols: 8,
    });
    const sent = await storescu(['-aet', 'SCANNER', '-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files, ...mr.files]);
    expect(sent.code, sent.stderr).toBe(0);
    const study = await until(
      'the study job',
      async () => (await s.jobs.listJobs({ pipeline: 'whole-study' })).find((j) => j.status === 'succeeded' || j.status === 'failed'),
      120_000,
    );
    expect(study.inputs).toHaveLength(INPUTS);
    expect((await s.jobs.getJob(study.id))?.error).toBeUndefined();
    expect(study.status).toBe('succeeded');
    studyJobId = study.id;
    await until(
      'the instance jobs',
      async () => (await s.jobs.listJobs({ pipeline: 'per-instance', status: 'succeeded', limit: 1000 })).length === INPUTS,
      120_000,
    );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it("filters the job list by pipeline, status, trigger level, patient, study, series and time, within the user's rights", async () => {
    const ids = async (query: string, user = 'olga') => {
      const r = await api(user, `/api/jobs?limit=500&${query}`);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body.jobs as { id: string; pipeline: string; triggerOn: string; subject?: Record<string, string> }[];
    };
    expect(await ids('pipeline=per-instance')).toHaveLength(INPUTS);
    expect(await ids('triggerOn=study')).toEqual([
      expect.objectContaining({
        id: studyJobId,
        subject: expect.objectContaining({ patientName: 'Quillon^Marisa', studyInstanceUid: ct.studyInstanceUid }),
      }),
    ]);
    expect(await ids(`triggerOn=instance&series=${mr.seriesInstanceUid}`)).toHaveLength(MR_SLICES);
    expect(await ids('patient=quillon')).toHaveLength(INPUTS + 1);
    expect(await ids('patient=qm44&pipeline=per-instance')).toHaveLength(INPUTS);
    expect(await ids('patient=nobody')).toEqual([]);
    expect(await ids(`study=${ct.studyInstanceUid}&pipeline=whole-study`)).toHaveLength(1);
    expect(await ids('status=failed')).toEqual([]);
    expect(await ids(`since=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([]);
    expect(await ids(`until=${new Date(Date.now() + 60_000).toISOString()}&pipeline=whole-study`)).toHaveLength(1);
    // Every listed instance job names its series, which is what the page groups by.
    const listed = await ids('pipeline=per-instance');
    expect(new Set(listed.map((j) => j.subject?.seriesInstanceUid))).toEqual(new Set([ct.seriesInstanceUid, mr.seriesInstanceUid]));
    // rita reads Other only: none of these jobs, and a bad time is a 400.
    expect(await ids('pipeline=per-instance', 'rita')).toEqual([]);
    expect((await api('olga', '/api/jobs?since=yesterday')).status).toBe(400);
  });

  it('sums up a job of 220 inputs: inputs per series, files listed, derived instances counted, a paged log, one archive', async () => {
    const summary = await api('olga', `/api/jobs/${studyJobId}/summary`);
    expect(summary.status).toBe(200);
    expect(summary.body.inputs.instances).toBe(INPUTS);
    expect(
      summary.body.inputs.series.map((x: { seriesInstanceUid: string; instances: number; attributes: Record<string, string> }) => [
        x.seriesInstanceUid,
        x.instances,
        x.attributes.Modality,
      ]),
    ).toEqual([
      [ct.seriesInstanceUid, CT_SLICES, 'CT'],
      [mr.seriesInstanceUid, MR_SLICES, 'MR'],
    ]);
    expect(summary.body.outputs.files).toEqual([
      expect.objectContaining({ step: 'test-logs-and-plots', name: 'instances-per-series.png' }),
    ]);
    expect(summary.body.outputs.instances).toMatchObject({
      count: INPUTS,
      groups: [expect.objectContaining({ step: 'deidentify', count: INPUTS })],
    });
    expect(summary.body.outputs.tables).toEqual([
      expect.objectContaining({ name: 'series-counts', rows: 2 }),
      expect.objectContaining({ step: 'deidentify', rows: INPUTS }),
    ]);
    expect(summary.body.log.levels.warn, JSON.stringify(summary.body.log)).toBe(1);
    expect(summary.body.log.lines).toBeGreaterThan(INPUTS);

    const page = await api('olga', `/api/jobs/${studyJobId}/logs?offset=200&limit=50`);
    expect(Number(page.headers.get('x-total-count'))).toBe(summary.body.log.lines);
    expect(page.body).toHaveLength(Math.min(50, summary.body.log.lines - 200));
    const warnings = await api('olga', `/api/jobs/${studyJobId}/logs?level=warn`);
    expect(warnings.body.map((l: { message: string }) => l.message)).toContain('a warning for the summary to count');

    // The archive, read by GNU tar: the plot and the 220 derived instances, byte for byte.
    const archive = await api('olga', `/api/jobs/${studyJobId}/archive`);
    expect(archive.status).toBe(200);
    expect(archive.headers.get('content-type')).toBe('application/x-tar');
    expect(Number(archive.headers.get('content-length'))).toBe((archive.body as Buffer).length);
    const tarFile = path.join(tempDir(), 'job.tar');
    fs.writeFileSync(tarFile, archive.body as Buffer);
    const listing = (await run('tar', ['-tf', tarFile])).stdout.trim().split('\n');
    expect(listing).toHaveLength(INPUTS + 1);
    expect(listing).toContain(`${studyJobId}/test-logs-and-plots/instances-per-series.png`);
    expect(listing.filter((n) => n.startsWith(`${studyJobId}/deidentify/`))).toHaveLength(INPUTS);
    const out = tempDir();
    await run('tar', ['-xf', tarFile, '-C', out]);
    const job = (await s.jobs.getJob(studyJobId))!;
    const png = job.steps!.flatMap((st) => st.outputs).find((o) => o.kind === 'file')!;
    expect(
      fs.readFileSync(path.join(out, studyJobId, 'test-logs-and-plots/instances-per-series.png')).equals(fs.readFileSync(png.path!)),
    ).toBe(true);
    // Rights: rita may read none of the job's databases.
    for (const route of ['summary', 'archive', 'logs']) expect((await api('rita', `/api/jobs/${studyJobId}/${route}`)).status).toBe(403);
  });

  it('counts received and produced apart, and lists arrivals per series with the date', async () => {
    const status = await api('admin', '/api/status');
    expect(status.body.received.objects).toBe(INPUTS);
    expect(status.body.produced.objects).toBe(INPUTS);
    const series = await api('olga', '/api/arrivals/series');
    const rows = (
      series.body as {
        seriesInstanceUid: string;
        count: number;
        senders: string[];
        database: string;
        sources: string[];
        firstReceivedAt: string;
      }[]
    ).filter((r) => r.sources.includes('network'));
    expect(rows.map((r) => [r.seriesInstanceUid, r.count, r.senders, r.database])).toEqual([
      [mr.seriesInstanceUid, MR_SLICES, ['SCANNER'], 'Import'],
      [ct.seriesInstanceUid, CT_SLICES, ['SCANNER'], 'Import'],
    ]);
    expect((await api('rita', '/api/arrivals/series')).body).toEqual([]);
  });

  it('`dicomflow job ID` prints the same summary; --all adds every log line', async () => {
    const env = { ...process.env, NO_COLOR: '1' };
    const short = await run(node, [cli, 'job', studyJobId, '--config', path.join(s.dataDir, 'config.json')], { env });
    expect(short.stdout).toContain(`inputs ${INPUTS} instance(s) in 2 series`);
    expect(short.stdout).toMatch(new RegExp(`^ +${CT_SLICES}  CT  #`, 'm'));
    expect(short.stdout).toContain(`outputs 1 file(s), ${INPUTS} derived instance(s), 2 table(s)`);
    expect(short.stdout).toContain('a warning for the summary to count');
    expect(short.stdout.split('\n').length).toBeLessThan(40);
    const all = await run(node, [cli, 'job', studyJobId, '--all', '--config', path.join(s.dataDir, 'config.json')], {
      env,
      maxBuffer: 16 * 1024 * 1024,
    });
    expect(all.stdout.split('\n').filter((l) => l.includes(' info read ')).length).toBe(INPUTS);
    const json = JSON.parse(
      (
        await run(node, [cli, 'job', studyJobId, '--json', '--config', path.join(s.dataDir, 'config.json')], {
          env,
          maxBuffer: 64 * 1024 * 1024,
        })
      ).stdout,
    );
    expect(json.inputs).toHaveLength(INPUTS);
    expect(json.summary.outputs.instances.count).toBe(INPUTS);
    const list = await run(
      node,
      [cli, 'jobs', '--trigger', 'study', '--patient', 'quillon', '--config', path.join(s.dataDir, 'config.json')],
      { env },
    );
    expect(list.stdout.trim().split('\n')).toHaveLength(2);
    expect(list.stdout).toContain(studyJobId);
  });

  async function logIn(user: string): Promise<{ page: Page; errors: string[] }> {
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
    page.setDefaultTimeout(20_000);
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('response', (r) => r.status() >= 400 && errors.push(`HTTP ${r.status()} ${r.url()}`));
    await page.goto(`http://127.0.0.1:${s.httpPort}/`);
    await page.fill('input[name=token]', token[user]);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-testid=user]');
    return { page, errors };
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    const file = path.join(SCREENS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    expect(fs.statSync(file).size).toBeGreaterThan(10_000);
  }

  it('the page: instance jobs grouped per series, filters, arrivals per series, and the job page summed up', async () => {
    const { page, errors } = await logIn('olga');
    // Instance jobs grouped: one row per series, with its count (the list holds the newest 100).
    const group = `[data-testid=jobs] tr.group[data-group-pipeline=per-instance]`;
    await page.waitForSelector(group);
    const counts = await page.$$eval(group, (rows) => rows.map((r) => Number(r.getAttribute('data-count'))));
    expect(counts.reduce((a, b) => a + b, 0)).toBeGreaterThan(counts.length);
    expect(await page.textContent(`${group} [data-status-count=succeeded]`)).toMatch(/^\d+ succeeded$/);
    await page.waitForSelector(`[data-testid=arrivals] tr[data-series="${ct.seriesInstanceUid}"][data-count="${CT_SLICES}"]`);
    expect(await page.textContent(`[data-testid=arrivals] tr[data-series="${ct.seriesInstanceUid}"]`)).toMatch(
      /\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/,
    );
    await screenshot(page, 'overview-grouped');

    // Filters: the study job alone, by trigger level and patient.
    await page.selectOption('[data-testid=job-filters] select[name=triggerOn]', 'study');
    await page.fill('[data-testid=job-filters] input[name=patient]', 'quillon');
    await page.click('[data-testid=job-filters] button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=jobs] tbody tr').length === 1);
    await page.waitForSelector(`[data-testid=jobs] tr[data-job-id="${studyJobId}"]`);
    expect(await page.textContent(`[data-testid=jobs] tr[data-job-id="${studyJobId}"]`)).toContain('Quillon, Marisa');
    await screenshot(page, 'jobs-filtered');

    // The job page: inputs per series, derived instances counted, the plot PNG, a paged log.
    await page.click(`[data-testid=jobs] tr[data-job-id="${studyJobId}"] a`);
    await page.waitForSelector(`[data-testid=job-detail][data-job-id="${studyJobId}"]`);
    await page.waitForSelector('[data-testid=inputs] tr[data-series]');
    expect(await page.locator('[data-testid=inputs] tr[data-series]').count()).toBe(2);
    expect(await page.textContent(`[data-testid=inputs] tr[data-series="${ct.seriesInstanceUid}"]`)).toContain(String(CT_SLICES));
    expect(await page.getAttribute('[data-testid=outputs] li[data-kind=instances]', 'data-count')).toBe(String(INPUTS));
    expect(await page.locator('[data-testid=outputs] li').count()).toBe(4); // the plot, the instances, two tables
    expect(await page.textContent('[data-testid=archive]')).toContain(`1 file(s), ${INPUTS} instance(s)`);
    await page.waitForFunction(() => {
      const img = document.querySelector('[data-testid=png-plots] img') as HTMLImageElement | null;
      return img?.complete && img.naturalWidth > 0;
    });
    expect(await page.textContent('[data-testid=log-range]')).toMatch(new RegExp(`^lines 1–200 of ${INPUTS + 1}|^lines 1–200 of \\d+$`));
    await page.click('[data-testid=job-log] button:has-text("older")');
    await expect.poll(() => page.textContent('[data-testid=log-range]')).toMatch(/^lines 201–\d+ of \d+$/);
    await screenshot(page, 'job-summary');
    // The archive downloads from the page.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=archive]')]);
    expect(download.suggestedFilename()).toBe(`job-${studyJobId}.tar`);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('the study browser searches by patient, date, modality and accession, and shows each series by its first, middle and last image and its jobs', async () => {
    const found = async (query: string) =>
      ((await api('olga', `/api/databases/Import/studies?${query}`)).body as { study: Record<string, string> }[]).map(
        (r) => r.study.StudyInstanceUID,
      );
    expect(await found('patient=marisa%20quillon')).toEqual([]);
    expect(await found('patient=quillon%5Emarisa')).toEqual([ct.studyInstanceUid]);
    expect(await found('patient=QM44&modality=mr')).toEqual([ct.studyInstanceUid]);
    expect(await found('patient=QM44&modality=PT')).toEqual([]);
    expect(await found('patient=QM44&dateFrom=29990101')).toEqual([]);
    expect(await found('patient=QM44&dateTo=29990101')).toEqual([ct.studyInstanceUid]);
    expect((await api('olga', '/api/databases/Import/studies?dateFrom=2024')).status).toBe(400);

    const { page, errors } = await logIn('olga');
    await page.click('a[href="#/studies"]');
    await page.waitForSelector('[data-testid=studies] tr[data-study-uid]');
    await page.fill('[data-testid=study-search] input[name=patient]', 'Quillon');
    await page.fill('[data-testid=study-search] input[name=modality]', 'CT');
    await page.click('[data-testid=study-search] button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=studies] tr[data-study-uid]').length === 1);
    const row = `[data-testid=studies] tr[data-study-uid="${ct.studyInstanceUid}"]`;
    await page.click(`${row} button.link`);
    const ctItem = `[data-testid=studies] li[data-series="${ct.seriesInstanceUid}"]`;
    await page.waitForSelector(`[data-testid=studies] li[data-series="${mr.seriesInstanceUid}"]`);
    // Three rendered images per series (the worker pool renders them through the display pipeline).
    await page.waitForFunction((sel) => {
      const imgs = [...document.querySelectorAll(`${sel} [data-testid=previews] img`)] as HTMLImageElement[];
      return imgs.length === 3 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    }, ctItem);
    expect(await page.$$eval(`${ctItem} figcaption`, (c) => c.map((x) => x.textContent))).toEqual([
      '#1',
      `#${Math.floor((CT_SLICES - 1) / 2) + 1}`,
      `#${CT_SLICES}`,
    ]);
    await page.waitForSelector(`${ctItem} [data-testid=series-jobs] a[data-job-id]`);
    expect(await page.textContent(`${ctItem} [data-testid=series-jobs]`)).toContain(`per-instance succeeded ×${CT_SLICES}`);
    await page.screenshot({ path: path.join(SCREENS, 'studies-previews.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('the pipelines panel: enabled or not, trigger, last runs, files that did not load with line and pointer, and a manual run on a series', async () => {
    // A broken file and a disabled pipeline appear after a reload.
    fs.writeFileSync(
      path.join(pipelinesDir, 'broken.json'),
      '{\n  "name": "broken",\n  "trigger": { "on": "sometimes" },\n  "steps": []\n}\n',
    );
    fs.writeFileSync(
      path.join(pipelinesDir, 'off.json'),
      JSON.stringify({ name: 'off', enabled: false, trigger: { on: 'series' }, steps: [{ plugin: 'count-instances' }] }),
    );
    const reload = await fetch(`http://127.0.0.1:${s.httpPort}/api/pipelines/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token.admin}` },
    });
    expect(reload.status).toBe(200);
    const { page, errors } = await logIn('olga');
    await page.click('a[href="#/pipelines"]');
    await page.waitForSelector('[data-testid=pipelines] tr[data-pipeline=whole-study]');
    await page.waitForSelector('[data-testid=pipelines] tr[data-pipeline=whole-study] .runs a[data-job-id]');
    expect(await page.getAttribute('[data-testid=pipelines] tr[data-pipeline=off]', 'data-enabled')).toBe('false');
    expect(await page.textContent('[data-testid=pipelines] tr[data-pipeline=whole-study]')).toContain('study, 4 s quiet');
    const problem = (await page.textContent('[data-testid=pipeline-problems] li'))!;
    expect(problem).toMatch(/broken\.json:3:\d+ at \/trigger\/on/);
    await page.screenshot({ path: path.join(SCREENS, 'pipelines.png'), fullPage: true });
    // A manual run of per-instance on the MR series, followed on the job's page.
    const row = '[data-testid=pipelines] tr[data-pipeline=per-instance]';
    await page.selectOption(`${row} select[name=database]`, 'Import');
    await page.selectOption(`${row} select[name=level]`, 'series');
    await page.fill(`${row} input[name=uid]`, mr.seriesInstanceUid);
    await page.click(`${row} button[type=submit]`);
    await page.waitForSelector('[data-testid=job-detail][data-status=succeeded]');
    const jobId = (await page.getAttribute('[data-testid=job-detail]', 'data-job-id'))!;
    expect(await s.jobs.getJob(jobId)).toMatchObject({
      pipeline: 'per-instance',
      triggerOn: 'manual',
      triggerUid: mr.seriesInstanceUid,
      createdBy: 'olga',
    });
    expect((await s.jobs.getJob(jobId))!.inputs).toHaveLength(MR_SLICES);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('serves an API reference to logged-in users from the OpenAPI document, which stays behind the token', async () => {
    expect((await fetch(`http://127.0.0.1:${s.httpPort}/api/openapi.json`)).status).toBe(401);
    const { page, errors } = await logIn('olga');
    await page.click('a[href="#/api"]');
    await page.waitForSelector('[data-testid=api-reference] [data-tag=jobs]');
    for (const tag of ['status', 'jobs', 'databases', 'outbox', 'dicomweb'])
      expect(await page.locator(`[data-testid=api-reference] [data-tag=${tag}]`).count()).toBe(1);
    const route = '[data-testid=api-reference] details[data-route="GET /api/jobs/{id}/logs"]';
    await page.click(`${route} summary`);
    const text = (await page.textContent(route))!;
    expect(text).toContain('offset');
    expect(text).toContain('x-total-count');
    await page.fill('[data-testid=api-reference] input[name=find]', 'archive');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=api-reference] details').length === 1);
    await page.fill('[data-testid=api-reference] input[name=find]', '');
    await page.click(`${route} summary`);
    await page.click(`${route} summary`);
    await page.screenshot({ path: path.join(SCREENS, 'api-reference.png') });
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
