import type { Variant, VariantCache } from './variant-cache.js';

/** `PIXGATE_CACHE=none`: every request takes the cold path (benchmarks measure it this way). */
export function createNoCache(): VariantCache {
  return {
    get: async (): Promise<Variant | undefined> => undefined,
    set: async (): Promise<void> => {},
    deleteImage: async (): Promise<void> => {},
    check: async (): Promise<void> => {},
    close: async (): Promise<void> => {},
  };
}
