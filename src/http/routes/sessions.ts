import cookie from '@fastify/cookie';
import type { FastifyInstance } from 'fastify';
import { hasScope } from '../../auth/principal.js';
import type { Sessions } from '../../auth/sessions.js';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config/schema.js';
import { AppError } from '../../errors.js';
import { unauthenticated } from '../../policy/authorize.js';
import type { Identify } from '../authenticate.js';
import { requestState } from '../request-state.js';
import {
  clearSessionCookie,
  csrfFailed,
  installSessionHook,
  sessionIdOf,
  setSessionCookie,
} from '../session-cookie.js';

export interface SessionRoutesOptions {
  readonly config: Config;
  readonly sessions: Sessions;
  readonly identify: Identify;
  readonly clock: Clock;
}

/** `POST /v1/sessions` and `DELETE /v1/sessions/current` (SPEC §3.3), and the cookie hook. */
export async function registerSessionRoutes(app: FastifyInstance, options: SessionRoutesOptions) {
  const { config, sessions, identify, clock } = options;
  // hook: false: cookies are parsed only where one may count, not on every image request.
  await app.register(cookie, { hook: false });
  installSessionHook(app, sessions);

  app.post('/v1/sessions', async (request, reply) => {
    // Only a bearer token in the header makes a session: never a cookie (a session cannot
    // extend itself past its token; the cookie's scope leaves this route out anyway) and never
    // a query token (it would sit in logs).
    const { principal, source } = await identify(request, { allowQuery: false });
    if (!principal || source !== 'header') throw unauthenticated();
    if (!hasScope(principal, 'images:read')) {
      throw new AppError('insufficient_scope', 'The access token needs the scope images:read', {
        headers: {
          'WWW-Authenticate':
            'Bearer realm="pixgate", error="insufficient_scope", error_description="The access token needs the scope images:read", scope="images:read"',
        },
      });
    }
    // Rotation (no fixation): whatever session this browser had ends now, and a fresh id is made.
    const previous = sessionIdOf(app, request);
    if (previous !== undefined) await sessions.end(previous);
    const session = await sessions.start(principal);
    setSessionCookie(reply, config, session.id, session.expiresAt, clock.now());
    return reply
      .code(201)
      .header('cache-control', 'no-store')
      .send({ expiresAt: new Date(session.expiresAt).toISOString(), csrfToken: session.csrfToken });
  });

  app.delete('/v1/sessions/current', async (request, reply) => {
    const id = sessionIdOf(app, request);
    if (id !== undefined) {
      // The hook has checked CSRF and origin for a cookie request; a request with an explicit
      // credential skipped that check, and a bearer token must not end a browser's session.
      if (requestState(request).session === undefined && !sessions.isCsrfToken(id, csrfHeader(request))) {
        throw csrfFailed();
      }
      await sessions.end(id);
    }
    clearSessionCookie(reply);
    return reply.code(204).header('cache-control', 'no-store').send();
  });
}

function csrfHeader(request: { headers: Record<string, string | string[] | undefined> }) {
  const value = request.headers['x-csrf-token'];
  return typeof value === 'string' ? value : undefined;
}
