import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { dfError } from '../../../core/errors.ts';
import type { JobRecord, JobStatus } from '../../../core/store/job-queue.ts';
import type { UserDefinition } from '../../../core/users.ts';
import { RUNS_JOBS, requireRole } from '../auth.ts';
import type { HttpDeps } from '../context.ts';
import { numberedOutputs, summariseJob } from '../../../core/jobs/job-summary.ts';
import { archiveNames, tarStream } from '../tar-stream.ts';
import { maySeeJob } from '../visibility.ts';
import { authErrors, errorReply, job, jobId, jobQueued, jobStatus, limitQuery, output } from '../schemas.ts';

const idParams = { type: 'object', required: ['id'], additionalProperties: false, properties: { id: jobId } } as const;
const outputParams = {
  type: 'object',
  required: ['id', 'index'],
  additionalProperties: false,
  properties: { id: jobId, index: { type: 'integer', minimum: 0 } },
} as const;
const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: jobStatus,
    pipeline: { type: 'string', minLength: 1 },
    triggerOn: { enum: ['instance', 'series', 'study', 'manual', 'rerun'], description: 'The trigger level (or manual run, rerun).' },
    patient: {
      type: 'string',
      minLength: 1,
      maxLength: 64,
      description: "An input's Patient ID or Patient's Name contains this (case ignored).",
    },
    study: { type: 'string', minLength: 1, maxLength: 64, description: 'An input of this Study Instance UID.' },
    series: { type: 'string', minLength: 1, maxLength: 64, description: 'An input of this Series Instance UID.' },
    since: { type: 'string', format: 'date-time', description: 'Created at or after this time (ISO 8601).' },
    until: { type: 'string', format: 'date-time', description: 'Created before this time (ISO 8601).' },
    limit: limitQuery(500, 50),
    before: { type: 'string', minLength: 1, description: 'Paging: jobs older than this job id (the `next` of the previous page).' },
  },
} as const;
const rerunBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    onBehalfOf: { type: 'string', minLength: 1, description: 'Admins only: record this user as the creator (the CLI passes --user).' },
    pipelineVersion: {
      enum: ['original', 'current'],
      default: 'original',
      description: 'original: the pipeline version the job ran (its definition as then); current: the pipeline as loaded now.',
    },
  },
} as const;
const rerunQueued = {
  ...jobQueued,
  required: [...jobQueued.required, 'pipelineVersion'],
  properties: {
    ...jobQueued.properties,
    pipelineVersion: { type: 'string', description: 'The pipeline version (content hash of its definition) the new job runs.' },
  },
} as const;
/** One job, with the pipeline version it runs beside the one loaded now. */
const jobDetail = {
  ...job,
  properties: {
    ...job.properties,
    pipelineVersion: {
      type: 'string',
      description: 'The pipeline version the job runs: the content hash of the definition it was queued with.',
    },
    currentPipelineVersion: { type: 'string', description: 'The version of the pipeline as loaded now; absent when it is not loaded.' },
    pipelineVersionIsCurrent: {
      type: 'boolean',
      description: 'false: the pipeline was edited since the job was queued (the job runs its own version).',
    },
  },
} as const;

/** What a listed job works on, read from its first input: lets a list show patient and series, and group instance jobs. */
const jobSubject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    patientId: { type: 'string' },
    patientName: { type: 'string' },
    studyInstanceUid: { type: 'string' },
    seriesInstanceUid: { type: 'string' },
    modality: { type: 'string' },
    seriesDescription: { type: 'string' },
    database: { type: 'string' },
  },
} as const;
const listedJob = { ...job, properties: { ...job.properties, subject: jobSubject } } as const;

const logQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    offset: { type: 'integer', minimum: 0, default: 0, description: 'Paging: lines to skip.' },
    limit: {
      type: 'integer',
      minimum: 1,
      maximum: 10000,
      description: 'Paging: at most this many lines (all when absent); the total is in the `x-total-count` header.',
    },
    level: { enum: ['debug', 'info', 'warn', 'error'], description: 'Only lines of this level or above.' },
  },
} as const;
const LEVELS = ['debug', 'info', 'warn', 'error'];

const jobSummary = {
  type: 'object',
  required: ['inputs', 'outputs', 'log'],
  additionalProperties: false,
  properties: {
    inputs: {
      type: 'object',
      required: ['instances', 'series'],
      properties: {
        instances: { type: 'integer' },
        series: {
          type: 'array',
          items: {
            type: 'object',
            required: ['seriesInstanceUid', 'instances', 'firstReceivedAt', 'lastReceivedAt', 'attributes'],
            properties: {
              seriesInstanceUid: { type: 'string' },
              studyInstanceUid: { type: 'string' },
              database: { type: 'string' },
              instances: { type: 'integer' },
              firstReceivedAt: { type: 'string' },
              lastReceivedAt: { type: 'string' },
              attributes: { type: 'object', additionalProperties: { type: 'string' } },
            },
          },
        },
      },
    },
    outputs: {
      type: 'object',
      required: ['files', 'instances', 'tables'],
      properties: {
        files: {
          type: 'array',
          items: {
            type: 'object',
            required: ['index', 'step', 'name'],
            properties: { index: { type: 'integer' }, step: { type: 'string' }, name: { type: 'string' }, description: { type: 'string' } },
          },
        },
        instances: {
          type: 'object',
          required: ['count', 'groups'],
          properties: {
            count: { type: 'integer' },
            groups: {
              type: 'array',
              items: {
                type: 'object',
                required: ['step', 'count', 'firstIndex'],
                properties: {
                  step: { type: 'string' },
                  description: { type: 'string' },
                  count: { type: 'integer' },
                  firstIndex: { type: 'integer' },
                },
              },
            },
          },
        },
        tables: {
          type: 'array',
          items: {
            type: 'object',
            required: ['index', 'step', 'name', 'rows'],
            properties: { index: { type: 'integer' }, step: { type: 'string' }, name: { type: 'string' }, rows: { type: 'integer' } },
          },
        },
      },
    },
    log: {
      type: 'object',
      required: ['lines', 'levels'],
      properties: { lines: { type: 'integer' }, levels: { type: 'object', additionalProperties: { type: 'integer' } } },
    },
  },
} as const;

const listedOutput = {
  ...output,
  required: ['index', 'step', 'attempt', 'kind', 'downloadable'],
  properties: {
    ...output.properties,
    index: { type: 'integer' },
    step: { type: 'string' },
    attempt: { type: 'integer' },
    downloadable: { type: 'boolean' },
    size: { type: 'integer' },
  },
} as const;

/** Every output of a job, in step order, numbered: the number names it in the download URL. */
function outputsOf(j: JobRecord) {
  return numberedOutputs(j).map((o) => {
    let size: number | undefined;
    if (o.kind !== 'table' && o.path) {
      try {
        size = fs.statSync(o.path).size;
      } catch {
        // gone (a scratch file, or collected): listed, not downloadable
      }
    }
    return { ...o, downloadable: size !== undefined, ...(size !== undefined ? { size } : {}) };
  });
}

/** Jobs: list with filters and paging, detail, logs, outputs, cancel, rerun. */
export async function jobRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  // The list's filter in SQL; one job's check is maySeeJob (the same rule).
  const visibleTo = (user: UserDefinition) =>
    user.role === 'admin'
      ? undefined
      : {
          user: user.name,
          databases: deps.users.readable(
            user.name,
            deps.databases.map((d) => d.name),
          ),
        };
  const getJob = async (request: FastifyRequest, id: string) => {
    const j = await deps.jobs.getJob(id);
    if (!j) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${id}`);
    if (!maySeeJob(deps.users, request.user, { ...j, databases: j.inputs.length > 0 ? await deps.jobs.jobDatabases(id) : [] })) {
      throw dfError('DF_ERR_FORBIDDEN', `user "${request.user.name}" may read none of the databases job ${id} works on`);
    }
    return j;
  };

  app.get('/api/jobs', {
    schema: {
      summary: 'Jobs the user may see (made by them, or on a readable database), newest first, with filters; page with `before`=`next`',
      tags: ['jobs'],
      querystring: listQuery,
      response: {
        200: {
          type: 'object',
          required: ['jobs'],
          additionalProperties: false,
          properties: {
            jobs: { type: 'array', items: listedJob },
            next: { type: 'string', description: 'Pass as `before` for the next page; absent on the last.' },
          },
        },
        ...authErrors,
      },
    },
    handler: async (request) => {
      const q = request.query as FromSchema<typeof listQuery> & { limit: number };
      const iso = (t: string | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
      const jobs = await deps.jobs.listJobs({
        status: q.status as JobStatus | undefined,
        pipeline: q.pipeline,
        triggerOn: q.triggerOn,
        patient: q.patient,
        study: q.study,
        series: q.series,
        since: iso(q.since),
        until: iso(q.until),
        before: q.before,
        limit: q.limit + 1,
        visibleTo: visibleTo(request.user),
      });
      const page = jobs.slice(0, q.limit);
      const subjects = await deps.jobs.jobSubjects(page.map((j) => j.id));
      return {
        jobs: page.map((j) => (subjects.has(j.id) ? { ...j, subject: subjects.get(j.id) } : j)),
        ...(jobs.length > q.limit ? { next: page[page.length - 1].id } : {}),
      };
    },
  });

  app.get('/api/jobs/:id', {
    schema: {
      summary: 'One job with its steps, timings, logs and outputs, and its pipeline version beside the one loaded now',
      tags: ['jobs'],
      params: idParams,
      response: { 200: jobDetail, ...authErrors, 404: errorReply },
    },
    handler: async (request) => {
      const j = await getJob(request, (request.params as FromSchema<typeof idParams>).id);
      const current = deps.pipelines.get(j.pipeline)?.hash;
      return {
        ...j,
        ...(j.pipelineHash !== undefined && { pipelineVersion: j.pipelineHash, pipelineVersionIsCurrent: j.pipelineHash === current }),
        ...(current !== undefined && { currentPipelineVersion: current }),
      };
    },
  });

  app.get('/api/jobs/:id/summary', {
    schema: {
      summary:
        'What a job did, at any size: inputs per series, output files listed, derived instances counted, tables named, log lines by level',
      tags: ['jobs'],
      params: idParams,
      response: { 200: jobSummary, ...authErrors, 404: errorReply },
    },
    handler: async (request) => {
      const { id } = request.params as FromSchema<typeof idParams>;
      return summariseJob(await getJob(request, id), await deps.jobs.inputSeries(id));
    },
  });

  app.get('/api/jobs/:id/logs', {
    schema: {
      summary: "The job's log lines, all steps and attempts in order; paged with `offset` and `limit` (the total in `x-total-count`)",
      tags: ['jobs'],
      params: idParams,
      querystring: logQuery,
      response: {
        200: {
          type: 'array',
          items: {
            type: 'object',
            required: ['attempt', 'step', 'at', 'level', 'message'],
            properties: {
              attempt: { type: 'integer' },
              step: { type: 'string' },
              at: { type: 'string' },
              level: { type: 'string' },
              message: { type: 'string' },
              data: { type: 'object', additionalProperties: true },
            },
          },
        },
        ...authErrors,
        404: errorReply,
      },
    },
    handler: async (request, reply) => {
      const j = await getJob(request, (request.params as FromSchema<typeof idParams>).id);
      const q = request.query as { offset: number; limit?: number; level?: string };
      const least = LEVELS.indexOf(q.level ?? 'debug');
      const lines = (j.steps ?? []).flatMap((s) =>
        s.log.filter((l) => LEVELS.indexOf(l.level) >= least).map((l) => ({ attempt: s.attempt, step: s.id, ...l })),
      );
      reply.header('x-total-count', lines.length);
      return lines.slice(q.offset, q.limit === undefined ? undefined : q.offset + q.limit);
    },
  });

  app.get('/api/jobs/:id/outputs', {
    schema: {
      summary: "The job's outputs (files, instances, tables); files and instances can be downloaded by index",
      tags: ['jobs'],
      params: idParams,
      response: { 200: { type: 'array', items: listedOutput }, ...authErrors, 404: errorReply },
    },
    handler: async (request) => outputsOf(await getJob(request, (request.params as FromSchema<typeof idParams>).id)),
  });

  app.get('/api/jobs/:id/outputs/:index', {
    schema: {
      summary: 'Downloads one file or instance output',
      tags: ['jobs'],
      params: outputParams,
      response: {
        200: { description: 'The file, as application/octet-stream (DICOM: application/dicom).' },
        ...authErrors,
        404: errorReply,
      },
    },
    handler: async (request, reply) => {
      const { id, index } = request.params as FromSchema<typeof outputParams>;
      const o = outputsOf(await getJob(request, id))[index];
      if (!o?.downloadable || !o.path) throw dfError('DF_ERR_OUTPUT_UNKNOWN', `job ${id} has no downloadable output ${index}`);
      const name = path.basename(o.path).replace(/[^\w.-]/g, '_');
      return reply
        .type(o.kind === 'instance' ? 'application/dicom' : 'application/octet-stream')
        .header('content-disposition', `attachment; filename="${name}"`)
        .header('content-length', o.size)
        .send(fs.createReadStream(o.path));
    },
  });

  app.get('/api/jobs/:id/archive', {
    schema: {
      summary: "All of a job's file and instance outputs as one tar archive (step/name inside), streamed",
      tags: ['jobs'],
      params: idParams,
      response: { 200: { description: 'application/x-tar' }, ...authErrors, 404: errorReply },
    },
    handler: async (request, reply) => {
      const { id } = request.params as FromSchema<typeof idParams>;
      const j = await getJob(request, id);
      const candidates = numberedOutputs(j).filter((o) => o.kind !== 'table' && o.path);
      // Stat off the event loop's critical path: a job may have a thousand outputs.
      const stats = await Promise.all(candidates.map((o) => fs.promises.stat(o.path!).catch(() => undefined)));
      const present = candidates.flatMap((o, i) => (stats[i]?.isFile() ? [{ o, size: stats[i].size, mtimeMs: stats[i].mtimeMs }] : []));
      if (present.length === 0) throw dfError('DF_ERR_OUTPUT_UNKNOWN', `job ${id} has no file or instance output left to download`);
      const names = archiveNames(present.map(({ o }) => ({ step: o.step, name: path.basename(o.path!) })));
      const entries = present.map(({ o, size, mtimeMs }, i) => ({ name: `${id}/${names[i]}`, path: o.path!, size, mtimeMs }));
      const length = entries.reduce((n, e) => n + 512 + Math.ceil(e.size / 512) * 512, 1024);
      await deps.index.recordAudit(request.user.name, 'download', { jobId: id, files: entries.length });
      return reply
        .type('application/x-tar')
        .header('content-disposition', `attachment; filename="job-${id.replace(/[^\w.-]/g, '_')}.tar"`)
        .header('content-length', length)
        .send(tarStream(entries));
    },
  });

  app.post('/api/jobs/:id/cancel', {
    schema: {
      summary: 'Cancels a queued or running job (operator, manager or admin)',
      tags: ['jobs'],
      params: idParams,
      response: {
        200: {
          type: 'object',
          required: ['cancelled'],
          additionalProperties: false,
          properties: { cancelled: { type: 'boolean', description: 'false: the job had already ended' } },
        },
        ...authErrors,
        404: errorReply,
      },
    },
    handler: async (request) => {
      requireRole(request.user, RUNS_JOBS, 'cancelling a job');
      const { id } = request.params as FromSchema<typeof idParams>;
      await getJob(request, id);
      const cancelled = await deps.engine.cancel(id);
      await deps.index.recordAudit(request.user.name, 'cancel', { jobId: id, cancelled });
      return { cancelled };
    },
  });

  app.post('/api/jobs/:id/rerun', {
    schema: {
      summary:
        'A new job over the same inputs, linked to this one, running its pipeline version or the current one (operator, manager or admin)',
      tags: ['jobs'],
      params: idParams,
      body: rerunBody,
      response: { 202: rerunQueued, ...authErrors, 404: errorReply, 409: errorReply },
    },
    handler: async (request, reply) => {
      requireRole(request.user, RUNS_JOBS, 'rerunning a job');
      const { id } = request.params as FromSchema<typeof idParams>;
      const body = request.body as { onBehalfOf?: string; pipelineVersion?: 'original' | 'current' } | null;
      const onBehalfOf = body?.onBehalfOf;
      if (onBehalfOf !== undefined) requireRole(request.user, ['admin'], 'rerunning on behalf of another user');
      await getJob(request, id);
      const queued = await deps.engine.rerun(id, onBehalfOf ?? request.user.name, body?.pipelineVersion ?? 'original');
      await deps.index.recordAudit(request.user.name, 'rerun', {
        jobId: id,
        newJobId: queued.jobId,
        pipelineVersion: queued.pipelineVersion,
        ...(onBehalfOf ? { onBehalfOf } : {}),
      });
      return reply.code(202).send(queued);
    },
  });
}
