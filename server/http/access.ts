import type { FastifyInstance, FastifyRequest } from 'fastify';
import { dfError } from '../../core/errors.ts';
import type { UserDefinition } from '../../core/users.ts';
import { authenticate } from './auth.ts';
import type { HttpDeps } from './context.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Answered without a token: the health probe and the web page's files, nothing else. */
    public?: true;
  }
  interface FastifyRequest {
    /** The user of the bearer token; reading it on a request the access hook did not admit throws 401. */
    readonly user: UserDefinition;
  }
}

const admittedUser = Symbol('admittedUser');
type AdmittedRequest = FastifyRequest & { [admittedUser]?: UserDefinition };

/**
 * Access is decided on the route the router matched, never on the URL's spelling: the router
 * decodes percent-escapes (`/%61pi/metrics` is `/api/metrics`), so a check on the raw URL let
 * such spellings through without a token. Every route needs a user unless it says
 * `config: { public: true }`; a request that matched no route only gets the not-found reply,
 * which holds no data.
 */
export function guardRoutes(app: FastifyInstance, deps: Pick<HttpDeps, 'adminToken' | 'tokens' | 'users'>): void {
  app.decorateRequest('user', {
    getter(this: AdmittedRequest) {
      const user = this[admittedUser];
      // A handler reached without the hook's admission is a server bug; it must not run as nobody.
      if (!user) throw dfError('DF_ERR_UNAUTHORIZED', 'this route needs a bearer token');
      return user;
    },
  });
  app.addHook('onRequest', async (request: AdmittedRequest) => {
    if (request.is404 || request.routeOptions.config.public === true) return;
    // The token lookup awaits the index; the route (and whether it is public) is already decided.
    request[admittedUser] = await authenticate(request.headers.authorization, deps);
  });
}

/** Marks every route registered in `scope` (and its children) public: for the web page's static files. */
export function publicScope(scope: FastifyInstance): void {
  scope.addHook('onRoute', (route) => {
    route.config = { ...route.config, public: true };
  });
}
