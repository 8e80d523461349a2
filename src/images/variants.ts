import type { Variant, VariantCache, VariantKey } from '../cache/variant-cache.js';
import { sha256OfBytes } from '../digest.js';
import { AppError, isAppError, notTheRecordedOriginal } from '../errors.js';
import type { Origin, OriginObject } from '../origins/origin.js';
import type { ImageRecord } from '../store/store.js';
import type { Pipeline } from './pipeline.js';
import { createSingleFlight } from './single-flight.js';
import type { RenderPlan } from './types.js';
import type { WorkQueue } from './work-queue.js';

export interface VariantServiceOptions {
  readonly cache: VariantCache;
  readonly origin: Origin;
  readonly pipeline: Pipeline;
  readonly queue: WorkQueue;
  /** Largest original read from the origin. */
  readonly maxOriginBytes: number;
  readonly onRendered?: (format: string, seconds: number) => void;
}

/**
 * An original was judged an image when it was stored: one that no longer decodes was damaged or
 * replaced at its origin. The origin's failure (502), not the request's (422): the caller can
 * do nothing about it, and an operator's alerts count 5xx. Only sharp's failure to read it (kept
 * as the cause): over PIXGATE_MAX_INPUT_PIXELS, lowered since the upload, stays the 422 it is.
 */
function storedNotAnImage(error: unknown): never {
  if (isAppError(error) && error.code === 'unprocessable_image' && error.cause !== undefined) {
    throw new AppError('origin_error', 'The original could not be read as an image', {
      detail: error.message,
      cause: error,
    });
  }
  throw error;
}

/** The identity ingest.ts records when the origin gave no ETag: the bytes' SHA-256, base64url. */
const SHA256_IDENTITY = /^[A-Za-z0-9_-]{43}$/;

/**
 * Whether `original` is still the object recorded: its length, then, where the recorded identity
 * is the bytes' SHA-256 (uploads, and origins without ETags), the digest. An origin's recorded
 * ETag is not compared: an HTTP origin behind several servers may send another for the same
 * bytes.
 */
async function isRecordedOriginal(image: ImageRecord, original: OriginObject): Promise<boolean> {
  if (original.body.length !== image.bytes) return false;
  if (!SHA256_IDENTITY.test(image.originEtag)) return true;
  return (await sha256OfBytes(original.body)) === image.originEtag;
}

/**
 * cache → single-flight → queue (origin read, then pipeline) → cache. The queue bounds how many
 * originals are in memory (reads run at most `concurrency` jobs ahead of the transforms), and
 * identical concurrent requests share one read and one transform.
 */
export function createVariantService(options: VariantServiceOptions) {
  const { cache, origin, pipeline, queue } = options;
  const flights = createSingleFlight<Variant>();
  const pendingWrites = new Set<Promise<void>>();

  function remember(key: VariantKey, variant: Variant): void {
    // Not awaited: the response does not wait for the disk. `set` never rejects. If the image
    // was deleted during the render, the cache refuses the set (cache/delete-fence.ts).
    const write = cache.set(key, variant).finally(() => pendingWrites.delete(write));
    pendingWrites.add(write);
  }

  return {
    /**
     * `clientGone`, asked for only on a cache miss, aborts when the requester has left: once
     * everyone waiting for this variant has, it leaves the queue unmade (single-flight.ts).
     */
    async variant(
      image: ImageRecord,
      plan: RenderPlan,
      key: VariantKey,
      clientGone?: () => AbortSignal,
    ): Promise<Variant> {
      const cached = await cache.get(key);
      if (cached) return cached;
      return flights.run(
        key.hash,
        (abandoned) =>
          queue.run(
            () => origin.read(image.originKey, { maxBytes: options.maxOriginBytes }),
            async (original) => {
              const started = performance.now();
              const variant = await pipeline.render(original.body, plan, image).catch(storedNotAnImage);
              options.onRendered?.(plan.format, (performance.now() - started) / 1000);
              remember(key, variant);
              return variant;
            },
            // sharp is done with the input once the render settled: pooled bytes can go back.
            (original) => original.release?.(),
            abandoned,
          ),
        clientGone?.(),
      );
    },

    /**
     * The bytes go out as they are, under the recorded Content-Type and a strong ETag made from
     * the recorded identity (the origin's ETag, or the SHA-256 ingest.ts took): bytes that are no
     * longer those (replaced at the origin, damaged) would be another image under that ETag.
     */
    async original(image: ImageRecord): Promise<OriginObject> {
      const original = await origin.read(image.originKey, { maxBytes: options.maxOriginBytes });
      if (!(await isRecordedOriginal(image, original))) {
        original.release?.();
        throw notTheRecordedOriginal(
          `recorded ${image.bytes} bytes with identity ${image.originEtag}, found ${original.body.length} bytes that differ`,
        );
      }
      return original;
    },

    /** Waits for cache writes still under way (shutdown, tests). */
    async drain(): Promise<void> {
      await Promise.all([...pendingWrites]);
    },
  };
}

export type VariantService = ReturnType<typeof createVariantService>;
