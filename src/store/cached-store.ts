import { LRUCache } from 'lru-cache';
import type { ImageRecord, Store } from './store.js';

export interface ImageCacheOptions {
  /** Most remembered image rows; 0 turns the cache off. */
  readonly maxEntries: number;
  /**
   * How long a row is trusted. Changes made through this instance take effect at once (they
   * drop the row); the TTL bounds how long a change made by another instance sharing the
   * database goes unseen here.
   */
  readonly ttlMs: number;
  /** Milliseconds, for the TTL; tests inject it. */
  readonly now?: () => number;
}

/**
 * Image rows read on every image request are remembered, so the cached path (and a signed URL's
 * check of the image version) costs no database round trip. Missing ids are not remembered: a
 * miss is a 404, and a flood of made-up ids must not evict real rows.
 */
export function withImageCache(store: Store, options: ImageCacheOptions): Store {
  if (options.maxEntries === 0) return store;
  const rows = new LRUCache<string, ImageRecord>({
    max: options.maxEntries,
    ttl: options.ttlMs,
    ...(options.now ? { perf: { now: options.now }, ttlResolution: 0 } : {}),
  });
  // Bumped by every change: a read that started before a change must not store what it read.
  let changes = 0;
  const changed = (id: string) => {
    changes++;
    rows.delete(id);
  };

  return {
    ...store,
    async getImage(id) {
      const cached = rows.get(id);
      if (cached) return cached;
      const before = changes;
      const row = await store.getImage(id);
      if (row && before === changes) rows.set(id, row);
      return row;
    },
    async insertImage(image, options) {
      changed(image.id);
      await store.insertImage(image, options);
    },
    async setVisibility(id, visibility) {
      changed(id);
      try {
        return await store.setVisibility(id, visibility);
      } finally {
        changed(id);
      }
    },
    // Revocation: the old version must stop being served here at once, not after the TTL.
    async bumpVersion(id) {
      changed(id);
      try {
        return await store.bumpVersion(id);
      } finally {
        changed(id);
      }
    },
    async deleteImage(id, options) {
      changed(id);
      try {
        return await store.deleteImage(id, options);
      } finally {
        changed(id);
      }
    },
  };
}
