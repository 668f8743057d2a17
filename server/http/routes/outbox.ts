import type { FastifyInstance } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { dfError } from '../../../core/errors.ts';
import { RUNS_JOBS, requireRole } from '../auth.ts';
import type { HttpDeps } from '../context.ts';
import { authErrors, errorReply, limitQuery } from '../schemas.ts';

const destinationParams = {
  type: 'object',
  required: ['destination'],
  additionalProperties: false,
  properties: { destination: { type: 'string', minLength: 1, maxLength: 16, description: 'The remote node’s AE title (remoteNodes).' } },
} as const;
const count = { type: 'integer', minimum: 0 } as const;
const nullableText = { type: ['string', 'null'] } as const;
const destinationRow = {
  type: 'object',
  required: ['destination', 'host', 'port', 'queued', 'inFlight', 'retrying', 'dead', 'delivered'],
  additionalProperties: false,
  properties: {
    destination: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'integer' },
    queued: { ...count, description: 'Waiting to be sent, retries included.' },
    inFlight: { ...count, description: 'Being sent now.' },
    retrying: { ...count, description: 'Queued after a failed attempt, waiting for their next one (part of queued).' },
    dead: { ...count, description: 'Dead letters: out of attempts, waiting for an operator to retry them.' },
    delivered: count,
    associations: count,
    nextAttemptAt: nullableText,
    lastError: nullableText,
    lastErrorAt: nullableText,
    lastDeliveredAt: nullableText,
  },
} as const;
const entry = {
  type: 'object',
  required: ['id', 'sopInstanceUid', 'state', 'attempts', 'createdAt'],
  properties: {
    id: { type: 'string' },
    sopInstanceUid: { type: 'string' },
    sopClassUid: { type: 'string' },
    state: { type: 'string' },
    attempts: { type: 'integer' },
    jobId: { type: 'string' },
    createdAt: { type: 'string' },
    lastAttemptAt: { type: 'string' },
    lastErrorCode: { type: 'string' },
    lastError: { type: 'string' },
  },
} as const;

/** The routing outbox: per destination queued, in flight, retrying and dead letters; dead letters retried. */
export async function outboxRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const outbox = () => {
    if (!deps.outbox) throw dfError('DF_ERR_DESTINATION_UNKNOWN', 'this server routes to no remote node');
    return deps.outbox;
  };
  const known = (destination: string) => {
    if (!outbox().isDestination(destination)) throw dfError('DF_ERR_DESTINATION_UNKNOWN', `no remote node "${destination}" in remoteNodes`);
    return destination;
  };

  app.get('/api/outbox', {
    schema: {
      summary: 'Per destination (remoteNodes): queued, in flight, retrying, dead letters, delivered, the last error',
      tags: ['outbox'],
      response: { 200: { type: 'array', items: destinationRow }, ...authErrors },
    },
    handler: async () => {
      if (!deps.outbox) return [];
      const [retrying, status] = await Promise.all([deps.outbox.store.retryingCounts(), deps.outbox.status()]);
      return status.map(({ sending, ...d }) => ({ ...d, inFlight: sending, retrying: retrying[d.destination] ?? 0 }));
    },
  });

  app.get('/api/outbox/:destination/entries', {
    schema: {
      summary: 'Entries of one destination in one state (default: dead letters), newest first (operator, manager or admin)',
      tags: ['outbox'],
      params: destinationParams,
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { state: { enum: ['queued', 'sending', 'delivered', 'dead'], default: 'dead' }, limit: limitQuery(1000, 100) },
      },
      response: { 200: { type: 'array', items: entry }, ...authErrors, 404: errorReply },
    },
    handler: async (request) => {
      requireRole(request.user, RUNS_JOBS, 'reading outbox entries');
      const destination = known((request.params as FromSchema<typeof destinationParams>).destination);
      const q = request.query as { state: 'queued' | 'sending' | 'delivered' | 'dead'; limit: number };
      return await outbox().store.list({ destination, state: q.state, limit: q.limit });
    },
  });

  app.post('/api/outbox/:destination/retry', {
    schema: {
      summary: 'Queues dead letters of a destination again, all or those named (operator, manager or admin); audited',
      tags: ['outbox'],
      params: destinationParams,
      body: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: {
          ids: {
            type: 'array',
            items: { type: 'string', minLength: 1 },
            maxItems: 10000,
            description: 'Entry ids; absent: every dead letter of the destination.',
          },
        },
      },
      response: {
        200: { type: 'object', required: ['rescheduled'], additionalProperties: false, properties: { rescheduled: count } },
        ...authErrors,
        404: errorReply,
      },
    },
    handler: async (request) => {
      requireRole(request.user, RUNS_JOBS, 'retrying outbox entries');
      const destination = known((request.params as FromSchema<typeof destinationParams>).destination);
      const ids = (request.body as { ids?: string[] } | null)?.ids;
      const rescheduled = await outbox().store.retryDead(destination, ids);
      await deps.index.recordAudit(request.user.name, 'outbox-retry', { destination, rescheduled, ...(ids ? { ids: ids.length } : {}) });
      if (rescheduled > 0) outbox().wake();
      return { rescheduled };
    },
  });
}
