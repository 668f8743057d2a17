import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import { ensureWebBuilt, webRoot } from '../../server/http/web.ts';
import { ctSeries } from '../fixtures/builder.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const CHROMIUM = '/usr/bin/chromium';

/**
 * The web page in headless Chromium (Debian's, driven by playwright-core; no browser download):
 * log in with a token, see this node in the nodes panel and an arrival appear, watch a job's
 * progress bar run to the end, open it (log, plot of its time-activity curve), rerun it; a
 * manager moves the study to a study database.
 */
describe('web page in Chromium', () => {
  let s: Awaited<ReturnType<typeof startTestServer>>;
  let browser: Browser;
  const token: Record<string, string> = {};

  beforeAll(async () => {
    // Always from the current sources: a page built before an edit would test old code.
    const built = await ensureWebBuilt();
    if (built.error) throw new Error(`building the web page failed: ${built.error}`);
    expect(fs.existsSync(path.join(webRoot(), 'index.html'))).toBe(true);
    const pipelinesDir = tempDir();
    fs.writeFileSync(
      path.join(pipelinesDir, 'tac.json'),
      JSON.stringify({
        name: 'tac',
        trigger: { on: 'series', stableSeconds: 0.3 },
        steps: [{ plugin: 'test-time-activity', options: { ms: 2500 } }],
      }),
    );
    s = await startTestServer({
      pipelinesDir,
      plugins: { directories: [path.join(repo, 'test/fixtures/plugins')] },
      databases: [{ name: 'Import' }, { name: 'StudyA' }],
      users: [
        { name: 'olga', role: 'operator', databases: { Import: 'read' } },
        { name: 'alice', role: 'manager', databases: { Import: 'write', StudyA: 'write' } },
      ],
    });
    for (const user of ['olga', 'alice']) token[user] = (await issueToken(s.tokens, s.users, user)).token;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  async function logIn(user: string): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`http://127.0.0.1:${s.httpPort}/`);
    await page.fill('input[name=token]', 'dft_wrong');
    await page.click('button[type=submit]');
    await expect.poll(() => page.textContent('[role=alert]')).toContain('unknown or revoked');
    await page.fill('input[name=token]', token[user]);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-testid=user]');
    return page;
  }

  it('logs in, shows this node, an arrival, a job with live progress to the end, its detail with a plot, and reruns it', async () => {
    const page = await logIn('olga');
    expect(await page.textContent('[data-testid=user]')).toBe('olga (operator)');
    await page.waitForSelector('[data-testid=status] .live.on');
    // The nodes panel: this one, alive, on the test's index.
    const self = `[data-testid=nodes] tr[data-node="${s.cluster.name}"]`;
    await page.waitForSelector(`${self}[data-state=alive]`);
    expect(await page.textContent(self)).toContain(`${s.cluster.name} this node`);
    expect(await page.textContent('[data-testid=index-location]')).toMatch(/^(SQLite|PostgreSQL) \S/);

    const ct = await ctSeries(tempDir(), { slices: 2, rows: 16, cols: 16 });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
    // Arrivals per series: both slices on one row.
    await page.waitForSelector(`[data-testid=arrivals] tr[data-series="${ct.seriesInstanceUid}"][data-count="2"]`);

    // The bar moves while the job runs (between 1 and 99 %), then the row reads succeeded at 100 %.
    const row = '[data-testid=jobs] tr[data-pipeline=tac]';
    await page.waitForFunction(
      (sel) =>
        [...document.querySelectorAll(`${sel} [role=progressbar]`)].some((b) => {
          const v = Number(b.getAttribute('aria-valuenow'));
          return v > 0 && v < 100;
        }),
      row,
    );
    await page.waitForSelector(`${row}[data-status=succeeded]`);
    expect(await page.getAttribute(`${row}[data-status=succeeded] [role=progressbar]`, 'aria-valuenow')).toBe('100');
    const jobId = (await page.getAttribute(`${row}[data-status=succeeded]`, 'data-job-id'))!;

    await page.click(`${row}[data-job-id="${jobId}"] a`);
    await page.waitForSelector(`[data-testid=job-detail][data-job-id="${jobId}"][data-status=succeeded]`);
    expect(await page.textContent('[data-testid=log]')).toContain('curve written');
    expect(await page.locator('[data-testid=plot][data-table=time-activity-curve] polyline').count()).toBe(2);
    // Axes in words with units, curves named in words: no field names (timeSeconds, wholeBrainKbqPerMl).
    const plot = (await page.textContent('[data-testid=plot][data-table=time-activity-curve]'))!;
    expect(plot).toContain('Time (min)'); // 0–330 s
    expect(plot).toContain('Activity concentration (kBq/ml)');
    expect(plot).toContain('whole brain');
    expect(plot).not.toMatch(/timeSeconds|KbqPerMl/);

    await page.click('button:has-text("Rerun")');
    await page.waitForFunction((original) => {
      const d = document.querySelector('[data-testid=job-detail]');
      return d && d.getAttribute('data-job-id') !== original && d.getAttribute('data-status') === 'succeeded';
    }, jobId);
    const rerunId = (await page.getAttribute('[data-testid=job-detail]', 'data-job-id'))!;
    expect(await s.jobs.getJob(rerunId)).toMatchObject({ rerunOf: jobId, createdBy: 'olga', status: 'succeeded' });
    expect(await page.textContent('[data-testid=job-detail]')).toContain(`Rerun of${jobId}`);
    await page.context().close();
  });

  it('a manager runs a pipeline on a study and moves it from Import to a study database in the study browser', async () => {
    const page = await logIn('alice');
    await page.click('a[href="#/studies"]');
    const study = '[data-testid=studies] tr[data-study-uid]';
    await page.waitForSelector(study);
    const uid = (await page.getAttribute(study, 'data-study-uid'))!;
    // A manual run of the pipeline on the study, followed on the job's page.
    await page.click(`${study} button:has-text("Run tac")`);
    await page.waitForSelector('[data-testid=job-detail][data-status=succeeded]');
    const manual = await s.jobs.getJob((await page.getAttribute('[data-testid=job-detail]', 'data-job-id'))!);
    expect(manual).toMatchObject({ triggerOn: 'manual', triggerUid: uid, createdBy: 'alice' });
    await page.click('a[href="#/studies"]');
    await page.waitForSelector(study);
    await page.click(`${study} button:has-text("Move to StudyA")`);
    // Nothing moves before the confirmation, which names what moves and where.
    expect(await page.textContent('[data-testid=confirm]')).toMatch(
      /^Move the study .*\(.*1 series, 2 instance\(s\)\) from Import to StudyA\? It leaves Import\./,
    );
    expect(await s.index.studies('StudyA', {})).toEqual([]);
    await page.click('[data-testid=confirm] button:has-text("Move")');
    await expect.poll(() => page.textContent('[role=status]')).toContain('Moved 2 instance(s) to StudyA');
    await page.click('.tabs button:has-text("StudyA")');
    await page.waitForSelector(`[data-testid=studies] tr[data-study-uid="${uid}"]`);
    expect((await s.index.studies('StudyA', {})).map((r) => r.study.StudyInstanceUID)).toEqual([uid]);

    // Delete asks first, naming the study, its size and the database; Cancel deletes nothing.
    await page.click(`[data-testid=studies] tr[data-study-uid="${uid}"] button:has-text("Delete")`);
    expect(await page.textContent('[data-testid=confirm-delete]')).toMatch(
      /^Delete the study .*\(.*1 series, 2 instance\(s\)\) from StudyA\? Its files are deleted unless another database holds them\./,
    );
    fs.mkdirSync(path.join(os.tmpdir(), 'dicomflow-web-screens'), { recursive: true });
    await page.screenshot({ path: path.join(os.tmpdir(), 'dicomflow-web-screens', 'studies-delete-confirm.png'), fullPage: true });
    await page.click('[data-testid=confirm-delete] button:has-text("Cancel")');
    expect(await s.index.studies('StudyA', {})).toHaveLength(1);
    await page.click(`[data-testid=studies] tr[data-study-uid="${uid}"] button:has-text("Delete")`);
    await page.click('[data-testid=confirm-delete] button:has-text("Delete")');
    await expect.poll(() => page.textContent('[role=status]')).toContain('Deleted 2 instance(s) from StudyA');
    expect(await s.index.studies('StudyA', {})).toEqual([]);
    expect((await s.index.auditLog(5)).find((a) => a.action === 'delete')).toMatchObject({
      user: 'alice',
      details: { database: 'StudyA', level: 'study', uid },
    });
    await page.context().close();
  });
});
