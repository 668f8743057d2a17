import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { dfError } from '../../../core/errors.ts';
import type { HierarchyFilter, StudyRow } from '../../../core/store/index-store.ts';
import { RUNS_JOBS, requireRole } from '../auth.ts';
import type { HttpDeps } from '../context.ts';
import { attributes, authErrors, databaseName, errorReply, limitQuery, uid } from '../schemas.ts';

const dbParams = { type: 'object', required: ['db'], additionalProperties: false, properties: { db: databaseName } } as const;
const studyParams = {
  type: 'object',
  required: ['db', 'study'],
  additionalProperties: false,
  properties: { db: databaseName, study: uid },
} as const;
const seriesParams = {
  type: 'object',
  required: ['db', 'study', 'series'],
  additionalProperties: false,
  properties: { db: databaseName, study: uid, series: uid },
} as const;
const studyQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    patientId: { type: 'string', minLength: 1, maxLength: 64, description: 'Exactly this Patient ID.' },
    patient: {
      type: 'string',
      minLength: 1,
      maxLength: 64,
      description: "Patient's Name or Patient ID contains this (case ignored; ^ and spaces alike).",
    },
    dateFrom: { type: 'string', pattern: '^\\d{8}$', description: 'Study Date on or after (YYYYMMDD).' },
    dateTo: { type: 'string', pattern: '^\\d{8}$', description: 'Study Date on or before (YYYYMMDD).' },
    modality: { type: 'string', minLength: 1, maxLength: 16, description: 'A series of this modality in the study.' },
    accession: { type: 'string', minLength: 1, maxLength: 16, description: 'Accession Number contains this.' },
    limit: limitQuery(5000, 500),
  },
} as const;

type StudySearch = { patient?: string; dateFrom?: string; dateTo?: string; modality?: string; accession?: string };
/** The study browser's search, applied to a database's study rows. */
function matchesStudy(r: StudyRow, q: StudySearch): boolean {
  const norm = (v: string | undefined) =>
    (v ?? '')
      .toLowerCase()
      .replace(/[\^\s,]+/g, ' ')
      .trim();
  if (q.patient) {
    const want = norm(q.patient);
    if (!norm(r.patient.PatientName).includes(want) && !norm(r.patient.PatientID).includes(want)) return false;
  }
  const date = r.study.StudyDate ?? '';
  if (q.dateFrom && !(date >= q.dateFrom)) return false;
  if (q.dateTo && !(date && date <= q.dateTo)) return false;
  if (q.modality && !r.modalitiesInStudy.some((m) => m.toUpperCase() === q.modality!.toUpperCase())) return false;
  if (q.accession && !norm(r.study.AccessionNumber).includes(norm(q.accession))) return false;
  return true;
}
/** Study rows read at a time by the study browser's search. */
const STUDY_SEARCH_PAGE = 500;
const sendBody = {
  type: 'object',
  additionalProperties: false,
  required: ['destination', 'level', 'uid'],
  properties: {
    destination: { type: 'string', minLength: 1, maxLength: 16, description: 'A remote node’s AE title (remoteNodes).' },
    level: { enum: ['study', 'series'] },
    uid,
  },
} as const;
const limitOnly = { type: 'object', additionalProperties: false, properties: { limit: limitQuery(5000, 500) } } as const;

const transferBody = {
  type: 'object',
  additionalProperties: false,
  required: ['to', 'mode', 'level', 'uid'],
  properties: {
    to: databaseName,
    mode: { enum: ['move', 'copy'] },
    level: { enum: ['patient', 'study', 'series'] },
    uid: { type: 'string', minLength: 1, maxLength: 64, description: 'Patient ID, Study or Series Instance UID.' },
  },
} as const;

const count = { type: 'integer', minimum: 0 } as const;
const patientRow = {
  type: 'object',
  required: ['attributes', 'numberOfStudies', 'numberOfSeries', 'numberOfInstances'],
  properties: { attributes, numberOfStudies: count, numberOfSeries: count, numberOfInstances: count },
} as const;
const studyRow = {
  type: 'object',
  required: ['patient', 'study', 'numberOfSeries', 'numberOfInstances', 'modalitiesInStudy'],
  properties: {
    patient: attributes,
    study: attributes,
    numberOfSeries: count,
    numberOfInstances: count,
    modalitiesInStudy: { type: 'array', items: { type: 'string' } },
    sopClassesInStudy: { type: 'array', items: { type: 'string' } },
  },
} as const;
const seriesRow = {
  type: 'object',
  required: ['series', 'numberOfInstances'],
  properties: { patient: attributes, study: attributes, series: attributes, numberOfInstances: count },
} as const;
const instanceRow = {
  type: 'object',
  required: ['instance', 'transferSyntaxUid', 'createdBy', 'createdAt', 'source'],
  properties: {
    instance: attributes,
    transferSyntaxUid: { type: 'string' },
    createdBy: { type: 'string' },
    createdAt: { type: 'string' },
    source: { type: 'string' },
  },
} as const;
const totals = {
  type: 'object',
  required: ['patients', 'studies', 'series', 'instances', 'bytes'],
  properties: { patients: count, studies: count, series: count, instances: count, arrivals: count, duplicates: count, bytes: count },
} as const;

/** Databases: browse patients, studies, series and instances; move or copy between them. */
export async function databaseRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  /** The database named in the path, checked to exist and to be readable by the user. */
  const readable = (request: FastifyRequest, db: string) => {
    if (!deps.databases.some((d) => d.name === db)) throw dfError('DF_ERR_DATABASE_UNKNOWN', `no database "${db}"`);
    deps.users.require(request.user.name, 'read', db);
    return db;
  };
  const errors = { ...authErrors, 404: errorReply };

  app.get('/api/databases', {
    schema: {
      summary: 'The databases the user may read, with their totals and the right held',
      tags: ['databases'],
      response: {
        200: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'right', 'totals'],
            additionalProperties: false,
            properties: { name: { type: 'string' }, aeTitle: { type: 'string' }, right: { enum: ['read', 'write'] }, totals },
          },
        },
        ...authErrors,
      },
    },
    handler: async (request) =>
      Promise.all(
        deps.databases
          .filter((db) => deps.users.may(request.user.name, 'read', db.name))
          .map(async (db) => ({
            name: db.name,
            ...(db.aeTitle ? { aeTitle: db.aeTitle } : {}),
            right: deps.users.may(request.user.name, 'write', db.name) ? 'write' : 'read',
            totals: await deps.index.totals(db.name),
          })),
      ),
  });

  app.get('/api/databases/:db/patients', {
    schema: {
      summary: 'Patients of a database',
      tags: ['databases'],
      params: dbParams,
      querystring: limitOnly,
      response: { 200: { type: 'array', items: patientRow }, ...errors },
    },
    handler: async (request) => {
      const db = readable(request, (request.params as FromSchema<typeof dbParams>).db);
      // The index's first page is the listing's first rows: no more is read than is sent.
      return deps.index.patients(db, {}, { limit: (request.query as { limit: number }).limit });
    },
  });

  app.get('/api/databases/:db/studies', {
    schema: {
      summary: 'Studies of a database, searched by patient name or ID, study date range, modality and accession number',
      tags: ['databases'],
      params: dbParams,
      querystring: studyQuery,
      response: { 200: { type: 'array', items: studyRow }, ...errors },
    },
    handler: async (request) => {
      const db = readable(request, (request.params as FromSchema<typeof dbParams>).db);
      const q = request.query as StudySearch & { patientId?: string; limit: number };
      const filter: HierarchyFilter = q.patientId ? { patientId: q.patientId } : {};
      // Page by page until `limit` studies matched: a large database is never read whole.
      const found: StudyRow[] = [];
      for (let after: string | undefined; found.length < q.limit; ) {
        const page = await deps.index.studies(db, filter, { after, limit: STUDY_SEARCH_PAGE });
        found.push(...page.filter((r) => matchesStudy(r, q)));
        after = page.at(-1)?.key;
        if (page.length < STUDY_SEARCH_PAGE || after === undefined) break;
      }
      return found.slice(0, q.limit);
    },
  });

  app.get('/api/databases/:db/studies/:study/series', {
    schema: {
      summary: 'Series of a study',
      tags: ['databases'],
      params: studyParams,
      querystring: limitOnly,
      response: { 200: { type: 'array', items: seriesRow }, ...errors },
    },
    handler: async (request) => {
      const p = request.params as FromSchema<typeof studyParams>;
      const db = readable(request, p.db);
      const rows = await deps.index.series(db, { studyInstanceUids: [p.study] });
      if (rows.length === 0) throw dfError('DF_ERR_NOT_FOUND', `no study ${p.study} in database "${db}"`);
      return rows.slice(0, (request.query as { limit: number }).limit);
    },
  });

  app.get('/api/databases/:db/studies/:study/series/:series/instances', {
    schema: {
      summary: 'Instances of a series, with their provenance',
      tags: ['databases'],
      params: seriesParams,
      querystring: limitOnly,
      response: { 200: { type: 'array', items: instanceRow }, ...errors },
    },
    handler: async (request) => {
      const p = request.params as FromSchema<typeof seriesParams>;
      const db = readable(request, p.db);
      const rows = await deps.index.instances(db, { studyInstanceUids: [p.study], seriesInstanceUids: [p.series] });
      if (rows.length === 0) throw dfError('DF_ERR_NOT_FOUND', `no series ${p.series} of study ${p.study} in database "${db}"`);
      return rows.slice(0, (request.query as { limit: number }).limit).map((r) => ({
        instance: r.instance,
        transferSyntaxUid: r.transferSyntaxUid,
        createdBy: r.createdBy,
        createdAt: r.createdAt,
        source: r.source,
      }));
    },
  });

  app.post('/api/databases/:db/transfer', {
    schema: {
      summary:
        'Moves or copies a patient, study or series to another database (manager or admin; move: write on both, copy: read on the source, write on the target)',
      tags: ['databases'],
      params: dbParams,
      body: transferBody,
      response: {
        200: {
          type: 'object',
          required: ['instances', 'filed', 'duplicates'],
          additionalProperties: false,
          properties: {
            instances: count,
            filed: count,
            duplicates: { ...count, description: 'Already in the target, kept as they were.' },
          },
        },
        400: errorReply,
        ...errors,
      },
    },
    handler: async (request) => {
      const from = (request.params as FromSchema<typeof dbParams>).db;
      const body = request.body as FromSchema<typeof transferBody>;
      for (const db of [from, body.to])
        if (!deps.databases.some((d) => d.name === db)) throw dfError('DF_ERR_DATABASE_UNKNOWN', `no database "${db}"`);
      if (from === body.to) throw dfError('DF_ERR_USAGE', 'source and target database are the same');
      const user = request.user.name;
      requireRole(request.user, ['admin', 'manager'], `${body.mode === 'move' ? 'moving' : 'copying'} between databases`);
      deps.users.require(user, body.mode === 'move' ? 'write' : 'read', from);
      deps.users.require(user, 'write', body.to);
      // The index records the action in the audit log, in the same transaction.
      return deps.index.transfer({
        from,
        to: body.to,
        level: body.level,
        uid: body.uid,
        mode: body.mode,
        user,
        source: 'move',
        createdBy: user,
      });
    },
  });

  const removed = {
    type: 'object',
    required: ['instances', 'released'],
    additionalProperties: false,
    properties: {
      instances: { ...count, description: 'Instances removed from the database.' },
      released: { ...count, description: 'Their objects, deleted once no other database, job or open trigger group needs them.' },
    },
  } as const;
  /** Deleting from a database: a manager's or admin's act, with write on it; audited by the index. */
  const mayDelete = (request: FastifyRequest, db: string) => {
    if (!deps.databases.some((d) => d.name === db)) throw dfError('DF_ERR_DATABASE_UNKNOWN', `no database "${db}"`);
    requireRole(request.user, ['admin', 'manager'], 'deleting from a database');
    deps.users.require(request.user.name, 'write', db);
  };

  app.delete('/api/databases/:db/studies/:study', {
    schema: {
      summary:
        'Deletes a study from a database (manager or admin with write on it); its objects are deleted once nothing else holds them; audited',
      tags: ['databases'],
      params: studyParams,
      response: { 200: removed, ...errors },
    },
    handler: async (request) => {
      const p = request.params as FromSchema<typeof studyParams>;
      mayDelete(request, p.db);
      return deps.index.remove({ database: p.db, level: 'study', uid: p.study, user: request.user.name });
    },
  });

  app.delete('/api/databases/:db/studies/:study/series/:series', {
    schema: {
      summary:
        'Deletes a series from a database (manager or admin with write on it); its objects are deleted once nothing else holds them; audited',
      tags: ['databases'],
      params: seriesParams,
      response: { 200: removed, ...errors },
    },
    handler: async (request) => {
      const p = request.params as FromSchema<typeof seriesParams>;
      mayDelete(request, p.db);
      // The series must be of that study: a delete names exactly what goes.
      if ((await deps.index.series(p.db, { studyInstanceUids: [p.study], seriesInstanceUids: [p.series] })).length === 0) {
        throw dfError('DF_ERR_NOT_FOUND', `no series ${p.series} of study ${p.study} in database "${p.db}"`);
      }
      return deps.index.remove({ database: p.db, level: 'series', uid: p.series, user: request.user.name });
    },
  });

  app.post('/api/databases/:db/send', {
    schema: {
      summary:
        'Sends a study or series to a remote node (remoteNodes) through the outbox (operator, manager or admin with read on the database); audited',
      tags: ['databases', 'outbox'],
      params: dbParams,
      body: sendBody,
      response: {
        202: {
          type: 'object',
          required: ['queued'],
          additionalProperties: false,
          properties: { queued: { ...count, description: 'Objects queued in the outbox; the outbox panel follows their delivery.' } },
        },
        400: errorReply,
        ...errors,
      },
    },
    handler: async (request, reply) => {
      const db = (request.params as FromSchema<typeof dbParams>).db;
      const body = request.body as FromSchema<typeof sendBody>;
      requireRole(request.user, RUNS_JOBS, 'sending to a remote node');
      readable(request, db);
      if (!deps.outbox?.isDestination(body.destination)) {
        throw dfError('DF_ERR_DESTINATION_UNKNOWN', `no remote node "${body.destination}" in remoteNodes`);
      }
      const filter: HierarchyFilter = body.level === 'study' ? { studyInstanceUids: [body.uid] } : { seriesInstanceUids: [body.uid] };
      const rows = await deps.index.instances(db, filter);
      if (rows.length === 0) throw dfError('DF_ERR_NOT_FOUND', `no ${body.level} ${body.uid} in database "${db}"`);
      // Each request is its own sending: the same study sent twice is sent twice.
      const sending = request.id;
      const queued = await deps.outbox.store.enqueue(
        rows.map((r) => ({
          destination: body.destination,
          file: r.filePath ?? deps.objectPath(r.objectPath),
          sopClassUid: r.instance.SOPClassUID,
          sopInstanceUid: r.instance.SOPInstanceUID,
          transferSyntaxUid: r.transferSyntaxUid,
          sourceKey: `send:${sending}:${r.key}`,
        })),
      );
      await deps.index.recordAudit(request.user.name, 'send', {
        database: db,
        level: body.level,
        uid: body.uid,
        destination: body.destination,
        instances: queued.length,
      });
      deps.outbox.wake();
      return reply.code(202).send({ queued: queued.length });
    },
  });
}
