import type { DiskCache } from './disk.js';
import type { Variant, VariantCache, VariantKey } from './variant-cache.js';

/**
 * Memory in front of disk (or, later, S3): a hit in the back layer is promoted into memory,
 * a set writes both. A memory hit tells the back layer that the entry was used, when it can
 * take the hint, so its LRU does not evict the hottest variants first.
 */
export function createTieredCache(memory: VariantCache, back: VariantCache | DiskCache): VariantCache {
  return {
    async get(key: VariantKey): Promise<Variant | undefined> {
      const fromMemory = await memory.get(key);
      if (fromMemory) {
        if ('touch' in back) back.touch(key);
        return fromMemory;
      }
      const fromBack = await back.get(key);
      if (fromBack) await memory.set(key, fromBack);
      return fromBack;
    },

    async set(key: VariantKey, variant: Variant): Promise<void> {
      await Promise.all([memory.set(key, variant), back.set(key, variant)]);
    },

    async deleteImage(imageId: string): Promise<void> {
      await Promise.all([memory.deleteImage(imageId), back.deleteImage(imageId)]);
    },

    async check(): Promise<void> {
      await Promise.all([memory.check(), back.check()]);
    },

    async close(): Promise<void> {
      await Promise.all([memory.close(), back.close()]);
    },
  };
}
