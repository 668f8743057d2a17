/**
 * DICOMweb (PS3.18): every database is a service at /dicomweb/<database>/ with QIDO-RS searches,
 * WADO-RS retrieval (instances as stored, metadata, frames, bulk data, rendered images and
 * thumbnails) and STOW-RS storage, under the API's bearer tokens and database rights.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Piscina } from 'piscina';
// sharp must be loaded by the main thread before a worker uses it (see image-export.ts).
import '../../../core/dicom/image-export.ts';
import { WINDOW_PRESET_NAMES, type WindowChoice } from '../../../core/dicom/render.ts';
import { dfError, type ErrorCode } from '../../../core/errors.ts';
import { databaseSource, type InstanceRow } from '../../../core/store/index-store.ts';
import type { DatabaseRight } from '../../../core/users.ts';
import type { HttpDeps } from '../context.ts';
import { errorReply } from '../schemas.ts';
import { negotiateDicomJson, negotiateFrames, negotiateInstances, negotiateRendered } from './accept.ts';
import { dicomJsonDatasetSchema } from './dicom-json.ts';
import type { FramesResult, RenderTask, WorkerCall, WorkerReply } from './dicomweb-worker.ts';
import { newBoundary, writeMultipart, type OutgoingPart } from './multipart.ts';
import { search, type QidoLevel } from './qido.ts';
import { storeInstances } from './stow.ts';

/** What a route needs of its caller, declared as route data and checked before the handler runs. */
export interface RouteAccess {
  /** The right on the database named by the `db` path parameter. */
  database: DatabaseRight;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

const TAG = ['dicomweb'];
const uid = { type: 'string', minLength: 1, maxLength: 64 } as const;
const db = { type: 'string', minLength: 1, maxLength: 64 } as const;
const paramsOf = (...names: ('study' | 'series' | 'instance' | 'frames' | 'tag')[]) =>
  ({
    type: 'object',
    required: ['db', ...names],
    additionalProperties: false,
    properties: {
      db,
      ...Object.fromEntries(
        names.map((n) => [
          n,
          n === 'frames'
            ? {
                type: 'string',
                pattern: '^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8}){0,999}$',
                description: 'Frame numbers from 1, comma-separated.',
              }
            : n === 'tag'
              ? { type: 'string', pattern: '^[0-9A-Fa-f]{8}$' }
              : uid,
        ]),
      ),
    },
  }) as const;

const stringOrList = { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] } as const;
const qidoQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 0, description: 'At most this many matches.' },
    offset: { type: 'integer', minimum: 0, description: 'Skip this many matches first.' },
    fuzzymatching: { type: 'boolean', description: 'Not supported: true is answered with exact matching and a Warning header.' },
    includefield: {
      ...stringOrList,
      description:
        'Attributes (keywords or tags, comma-separated or repeated) to return beyond the defaults; "all" for every attribute the index keeps.',
    },
  },
  additionalProperties: {
    ...stringOrList,
    description: 'A matching key: keyword or tag = value (C-FIND matching: * and ? wildcards, date/time ranges, UID lists).',
  },
} as const;
const renderQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    window: {
      type: 'string',
      pattern: '^-?[0-9.eE+-]+,[0-9.eE+-]+(,(linear|linear-exact|sigmoid))?$|^[a-z-]+$',
      description: `center,width[,function] (function: linear, linear-exact or sigmoid), or a preset (${WINDOW_PRESET_NAMES.join(', ')}), auto or min-max. Default: the object's own window.`,
    },
    quality: { type: 'integer', minimum: 1, maximum: 100, default: 90, description: 'JPEG quality.' },
    viewport: {
      type: 'string',
      pattern: '^[1-9][0-9]{0,4},[1-9][0-9]{0,4}$',
      description: 'width,height: fit the image inside this many pixels.',
    },
  },
} as const;

const dicomJson = { 200: { type: 'array', items: dicomJsonDatasetSchema } } as const;
const multipart = (what: string) =>
  ({ 200: { description: what, content: { 'multipart/related': { schema: { type: 'string', format: 'binary' } } } } }) as const;
const image = {
  200: {
    description: 'The rendered image',
    content: {
      'image/jpeg': { schema: { type: 'string', format: 'binary' } },
      'image/png': { schema: { type: 'string', format: 'binary' } },
    },
  },
} as const;
const errors = { 401: errorReply, 403: errorReply, 404: errorReply, 406: errorReply } as const;
const stowReply = {
  ...dicomJsonDatasetSchema,
  description: 'PS3.18 10.5.3 Store Instances Response: ReferencedSOPSequence and FailedSOPSequence.',
} as const;

type Params = { db: string; study?: string; series?: string; instance?: string; frames?: string; tag?: string };

export async function dicomwebRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  // Decoding, rendering and transcoding are CPU-bound and synchronous: one thread of their own.
  const pool = new Piscina({
    filename: new URL('./dicomweb-worker.ts', import.meta.url).href,
    minThreads: 0,
    maxThreads: 1,
    idleTimeout: 30_000,
  });
  app.addHook('onClose', async () => {
    await pool.destroy();
  });
  const work = async <T>(call: WorkerCall): Promise<T> => {
    const reply = (await pool.run(call, { signal: AbortSignal.timeout(120_000) })) as WorkerReply;
    if (!reply.ok) throw dfError((reply.code as ErrorCode | undefined) ?? 'DF_ERR_INTERNAL', reply.message);
    return reply.value as T;
  };

  // Access is decided on the matched route's declared needs; a route that declares none is closed.
  // The user was admitted by the server-wide hook (access.ts), which runs first.
  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config.access;
    if (!access) throw dfError('DF_ERR_FORBIDDEN', `${request.method} ${request.routeOptions.url ?? request.url} declares no access rule`);
    const name = (request.params as Params).db;
    if (!deps.databases.some((d) => d.name === name)) throw dfError('DF_ERR_DATABASE_UNKNOWN', `no database "${name}"`);
    deps.users.require(request.user.name, access.database, name);
  });

  // STOW-RS bodies are read as they arrive (stow.ts), never buffered whole.
  app.addContentTypeParser('multipart/related', (_request, payload, done) => done(null, payload));

  const serviceUrl = (request: FastifyRequest, name: string) =>
    `${request.protocol}://${request.host}/dicomweb/${encodeURIComponent(name)}`;
  const read = { access: { database: 'read' } } satisfies { access: RouteAccess };

  // ---- QIDO-RS -------------------------------------------------------------------------------

  const qido = (url: string, level: QidoLevel, summary: string, params: ReturnType<typeof paramsOf>) =>
    app.get(url, {
      config: read,
      schema: { summary, tags: TAG, params, querystring: qidoQuery, response: { ...dicomJson, 400: errorReply, ...errors } },
      handler: async (request, reply) => {
        negotiateDicomJson(request.headers.accept);
        const p = request.params as Params;
        const result = await search(databaseSource(deps.index, p.db), {
          level,
          studyInstanceUid: p.study,
          seriesInstanceUid: p.series,
          query: request.query as Record<string, string | string[] | number | boolean | undefined>,
          serviceUrl: serviceUrl(request, p.db),
        });
        // PS3.18 8.3.4: what was not done as asked travels in Warning headers.
        if (result.warnings.length > 0)
          reply.header('warning', result.warnings.map((w) => `299 dicomflow "${w.replace(/"/g, "'")}"`).join(', '));
        return reply.type('application/dicom+json').send(result.matches);
      },
    });
  qido('/dicomweb/:db/studies', 'STUDY', 'QIDO-RS: search for studies', paramsOf());
  qido('/dicomweb/:db/series', 'SERIES', 'QIDO-RS: search for series of all studies', paramsOf());
  qido('/dicomweb/:db/instances', 'IMAGE', 'QIDO-RS: search for instances of all studies', paramsOf());
  qido('/dicomweb/:db/studies/:study/series', 'SERIES', "QIDO-RS: search for a study's series", paramsOf('study'));
  qido('/dicomweb/:db/studies/:study/instances', 'IMAGE', "QIDO-RS: search for a study's instances", paramsOf('study'));
  qido(
    '/dicomweb/:db/studies/:study/series/:series/instances',
    'IMAGE',
    "QIDO-RS: search for a series' instances",
    paramsOf('study', 'series'),
  );

  // ---- WADO-RS -------------------------------------------------------------------------------

  /** The instances a path names, in series then instance order; 404 when there are none. */
  const instancesOf = async (p: Params): Promise<InstanceRow[]> => {
    const rows = await deps.index.instances(p.db, {
      studyInstanceUids: [p.study!],
      ...(p.series ? { seriesInstanceUids: [p.series] } : {}),
      ...(p.instance ? { sopInstanceUids: [p.instance] } : {}),
    });
    if (rows.length === 0) {
      const what = p.instance ? `instance ${p.instance}` : p.series ? `series ${p.series}` : `study ${p.study}`;
      throw dfError('DF_ERR_NOT_FOUND', `no ${what} in database "${p.db}"`);
    }
    const n = (v: string | undefined) => (v === undefined || v === '' ? Infinity : Number(v));
    return rows.sort(
      (a, b) =>
        n(a.series.SeriesNumber) - n(b.series.SeriesNumber) ||
        (a.series.SeriesInstanceUID ?? '').localeCompare(b.series.SeriesInstanceUID ?? '') ||
        n(a.instance.InstanceNumber) - n(b.instance.InstanceNumber),
    );
  };
  const fileOf = (row: InstanceRow) => row.filePath ?? deps.objectPath(row.objectPath);
  const instanceUrl = (request: FastifyRequest, p: Params, row: InstanceRow) =>
    `${serviceUrl(request, p.db)}/studies/${row.study.StudyInstanceUID}/series/${row.series.SeriesInstanceUID}/instances/${row.instance.SOPInstanceUID}`;
  /**
   * The reply is written here rather than piped from a stream by Fastify: only the socket's write
   * callbacks tell when a reused read block may be read into again (writeMultipart).
   */
  const sendMultipart = (request: FastifyRequest, reply: FastifyReply, type: string, parts: AsyncIterable<OutgoingPart>) => {
    const boundary = newBoundary();
    reply.hijack();
    const res = reply.raw;
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) res.setHeader(name, value);
    res.writeHead(200, { 'content-type': `multipart/related; type="${type}"; boundary=${boundary}` });
    if (request.method === 'HEAD') {
      res.end();
      return reply;
    }
    writeMultipart(res, boundary, parts).catch((err: Error) => {
      request.log.warn({ err: err.message, url: request.url }, 'WADO-RS reply broken off');
      res.destroy();
    });
    return reply;
  };

  const retrieve = (url: string, summary: string, params: ReturnType<typeof paramsOf>) =>
    app.get(url, {
      config: read,
      schema: {
        summary,
        tags: TAG,
        params,
        response: { ...multipart('The instances as application/dicom parts, as stored unless a transfer-syntax was asked for'), ...errors },
      },
      handler: async (request, reply) => {
        // Only what the stream needs is kept while it runs, not every row's attributes.
        const objects = (await instancesOf(request.params as Params)).map((row) => ({
          file: fileOf(row),
          transferSyntaxUid: row.transferSyntaxUid,
        }));
        const encodingOf = negotiateInstances(
          request.headers.accept,
          objects.map((o) => o.transferSyntaxUid),
        );
        return sendMultipart(
          request,
          reply,
          'application/dicom',
          (async function* () {
            for (const object of objects) {
              const encoding = encodingOf(object.transferSyntaxUid);
              if (encoding.kind === 'original') {
                yield { contentType: `application/dicom; transfer-syntax=${object.transferSyntaxUid}`, file: object.file };
                continue;
              }
              const bytes = await work<Uint8Array>({
                name: 'transcoded',
                arg: { path: object.file, transferSyntaxUid: encoding.transferSyntaxUid },
              });
              yield { contentType: `application/dicom; transfer-syntax=${encoding.transferSyntaxUid}`, bytes };
            }
          })(),
        );
      },
    });
  retrieve('/dicomweb/:db/studies/:study', 'WADO-RS: retrieve a study', paramsOf('study'));
  retrieve('/dicomweb/:db/studies/:study/series/:series', 'WADO-RS: retrieve a series', paramsOf('study', 'series'));
  retrieve(
    '/dicomweb/:db/studies/:study/series/:series/instances/:instance',
    'WADO-RS: retrieve an instance',
    paramsOf('study', 'series', 'instance'),
  );

  const metadata = (url: string, summary: string, params: ReturnType<typeof paramsOf>) =>
    app.get(url, {
      config: read,
      schema: { summary, tags: TAG, params, response: { ...dicomJson, ...errors } },
      handler: async (request, reply) => {
        negotiateDicomJson(request.headers.accept);
        const p = request.params as Params;
        const rows = await instancesOf(p);
        const out: unknown[] = [];
        // In batches: the worker parses a few dozen headers per call, the loop stays free between.
        for (let i = 0; i < rows.length; i += 32) {
          const files = rows.slice(i, i + 32).map((row) => ({ path: fileOf(row), instanceUrl: instanceUrl(request, p, row) }));
          out.push(...(await work<unknown[]>({ name: 'metadata', arg: { files } })));
        }
        return reply.type('application/dicom+json').send(out);
      },
    });
  metadata(
    '/dicomweb/:db/studies/:study/metadata',
    "WADO-RS: a study's metadata (DICOM JSON, bulk data as BulkDataURI)",
    paramsOf('study'),
  );
  metadata('/dicomweb/:db/studies/:study/series/:series/metadata', "WADO-RS: a series' metadata", paramsOf('study', 'series'));
  metadata(
    '/dicomweb/:db/studies/:study/series/:series/instances/:instance/metadata',
    "WADO-RS: an instance's metadata",
    paramsOf('study', 'series', 'instance'),
  );

  const sendFrames = async (request: FastifyRequest, reply: FastifyReply, row: InstanceRow, numbers: number[]) => {
    const { decode } = negotiateFrames(request.headers.accept, row.transferSyntaxUid);
    const result = await work<FramesResult>({ name: 'frames', arg: { path: fileOf(row), numbers, decode } });
    const contentType = `${result.mediaType}; transfer-syntax=${result.transferSyntaxUid}`;
    return sendMultipart(
      request,
      reply,
      result.mediaType,
      (async function* () {
        for (const bytes of result.frames) yield { contentType, bytes };
      })(),
    );
  };

  app.get('/dicomweb/:db/studies/:study/series/:series/instances/:instance/frames/:frames', {
    config: read,
    schema: {
      summary:
        'WADO-RS: frames of an instance, as stored (native or compressed) or decoded to native bytes (type="application/octet-stream")',
      tags: TAG,
      params: paramsOf('study', 'series', 'instance', 'frames'),
      response: { ...multipart('One part per frame'), ...errors },
    },
    handler: async (request, reply) => {
      const p = request.params as Params;
      const [row] = await instancesOf(p);
      return sendFrames(request, reply, row, p.frames!.split(',').map(Number));
    },
  });

  app.get('/dicomweb/:db/studies/:study/series/:series/instances/:instance/bulkdata/:tag', {
    config: read,
    schema: {
      summary: 'WADO-RS: bulk data of a top-level attribute (the BulkDataURIs of metadata); Pixel Data comes as its frames',
      tags: TAG,
      params: paramsOf('study', 'series', 'instance', 'tag'),
      response: { ...multipart('The value as application/octet-stream, or one part per frame'), ...errors },
    },
    handler: async (request, reply) => {
      const p = request.params as Params;
      const [row] = await instancesOf(p);
      const tag = p.tag!.toUpperCase();
      if (tag === '7FE00010') {
        const count = Math.max(1, Number(row.instance.NumberOfFrames) || 1);
        return sendFrames(
          request,
          reply,
          row,
          Array.from({ length: count }, (_, i) => i + 1),
        );
      }
      const bytes = await work<Uint8Array>({ name: 'bulkValue', arg: { path: fileOf(row), tag } });
      return sendMultipart(
        request,
        reply,
        'application/octet-stream',
        (async function* () {
          yield { contentType: 'application/octet-stream', bytes };
        })(),
      );
    },
  });

  const renderedImage = async (request: FastifyRequest, reply: FastifyReply, row: InstanceRow, frame: number, thumbnail: boolean) => {
    const format = negotiateRendered(request.headers.accept);
    const q = request.query as { window?: string; quality: number; viewport?: string };
    const [vw, vh] = q.viewport?.split(',').map(Number) ?? (thumbnail ? [128, 128] : []);
    const task: RenderTask = {
      path: fileOf(row),
      frame,
      format,
      quality: q.quality,
      window: windowOf(q.window),
      ...(vw ? { viewport: { width: vw, height: vh } } : {}),
    };
    const bytes = await work<Uint8Array>({ name: 'rendered', arg: task });
    return reply.type(format === 'png' ? 'image/png' : 'image/jpeg').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  };
  const middle = <T>(list: T[]) => list[Math.floor((list.length - 1) / 2)];

  for (const kind of ['rendered', 'thumbnail'] as const) {
    const thumbnail = kind === 'thumbnail';
    const schema = (summary: string, params: ReturnType<typeof paramsOf>) => ({
      summary,
      tags: TAG,
      params,
      querystring: renderQuery,
      response: { ...image, 400: errorReply, 422: errorReply, ...errors },
    });
    app.get(`/dicomweb/:db/studies/:study/series/:series/instances/:instance/${kind}`, {
      config: read,
      schema: schema(
        `WADO-RS: an instance ${thumbnail ? 'as a thumbnail' : 'rendered'} (its first frame) through the display pipeline, JPEG or PNG`,
        paramsOf('study', 'series', 'instance'),
      ),
      handler: async (request, reply) => renderedImage(request, reply, (await instancesOf(request.params as Params))[0], 1, thumbnail),
    });
    app.get(`/dicomweb/:db/studies/:study/series/:series/instances/:instance/frames/:frames/${kind}`, {
      config: read,
      schema: schema(
        `WADO-RS: a frame ${thumbnail ? 'as a thumbnail' : 'rendered'}, JPEG or PNG`,
        paramsOf('study', 'series', 'instance', 'frames'),
      ),
      handler: async (request, reply) => {
        const p = request.params as Params;
        const numbers = p.frames!.split(',').map(Number);
        if (numbers.length !== 1) throw dfError('DF_ERR_REQUEST_INVALID', 'a rendered frame is one frame: give one frame number');
        return renderedImage(request, reply, (await instancesOf(p))[0], numbers[0], thumbnail);
      },
    });
    // A series or study is shown by its middle image (of its first series).
    app.get(`/dicomweb/:db/studies/:study/series/:series/${kind}`, {
      config: read,
      schema: schema(`WADO-RS: a series ${thumbnail ? 'as a thumbnail' : 'rendered'} (its middle instance)`, paramsOf('study', 'series')),
      handler: async (request, reply) => renderedImage(request, reply, middle(await instancesOf(request.params as Params)), 1, thumbnail),
    });
    app.get(`/dicomweb/:db/studies/:study/${kind}`, {
      config: read,
      schema: schema(
        `WADO-RS: a study ${thumbnail ? 'as a thumbnail' : 'rendered'} (the middle instance of its first series)`,
        paramsOf('study'),
      ),
      handler: async (request, reply) => {
        const rows = await instancesOf(request.params as Params);
        const first = rows.filter((r) => r.series.SeriesInstanceUID === rows[0].series.SeriesInstanceUID);
        return renderedImage(request, reply, middle(first), 1, thumbnail);
      },
    });
  }

  // ---- STOW-RS -------------------------------------------------------------------------------

  const stow = (url: string, summary: string, params: ReturnType<typeof paramsOf>) =>
    app.post(url, {
      config: { access: { database: 'write' } },
      schema: {
        summary,
        tags: TAG,
        params,
        response: { 200: stowReply, 202: stowReply, 409: stowReply, 400: errorReply, 415: errorReply, ...errors },
      },
      handler: async (request, reply) => {
        const p = request.params as Params;
        const result = await storeInstances({
          receiver: deps.receiver,
          contentType: request.headers['content-type'],
          body: request.raw,
          studyInstanceUid: p.study,
          provenance: {
            source: 'dicomweb',
            database: p.db,
            createdBy: request.user.name,
            userName: request.user.name,
            peerAddress: request.ip,
          },
          serviceUrl: serviceUrl(request, p.db),
          log: request.log,
        });
        return reply.code(result.status).type('application/dicom+json').send(result.response);
      },
    });
  stow(
    '/dicomweb/:db/studies',
    'STOW-RS: store instances (multipart/related; type="application/dicom"); needs write on the database',
    paramsOf(),
  );
  stow('/dicomweb/:db/studies/:study', 'STOW-RS: store instances of one study; objects of another study are refused', paramsOf('study'));
}

/** `window=center,width[,function]` or a named choice, as render.ts takes it. */
function windowOf(text: string | undefined): WindowChoice {
  if (text === undefined) return 'object';
  const parts = text.split(',');
  if (parts.length === 1) {
    if (text === 'auto' || text === 'min-max' || text === 'object' || (WINDOW_PRESET_NAMES as string[]).includes(text))
      return text as WindowChoice;
    throw dfError(
      'DF_ERR_REQUEST_INVALID',
      `window "${text}" is neither center,width[,function] nor one of auto, min-max, ${WINDOW_PRESET_NAMES.join(', ')}`,
    );
  }
  const center = Number(parts[0]);
  const width = Number(parts[1]);
  if (!Number.isFinite(center) || !Number.isFinite(width) || width <= 0)
    throw dfError('DF_ERR_REQUEST_INVALID', `window "${text}": center and width must be numbers, width above 0`);
  const fn = ({ linear: 'LINEAR', 'linear-exact': 'LINEAR_EXACT', sigmoid: 'SIGMOID' } as const)[parts[2] ?? 'linear'];
  return { center, width, function: fn };
}
