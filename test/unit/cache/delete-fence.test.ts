import { afterEach, describe, expect, it } from 'vitest';
import { withDeleteFence } from '../../../src/cache/delete-fence.js';
import { createDiskCache, type DiskCache } from '../../../src/cache/disk.js';
import { createMemoryCache } from '../../../src/cache/memory.js';
import { createTieredCache } from '../../../src/cache/tiered.js';
import type { VariantCache } from '../../../src/cache/variant-cache.js';
import { walk } from '../../../src/walk.js';
import { keyFor, makeVariant, newImage, scratchDirs, TWO_ENTRIES_BYTES } from './cache-conformance.js';

const freshDir = await scratchDirs('pixgate-delete-fence-');
const logger = { warn: () => {}, error: () => {} };

// Not run through the conformance suite: that one asks that a deleted image can be cached
// again, which is exactly what the fence refuses.

/** A promise the test settles: holds a cache operation at one point, deterministically. */
function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  let reach: () => void = () => {};
  const reached = new Promise<void>((resolve) => {
    reach = resolve;
  });
  return { opened, open, reached, reach };
}

type Gate = ReturnType<typeof gate>;

/** The entry files under dir, as `<imageId>/<hash>`, sorted. */
async function entries(dir: string): Promise<string[]> {
  return (await walk(dir))
    .filter(({ entry }) => entry.isFile())
    .map(({ path }) => path.slice(dir.length + 1))
    .sort();
}

describe('withDeleteFence', () => {
  const opened: VariantCache[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((cache) => cache.close()));
  });

  /**
   * Real memory and disk layers, the disk one wrapped so that a test can hold its set before
   * it starts or its get after it has read the file; both layers stay open to inspection.
   */
  async function make(options: { diskBytes?: number; maxDeletedIds?: number } = {}) {
    const dir = freshDir();
    const memory = createMemoryCache({ maxBytes: 1_000_000 });
    const disk = await createDiskCache({ dir, maxBytes: options.diskBytes ?? 1_000_000, logger });
    const holds: { set?: Gate | undefined; get?: Gate | undefined } = {};
    const held: DiskCache = {
      ...disk,
      async set(key, variant) {
        const hold = holds.set;
        if (hold) {
          hold.reach();
          await hold.opened;
        }
        return disk.set(key, variant);
      },
      async get(key) {
        const variant = await disk.get(key);
        const hold = holds.get;
        if (hold) {
          hold.reach();
          await hold.opened;
        }
        return variant;
      },
    };
    const cache = withDeleteFence(createTieredCache(memory, held), {
      maxDeletedIds: options.maxDeletedIds,
    });
    opened.push(cache);
    return { cache, memory, disk, dir, holds };
  }

  it('refuses a set for a deleted image: a render that ends after the DELETE stores nothing', async () => {
    const { cache, memory, dir } = await make();
    const key = keyFor(newImage());
    await cache.deleteImage(key.imageId);
    await cache.set(key, makeVariant());
    expect(await memory.get(key)).toBeUndefined();
    expect(await entries(dir)).toEqual([]);
    expect(await cache.get(key)).toBeUndefined();
  });

  it('lets a set under way finish before the layers are cleared, so the disk counts only its files', async () => {
    const { cache, memory, dir, holds } = await make({ diskBytes: TWO_ENTRIES_BYTES });
    const [before, doomed, after] = [keyFor(newImage()), keyFor(newImage()), keyFor(newImage())];
    await cache.set(before, makeVariant());

    const hold = gate();
    holds.set = hold;
    const writing = cache.set(doomed, makeVariant());
    await hold.reached;
    holds.set = undefined;
    const deleting = cache.deleteImage(doomed.imageId);
    hold.open();
    await Promise.all([writing, deleting]);

    expect(await memory.get(doomed)).toBeUndefined();
    expect(await entries(dir)).toEqual([`${before.imageId}/${before.hash}`]);
    // Two entries fit: had the index still counted the deleted one, `before` would be evicted.
    await cache.set(after, makeVariant());
    expect(await entries(dir)).toEqual(
      [`${before.imageId}/${before.hash}`, `${after.imageId}/${after.hash}`].sort(),
    );
  });

  it('lets a disk hit under way finish before the layers are cleared, so memory keeps no copy', async () => {
    const { cache, memory, disk, dir, holds } = await make();
    const key = keyFor(newImage());
    await disk.set(key, makeVariant());

    const hold = gate();
    holds.get = hold;
    const reading = cache.get(key);
    await hold.reached;
    holds.get = undefined;
    const deleting = cache.deleteImage(key.imageId);
    hold.open();
    // The read started before the DELETE: its caller still gets the variant.
    expect(await reading).toBeDefined();
    await deleting;

    expect(await memory.get(key)).toBeUndefined();
    expect(await entries(dir)).toEqual([]);
  });

  it('does not fence a live image: a revoked (new version) key is cached as before', async () => {
    const { cache, memory } = await make();
    const image = newImage();
    const other = keyFor(newImage());
    await cache.set(keyFor(image), makeVariant());
    await cache.deleteImage(other.imageId);
    const revoked = keyFor({ ...image, version: 2 });
    await cache.set(revoked, makeVariant());
    expect(await memory.get(revoked)).toBeDefined();
    expect(await cache.get(keyFor(image))).toBeDefined();
  });

  it('remembers a bounded number of deleted ids, forgetting the oldest first', async () => {
    const { cache, memory } = await make({ maxDeletedIds: 1 });
    const [first, second] = [keyFor(newImage()), keyFor(newImage())];
    await cache.deleteImage(first.imageId);
    await cache.deleteImage(second.imageId);
    await cache.set(first, makeVariant());
    await cache.set(second, makeVariant());
    expect(await memory.get(first)).toBeDefined();
    expect(await memory.get(second)).toBeUndefined();
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => withDeleteFence(createMemoryCache({ maxBytes: 0 }), { maxDeletedIds: 0 })).toThrow(
      'Expected a positive integer for maxDeletedIds but received 0',
    );
  });
});
