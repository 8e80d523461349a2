import { describe, expect, it } from 'vitest';
import { withImageCache } from '../../../src/store/cached-store.js';
import { openSqliteStore } from '../../../src/store/sqlite.js';
import type { ImageRecord, Store } from '../../../src/store/store.js';
import { describeStoreConformance, makeImage } from './store-conformance.js';

// The cache must not change what the store answers.
describeStoreConformance('sqlite behind the image cache', async () =>
  withImageCache(await openSqliteStore(':memory:'), { maxEntries: 100, ttlMs: 60_000 }),
);

/** A store that counts reads and can hold one back, to see what the cache asks for. */
function counting(inner: Store) {
  let reads = 0;
  let hold: Promise<void> | undefined;
  const store: Store = {
    ...inner,
    async getImage(id) {
      reads++;
      const row = await inner.getImage(id);
      if (hold) await hold;
      return row;
    },
  };
  return {
    store,
    reads: () => reads,
    holdReads(gate: Promise<void> | undefined) {
      hold = gate;
    },
  };
}

describe('image cache', () => {
  it('answers repeated reads from memory, and sees its own changes at once', async () => {
    const inner = counting(await openSqliteStore(':memory:'));
    const store = withImageCache(inner.store, { maxEntries: 10, ttlMs: 60_000 });
    const image = makeImage({ visibility: 'private' });
    await store.insertImage(image);
    expect((await store.getImage(image.id))?.visibility).toBe('private');
    expect((await store.getImage(image.id))?.visibility).toBe('private');
    expect(inner.reads()).toBe(1);

    await store.setVisibility(image.id, 'public');
    expect((await store.getImage(image.id))?.visibility).toBe('public');
    await store.deleteImage(image.id);
    expect(await store.getImage(image.id)).toBeUndefined();
  });

  it('serves the new version at once after a revocation made through it (issue 4)', async () => {
    const inner = counting(await openSqliteStore(':memory:'));
    const store = withImageCache(inner.store, { maxEntries: 10, ttlMs: 60_000 });
    const image = makeImage();
    await store.insertImage(image);
    expect((await store.getImage(image.id))?.version).toBe(1);
    expect((await store.bumpVersion(image.id))?.version).toBe(2);
    expect((await store.getImage(image.id))?.version).toBe(2);
  });

  it('does not remember missing ids', async () => {
    const inner = counting(await openSqliteStore(':memory:'));
    const store = withImageCache(inner.store, { maxEntries: 10, ttlMs: 60_000 });
    const image = makeImage();
    expect(await store.getImage(image.id)).toBeUndefined();
    await inner.store.insertImage(image); // written by someone else, not through this cache
    expect(await store.getImage(image.id)).toEqual(image);
  });

  it('does not keep a row read before a change that landed while it was read', async () => {
    const inner = counting(await openSqliteStore(':memory:'));
    const store = withImageCache(inner.store, { maxEntries: 10, ttlMs: 60_000 });
    const image = makeImage({ visibility: 'public' });
    await store.insertImage(image);
    let open!: () => void;
    inner.holdReads(new Promise<void>((resolve) => (open = resolve)));
    const staleRead = store.getImage(image.id);
    inner.holdReads(undefined);
    await store.setVisibility(image.id, 'private');
    open();
    expect(((await staleRead) as ImageRecord).visibility).toBe('public');
    expect((await store.getImage(image.id))?.visibility).toBe('private');
  });

  it('trusts a row only for its TTL (changes made by other instances)', async () => {
    const inner = counting(await openSqliteStore(':memory:'));
    let now = 1_000;
    const store = withImageCache(inner.store, { maxEntries: 10, ttlMs: 5_000, now: () => now });
    const image = makeImage({ visibility: 'public' });
    await store.insertImage(image);
    await store.getImage(image.id);
    await inner.store.setVisibility(image.id, 'private'); // another instance
    expect((await store.getImage(image.id))?.visibility).toBe('public');
    now += 4_999;
    expect((await store.getImage(image.id))?.visibility).toBe('public');
    now += 2;
    expect((await store.getImage(image.id))?.visibility).toBe('private');
  });
});
