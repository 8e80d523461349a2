import { LRUCache } from 'lru-cache';
import type { Variant, VariantCache, VariantKey } from './variant-cache.js';

export type CacheLayer = 'memory' | 'disk' | 's3';

/** Per-layer hit/miss counting (Prometheus, by the composition root). */
export type LookupHook = (layer: CacheLayer, hit: boolean) => void;

export interface MemoryCacheOptions {
  /** Bound on the total bytes of the bodies kept; 0 keeps nothing. */
  readonly maxBytes: number;
  readonly onLookup?: LookupHook | undefined;
}

/**
 * The in-process front layer: an LRU bounded by the bytes of the bodies, not by a count, so a
 * few large variants cannot take the process's memory. A variant larger than the bound is not
 * kept at all (lru-cache refuses it without evicting the others).
 */
export function createMemoryCache(options: MemoryCacheOptions): VariantCache {
  const { maxBytes, onLookup } = options;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new TypeError(`Expected a whole number of bytes for maxBytes but received ${maxBytes}`);
  }
  // lru-cache needs a positive bound; with 0 nothing is stored, so no LRU is made at all.
  const lru =
    maxBytes > 0
      ? new LRUCache<string, Variant>({
          maxSize: maxBytes,
          // At least 1: lru-cache refuses a size of 0, and an empty body still costs an entry.
          sizeCalculation: (variant) => Math.max(1, variant.body.length),
        })
      : undefined;

  return {
    async get(key: VariantKey): Promise<Variant | undefined> {
      const variant = lru?.get(mapKey(key));
      onLookup?.('memory', variant !== undefined);
      return variant;
    },

    async set(key: VariantKey, variant: Variant): Promise<void> {
      lru?.set(mapKey(key), variant);
    },

    async deleteImage(imageId: string): Promise<void> {
      if (!lru) return;
      const prefix = `${imageId}/`;
      // A scan of the keys: deleting an image is rare, and the bound keeps the map small.
      for (const key of [...lru.keys()]) if (key.startsWith(prefix)) lru.delete(key);
    },

    async check(): Promise<void> {},

    async close(): Promise<void> {
      lru?.clear();
    },
  };
}

// `/` cannot occur in a base64url id, so `<id>/` prefixes exactly one image's variants.
function mapKey(key: VariantKey): string {
  return `${key.imageId}/${key.hash}`;
}
