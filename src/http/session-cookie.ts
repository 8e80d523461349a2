/**
 * The session cookie on the wire (SPEC §3.3): its name and attributes, which requests it may
 * authenticate, and the CSRF rule for unsafe ones. The session logic itself is auth/sessions.ts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.js';
import type { Sessions } from '../auth/sessions.js';
import type { Config } from '../config/schema.js';
import { AppError } from '../errors.js';
import { requestState } from './request-state.js';

/** Over HTTPS the `__Host-` prefix: the browser then refuses it unless Secure, Path=/ and no Domain. */
export const SECURE_COOKIE = '__Host-pixgate-session';
/** Plain HTTP (development on loopback): a `__Host-` cookie needs `Secure`, which needs HTTPS. */
export const PLAIN_COOKIE = 'pixgate-session';

/** HTTPS directly, or via a trusted proxy's X-Forwarded-Proto (fastify reads it only with trustProxy). */
export const isHttps = (request: FastifyRequest) => request.protocol === 'https';

export const cookieName = (request: FastifyRequest) => (isHttps(request) ? SECURE_COOKIE : PLAIN_COOKIE);

export function setSessionCookie(
  reply: FastifyReply,
  config: Config,
  value: string,
  expiresAt: number,
  now: number,
): void {
  const secure = isHttps(reply.request);
  reply.setCookie(cookieName(reply.request), value, {
    httpOnly: true,
    secure,
    sameSite: config.cookieSamesite === 'Lax' ? 'lax' : 'strict',
    path: '/',
    // Both: Expires for old clients, Max-Age wins where understood (RFC 6265 §5.3 step 3).
    expires: new Date(expiresAt),
    maxAge: Math.max(0, Math.floor((expiresAt - now) / 1000)),
  });
}

export function clearSessionCookie(reply: FastifyReply): void {
  reply.clearCookie(cookieName(reply.request), {
    httpOnly: true,
    secure: isHttps(reply.request),
    path: '/',
  });
}

/** The session id the request carries, if any (parsed only when a Cookie header is there). */
export function sessionIdOf(app: FastifyInstance, request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  return app.parseCookie(header)[cookieName(request)];
}

const SAFE_METHODS = new Set(['GET', 'HEAD']);

/** Any of these makes the cookie irrelevant: an explicit credential wins (SPEC §3). */
function hasExplicitCredential(request: FastifyRequest): boolean {
  if (request.headers.authorization !== undefined) return true;
  const at = request.url.indexOf('?');
  if (at === -1) return false;
  const query = new URLSearchParams(request.url.slice(at + 1));
  // `sig`: signed URLs (issue 4) are an explicit credential too.
  return query.has('access_token') || query.has('sig');
}

/**
 * Same-origin, as the browser says it: `Sec-Fetch-Site` when sent (it cannot be forged by a page),
 * and `Origin` equal to ours. A request that states neither is refused: every browser sends
 * `Origin` with a POST, PATCH or DELETE from fetch.
 */
function isSameOrigin(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  const origin = request.headers.origin;
  if (origin === undefined) return site === 'same-origin';
  return origin === `${request.protocol}://${request.host}`;
}

/**
 * Which requests the cookie may carry: GET/HEAD under `/v1/images` (images, meta, the list)
 * with no CSRF token, since `<img>` cannot send one; unsafe requests there, on
 * `/v1/sessions/current` and on `/v1/links/:linkId` (ending a share link made in the same
 * browser) only with the CSRF token and a same-origin request. Decided on the route the request
 * was matched to, not on its raw URL: `/v1/sessions/%63urrent` or an absolute-form target
 * reach the same handler and must meet the same rule.
 */
function cookieScope(request: FastifyRequest): 'read' | 'unsafe' | 'none' {
  const route = request.routeOptions.url;
  if (route === undefined) return 'none';
  const isImages = route === '/v1/images' || route.startsWith('/v1/images/');
  if (SAFE_METHODS.has(request.method)) return isImages ? 'read' : 'none';
  return isImages || route === '/v1/sessions/current' || route === '/v1/links/:linkId' ? 'unsafe' : 'none';
}

export const csrfFailed = () =>
  new AppError(
    'csrf_failed',
    'A request carried by the session cookie needs X-CSRF-Token and the same origin',
  );

/**
 * A preHandler: turns a session cookie into the request's principal (read by identify() in
 * authenticate.ts) where the cookie counts, and refuses an unsafe cookie request without CSRF
 * proof with 403. Requests without a Cookie header pay one property read.
 */
export function installSessionHook(app: FastifyInstance, sessions: Sessions): void {
  app.addHook('preHandler', (request, _reply, done) => {
    if (request.headers.cookie === undefined) return done();
    const scope = cookieScope(request);
    if (scope === 'none' || hasExplicitCredential(request)) return done();
    const id = sessionIdOf(app, request);
    if (id === undefined) return done();
    if (scope === 'unsafe') {
      const csrf = request.headers['x-csrf-token'];
      if (typeof csrf !== 'string' || !sessions.isCsrfToken(id, csrf) || !isSameOrigin(request)) {
        return done(csrfFailed());
      }
    }
    sessions.find(id).then(
      (principal: Principal | null) => {
        if (principal) requestState(request).session = { id, principal };
        done();
      },
      (error: unknown) => done(error as Error),
    );
  });

  // Cookie-authenticated answers differ per cookie and must never sit in a shared cache.
  app.addHook('onSend', (request, reply, payload, done) => {
    if (requestState(request).viaCookie) {
      const vary = reply.getHeader('vary');
      reply.header('vary', vary ? `${String(vary)}, Cookie` : 'Cookie');
      const cacheControl = reply.getHeader('cache-control');
      if (typeof cacheControl === 'string' && cacheControl.startsWith('public')) {
        reply.header('cache-control', cacheControl.replace(/^public/, 'private'));
      }
    }
    done(null, payload);
  });
}
