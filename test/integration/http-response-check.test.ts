import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { checkResponses } from '../../server/http/response-check.ts';

describe('response check', () => {
  it('answers DF_ERR_INTERNAL instead of a reply that breaks its documented schema', async () => {
    const app = Fastify();
    checkResponses(app);
    const schema = { response: { 200: { type: 'object', required: ['count'], properties: { count: { type: 'integer' } } } } };
    app.get('/good', { schema }, async () => ({ count: 3 }));
    app.get('/bad', { schema }, async () => ({ count: 'three' }));
    app.get('/missing', { schema }, async () => ({ total: 3 }));
    expect((await app.inject('/good')).json()).toEqual({ count: 3 });
    for (const route of ['/bad', '/missing']) {
      const reply = await app.inject(route);
      expect(reply.statusCode).toBe(500);
      expect(reply.json()).toMatchObject({
        code: 'DF_ERR_INTERNAL',
        message: expect.stringContaining(`GET ${route} does not match its schema`),
      });
    }
    await app.close();
  });
});
