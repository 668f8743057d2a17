import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyInstance } from 'fastify';

/**
 * Checks every JSON reply against the response schema of its route and status code before it
 * is sent. Fastify's serializer alone would silently drop a field the schema lacks (or send one
 * of the wrong type): a reply that breaks its documented contract is a server bug, answered
 * as DF_ERR_INTERNAL and logged, so the OpenAPI document stays true.
 */
export function checkResponses(app: FastifyInstance): void {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const compiled = new WeakMap<object, ValidateFunction>();
  app.addHook('preSerialization', async (request, reply, payload) => {
    const responses = request.routeOptions.schema?.response as Record<string, object> | undefined;
    if (!responses) return payload;
    const code = String(reply.statusCode);
    const schema = responses[code] ?? responses[`${code[0]}xx`] ?? responses.default;
    if (!schema) return payload;
    let validate = compiled.get(schema);
    if (!validate) {
      validate = ajv.compile(schema);
      compiled.set(schema, validate);
    }
    // Serialize-then-parse so that Dates and undefined behave as they will on the wire.
    if (validate(JSON.parse(JSON.stringify(payload)))) return payload;
    request.log.error(
      { url: request.url, statusCode: reply.statusCode, errors: validate.errors },
      'reply does not match its response schema',
    );
    reply.code(500);
    return {
      code: 'DF_ERR_INTERNAL',
      message: `reply of ${request.method} ${request.routeOptions.url} does not match its schema: ${ajv.errorsText(validate.errors)}`,
    };
  });
}
