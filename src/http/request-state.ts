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
  /** The client closed the connection before its response was complete (server.ts). */
  clientClosed?: boolean;
  /** Aborts when the client closes first: made on first use (a cache hit never needs one). */
  gone?: AbortController;
  /** The log line is written: never a second one for the same request. */
  recorded?: boolean;
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
  if (state.clientClosed && !state.gone.signal.aborted) state.gone.abort(clientClosed());
  return state.gone.signal;
}

/** Called once the client has closed the connection early: what waits for it may stop. */
export function markClientClosed(request: FastifyRequest): void {
  const state = requestState(request);
  state.clientClosed = true;
  state.error ??= clientClosed();
  if (state.gone && !state.gone.signal.aborted) state.gone.abort(clientClosed());
}
