import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { InstanceReceived } from '../../../core/events.ts';
import type { UserDefinition } from '../../../core/users.ts';
import type { HttpDeps } from '../context.ts';
import { authErrors } from '../schemas.ts';

// Progress can be reported hundreds of times a second; a screen needs a few updates a second.
const PROGRESS_INTERVAL_MS = 200;
// Proxies close idle connections; a comment line now and then keeps the stream open.
const KEEPALIVE_MS = 15_000;

/**
 * Live events as server-sent events: `arrival` (an object received, for users who may read its
 * database), `job` (queued, started, progress, finished). Browsers read it with fetch and a
 * stream reader, since EventSource cannot send the Authorization header.
 */
interface Client {
  res: ServerResponse;
  user: UserDefinition;
  lastProgress: Map<string, number>;
}

const write = (res: ServerResponse, event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

export async function eventRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  // One listener per event fans out to every stream, not one per stream per event.
  const clients = new Set<Client>();
  const toAll = (event: string, data: unknown) => {
    for (const c of clients) write(c.res, event, data);
  };
  const onArrival = (a: InstanceReceived) => {
    const data = {
      id: a.id,
      receivedAt: a.receivedAt,
      source: a.source,
      callingAeTitle: a.callingAeTitle,
      database: a.database,
      sopInstanceUid: a.sopInstanceUid,
      seriesInstanceUid: a.seriesInstanceUid,
      studyInstanceUid: a.studyInstanceUid,
      attributes: a.attributes,
    };
    for (const c of clients) if (a.database === undefined || deps.users.may(c.user.name, 'read', a.database)) write(c.res, 'arrival', data);
  };
  const onQueued = (e: { jobId: string; pipeline: string }) => toAll('job', { type: 'queued', ...e });
  const onStarted = (e: { jobId: string; pipeline: string; attempt: number }) => toAll('job', { type: 'started', ...e });
  const onProgress = (e: { jobId: string; progress: number; message?: string }) => {
    const now = Date.now();
    for (const c of clients) {
      if (e.progress < 1 && now - (c.lastProgress.get(e.jobId) ?? 0) < PROGRESS_INTERVAL_MS) continue;
      c.lastProgress.set(e.jobId, now);
      write(c.res, 'job', { type: 'progress', ...e });
    }
  };
  const onFinished = (e: { jobId: string; pipeline: string; status: string; error?: string }) => {
    for (const c of clients) c.lastProgress.delete(e.jobId);
    toAll('job', { type: 'finished', ...e });
  };
  deps.events.on('InstanceReceived', onArrival);
  deps.engine.on('JobQueued', onQueued);
  deps.engine.on('JobStarted', onStarted);
  deps.engine.on('JobProgressed', onProgress);
  deps.engine.on('JobFinished', onFinished);
  const keepalive = setInterval(() => {
    for (const c of clients) c.res.write(': keepalive\n\n');
  }, KEEPALIVE_MS);
  keepalive.unref();

  // Fastify waits for open connections when it closes: end the streams first.
  app.addHook('preClose', async () => {
    clearInterval(keepalive);
    for (const c of clients) c.res.end();
    deps.events.off('InstanceReceived', onArrival);
    deps.engine.off('JobQueued', onQueued);
    deps.engine.off('JobStarted', onStarted);
    deps.engine.off('JobProgressed', onProgress);
    deps.engine.off('JobFinished', onFinished);
  });

  app.get('/api/events', {
    schema: {
      summary: 'Server-sent events: arrival, job (queued | started | progress | finished)',
      description:
        'text/event-stream. Each event has `event:` arrival or job and a JSON `data:` line. arrival: {id, receivedAt, source, callingAeTitle, database, sopInstanceUid, seriesInstanceUid, studyInstanceUid, attributes}, only for databases the user may read. job: {type, jobId, pipeline?, attempt?, status?, progress?, message?, error?}.',
      tags: ['events'],
      produces: ['text/event-stream'],
      response: { 200: { description: 'An endless text/event-stream.', type: 'string' }, ...authErrors },
    },
    handler: async (request, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write(': dicomflow events\n\n');
      const client: Client = { res, user: request.user, lastProgress: new Map() };
      clients.add(client);
      res.on('close', () => clients.delete(client));
    },
  });
}
