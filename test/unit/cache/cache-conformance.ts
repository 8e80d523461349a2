import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Variant, VariantCache, VariantKey } from '../../../src/cache/variant-cache.js';
import { variantKey } from '../../../src/cache/variant-key.js';

/**
 * One suite for every VariantCache (DESIGN.md, Tests): memory, disk and tiered now, S3 later.
 * `make` gives an empty cache bounded by `maxBytes` (for a layered cache: every layer).
 */
export type MakeCache = (options: { maxBytes: number }) => Promise<VariantCache>;

/** Bodies of this size: the size-bound tests use a bound that holds two of them, not three. */
export const BODY_BYTES = 1000;
export const TWO_ENTRIES_BYTES = 2500;

/**
 * A temp folder for a test file's caches, removed after its tests; the function names a new,
 * not yet created folder in it at each call. Call at the top level of a test file.
 */
export async function scratchDirs(prefix: string): Promise<() => string> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  afterAll(() => rm(root, { recursive: true, force: true }));
  let counter = 0;
  return () => join(root, `cache-${++counter}`);
}

export const newImage = () => ({ id: randomBytes(16).toString('base64url'), version: 1 });

export function keyFor(
  image: { id: string; version: number },
  transform = 'w=360',
  format = 'webp',
): VariantKey {
  return variantKey(image, transform, format, 'settings');
}

export function makeVariant(overrides: Partial<Variant> = {}): Variant {
  return {
    body: randomBytes(BODY_BYTES),
    contentType: 'image/webp',
    width: 360,
    height: 240,
    ...overrides,
  };
}

function expectSameVariant(actual: Variant | undefined, expected: Variant): void {
  expect(actual).toBeDefined();
  expect(actual?.contentType).toBe(expected.contentType);
  expect(actual?.width).toBe(expected.width);
  expect(actual?.height).toBe(expected.height);
  expect(Buffer.isBuffer(actual?.body)).toBe(true);
  expect(actual?.body.equals(expected.body)).toBe(true);
}

export function describeVariantCacheConformance(name: string, make: MakeCache): void {
  describe(`VariantCache conformance: ${name}`, () => {
    const opened: VariantCache[] = [];
    const open = async (maxBytes = 10 * 1024 * 1024) => {
      const cache = await make({ maxBytes });
      opened.push(cache);
      return cache;
    };

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((cache) => cache.close()));
    });

    it('round-trips body, content type, width and height', async () => {
      const cache = await open();
      const image = newImage();
      const webp = makeVariant();
      const png = makeVariant({ contentType: 'image/png', width: 4096, height: 1, body: randomBytes(5000) });
      const empty = makeVariant({ contentType: 'image/avif', width: 1, height: 1, body: Buffer.alloc(0) });
      await cache.set(keyFor(image, 'w=360', 'webp'), webp);
      await cache.set(keyFor(image, 'w=4096', 'png'), png);
      await cache.set(keyFor(image, 'w=1', 'avif'), empty);
      expectSameVariant(await cache.get(keyFor(image, 'w=360', 'webp')), webp);
      expectSameVariant(await cache.get(keyFor(image, 'w=4096', 'png')), png);
      expectSameVariant(await cache.get(keyFor(image, 'w=1', 'avif')), empty);
    });

    it('misses an unknown key, another transform, format or version', async () => {
      const cache = await open();
      const image = newImage();
      await cache.set(keyFor(image), makeVariant());
      expect(await cache.get(keyFor(newImage()))).toBeUndefined();
      expect(await cache.get(keyFor(image, 'w=361'))).toBeUndefined();
      expect(await cache.get(keyFor(image, 'w=360', 'avif'))).toBeUndefined();
      expect(await cache.get(keyFor({ ...image, version: 2 }))).toBeUndefined();
      expect(await cache.get(keyFor(image))).toBeDefined();
    });

    it('overwrites an entry', async () => {
      const cache = await open();
      const key = keyFor(newImage());
      await cache.set(key, makeVariant());
      const second = makeVariant({ contentType: 'image/jpeg', width: 12, height: 34 });
      await cache.set(key, second);
      expectSameVariant(await cache.get(key), second);
    });

    it('survives concurrent sets of the same key', async () => {
      const cache = await open();
      const key = keyFor(newImage());
      const variant = makeVariant();
      await Promise.all(Array.from({ length: 8 }, () => cache.set(key, variant)));
      expectSameVariant(await cache.get(key), variant);
    });

    it('deleteImage removes every variant of that image and only those', async () => {
      const cache = await open();
      const image = newImage();
      const other = newImage();
      const keys = ['w=100', 'w=200', 'w=300'].map((transform) => keyFor(image, transform));
      for (const key of keys) await cache.set(key, makeVariant());
      await cache.set(keyFor({ ...image, version: 2 }), makeVariant());
      const kept = makeVariant();
      await cache.set(keyFor(other), kept);

      await cache.deleteImage(image.id);
      for (const key of keys) expect(await cache.get(key)).toBeUndefined();
      expect(await cache.get(keyFor({ ...image, version: 2 }))).toBeUndefined();
      expectSameVariant(await cache.get(keyFor(other)), kept);
      // Deleting an image without variants, or twice, is harmless.
      await cache.deleteImage(image.id);
      await cache.deleteImage(newImage().id);
      // And the image can be cached again afterwards.
      await cache.set(keys[0] ?? keyFor(image), kept);
      expectSameVariant(await cache.get(keys[0] ?? keyFor(image)), kept);
    });

    it('stays within its size bound by evicting the least recently used', async () => {
      const cache = await open(TWO_ENTRIES_BYTES);
      const [a, b, c] = [keyFor(newImage()), keyFor(newImage()), keyFor(newImage())];
      await cache.set(a, makeVariant());
      await cache.set(b, makeVariant());
      await cache.set(c, makeVariant());
      expect(await cache.get(a)).toBeUndefined();
      expect(await cache.get(b)).toBeDefined();
      expect(await cache.get(c)).toBeDefined();
    });

    it('refreshes recency on a read', async () => {
      const cache = await open(TWO_ENTRIES_BYTES);
      const [a, b, c] = [keyFor(newImage()), keyFor(newImage()), keyFor(newImage())];
      await cache.set(a, makeVariant());
      await cache.set(b, makeVariant());
      expect(await cache.get(a)).toBeDefined();
      await cache.set(c, makeVariant());
      expect(await cache.get(b)).toBeUndefined();
      expect(await cache.get(a)).toBeDefined();
      expect(await cache.get(c)).toBeDefined();
    });

    it('does not keep a variant larger than the bound, nor evict others for it', async () => {
      const cache = await open(TWO_ENTRIES_BYTES);
      const small = keyFor(newImage());
      const large = keyFor(newImage());
      await cache.set(small, makeVariant());
      await cache.set(large, makeVariant({ body: randomBytes(TWO_ENTRIES_BYTES + 1) }));
      expect(await cache.get(large)).toBeUndefined();
      expect(await cache.get(small)).toBeDefined();
    });

    it('keeps nothing with a bound of 0', async () => {
      const cache = await open(0);
      const key = keyFor(newImage());
      await cache.set(key, makeVariant({ body: Buffer.alloc(0) }));
      await cache.set(keyFor(newImage()), makeVariant());
      expect(await cache.get(key)).toBeUndefined();
    });

    it('check() resolves while usable', async () => {
      const cache = await open();
      await expect(cache.check()).resolves.toBeUndefined();
    });
  });
}
