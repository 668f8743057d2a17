import type { FastifyInstance } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { dfError } from '../../../core/errors.ts';
import { issueToken } from '../../../core/users.ts';
import { requireRole } from '../auth.ts';
import type { HttpDeps } from '../context.ts';
import { authErrors, errorReply } from '../schemas.ts';

const tokenRecord = {
  type: 'object',
  required: ['id', 'user', 'createdAt'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    user: { type: 'string' },
    description: { type: 'string' },
    createdAt: { type: 'string' },
    lastUsedAt: { type: 'string' },
  },
} as const;
const createBody = {
  type: 'object',
  required: ['user'],
  additionalProperties: false,
  properties: { user: { type: 'string', minLength: 1, maxLength: 64 }, description: { type: 'string', maxLength: 200 } },
} as const;
const idParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
} as const;

/** API tokens (admin only). The secret is shown once, at creation; only its hash is kept. */
export async function tokenRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  app.get('/api/tokens', {
    schema: {
      summary: 'The API tokens in force (never their secrets)',
      tags: ['users'],
      response: { 200: { type: 'array', items: tokenRecord }, ...authErrors },
    },
    handler: async (request) => {
      requireRole(request.user, ['admin'], 'listing tokens');
      return await deps.tokens.list();
    },
  });

  app.post('/api/tokens', {
    schema: {
      summary: 'Makes a token for a configured user; the reply holds the secret, shown this once',
      tags: ['users'],
      body: createBody,
      response: {
        201: {
          ...tokenRecord,
          required: [...tokenRecord.required, 'token'],
          properties: { ...tokenRecord.properties, token: { type: 'string' } },
        },
        400: errorReply,
        ...authErrors,
      },
    },
    handler: async (request, reply) => {
      requireRole(request.user, ['admin'], 'making tokens');
      const body = request.body as FromSchema<typeof createBody>;
      if (!deps.users.has(body.user)) throw dfError('DF_ERR_USAGE', `unknown user "${body.user}": add it to "users" in the configuration`);
      const { token, record } = await issueToken(deps.tokens, deps.users, body.user, body.description);
      await deps.index.recordAudit(request.user.name, 'token-create', { tokenId: record.id, for: body.user });
      return reply.code(201).send({ ...record, token });
    },
  });

  app.delete('/api/tokens/:id', {
    schema: {
      summary: 'Revokes a token',
      tags: ['users'],
      params: idParams,
      response: { 204: { description: 'Revoked.', type: 'null' }, ...authErrors, 404: errorReply },
    },
    handler: async (request, reply) => {
      requireRole(request.user, ['admin'], 'revoking tokens');
      const { id } = request.params as FromSchema<typeof idParams>;
      if (!(await deps.tokens.revoke(id))) throw dfError('DF_ERR_TOKEN_UNKNOWN', `no token ${id} in force`);
      await deps.index.recordAudit(request.user.name, 'token-revoke', { tokenId: id });
      return reply.code(204).send();
    },
  });
}
