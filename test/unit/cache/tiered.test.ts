import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiskCache } from '../../../src/cache/disk.js';
import { type CacheLayer, createMemoryCache } from '../../../src/cache/memory.js';
import { createNoCache } from '../../../src/cache/no-cache.js';
import { createTieredCache } from '../../../src/cache/tiered.js';
import type { VariantCache } from '../../../src/cache/variant-cache.js';
import {
  describeVariantCacheConformance,
  keyFor,
  makeVariant,
  newImage,
  scratchDirs,
  TWO_ENTRIES_BYTES,
} from './cache-conformance.js';

const freshDir = await scratchDirs('pixgate-tiered-cache-');
const logger = { warn: () => {}, error: () => {} };

describeVariantCacheConformance('tiered (memory + disk)', async ({ maxBytes }) =>
  createTieredCache(
    createMemoryCache({ maxBytes }),
    await createDiskCache({ dir: freshDir(), maxBytes, logger }),
  ),
);

describe('createTieredCache', () => {
  const opened: VariantCache[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((cache) => cache.close()));
  });

  async function make(memoryBytes: number, diskBytes: number, dir = freshDir()) {
    const lookups: [CacheLayer, boolean][] = [];
    const onLookup = (layer: CacheLayer, hit: boolean) => lookups.push([layer, hit]);
    const cache = createTieredCache(
      createMemoryCache({ maxBytes: memoryBytes, onLookup }),
      await createDiskCache({ dir, maxBytes: diskBytes, logger, onLookup }),
    );
    opened.push(cache);
    return { cache, lookups, dir };
  }

  it('answers from memory first, then disk, and promotes a disk hit into memory', async () => {
    const dir = freshDir();
    const key = keyFor(newImage());
    const variant = makeVariant();
    const { cache: before } = await make(1_000_000, 1_000_000, dir);
    await before.set(key, variant);
    await before.close();

    // A new process: memory is empty, the disk still has it.
    const { cache, lookups } = await make(1_000_000, 1_000_000, dir);
    expect((await cache.get(key))?.body.equals(variant.body)).toBe(true);
    expect((await cache.get(key))?.body.equals(variant.body)).toBe(true);
    expect(await cache.get(keyFor(newImage()))).toBeUndefined();
    expect(lookups).toEqual([
      ['memory', false],
      ['disk', true],
      ['memory', true],
      ['memory', false],
      ['disk', false],
    ]);
  });

  it('writes both layers on set', async () => {
    const { cache, lookups, dir } = await make(1_000_000, 1_000_000);
    const key = keyFor(newImage());
    await cache.set(key, makeVariant());
    expect(await readdir(join(dir, key.imageId))).toEqual([key.hash]);
    await cache.get(key);
    expect(lookups).toEqual([['memory', true]]);
  });

  it('keeps what memory hits often on disk: a memory hit refreshes the disk LRU', async () => {
    const { cache, dir } = await make(TWO_ENTRIES_BYTES, TWO_ENTRIES_BYTES);
    const [a, b, c] = [keyFor(newImage()), keyFor(newImage()), keyFor(newImage())];
    await cache.set(a, makeVariant());
    await cache.set(b, makeVariant());
    await cache.get(a); // a memory hit
    await cache.set(c, makeVariant());
    expect((await readdir(dir)).sort()).toEqual([a.imageId, c.imageId].sort());
  });

  it('deleteImage empties both layers', async () => {
    const { cache, lookups } = await make(1_000_000, 1_000_000);
    const key = keyFor(newImage());
    await cache.set(key, makeVariant());
    await cache.deleteImage(key.imageId);
    expect(await cache.get(key)).toBeUndefined();
    expect(lookups).toEqual([
      ['memory', false],
      ['disk', false],
    ]);
  });

  it('check() fails when the disk layer does', async () => {
    const { cache, dir } = await make(1_000_000, 1_000_000);
    await expect(cache.check()).resolves.toBeUndefined();
    await rm(dir, { recursive: true });
    await writeFile(dir, 'not a directory');
    await expect(cache.check()).rejects.toThrow(/is not writable/);
  });
});

describe('createNoCache', () => {
  it('keeps nothing and is always ready', async () => {
    const cache = createNoCache();
    const key = keyFor(newImage());
    await cache.set(key, makeVariant());
    expect(await cache.get(key)).toBeUndefined();
    await expect(cache.deleteImage(key.imageId)).resolves.toBeUndefined();
    await expect(cache.check()).resolves.toBeUndefined();
    await expect(cache.close()).resolves.toBeUndefined();
  });
});
