import type { FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.js';
import { type AppError, clientClosed } from '../errors.js';

/** What a request learned on its way, for the one log line and the metrics at its end. */
export interface RequestState {
  principal?: Principal | null;
  error?: AppError;
  /** A live session from the cookie, where the cookie may count (http/session-cookie.ts). */
  session?: { readonly id: string; readonly principal: Principal };
  /** The principal came from the session cookie: `Vary: Cookie`, never public. */
  viaCookie?: boolean;
  /**
   * The connection ended before the response was complete (server.ts), and why: the client
   * closed it (`client_closed`), or Node's parser refused the rest of the request's body and
   * our answer to that went out instead (reply.ts `sendClientError`).
   */
  endedEarly?: AppError;
  /** Aborts when the client closes first: made on first use (a cache hit never needs one). */
  gone?: AbortController;
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

/**
 * A signal that aborts, with a `client_closed` error, when the request's client closes the
 * connection before its response is complete: work done only for this client can stop.
 */
export function clientGoneSignal(request: FastifyRequest): AbortSignal {
  const state = requestState(request);
  state.gone ??= new AbortController();
  if (state.endedEarly && !state.gone.signal.aborted) state.gone.abort(state.endedEarly);
  return state.gone.signal;
}

/**
 * Called once the connection has ended before the response was complete: what waits for it
 * may stop, and its log line says why (`client_closed` unless the parser refused the request).
 */
export function markEndedEarly(request: FastifyRequest, why: AppError = clientClosed()): void {
  const state = requestState(request);
  state.endedEarly = why;
  state.error ??= why;
  if (state.gone && !state.gone.signal.aborted) state.gone.abort(why);
}
