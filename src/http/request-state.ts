import type { FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.js';
import type { AppError } from '../errors.js';

/** What a request learned on its way, for the one log line and the metrics at its end. */
export interface RequestState {
  principal?: Principal | null;
  error?: AppError;
}

const states = new WeakMap<FastifyRequest, RequestState>();

export function requestState(request: FastifyRequest): RequestState {
  let state = states.get(request);
  if (!state) {
    state = {};
    states.set(request, state);
  }
  return state;
}
