// Issue 14, HTTP: access is decided on the route the router matched. Every registered route but
// the health probe and the web page's files answers 401 without a token, however its path is
// spelt; a path that matches no route gets one fixed 404 that holds nothing.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webRoot } from '../../server/http/web.ts';
import { ctSeries } from '../fixtures/builder.ts';
import { apiClient } from '../helpers/api.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { rawRequest, refusal, spellingsOf } from '../helpers/hostile-paths.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

interface RegisteredRoute {
  method: string;
  url: string;
}

/** Every route the server registered, read from Fastify's own route tree (`printRoutes`). */
function registeredRoutes(app: Awaited<ReturnType<typeof startTestServer>>['httpApp']): RegisteredRoute[] {
  const routes: RegisteredRoute[] = [];
  const stack: string[] = [];
  // Lines look like "    │   ├── /logs (GET, HEAD)": depth by the branch's column, the path
  // by the segments of the lines above it.
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^(.*?)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = [...m[1]].length / 4;
    stack.length = depth;
    stack.push(m[2]);
    if (m[3]) for (const method of m[3].split(', ')) routes.push({ method, url: stack.join('') });
  }
  return routes;
}

const concrete = (url: string) => url.replace(/:[A-Za-z]+/g, 'x');

describe('HTTP access on the matched route', () => {
  let s: Awaited<ReturnType<typeof startTestServer>>;
  let routes: (RegisteredRoute & { public: boolean })[];

  // What may answer without a token: the health probe, and the files of the built page.
  const pageFiles = fs
    .readdirSync(webRoot(), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => `/${path.relative(webRoot(), path.join(e.parentPath, e.name))}`);
  const publicUrls = new Set(['/api/health', '/', ...pageFiles]);

  beforeAll(async () => {
    s = await startTestServer({ databases: [{ name: 'Import' }] });
    // Something to leak: an arrival with a patient name (filed with its arrival) and a job over it.
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 8, cols: 8 });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
    await s.engine.runManual(
      'store-received',
      (await s.index.recentArrivals(1)).map((a) => a.id),
      { user: 'admin' },
    );
    await until('the job over the arrival', async () => (await s.jobs.listJobs({ status: 'succeeded' }))[0]);
    routes = registeredRoutes(s.httpApp).map((r) => ({ ...r, public: publicUrls.has(r.url) }));
  });
  afterAll(() => s?.close());

  it('registers as public only the health probe and the files of the web page, and answers 401 on every other route without a token or with a forged one', async () => {
    expect(routes.length).toBeGreaterThan(40);
    for (const r of routes.filter((x) => x.public)) {
      const reply = await rawRequest(s.httpPort, r.method, r.url);
      expect({ ...r, status: reply.status }).toEqual({ ...r, status: 200 });
    }
    const guarded = routes.filter((r) => !r.public);
    expect(guarded.map((r) => r.url)).toContain('/api/openapi.json');
    for (const r of guarded) {
      for (const headers of [{}, { authorization: 'Bearer dft_forged' }, { authorization: 'Basic YWRtaW46YWRtaW4=' }] as Record<
        string,
        string
      >[]) {
        const reply = await rawRequest(s.httpPort, r.method, concrete(r.url), { headers });
        expect({ ...r, headers, status: reply.status, refused: refusal(r.method, reply) }).toEqual({
          ...r,
          headers,
          status: 401,
          refused: { refused: true },
        });
        if (r.method !== 'HEAD') expect(JSON.parse(reply.body).code).toBe('DF_ERR_UNAUTHORIZED');
      }
    }
    // The health probe and the page need none.
    const page = await rawRequest(s.httpPort, 'GET', '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<!doctype html>');
  });

  it('refuses every spelling of every API path without a token: 401, or the fixed 404 that holds nothing', async () => {
    const host = `127.0.0.1:${s.httpPort}`;
    const guarded = routes.filter((r) => !r.public && r.method !== 'HEAD');
    const failures: string[] = [];
    let requests = 0;
    const byStatus: Record<string, number> = {};
    for (const r of guarded) {
      for (const target of spellingsOf(concrete(r.url), host)) {
        for (const method of [r.method, 'HEAD']) {
          const reply = await rawRequest(s.httpPort, method, target);
          requests++;
          byStatus[reply.status ?? 'none'] = (byStatus[reply.status ?? 'none'] ?? 0) + 1;
          const verdict = refusal(method, reply);
          if (!verdict.refused) failures.push(`${method} ${target}: ${verdict.why}`);
        }
      }
    }
    if (process.env.DF_PROOF_DIR) {
      fs.writeFileSync(
        path.join(process.env.DF_PROOF_DIR, 'http-spellings.json'),
        JSON.stringify({ routes: guarded.length, requests, byStatus, failures }),
      );
    }
    expect(requests).toBeGreaterThan(1000);
    expect(failures).toEqual([]);
  }, 120_000);

  it('keeps the OpenAPI document behind a token', async () => {
    expect((await apiClient(s.httpPort).get('/api/openapi.json')).status).toBe(401);
    expect((await rawRequest(s.httpPort, 'GET', '/%61pi/openapi.json')).status).toBe(401);
    const doc = await apiClient(s.httpPort, s.adminToken).get('/api/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.1.0');
  });

  it('answers an unknown path with the same 404 with a token or without', async () => {
    const targets = ['/api/nothing-here', '/nothing-here', '/API/status', '/assets/none.js', '/api/%zz', '/x/../api/status'];
    for (const target of targets) {
      const anonymous = await rawRequest(s.httpPort, 'GET', target);
      const admin = await rawRequest(s.httpPort, 'GET', target, { headers: { authorization: `Bearer ${s.adminToken}` } });
      expect({ target, status: anonymous.status, body: anonymous.body }).toEqual({ target, status: 404, body: admin.body });
      expect(JSON.parse(anonymous.body)).toEqual({ code: 'DF_ERR_ROUTE_UNKNOWN', message: expect.any(String) });
      expect(anonymous.body).not.toContain('nothing-here');
    }
  });
});
