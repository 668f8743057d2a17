import type { FastifyInstance } from 'fastify';
import { requireRole } from '../auth.ts';
import type { HttpDeps } from '../context.ts';
import { maySeeArrival } from '../visibility.ts';
import { arrival, authErrors, errorReply, limitQuery } from '../schemas.ts';

const health = {
  type: 'object',
  required: ['ok', 'dicom', 'index', 'storage'],
  additionalProperties: false,
  properties: { ok: { type: 'boolean' }, dicom: { type: 'boolean' }, index: { type: 'boolean' }, storage: { type: 'boolean' } },
} as const;

const me = {
  type: 'object',
  required: ['name', 'role', 'databases'],
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    role: { enum: ['admin', 'manager', 'operator', 'reader'] },
    databases: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'right'],
        additionalProperties: false,
        properties: { name: { type: 'string' }, right: { enum: ['read', 'write'] } },
      },
    },
  },
} as const;

/** What a node last wrote with its heartbeat; nodes of other versions may write more, or less. */
const nodeReport = {
  type: 'object',
  additionalProperties: true,
  properties: {
    hostname: { type: 'string' },
    pid: { type: 'integer' },
    cpus: { type: 'integer' },
    loadAverage: { type: 'array', items: { type: 'number' }, minItems: 3, maxItems: 3, description: '1, 5 and 15 minutes.' },
    processCpuPercent: { type: 'number', description: 'CPU of the process since the previous heartbeat (100 = one core).' },
    rssBytes: { type: 'integer' },
    dicom: {
      type: 'object',
      additionalProperties: true,
      properties: { aeTitle: { type: 'string' }, host: { type: 'string' }, port: { type: 'integer' } },
    },
    http: { type: 'object', additionalProperties: true, properties: { host: { type: 'string' }, port: { type: 'integer' } } },
    jobs: { type: 'object', additionalProperties: true, properties: { running: { type: 'integer' }, concurrency: { type: 'integer' } } },
    pool: {
      type: 'object',
      additionalProperties: true,
      properties: {
        threads: { type: 'integer' },
        running: { type: 'integer' },
        queued: { type: 'integer' },
        utilization: { type: 'number' },
      },
    },
    received: {
      type: 'object',
      additionalProperties: true,
      description: 'Objects that came in from outside (network, import, watch folders, replication, DICOMweb STOW).',
      properties: { objects: { type: 'integer' }, bytes: { type: 'integer' } },
    },
    produced: {
      type: 'object',
      additionalProperties: true,
      description: 'Objects pipelines produced and filed (absent from nodes of an older version).',
      properties: { objects: { type: 'integer' }, bytes: { type: 'integer' } },
    },
    associationsOpen: { type: 'integer' },
  },
} as const;

const cluster = {
  type: 'object',
  description: 'The nodes sharing the index (on SQLite: this one).',
  required: ['backend', 'location', 'node', 'heartbeatSeconds', 'nodes'],
  additionalProperties: false,
  properties: {
    backend: { enum: ['sqlite', 'postgres'] },
    location: { type: 'string', description: 'The index file, or the database URL without its password.' },
    node: { type: 'string', description: 'The name of the node that answered.' },
    heartbeatSeconds: { type: 'number' },
    nodes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'startedAt', 'heartbeatAt', 'status', 'alive', 'self'],
        additionalProperties: false,
        properties: {
          name: { type: 'string' },
          startedAt: { type: 'string' },
          heartbeatAt: { type: 'string' },
          stoppedAt: { type: 'string', description: 'Set at a clean stop.' },
          status: nodeReport,
          alive: { type: 'boolean', description: 'Not stopped, and a heartbeat within three intervals.' },
          self: { type: 'boolean' },
        },
      },
    },
  },
} as const;

const accessRule = {
  type: 'object',
  required: ['anyone', 'loopback', 'callers'],
  additionalProperties: false,
  properties: {
    anyone: { type: 'boolean', description: 'Any AE title from any host.' },
    loopback: { type: 'boolean', description: 'Any AE title connecting from this machine.' },
    callers: {
      type: 'array',
      description: 'These calling AE titles (the remote nodes spelt out).',
      items: {
        type: 'object',
        required: ['aeTitle'],
        additionalProperties: false,
        properties: {
          aeTitle: { type: 'string' },
          host: { type: 'string', description: 'Only from this host (resolved); absent: from any host.' },
        },
      },
    },
  },
} as const;

const dicomAccess = {
  type: 'object',
  description:
    'Who may store, query (C-FIND) and retrieve (C-MOVE, C-GET) over DICOM: databases[].dicomAccess and dicomdirStores[].dicomAccess of the configuration.',
  required: ['databases', 'dicomdirStores'],
  additionalProperties: false,
  properties: {
    databases: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'store', 'query', 'retrieve'],
        additionalProperties: false,
        properties: { name: { type: 'string' }, store: accessRule, query: accessRule, retrieve: accessRule },
      },
    },
    dicomdirStores: {
      type: 'array',
      items: {
        type: 'object',
        required: ['aeTitle', 'query', 'retrieve'],
        additionalProperties: false,
        properties: { aeTitle: { type: 'string' }, query: accessRule, retrieve: accessRule },
      },
    },
  },
} as const;

/** Health, status at a glance, who am I, recent arrivals, the audit log. */
export async function statusRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  app.get('/api/health', {
    config: { public: true },
    schema: {
      summary: 'Liveness and readiness: DICOM listener, index and storage (no token needed)',
      tags: ['status'],
      security: [],
      response: { 200: health, 503: health },
    },
    handler: async (_request, reply) => {
      const h = await deps.status.health();
      return reply.code(h.ok ? 200 : 503).send(h);
    },
  });

  app.get('/api/status', {
    schema: {
      summary: 'SCP state, associations, counts, queue depths, pool utilisation, the nodes sharing the index, per-database totals',
      tags: ['status'],
      response: {
        200: {
          type: 'object',
          // Sections are added as the server grows (the routing outbox, say): the document names
          // the stable ones and lets others through.
          additionalProperties: true,
          required: ['dicom', 'uptimeSeconds', 'received', 'storage', 'pipelines', 'cluster', 'engine', 'databases'],
          properties: {
            dicom: { type: 'object', additionalProperties: true, properties: { access: dicomAccess } },
            uptimeSeconds: { type: 'integer' },
            startedAt: { type: 'string' },
            received: {
              type: 'object',
              additionalProperties: true,
              description: 'What came in from outside: network, import, watch folders, replication, DICOMweb STOW.',
            },
            produced: {
              type: 'object',
              additionalProperties: true,
              description: 'What pipelines produced and filed (derived instances), counted apart from received.',
            },
            storage: { type: 'object', additionalProperties: true },
            watchFolders: { type: 'array' },
            pipelines: { type: 'object', additionalProperties: true },
            cluster,
            engine: {
              type: 'object',
              additionalProperties: true,
              properties: {
                queuedByPipeline: {
                  type: 'object',
                  additionalProperties: { type: 'integer' },
                  description: 'Queued jobs by pipeline, all nodes.',
                },
              },
            },
            databases: { type: 'array' },
          },
        },
        ...authErrors,
      },
    },
    handler: async (request) => {
      const status = await deps.status.status();
      // A reader sees the totals of the databases they may read only.
      const dbs = status.databases as { name: string }[] | undefined;
      if (Array.isArray(dbs)) status.databases = dbs.filter((db) => deps.users.may(request.user.name, 'read', db.name));
      const access = (status.dicom as { access?: { databases: { name: string }[] } } | undefined)?.access;
      if (access) access.databases = access.databases.filter((db) => deps.users.may(request.user.name, 'read', db.name));
      return status;
    },
  });

  app.get('/api/me', {
    schema: { summary: 'The user of the token: role and database rights', tags: ['status'], response: { 200: me, ...authErrors } },
    handler: async (request) => {
      const u = request.user;
      const databases = deps.databases.flatMap((db) => {
        const right = deps.users.may(u.name, 'write', db.name) ? 'write' : deps.users.may(u.name, 'read', db.name) ? 'read' : undefined;
        return right ? [{ name: db.name, right }] : [];
      });
      return { name: u.name, role: u.role, databases };
    },
  });

  app.get('/api/arrivals', {
    schema: {
      summary: 'Recent arrivals, newest first, of the databases the user may read',
      tags: ['status'],
      querystring: { type: 'object', additionalProperties: false, properties: { limit: limitQuery(500, 50) } },
      response: { 200: { type: 'array', items: arrival }, ...authErrors },
    },
    handler: async (request) => {
      const { limit } = request.query as { limit: number };
      // Read a wider window, then keep what the user may see.
      return (await deps.index.recentArrivals(limit * 4))
        .filter((a) => maySeeArrival(deps.users, request.user, a.database))
        .slice(0, limit)
        .map(({ objectId: _o, path: _p, ...a }) => a);
    },
  });

  app.get('/api/arrivals/series', {
    schema: {
      summary:
        'Recent arrivals per series and database, the latest first: count, first and last arrival, senders (of the newest 50,000 arrivals)',
      tags: ['status'],
      querystring: { type: 'object', additionalProperties: false, properties: { limit: limitQuery(500, 50) } },
      response: {
        200: {
          type: 'array',
          items: {
            type: 'object',
            required: ['seriesInstanceUid', 'count', 'firstReceivedAt', 'lastReceivedAt', 'senders', 'sources', 'attributes'],
            additionalProperties: false,
            properties: {
              seriesInstanceUid: { type: 'string' },
              studyInstanceUid: { type: 'string' },
              database: { type: 'string' },
              count: { type: 'integer' },
              firstReceivedAt: { type: 'string' },
              lastReceivedAt: { type: 'string' },
              senders: { type: 'array', items: { type: 'string' }, description: 'Calling AE titles.' },
              sources: {
                type: 'array',
                items: { type: 'string' },
                description: 'network, import, folder, replication, dicomweb, pipeline, move.',
              },
              attributes: { type: 'object', additionalProperties: { type: 'string' } },
            },
          },
        },
        ...authErrors,
      },
    },
    handler: async (request) => {
      const { limit } = request.query as { limit: number };
      const u = request.user;
      // The same rule as maySeeArrival: admins all (none recorded too), others their readable databases.
      const databases =
        u.role === 'admin'
          ? undefined
          : deps.users.readable(
              u.name,
              deps.databases.map((d) => d.name),
            );
      return deps.index.arrivalsBySeries({ limit, window: 50_000, databases });
    },
  });

  app.get('/api/audit', {
    schema: {
      summary: 'What people did (moves, copies, runs, reruns, cancels, tokens), newest first; admin only',
      tags: ['status'],
      querystring: { type: 'object', additionalProperties: false, properties: { limit: limitQuery(1000, 100) } },
      response: {
        200: {
          type: 'array',
          items: {
            type: 'object',
            required: ['at', 'user', 'action', 'details'],
            properties: {
              at: { type: 'string' },
              user: { type: 'string' },
              action: { type: 'string' },
              details: { type: 'object', additionalProperties: true },
            },
          },
        },
        ...authErrors,
        404: errorReply,
      },
    },
    handler: async (request) => {
      requireRole(request.user, ['admin'], 'reading the audit log');
      return deps.index.auditLog((request.query as { limit: number }).limit);
    },
  });
}
