// The access hook on its own, over a real socket: a route runs for a request only if it is
// public or the token was admitted, and a handler never gets a user the hook did not set.
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDfError } from '../../core/errors.ts';
import { hashToken, Users, type ApiToken } from '../../core/users.ts';
import { guardRoutes, publicScope } from './access.ts';

describe('guardRoutes', () => {
  let app: FastifyInstance;
  let base: string;
  const ran: string[] = [];
  const adminToken = 'dft_test-admin-token';
  const aliceToken = 'dft_test-alice-token';
  /** Token hashes looked up in the (asynchronous) store, in order. */
  const lookedUp: string[] = [];
  const tokens = {
    async findByHash(hash: string): Promise<ApiToken | undefined> {
      lookedUp.push(hash);
      // An index that answers a little later, as PostgreSQL does.
      await new Promise((resolve) => setImmediate(resolve));
      return hash === hashToken(aliceToken) ? { id: 't1', user: 'alice', createdAt: '2026-01-01T00:00:00.000Z' } : undefined;
    },
  };

  beforeAll(async () => {
    app = Fastify();
    guardRoutes(app, { adminToken, users: new Users([{ name: 'alice', role: 'reader' }]), tokens: tokens as never });
    app.setErrorHandler((err, _request, reply) =>
      reply.code(isDfError(err, 'DF_ERR_UNAUTHORIZED') ? 401 : 500).send({ code: isDfError(err) ? err.code : 'other' }),
    );
    app.get('/api/guarded', async (request) => {
      ran.push('guarded');
      return { user: request.user.name };
    });
    // A mistake: a public route that reads the user. It must fail, not run as nobody.
    app.get('/api/public-but-reads-user', { config: { public: true } }, async (request) => {
      ran.push('public-but-reads-user');
      return { user: request.user.name };
    });
    app.get('/api/public', { config: { public: true } }, async () => ({ ok: true }));
    await app.register(async (page) => {
      publicScope(page);
      page.get('/page.js', async () => 'js');
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  afterAll(() => app?.close());

  const get = async (route: string, token?: string) => {
    const res = await fetch(base + route, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, body: await res.text() };
  };

  it('runs a route that is not public only for an admitted token, whatever the spelling', async () => {
    for (const route of ['/api/guarded', '/%61pi/guarded', '/api/%67uarded']) {
      expect(await get(route)).toMatchObject({ status: 401 });
      expect(await get(route, 'dft_wrong')).toMatchObject({ status: 401 });
    }
    expect(ran).toEqual([]);
    expect(await get('/api/guarded', adminToken)).toEqual({ status: 200, body: JSON.stringify({ user: 'admin' }) });
  });

  it('admits a token the store finds (awaited), on the matched route whatever the spelling', async () => {
    for (const route of ['/api/guarded', '/%61pi/guarded']) {
      expect(await get(route, aliceToken)).toEqual({ status: 200, body: JSON.stringify({ user: 'alice' }) });
    }
    expect(lookedUp.filter((h) => h === hashToken(aliceToken))).toHaveLength(2);
  });

  it('never looks a token up for a public route or an unknown one (the health probe does not wait for the index)', async () => {
    lookedUp.length = 0;
    expect(await get('/api/public', aliceToken)).toMatchObject({ status: 200 });
    expect(await get('/page.js', aliceToken)).toMatchObject({ status: 200 });
    expect(await get('/api/no-such-route', aliceToken)).toMatchObject({ status: 404 });
    expect(lookedUp).toEqual([]);
  });

  it('answers public routes and a public scope without a token, and a public handler that reads the user gets 401', async () => {
    expect(await get('/api/public')).toMatchObject({ status: 200 });
    expect(await get('/page.js')).toEqual({ status: 200, body: 'js' });
    const misuse = await get('/api/public-but-reads-user', adminToken);
    expect(misuse).toEqual({ status: 401, body: JSON.stringify({ code: 'DF_ERR_UNAUTHORIZED' }) });
  });
});
