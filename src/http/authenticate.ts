import type { FastifyRequest } from 'fastify';
import type { Authenticator } from '../auth/authenticate.js';
import { type Credential, extractCredential } from '../auth/credentials.js';
import type { Principal } from '../auth/principal.js';
import { isAppError } from '../errors.js';
import type { Limits } from '../limits/limits.js';
import { headerLines } from './headers.js';
import { requestState } from './request-state.js';

export interface Caller {
  readonly principal: Principal | null;
  /** How the credential came: decides caching (a query token makes a response `no-store`). */
  readonly source: 'none' | 'header' | 'query' | 'cookie' | 'signed';
}

/** The raw query, so that a repeated parameter is seen as repeated (strict parsing, SPEC §4). */
export function rawQuery(request: FastifyRequest): URLSearchParams {
  const at = request.url.indexOf('?');
  return new URLSearchParams(at === -1 ? '' : request.url.slice(at + 1));
}

/**
 * The Authorization header as sent: every line when it is repeated, which `request.headers` hides
 * (Node keeps the first of repeated Authorization lines and drops the others).
 */
function authorizationHeader(request: FastifyRequest): string | string[] | undefined {
  const lines = headerLines(request.raw, 'authorization');
  return lines.length > 1 ? lines : request.headers.authorization;
}

/**
 * The caller of a request: its explicit credential verified, else the session cookie the session
 * hook accepted, else anonymous. A refused credential (malformed, or a token that does not
 * verify) takes a point from a request budget of its client IP's own, kept apart from the IP's
 * anonymous budget: otherwise a flood of junk tokens would never meet a rate limit, and, sharing
 * one budget, busy anonymous viewers behind one NAT would turn a user's expired token into a
 * 429 where a 401 makes the client refresh it. Over the budget the answer is 429.
 */
export function createIdentify(authenticate: Authenticator, limits: Limits) {
  return async function identify(
    request: FastifyRequest,
    options: { allowQuery: boolean; query?: URLSearchParams },
  ): Promise<Caller> {
    const state = requestState(request);
    let credential: Credential;
    let principal: Principal | null;
    try {
      credential = extractCredential({
        authorization: authorizationHeader(request),
        query: options.query ?? rawQuery(request),
        allowQuery: options.allowQuery,
      });
      // The cookie counts only without an explicit credential (SPEC §3); session-cookie.ts put it here.
      if (credential.kind === 'none' && state.session) {
        state.principal = state.session.principal;
        state.viaCookie = true;
        return { principal: state.session.principal, source: 'cookie' };
      }
      principal = await authenticate(credential);
    } catch (error) {
      // 4xx: the client's credential; a 503 (issuer unreachable) is not the client's doing.
      if (isAppError(error) && error.status < 500) await limits.request(`refused:${request.ip}`);
      throw error;
    }
    state.principal = principal;
    return { principal, source: credential.kind === 'none' ? 'none' : credential.source };
  };
}

export type Identify = ReturnType<typeof createIdentify>;

/** Whose budget a request takes from (SPEC §6): its principal's, else its client IP's. */
export const requesterOf = (request: FastifyRequest, caller: Caller) =>
  caller.principal ? `p:${caller.principal.subject}` : `ip:${request.ip}`;
