import type { FastifyInstance } from 'fastify';
import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import { authErrors } from '../schemas.ts';

const { version } = (await import('../../../package.json', { with: { type: 'json' } })).default;

/** The OpenAPI document is generated from the routes' own schemas, so it cannot drift from them. */
export const openapiOptions: FastifyDynamicSwaggerOptions = {
  openapi: {
    openapi: '3.1.0',
    info: {
      title: 'dicomflow HTTP API',
      version,
      description:
        "Every route but /api/health and the web page's files needs `Authorization: Bearer <token>`, decided on the matched route. Errors are `{ code, message }` with stable DF_ERR_* codes (docs/errors.md); requests with unknown properties are refused (DF_ERR_REQUEST_INVALID).",
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'A token from `dicomflow token create --user NAME`, or <dataDir>/admin-token.',
        },
      },
    },
    security: [{ bearer: [] }],
    tags: [
      { name: 'status', description: 'Health, status, arrivals, metrics, audit log' },
      { name: 'pipelines', description: 'Pipeline definitions' },
      { name: 'jobs', description: 'Jobs and their results' },
      { name: 'databases', description: 'Browsing and moving studies' },
      { name: 'events', description: 'Live events' },
      { name: 'users', description: 'API tokens' },
      { name: 'outbox', description: 'The routing outbox per remote node: queued, in flight, retrying, dead letters' },
      { name: 'dicomweb', description: 'DICOMweb (PS3.18) per database at /dicomweb/<database>: QIDO-RS, WADO-RS, STOW-RS' },
    ],
  },
};

export async function openapiRoutes(app: FastifyInstance): Promise<void> {
  app.get('/api/openapi.json', {
    schema: {
      summary: 'This document (OpenAPI 3.1)',
      tags: ['status'],
      response: { 200: { type: 'object', additionalProperties: true }, ...authErrors },
    },
    handler: async () => app.swagger(),
  });
}
