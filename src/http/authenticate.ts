import type { FastifyRequest } from 'fastify';
import type { Authenticator } from '../auth/authenticate.js';
import { extractCredential } from '../auth/credentials.js';
import type { Principal } from '../auth/principal.js';
import { requestState } from './request-state.js';

export interface Caller {
  readonly principal: Principal | null;
  /** How the credential came: decides caching (a query token makes a response `no-store`). */
  readonly source: 'none' | 'header' | 'query';
}

/** The raw query, so that a repeated parameter is seen as repeated (strict parsing, SPEC §4). */
export function rawQuery(request: FastifyRequest): URLSearchParams {
  const at = request.url.indexOf('?');
  return new URLSearchParams(at === -1 ? '' : request.url.slice(at + 1));
}

export async function identify(
  request: FastifyRequest,
  authenticate: Authenticator,
  options: { allowQuery: boolean; query?: URLSearchParams },
): Promise<Caller> {
  const credential = extractCredential({
    authorization: request.headers.authorization,
    query: options.query ?? rawQuery(request),
    allowQuery: options.allowQuery,
  });
  const principal = await authenticate(credential);
  requestState(request).principal = principal;
  return { principal, source: credential.kind === 'none' ? 'none' : credential.source };
}
