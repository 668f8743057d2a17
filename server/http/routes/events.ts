import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { dfError } from '../../../core/errors.ts';
import type { InstanceReceived, JobFinished, JobProgressed, JobQueued, JobStarted } from '../../../core/events.ts';
import type { UserDefinition } from '../../../core/users.ts';
import type { HttpDeps } from '../context.ts';
import { maySeeArrival, maySeeJob, type JobAudience } from '../visibility.ts';
import { authErrors, errorReply } from '../schemas.ts';

// Progress can be reported hundreds of times a second; a screen needs a few updates a second.
const PROGRESS_INTERVAL_MS = 200;
// Proxies close idle connections; a comment line now and then keeps the stream open.
const KEEPALIVE_MS = 15_000;
// Jobs whose end this node never saw (another node finished them) leave their audience behind.
const MAX_AUDIENCES = 10_000;

/**
 * Live events as server-sent events: `arrival` (an object received, for users who may read its
 * database), `job` (queued, started, progress, finished, for users who may see the job). Browsers
 * read it with fetch and a stream reader, since EventSource cannot send the Authorization header.
 */
interface Client {
  res: ServerResponse;
  user: UserDefinition;
  lastProgress: Map<string, number>;
}

// A reader that stops reading leaves everything written to its stream in this process's memory:
// past this much unsent the stream is closed (the web page reconnects by itself).
const MAX_UNSENT_BYTES = 1 << 20;

export async function eventRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const log = deps.log.child({ component: 'http-events' });
  /** Writes to one stream, or closes it if its reader is too far behind. */
  const send = (c: Client, text: string) => {
    if (c.res.destroyed) return;
    if (c.res.writableLength > MAX_UNSENT_BYTES) {
      log.warn({ user: c.user.name, unsentBytes: c.res.writableLength }, 'event stream closed: its reader fell behind');
      c.res.destroy();
      return;
    }
    c.res.write(text);
  };
  const write = (c: Client, event: string, data: unknown) => send(c, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  // One listener per event fans out to every stream, not one per stream per event.
  const clients = new Set<Client>();
  const openPerUser = new Map<string, number>();

  // Who may see a job is looked up once per job (its inputs do not change), not per event:
  // progress can come hundreds of times a second. One promise per job, so a job's events are
  // written in the order they came, whenever the lookup answers.
  const audiences = new Map<string, Promise<JobAudience | null>>();
  const lookUp = async (jobId: string): Promise<JobAudience | null> => {
    const job = await deps.jobs.getJob(jobId);
    return job
      ? { createdBy: job.createdBy, inputs: job.inputs, databases: job.inputs.length > 0 ? await deps.jobs.jobDatabases(jobId) : [] }
      : null;
  };
  const audienceOf = (jobId: string): Promise<JobAudience | null> => {
    let audience = audiences.get(jobId);
    if (audience === undefined) {
      audience = lookUp(jobId).catch((err: unknown) => {
        log.warn({ err, jobId }, 'looking up who may see a job failed: its events go to admins only');
        audiences.delete(jobId);
        return null;
      });
      if (audiences.size >= MAX_AUDIENCES) audiences.clear();
      audiences.set(jobId, audience);
    }
    return audience;
  };
  /** Calls `each` with the streams that may see this job's events: none but admins' if the job is unknown. */
  const withWatchers = (jobId: string, each: (watchers: Client[]) => void): void => {
    if (clients.size === 0) return;
    void audienceOf(jobId).then((audience) =>
      each([...clients].filter((c) => (audience ? maySeeJob(deps.users, c.user, audience) : c.user.role === 'admin'))),
    );
  };
  const toWatchers = (jobId: string, data: unknown) => withWatchers(jobId, (watchers) => watchers.forEach((c) => write(c, 'job', data)));

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
    for (const c of clients) if (maySeeArrival(deps.users, c.user, a.database)) write(c, 'arrival', data);
  };
  const onQueued = (e: JobQueued) => toWatchers(e.jobId, { type: 'queued', ...e });
  const onStarted = (e: JobStarted) => toWatchers(e.jobId, { type: 'started', ...e });
  const onProgress = (e: JobProgressed) => {
    const now = Date.now();
    withWatchers(e.jobId, (watchers) => {
      for (const c of watchers) {
        if (e.progress < 1 && now - (c.lastProgress.get(e.jobId) ?? 0) < PROGRESS_INTERVAL_MS) continue;
        c.lastProgress.set(e.jobId, now);
        write(c, 'job', { type: 'progress', ...e });
      }
    });
  };
  const onFinished = (e: JobFinished) => {
    withWatchers(e.jobId, (watchers) => {
      for (const c of clients) c.lastProgress.delete(e.jobId);
      for (const c of watchers) write(c, 'job', { type: 'finished', ...e });
      audiences.delete(e.jobId);
    });
    if (clients.size === 0) audiences.delete(e.jobId);
  };
  deps.events.on('InstanceReceived', onArrival);
  deps.events.on('JobQueued', onQueued);
  deps.events.on('JobStarted', onStarted);
  deps.events.on('JobProgressed', onProgress);
  deps.events.on('JobFinished', onFinished);
  const keepalive = setInterval(() => {
    for (const c of clients) send(c, ': keepalive\n\n');
  }, KEEPALIVE_MS);
  keepalive.unref();

  // Fastify waits for open connections when it closes: end the streams first.
  app.addHook('preClose', async () => {
    clearInterval(keepalive);
    for (const c of clients) c.res.end();
    deps.events.off('InstanceReceived', onArrival);
    deps.events.off('JobQueued', onQueued);
    deps.events.off('JobStarted', onStarted);
    deps.events.off('JobProgressed', onProgress);
    deps.events.off('JobFinished', onFinished);
  });

  app.get('/api/events', {
    schema: {
      summary: 'Server-sent events: arrival, job (queued | started | progress | finished)',
      description:
        'text/event-stream. Each event has `event:` arrival or job and a JSON `data:` line. arrival: {id, receivedAt, source, callingAeTitle, database, sopInstanceUid, seriesInstanceUid, studyInstanceUid, attributes}, only for databases the user may read. job: {type, jobId, pipeline?, attempt?, status?, progress?, message?, error?}, only for jobs the user may see (as in GET /api/jobs/{id}). Streams open at once are capped per user (429 DF_ERR_TOO_MANY_EVENT_STREAMS) and in all (503 DF_ERR_EVENT_STREAMS_FULL): http.eventStreams.',
      tags: ['events'],
      produces: ['text/event-stream'],
      response: { 200: { description: 'An endless text/event-stream.', type: 'string' }, ...authErrors, 429: errorReply, 503: errorReply },
    },
    handler: async (request, reply) => {
      const user = request.user;
      const own = openPerUser.get(user.name) ?? 0;
      if (own >= deps.eventStreams.perUser) {
        reply.header('retry-after', '10');
        throw dfError(
          'DF_ERR_TOO_MANY_EVENT_STREAMS',
          `user "${user.name}" already has ${own} event streams open (http.eventStreams.perUser)`,
        );
      }
      if (clients.size >= deps.eventStreams.total) {
        reply.header('retry-after', '10');
        throw dfError(
          'DF_ERR_EVENT_STREAMS_FULL',
          `${clients.size} event streams are open, the most this server serves (http.eventStreams.total)`,
        );
      }
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': dicomflow events\n\n');
      const client: Client = { res, user, lastProgress: new Map() };
      clients.add(client);
      openPerUser.set(user.name, own + 1);
      res.on('close', () => {
        clients.delete(client);
        const left = (openPerUser.get(user.name) ?? 1) - 1;
        if (left > 0) openPerUser.set(user.name, left);
        else openPerUser.delete(user.name);
      });
    },
  });
}
