import type { Variant, VariantCache, VariantKey } from '../cache/variant-cache.js';
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
 * cache → single-flight → queue → origin → pipeline → cache. The original is read inside the
 * processing slot, so requests waiting in the queue hold no image bytes (memory stays bounded
 * under load), and identical concurrent requests share one read and one transform.
 */
export function createVariantService(options: VariantServiceOptions) {
  const { cache, origin, pipeline, queue } = options;
  const flights = createSingleFlight<Variant>();
  const pendingWrites = new Set<Promise<void>>();

  function remember(key: VariantKey, variant: Variant): void {
    // Not awaited: the response does not wait for the disk. `set` never rejects.
    const write = cache.set(key, variant).finally(() => pendingWrites.delete(write));
    pendingWrites.add(write);
  }

  return {
    async variant(image: ImageRecord, plan: RenderPlan, key: VariantKey): Promise<Variant> {
      const cached = await cache.get(key);
      if (cached) return cached;
      return flights.run(key.hash, () =>
        queue.run(async () => {
          const original = await origin.read(image.originKey, { maxBytes: options.maxOriginBytes });
          const started = performance.now();
          const variant = await pipeline.render(original.body, plan, image);
          options.onRendered?.(plan.format, (performance.now() - started) / 1000);
          remember(key, variant);
          return variant;
        }),
      );
    },

    original(image: ImageRecord): Promise<OriginObject> {
      return origin.read(image.originKey, { maxBytes: options.maxOriginBytes });
    },

    /** Waits for cache writes still under way (shutdown, tests). */
    async drain(): Promise<void> {
      await Promise.all([...pendingWrites]);
    },
  };
}

export type VariantService = ReturnType<typeof createVariantService>;
