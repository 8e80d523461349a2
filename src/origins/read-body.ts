import { AppError } from '../errors.js';
import type { BufferPool } from './buffer-pool.js';
import type { OriginObject } from './origin.js';

/**
 * Reading a network origin's answer into memory, the same way for S3 and HTTP: never more than
 * `maxBytes` (reading stops at the first byte beyond, whatever length was announced), into
 * pooled memory when the length is known, and bounded in time by one deadline that covers the
 * request and the whole body, so a slow trickle is a 504 and not a hang.
 */

export interface Deadline {
  readonly signal: AbortSignal;
  /** True when the deadline (not the caller's own signal) ended the read. */
  timedOut(): boolean;
  dispose(): void;
}

export function startDeadline(timeoutMs: number, outer?: AbortSignal): Deadline {
  const controller = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort(new Error(`timed out after ${timeoutMs} ms`));
  }, timeoutMs);
  const onOuter = () => controller.abort(outer?.reason);
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => expired,
    dispose() {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

export const originTimeout = (kind: string, timeoutMs: number) =>
  new AppError('origin_timeout', 'The origin did not answer in time', {
    detail: `${kind} origin: no complete answer within ${timeoutMs} ms`,
  });

/**
 * An original over the size cap. Viewing it is a 502 like any original the origin cannot give;
 * registering it is the registrar's 413 (ingest.ts), hence a type of its own to tell it by.
 */
export class OriginObjectTooLarge extends AppError {
  constructor(kind: string, maxBytes: number, size?: number) {
    super('origin_error', 'The original could not be read', {
      detail: `${kind} origin: ${size === undefined ? 'more than' : `${size} bytes is over`} the ${maxBytes} byte limit`,
    });
  }
}

export const tooLargeAtOrigin = (kind: string, maxBytes: number, size?: number) =>
  new OriginObjectTooLarge(kind, maxBytes, size);

export interface ReadBodyOptions {
  readonly kind: string;
  readonly maxBytes: number;
  /** The announced length, if any; a body that disagrees with it is refused. */
  readonly length?: number | undefined;
  readonly pool?: BufferPool | undefined;
}

/** Collects a body. Throws an `origin_error` AppError beyond `maxBytes`. */
export async function readBody(
  body: AsyncIterable<Uint8Array>,
  options: ReadBodyOptions,
): Promise<Pick<OriginObject, 'body' | 'release'>> {
  const { kind, maxBytes, length, pool } = options;
  if (length !== undefined && length > maxBytes) throw tooLargeAtOrigin(kind, maxBytes, length);
  if (length !== undefined && pool) {
    const pooled = pool.take(length);
    let offset = 0;
    try {
      for await (const chunk of body) {
        if (offset + chunk.length > length) throw truncatedOrLonger(kind, length);
        pooled.buffer.set(chunk, offset);
        offset += chunk.length;
      }
      if (offset !== length) throw truncatedOrLonger(kind, length);
      return { body: pooled.buffer, release: pooled.release };
    } catch (error) {
      pooled.release();
      throw error;
    }
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > maxBytes) throw tooLargeAtOrigin(kind, maxBytes);
    chunks.push(chunk);
  }
  if (length !== undefined && total !== length) throw truncatedOrLonger(kind, length);
  return { body: Buffer.concat(chunks, total) };
}

const truncatedOrLonger = (kind: string, length: number) =>
  new AppError('origin_error', 'The original could not be read', {
    detail: `${kind} origin: the body did not match its announced length of ${length} bytes`,
  });
