import type { FastifyInstance } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { dfError } from '../../../core/errors.ts';
import type { LoadedPipeline } from '../../../core/pipeline/load.ts';
import { RUNS_JOBS, requireRole } from '../auth.ts';
import type { HttpDeps } from '../context.ts';
import { authErrors, databaseName, errorReply, jobQueued, problem, uid } from '../schemas.ts';

const pipelineSummary = {
  type: 'object',
  required: ['name', 'enabled', 'trigger', 'steps', 'file', 'hash'],
  properties: {
    name: { type: 'string' },
    description: { type: 'string' },
    enabled: { type: 'boolean' },
    trigger: { type: 'object', additionalProperties: true, required: ['on'], properties: { on: { type: 'string' } } },
    steps: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'plugin'],
        properties: { id: { type: 'string' }, plugin: { type: 'string' }, version: { type: 'string' } },
      },
    },
    file: { type: 'string' },
    hash: { type: 'string' },
  },
} as const;

const nameParams = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', minLength: 1 } },
} as const;

const runBody = {
  type: 'object',
  additionalProperties: false,
  required: ['database'],
  properties: { database: databaseName, study: uid, series: uid },
  oneOf: [{ required: ['study'] }, { required: ['series'] }],
  description: 'The study or the series (one of the two) of a database to run the pipeline on.',
} as const;

function summary(p: LoadedPipeline) {
  const d = p.definition;
  return {
    name: d.name,
    ...(d.description ? { description: d.description } : {}),
    enabled: d.enabled,
    trigger: d.trigger,
    steps: p.steps.map((s) => ({ id: s.id, plugin: s.registered.plugin.name, version: s.registered.plugin.version })),
    file: p.file,
    hash: p.hash,
  };
}

/** Pipelines: list, show, validate a posted definition, reload the directory, run by hand. */
export async function pipelineRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  app.get('/api/pipelines', {
    schema: {
      summary: 'The loaded pipelines and the problems of files that did not load',
      tags: ['pipelines'],
      response: {
        200: {
          type: 'object',
          required: ['pipelines', 'problems'],
          additionalProperties: false,
          properties: { pipelines: { type: 'array', items: pipelineSummary }, problems: { type: 'array', items: problem } },
        },
        ...authErrors,
      },
    },
    handler: async () => ({ pipelines: deps.pipelines.all().map(summary), problems: deps.pipelines.problems() }),
  });

  app.get('/api/pipelines/:name', {
    schema: {
      summary: 'One pipeline with its full definition (defaults filled in)',
      tags: ['pipelines'],
      params: nameParams,
      response: {
        200: {
          ...pipelineSummary,
          required: [...pipelineSummary.required, 'definition'],
          properties: { ...pipelineSummary.properties, definition: { type: 'object', additionalProperties: true } },
        },
        ...authErrors,
        404: errorReply,
      },
    },
    handler: async (request) => {
      const { name } = request.params as FromSchema<typeof nameParams>;
      const p = deps.pipelines.get(name);
      if (!p) throw dfError('DF_ERR_PIPELINE_UNKNOWN', `no loaded pipeline "${name}"`);
      return { ...summary(p), definition: p.definition };
    },
  });

  app.post('/api/pipelines/validate', {
    schema: {
      summary: 'Checks a pipeline definition (the JSON body) as loading would, without loading it',
      description:
        'Answers 200 with every problem found, each with its JSON pointer; lines refer to the body printed with two-space indentation.',
      tags: ['pipelines'],
      body: { type: 'object' },
      response: {
        200: {
          type: 'object',
          required: ['valid', 'problems'],
          additionalProperties: false,
          properties: { valid: { type: 'boolean' }, problems: { type: 'array', items: problem } },
        },
        ...authErrors,
      },
    },
    handler: async (request) => {
      const problems = deps.validatePipeline(JSON.stringify(request.body, null, 2));
      return { valid: problems.length === 0, problems };
    },
  });

  app.post('/api/pipelines/reload', {
    schema: {
      summary: 'Reads the pipeline directory again (it is also watched); admin only',
      tags: ['pipelines'],
      response: {
        200: {
          type: 'object',
          required: ['loaded', 'problems'],
          additionalProperties: false,
          properties: { loaded: { type: 'array', items: { type: 'string' } }, problems: { type: 'array', items: problem } },
        },
        ...authErrors,
      },
    },
    handler: async (request) => {
      requireRole(request.user, ['admin'], 'reloading pipelines');
      const result = deps.pipelines.reload();
      await deps.index.recordAudit(request.user.name, 'reload-pipelines', { loaded: result.loaded, problems: result.problems.length });
      return result;
    },
  });

  app.post('/api/pipelines/:name/run', {
    schema: {
      summary: 'Runs a pipeline now on a study or series of a database (operator, manager or admin with read on the database)',
      tags: ['pipelines', 'jobs'],
      params: nameParams,
      body: runBody,
      response: { 202: jobQueued, 400: errorReply, ...authErrors, 404: errorReply },
    },
    handler: async (request, reply) => {
      const { name } = request.params as FromSchema<typeof nameParams>;
      const body = request.body as { database: string; study?: string; series?: string };
      requireRole(request.user, RUNS_JOBS, 'running a pipeline');
      if (!deps.databases.some((d) => d.name === body.database)) throw dfError('DF_ERR_DATABASE_UNKNOWN', `no database "${body.database}"`);
      deps.users.require(request.user.name, 'read', body.database);
      if (!deps.pipelines.get(name)) throw dfError('DF_ERR_PIPELINE_UNKNOWN', `no loaded pipeline "${name}"`);
      const level = body.study !== undefined ? 'study' : 'series';
      const target = (body.study ?? body.series)!;
      const inputs = await deps.index.arrivalIdsIn(body.database, level, target);
      if (inputs.length === 0) throw dfError('DF_ERR_NOT_FOUND', `no ${level} ${target} in database "${body.database}"`);
      const jobId = await deps.engine.runManual(name, inputs, { user: request.user.name, triggerUid: target });
      await deps.index.recordAudit(request.user.name, 'run', {
        pipeline: name,
        database: body.database,
        level,
        uid: target,
        jobId,
        instances: inputs.length,
      });
      return reply.code(202).send({ jobId });
    },
  });
}
