import fs from 'node:fs';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import fastifySwagger from '@fastify/swagger';
import fastifyStatic from '@fastify/static';
import { isDfError, type ErrorCode } from '../../core/errors.ts';
import { guardRoutes, publicScope } from './access.ts';
import type { HttpDeps } from './context.ts';
import { checkResponses } from './response-check.ts';
import { statusRoutes } from './routes/status.ts';
import { jobRoutes } from './routes/jobs.ts';
import { pipelineRoutes } from './routes/pipelines.ts';
import { databaseRoutes } from './routes/databases.ts';
import { eventRoutes } from './routes/events.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { outboxRoutes } from './routes/outbox.ts';
import { openapiRoutes, openapiOptions } from './routes/openapi.ts';
import { dicomwebRoutes } from './dicomweb/routes.ts';

export type { StatusSource, HttpDeps } from './context.ts';

const httpStatusOf: Partial<Record<ErrorCode, number>> = {
  DF_ERR_UNAUTHORIZED: 401,
  DF_ERR_FORBIDDEN: 403,
  DF_ERR_JOB_UNKNOWN: 404,
  DF_ERR_DESTINATION_UNKNOWN: 404,
  DF_ERR_PIPELINE_UNKNOWN: 404,
  DF_ERR_PIPELINE_VERSION_UNKNOWN: 409,
  DF_ERR_DATABASE_UNKNOWN: 404,
  DF_ERR_NOT_FOUND: 404,
  DF_ERR_OUTPUT_UNKNOWN: 404,
  DF_ERR_TOKEN_UNKNOWN: 404,
  DF_ERR_ROUTE_UNKNOWN: 404,
  DF_ERR_REQUEST_INVALID: 400,
  DF_ERR_USAGE: 400,
  DF_ERR_PIPELINE_INVALID: 422,
  DF_ERR_STORE_FULL: 507,
  DF_ERR_QUERY_INVALID: 400,
  DF_ERR_NOT_ACCEPTABLE: 406,
  DF_ERR_MEDIA_TYPE_UNSUPPORTED: 415,
  DF_ERR_PIXEL_DECODE: 422,
  DF_ERR_TOO_MANY_EVENT_STREAMS: 429,
  DF_ERR_EVENT_STREAMS_FULL: 503,
};

/** The reply to a request no route matched: the same whatever was asked, so it tells nothing. */
const noRoute = { code: 'DF_ERR_ROUTE_UNKNOWN', message: 'no such route (the routes are listed in GET /api/openapi.json)' } as const;

/** Ajv's errors as one line naming each field: 'body has an unknown property "force"', 'querystring/limit must be >= 1'. */
function validationMessage(err: FastifyError): string {
  const parts = (err.validation ?? []).map((v) => {
    const where = `${err.validationContext ?? 'request'}${v.instancePath || ''}`;
    const extra = (v.params as { additionalProperty?: string }).additionalProperty;
    return extra ? `${where} has an unknown property "${extra}"` : `${where} ${v.message}`;
  });
  return parts.length > 0 ? parts.join('; ') : err.message;
}

/** Builds the API (and the web page when built) without listening: tests can inject requests. */
export async function buildHttpApp(deps: HttpDeps, https?: { key: Buffer; cert: Buffer }): Promise<FastifyInstance> {
  const app = Fastify({
    // http.tls in the configuration: HTTPS with the given certificate.
    ...(https ? { https } : {}),
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    // Per-request lines would drown the DICOM logs; errors are logged where they are handled.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify's default Ajv strips unknown properties silently; an API should refuse them.
    ajv: { customOptions: { removeAdditional: false, allErrors: true } },
    // A path the router cannot decode (`/api/%zz`) names no route.
    frameworkErrors: (err: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
      if (err.code === 'FST_ERR_BAD_URL') return reply.code(404).send(noRoute);
      return reply.code(400).send({ code: 'DF_ERR_REQUEST_INVALID', message: err.message });
    },
  });
  const webRoot = deps.webRoot && fs.existsSync(deps.webRoot) ? deps.webRoot : undefined;

  await app.register(fastifySwagger, openapiOptions);

  guardRoutes(app, deps);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err.validation) return reply.code(400).send({ code: 'DF_ERR_REQUEST_INVALID', message: validationMessage(err) });
    if (isDfError(err)) {
      const status = httpStatusOf[err.code] ?? 500;
      if (status === 401) reply.header('www-authenticate', 'Bearer');
      // A cap refusing one more stream is the server working as configured, not failing.
      if (status === 503) request.log.warn({ code: err.code, url: request.url }, 'request refused');
      else if (status >= 500) request.log.error({ err, url: request.url }, 'request failed');
      return reply.code(status).send({ code: err.code, message: err.message.replace(/^DF_ERR_[A-Z_]+: /, '') });
    }
    // Fastify's own client errors: bad JSON, wrong content type, body too large…
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send({ code: 'DF_ERR_REQUEST_INVALID', message: err.message });
    }
    request.log.error({ err, url: request.url, reqId: request.id }, 'request failed');
    return reply.code(500).send({ code: 'DF_ERR_INTERNAL', message: `internal error (request ${request.id})` });
  });

  // The web page routes on the client with #/… locations: an unknown path is nothing to it either.
  app.setNotFoundHandler((_request, reply) => reply.code(404).send(noRoute));

  checkResponses(app);

  await app.register(statusRoutes, deps);
  await app.register(pipelineRoutes, deps);
  await app.register(jobRoutes, deps);
  await app.register(databaseRoutes, deps);
  await app.register(eventRoutes, deps);
  await app.register(metricsRoutes, deps);
  await app.register(tokenRoutes, deps);
  await app.register(outboxRoutes, deps);
  await app.register(openapiRoutes);
  // Encapsulated: its access hook and its streaming body parser apply to its own routes only.
  await app.register(dicomwebRoutes, deps);

  if (webRoot) {
    // One route per file of the build (no wildcard): a path that is not a file of the page
    // reaches the not-found reply, never a file lookup.
    await app.register(async (page) => {
      publicScope(page);
      await page.register(fastifyStatic, { root: webRoot, prefix: '/', index: ['index.html'], wildcard: false });
    });
  }
  return app;
}

/**
 * The HTTP API. Every route but the health probe and the web page's files needs a bearer token; errors are
 * `{ code, message }` with stable DF_ERR_* codes.
 */
export async function startHttpServer(
  deps: HttpDeps,
  options: { host: string; port: number; https?: { key: Buffer; cert: Buffer } },
): Promise<{ port: number; app: FastifyInstance; close: () => Promise<void> }> {
  const app = await buildHttpApp(deps, options.https);
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return { port, app, close: () => app.close() };
}
