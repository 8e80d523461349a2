import type { Variant, VariantCache, VariantKey } from './variant-cache.js';

export interface DeleteFenceOptions {
  /** Deleted image ids remembered; the oldest is forgotten beyond it. */
  readonly maxDeletedIds?: number | undefined;
}

/** About 1 MB of ids: many more deletes than can happen during one render. */
const DEFAULT_MAX_DELETED_IDS = 10_000;

/**
 * Keeps a deleted image's variants from coming back. A render that was running when its image
 * was deleted stores its variant when it finishes, after `deleteImage` cleared the layers; a
 * disk read under way promotes its entry into memory after memory was cleared; a set racing
 * the disk layer's `rm` leaves the index counting a file that is gone. Each would recreate
 * entries for an id nothing can reach, which only eviction would ever remove.
 *
 * The fence wraps the whole cache, so one rule holds for every layer (memory, disk, S3) and
 * every writer (the variant service, the tiered cache's promotions, the S3 index learning of an
 * entry as it reads it): `deleteImage` first marks the id deleted, so every get and set for it
 * that starts later is refused; then waits for those already under way, and only then clears
 * the layers. Nothing of the image can be written after that.
 *
 * Why here rather than in the variant service (tracking renders and cancelling them, or
 * checking the store before a set): the service is not the only writer, a DELETE would wait
 * for or cancel renders other requests are waiting for, and a check of the store before a set
 * still races the delete. The fence never waits for a render, only for cache operations.
 *
 * A deleted id can be refused for as long as it is remembered: ids are random and never
 * reused (store/ids.ts), so this never blocks a live image. A revocation bumps the version and
 * deletes nothing, so it marks nothing: the same id goes on being cached under its new keys.
 * The bound only caps memory; an id forgotten while a render for it still runs lets one
 * unreachable entry in, which eviction removes as before. Other instances sharing an S3 cache
 * are not fenced by this one: there the bucket's lifecycle rule is the backstop (README).
 */
export function withDeleteFence(cache: VariantCache, options: DeleteFenceOptions = {}): VariantCache {
  const maxDeletedIds = options.maxDeletedIds ?? DEFAULT_MAX_DELETED_IDS;
  if (!Number.isSafeInteger(maxDeletedIds) || maxDeletedIds < 1) {
    throw new TypeError(`Expected a positive integer for maxDeletedIds but received ${maxDeletedIds}`);
  }
  /** Insertion order is deletion order: the first one is the oldest. */
  const deleted = new Set<string>();
  /** Gets and sets under way, by image id. */
  const running = new Map<string, Set<Promise<unknown>>>();

  function track<T>(imageId: string, operation: Promise<T>): Promise<T> {
    const operations = running.get(imageId) ?? new Set();
    running.set(imageId, operations);
    operations.add(operation);
    const done = () => {
      operations.delete(operation);
      if (operations.size === 0 && running.get(imageId) === operations) running.delete(imageId);
    };
    operation.then(done, done);
    return operation;
  }

  return {
    get(key: VariantKey): Promise<Variant | undefined> {
      if (deleted.has(key.imageId)) return Promise.resolve(undefined);
      return track(key.imageId, cache.get(key));
    },

    set(key: VariantKey, variant: Variant): Promise<void> {
      if (deleted.has(key.imageId)) return Promise.resolve();
      return track(key.imageId, cache.set(key, variant));
    },

    async deleteImage(imageId: string): Promise<void> {
      deleted.delete(imageId);
      deleted.add(imageId);
      if (deleted.size > maxDeletedIds) {
        const [oldest] = deleted;
        if (oldest !== undefined) deleted.delete(oldest);
      }
      await Promise.allSettled([...(running.get(imageId) ?? [])]);
      await cache.deleteImage(imageId);
    },

    check: () => cache.check(),
    close: () => cache.close(),
  };
}
