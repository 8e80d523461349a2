import type { FastifyRequest } from 'fastify';
import type { Authenticator } from '../auth/authenticate.js';
import { extractCredential } from '../auth/credentials.js';
import type { Principal } from '../auth/principal.js';
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
  const raw = request.raw.rawHeaders;
  const lines: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === 'authorization') lines.push(raw[i + 1] ?? '');
  }
  return lines.length > 1 ? lines : request.headers.authorization;
}

export async function identify(
  request: FastifyRequest,
  authenticate: Authenticator,
  options: { allowQuery: boolean; query?: URLSearchParams },
): Promise<Caller> {
  const credential = extractCredential({
    authorization: authorizationHeader(request),
    query: options.query ?? rawQuery(request),
    allowQuery: options.allowQuery,
  });
  const state = requestState(request);
  // The cookie counts only without an explicit credential (SPEC §3); session-cookie.ts put it here.
  if (credential.kind === 'none' && state.session) {
    state.principal = state.session.principal;
    state.viaCookie = true;
    return { principal: state.session.principal, source: 'cookie' };
  }
  const principal = await authenticate(credential);
  state.principal = principal;
  return { principal, source: credential.kind === 'none' ? 'none' : credential.source };
}
