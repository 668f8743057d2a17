import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import { ensureWebBuilt } from '../../server/http/web.ts';
import { ctSeries } from '../fixtures/builder.ts';
import { hasTool, storescu } from '../helpers/dcmtk.ts';
import { startStorescp, type DcmtkPeer } from '../helpers/dcmtk-peers.ts';
import { freePort } from '../helpers/net.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { SCREENS } from '../helpers/screens.ts';

const CHROMIUM = '/usr/bin/chromium';
const SLICES = 3;

/**
 * The outbox panel: a remote node that does not answer turns the routed objects into dead
 * letters; the panel shows them per destination and an operator retries them once the node
 * is up, after which they are delivered. Rights: a reader sees the counts only.
 */
describe.skipIf(!hasTool('storescu') || !hasTool('storescp') || !fs.existsSync(CHROMIUM))('outbox panel', () => {
  let s: Awaited<ReturnType<typeof startTestServer>>;
  let browser: Browser;
  let research: DcmtkPeer | undefined;
  let port: number;
  const token: Record<string, string> = {};
  const api = async (user: string, method: string, route: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${s.httpPort}${route}`, {
      method,
      headers: { authorization: `Bearer ${token[user]}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };

  beforeAll(async () => {
    const built = await ensureWebBuilt();
    if (built.error) throw new Error(`building the web page failed: ${built.error}`);
    fs.mkdirSync(SCREENS, { recursive: true });
    port = await freePort();
    const pipelinesDir = tempDir();
    fs.writeFileSync(
      path.join(pipelinesDir, 'send.json'),
      JSON.stringify({
        name: 'send',
        trigger: { on: 'series', stableSeconds: 0.5 },
        steps: [{ plugin: 'route', options: { destination: 'RESEARCH', objects: 'inputs' } }],
      }),
    );
    s = await startTestServer({
      pipelinesDir,
      remoteNodes: [{ aeTitle: 'RESEARCH', host: '127.0.0.1', port, outbox: { maxAttempts: 1, initialRetrySeconds: 0.1 } }],
      users: [
        { name: 'olga', role: 'operator', databases: { '*': 'read' } },
        { name: 'rita', role: 'reader', databases: { '*': 'read' } },
      ],
    });
    for (const user of ['olga', 'rita']) token[user] = (await issueToken(s.tokens, s.users, user)).token;
    const ct = await ctSeries(tempDir(), { slices: SLICES, rows: 8, cols: 8 });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
    for (const end = Date.now() + 60_000; (await api('rita', 'GET', '/api/outbox')).body[0]?.dead !== SLICES; ) {
      if (Date.now() > end) throw new Error('timed out waiting for the dead letters');
      await new Promise((r) => setTimeout(r, 200));
    }
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
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
    await research?.stop();
  });

  it('shows per destination queued, in flight, retrying and dead letters; readers may not list or retry', async () => {
    const row = (await api('rita', 'GET', '/api/outbox')).body[0];
    expect(row).toMatchObject({ destination: 'RESEARCH', port, queued: 0, inFlight: 0, retrying: 0, dead: SLICES, delivered: 0 });
    expect(row.lastError).toBeTruthy();
    expect((await api('rita', 'GET', '/api/outbox/RESEARCH/entries')).status).toBe(403);
    expect((await api('rita', 'POST', '/api/outbox/RESEARCH/retry', {})).status).toBe(403);
    expect((await api('olga', 'POST', '/api/outbox/NOWHERE/retry', {})).body.code).toBe('DF_ERR_DESTINATION_UNKNOWN');
    const dead = await api('olga', 'GET', '/api/outbox/RESEARCH/entries?state=dead');
    expect(dead.body).toHaveLength(SLICES);
    expect(dead.body[0]).toMatchObject({ state: 'dead', attempts: 1 });
  });

  it('the panel lists the dead letters and retries them; once the node is up they are delivered', async () => {
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
    page.setDefaultTimeout(20_000);
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${s.httpPort}/`);
    await page.fill('input[name=token]', token.olga);
    await page.click('button[type=submit]');
    const row = '[data-testid=outbox] tr[data-destination=RESEARCH]';
    await page.waitForSelector(`${row}[data-dead="${SLICES}"]`);
    await page.click(`${row} button.link`);
    await page.waitForSelector('[data-testid=dead-letters] li');
    expect(await page.locator('[data-testid=dead-letters] li').count()).toBe(SLICES);
    await page.screenshot({ path: path.join(SCREENS, 'outbox-dead.png'), fullPage: true });

    research = await startStorescp({ aeTitle: 'RESEARCH', port });
    await page.click(`${row} button:has-text("Retry")`);
    await expect.poll(() => page.textContent('[role=status]')).toContain(`${SLICES} dead letter(s) for RESEARCH queued again`);
    await expect
      .poll(async () => (await api('olga', 'GET', '/api/outbox')).body[0].delivered, { timeout: 30_000, interval: 200 })
      .toBe(SLICES);
    await page.waitForSelector(`${row}[data-dead="0"][data-delivered="${SLICES}"]`, { timeout: 30_000 });
    await page.screenshot({ path: path.join(SCREENS, 'outbox-delivered.png'), fullPage: true });
    expect(fs.readdirSync(research.dir).filter((n) => !n.startsWith('.'))).toHaveLength(SLICES);
    expect(await s.index.auditLog(10)).toContainEqual(
      expect.objectContaining({
        user: 'olga',
        action: 'outbox-retry',
        details: expect.objectContaining({ destination: 'RESEARCH', rescheduled: SLICES }),
      }),
    );
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('the study browser sends a study to the remote node through the outbox, after a confirmation naming it; audited, readers refused', async () => {
    const study = (await s.index.studies('Import', {}))[0].study.StudyInstanceUID;
    expect((await api('rita', 'POST', '/api/databases/Import/send', { destination: 'RESEARCH', level: 'study', uid: study })).status).toBe(
      403,
    );
    expect(
      (await api('olga', 'POST', '/api/databases/Import/send', { destination: 'NOWHERE', level: 'study', uid: study })).body.code,
    ).toBe('DF_ERR_DESTINATION_UNKNOWN');
    expect(
      (await api('olga', 'POST', '/api/databases/Import/send', { destination: 'RESEARCH', level: 'series', uid: '1.2.3' })).body.code,
    ).toBe('DF_ERR_NOT_FOUND');
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
    page.setDefaultTimeout(20_000);
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(`http://127.0.0.1:${s.httpPort}/`);
    await page.fill('input[name=token]', token.olga);
    await page.click('button[type=submit]');
    await page.click('a[href="#/studies"]');
    const row = `[data-testid=studies] tr[data-study-uid="${study}"]`;
    await page.click(`${row} button:has-text("Send to RESEARCH")`);
    expect(await page.textContent('[data-testid=confirm-send]')).toMatch(
      new RegExp(
        `^Send the study of Phantom, Seed1 \\(\\d{4}-\\d{2}-\\d{2}; 1 series, ${SLICES} instance\\(s\\)\\) from Import to RESEARCH\\?`,
      ),
    );
    await page.screenshot({ path: path.join(SCREENS, 'studies-send-confirm.png'), fullPage: true });
    await page.click('[data-testid=confirm-send] button:has-text("Send")');
    await expect.poll(() => page.textContent('[role=status]')).toContain(`Queued ${SLICES} instance(s) for RESEARCH`);
    await expect
      .poll(async () => (await api('olga', 'GET', '/api/outbox')).body[0].delivered, { timeout: 30_000, interval: 200 })
      .toBe(2 * SLICES);
    expect(await s.index.auditLog(10)).toContainEqual(
      expect.objectContaining({
        user: 'olga',
        action: 'send',
        details: expect.objectContaining({ destination: 'RESEARCH', level: 'study', instances: SLICES }),
      }),
    );
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
