/**
 * JSON Schemas shared by the routes: they validate requests, check responses and make the
 * OpenAPI document (@fastify/swagger reads them from the routes). Request schemas say
 * `additionalProperties: false` so that a misspelt field is refused, not ignored.
 */

export const errorReply = {
  type: 'object',
  required: ['code', 'message'],
  additionalProperties: false,
  properties: {
    code: { type: 'string', pattern: '^DF_ERR_[A-Z_]+$', description: 'Stable error code (docs/errors.md).' },
    message: { type: 'string' },
  },
} as const;

/** The error replies every authenticated route can give, merged into each route's responses. */
export const authErrors = { 401: errorReply, 403: errorReply } as const;

export const attributes = {
  type: 'object',
  additionalProperties: { type: 'string' },
  description: 'DICOM attributes by keyword.',
} as const;

export const jobId = { type: 'string', minLength: 1, maxLength: 64 } as const;
export const uid = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9.]+$' } as const;
export const databaseName = { type: 'string', minLength: 1, maxLength: 64 } as const;

export const jobStatus = { enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled'] } as const;

const logLine = {
  type: 'object',
  required: ['at', 'level', 'message'],
  properties: {
    at: { type: 'string' },
    level: { enum: ['debug', 'info', 'warn', 'error'] },
    message: { type: 'string' },
    data: { type: 'object', additionalProperties: true },
  },
} as const;

export const output = {
  type: 'object',
  required: ['kind'],
  properties: {
    kind: { enum: ['file', 'instance', 'table'] },
    path: { type: 'string' },
    name: { type: 'string' },
    description: { type: 'string' },
    rows: { type: 'array', items: { type: 'object', additionalProperties: true } },
    sopInstanceUid: { type: 'string' },
  },
} as const;

const step = {
  type: 'object',
  required: ['attempt', 'index', 'id', 'plugin', 'status', 'log', 'outputs'],
  properties: {
    attempt: { type: 'integer' },
    index: { type: 'integer' },
    id: { type: 'string' },
    plugin: { type: 'string' },
    status: { enum: ['running', 'succeeded', 'failed', 'skipped'] },
    startedAt: { type: 'string' },
    finishedAt: { type: 'string' },
    durationMs: { type: 'number' },
    log: { type: 'array', items: logLine },
    outputs: { type: 'array', items: output },
    error: { type: 'string' },
  },
} as const;

export const job = {
  type: 'object',
  required: ['id', 'pipeline', 'status', 'triggerOn', 'contributors', 'inputs', 'attempts', 'maxAttempts', 'createdAt', 'progress'],
  properties: {
    id: { type: 'string' },
    pipeline: { type: 'string' },
    pipelineHash: { type: 'string' },
    status: jobStatus,
    triggerOn: { enum: ['instance', 'series', 'study', 'manual', 'rerun'] },
    triggerUid: { type: 'string' },
    contributors: {
      type: 'object',
      required: ['callingAeTitles', 'peerAddresses'],
      properties: {
        callingAeTitles: { type: 'array', items: { type: 'string' } },
        peerAddresses: { type: 'array', items: { type: 'string' } },
      },
    },
    inputs: { type: 'array', items: { type: 'string' }, description: 'Arrival ids the job runs over.' },
    priority: { type: 'number' },
    attempts: { type: 'integer', description: 'Attempts started, interrupted ones included.' },
    node: { type: 'string', description: 'The node that started the latest attempt (cluster.nodeName).' },
    interruptions: {
      type: 'integer',
      description: 'Attempts cut short by a stop or crash while other jobs ran: not counted against maxAttempts.',
    },
    maxAttempts: { type: 'integer' },
    backoffSeconds: { type: 'number' },
    notBefore: { type: 'string' },
    rerunOf: { type: 'string' },
    createdBy: { type: 'string' },
    createdAt: { type: 'string' },
    startedAt: { type: 'string' },
    finishedAt: { type: 'string' },
    progress: { type: 'number', minimum: 0, maximum: 1 },
    progressMessage: { type: 'string' },
    errorCode: { type: 'string' },
    error: { type: 'string' },
    stopReason: { type: 'string' },
    steps: { type: 'array', items: step },
  },
} as const;

export const arrival = {
  type: 'object',
  required: ['id', 'receivedAt', 'source', 'outcome', 'sopClassUid', 'sopInstanceUid', 'attributes'],
  properties: {
    id: { type: 'string' },
    receivedAt: { type: 'string' },
    source: { type: 'string' },
    callingAeTitle: { type: 'string' },
    calledAeTitle: { type: 'string' },
    peerAddress: { type: 'string' },
    userName: { type: 'string' },
    createdBy: { type: 'string' },
    database: { type: 'string' },
    outcome: { type: 'string' },
    sopClassUid: { type: 'string' },
    sopInstanceUid: { type: 'string' },
    seriesInstanceUid: { type: 'string' },
    studyInstanceUid: { type: 'string' },
    attributes,
  },
} as const;

export const problem = {
  type: 'object',
  required: ['file', 'pointer', 'line', 'column', 'message'],
  properties: {
    file: { type: 'string' },
    pointer: { type: 'string' },
    line: { type: 'integer' },
    column: { type: 'integer' },
    message: { type: 'string' },
  },
} as const;

export const jobQueued = {
  type: 'object',
  required: ['jobId'],
  additionalProperties: false,
  properties: { jobId: { type: 'string' } },
} as const;

export const limitQuery = (max: number, byDefault: number) => ({ type: 'integer', minimum: 1, maximum: max, default: byDefault }) as const;
