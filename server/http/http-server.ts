import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { bearerToken, tokenMatches } from './auth.ts';

export interface StatusSource {
  status(): Record<string, unknown>;
  health(): { ok: boolean; dicom: boolean; index: boolean; storage: boolean };
}

/**
 * The HTTP API. Every route but the health probe needs the bearer token; errors are
 * `{ code, message }` with stable DF_ERR_* codes.
 */
export async function startHttpServer(
  source: StatusSource,
  options: { host: string; port: number; adminToken: string; log: Logger },
): Promise<{ port: number; close: () => Promise<void> }> {
  const app = Fastify({
    loggerInstance: options.log.child({ component: 'http' }),
    // Per-request lines would drown the DICOM logs; errors are logged where they are handled.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify's default Ajv strips unknown properties silently; an API should refuse them.
    ajv: { customOptions: { removeAdditional: false, allErrors: true } },
  });

  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/api/health') return;
    if (!tokenMatches(bearerToken(request.headers.authorization), options.adminToken)) {
      await reply.code(401).header('www-authenticate', 'Bearer').send({ code: 'DF_ERR_UNAUTHORIZED', message: 'a valid bearer token is required' });
    }
  });

  app.get('/api/health', async (_request, reply) => {
    const health = source.health();
    return reply.code(health.ok ? 200 : 503).send(health);
  });

  app.get('/api/status', async () => source.status());

  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return { port, close: () => app.close() };
}
