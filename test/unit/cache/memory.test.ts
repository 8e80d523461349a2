import { describe, expect, it } from 'vitest';
import { type CacheLayer, createMemoryCache } from '../../../src/cache/memory.js';
import { describeVariantCacheConformance, keyFor, makeVariant, newImage } from './cache-conformance.js';

describeVariantCacheConformance('memory', async ({ maxBytes }) => createMemoryCache({ maxBytes }));

describe('createMemoryCache', () => {
  it('reports each lookup as a hit or a miss', async () => {
    const lookups: [CacheLayer, boolean][] = [];
    const cache = createMemoryCache({
      maxBytes: 1_000_000,
      onLookup: (layer, hit) => lookups.push([layer, hit]),
    });
    const key = keyFor(newImage());
    await cache.get(key);
    await cache.set(key, makeVariant());
    await cache.get(key);
    expect(lookups).toEqual([
      ['memory', false],
      ['memory', true],
    ]);
  });

  it('counts body bytes against the bound, not entries', async () => {
    const cache = createMemoryCache({ maxBytes: 10_000 });
    const keys = Array.from({ length: 20 }, () => keyFor(newImage()));
    for (const key of keys) await cache.set(key, makeVariant({ body: Buffer.alloc(1000) }));
    const kept = (await Promise.all(keys.map((key) => cache.get(key)))).filter(Boolean);
    expect(kept).toHaveLength(10);
    expect(await cache.get(keys[19] ?? keyFor(newImage()))).toBeDefined();
  });

  it('refuses a bound that is not a whole number of bytes', () => {
    expect(() => createMemoryCache({ maxBytes: -1 })).toThrow(TypeError);
    expect(() => createMemoryCache({ maxBytes: 1.5 })).toThrow(
      'Expected a whole number of bytes for maxBytes',
    );
  });
});
