import type { FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.js';
import type { AppError } from '../errors.js';

/** What a request learned on its way, for the one log line and the metrics at its end. */
export interface RequestState {
  principal?: Principal | null;
  error?: AppError;
  /** A live session from the cookie, where the cookie may count (http/session-cookie.ts). */
  session?: { readonly id: string; readonly principal: Principal };
  /** The principal came from the session cookie: `Vary: Cookie`, never public. */
  viaCookie?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Declared on every request by server.ts (decorateRequest), so its shape never changes. */
    pixgateState: RequestState | null;
  }
}

export function requestState(request: FastifyRequest): RequestState {
  request.pixgateState ??= {};
  return request.pixgateState;
}
