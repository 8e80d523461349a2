import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors.js';
import type { ImageRecord, LinkRecord, Store } from '../../../src/store/store.js';

/**
 * One suite for every Store (DESIGN.md, Tests; after imgproxy's storage tests): SQLite now,
 * PostgreSQL later. `open` must give an empty store each time it is called.
 */

const newId = () => randomBytes(16).toString('base64url');

let clock = Date.parse('2025-01-01T00:00:00.000Z');

export function makeImage(overrides: Partial<ImageRecord> = {}): ImageRecord {
  clock += 1000;
  return {
    id: newId(),
    owner: 'alice',
    visibility: 'private',
    version: 1,
    originKey: 'ab/cd/original.jpg',
    originEtag: randomBytes(32).toString('base64url'),
    format: 'jpeg',
    width: 640,
    height: 480,
    bytes: 12_345,
    hasAlpha: false,
    pages: 1,
    placeholder: 'HBkSHYSIeHiPiHh8eJd4eTN0EEQG',
    createdAt: new Date(clock),
    ...overrides,
  };
}

/** Every page of an owner's listing, following nextCursor to the end. */
async function listAll(
  store: Store,
  owner: string,
  limit: number,
): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.listImages(owner, { limit, cursor });
    pages += 1;
    expect(page.items.length).toBeLessThanOrEqual(limit);
    ids.push(...page.items.map((item) => item.id));
    if (page.nextCursor === null) return { ids, pages };
    expect(page.items).toHaveLength(limit);
    cursor = page.nextCursor;
    if (pages > 1000) throw new Error('pagination does not end');
  }
}

async function expectInvalidCursor(promise: Promise<unknown>): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(AppError);
  expect(error).toMatchObject({ code: 'invalid_request', status: 400, publicMessage: 'Invalid cursor' });
}

export function describeStoreConformance(name: string, open: () => Promise<Store>): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await open();
    });

    afterEach(async () => {
      await store.close();
    });

    describe('insertImage / getImage', () => {
      it('round-trips every field exactly', async () => {
        const image = makeImage({
          owner: 'client:service-account',
          visibility: 'preview',
          version: 7,
          originKey: 'uploads/2025/ünïcode name.png',
          format: 'png',
          width: 16384,
          height: 1,
          // Beyond 32 bits: a configured upload limit may pass 2 GiB.
          bytes: 3_000_000_123,
          hasAlpha: true,
          pages: 24,
          createdAt: new Date('2024-02-29T23:59:59.987Z'),
        });
        await store.insertImage(image);
        const read = await store.getImage(image.id);
        expect(read).toEqual(image);
        expect(read?.createdAt).toBeInstanceOf(Date);
        expect(read?.createdAt.toISOString()).toBe('2024-02-29T23:59:59.987Z');
        expect(read?.hasAlpha).toBe(true);
        expect(read?.bytes).toBe(3_000_000_123);
      });

      it('keeps false booleans false and every visibility', async () => {
        for (const visibility of ['private', 'preview', 'public'] as const) {
          const image = makeImage({ visibility, hasAlpha: false });
          await store.insertImage(image);
          const read = await store.getImage(image.id);
          expect(read?.hasAlpha).toBe(false);
          expect(read?.visibility).toBe(visibility);
          expect(read).toEqual(image);
        }
      });

      it('answers undefined for a missing id', async () => {
        await store.insertImage(makeImage());
        expect(await store.getImage(newId())).toBeUndefined();
        expect(await store.getImage('')).toBeUndefined();
        expect(await store.getImage("x' or '1'='1")).toBeUndefined();
      });

      it('refuses an id that exists and keeps the first record', async () => {
        const image = makeImage();
        await store.insertImage(image);
        await expect(store.insertImage({ ...image, owner: 'mallory' })).rejects.toThrow(Error);
        expect(await store.getImage(image.id)).toEqual(image);
      });
    });

    describe('listImages', () => {
      it('lists only the owner, newest first, across pages of 1, 2 and 100', async () => {
        const alice: ImageRecord[] = [];
        for (let index = 0; index < 5; index += 1) {
          const image = makeImage({ owner: 'alice' });
          alice.push(image);
          await store.insertImage(image);
          await store.insertImage(makeImage({ owner: 'bob' }));
        }
        const newestFirst = alice.map((image) => image.id).reverse();

        expect(await listAll(store, 'alice', 1)).toEqual({ ids: newestFirst, pages: 5 });
        expect(await listAll(store, 'alice', 2)).toEqual({ ids: newestFirst, pages: 3 });
        expect(await listAll(store, 'alice', 100)).toEqual({ ids: newestFirst, pages: 1 });
        expect((await listAll(store, 'bob', 2)).ids).toHaveLength(5);

        const first = await store.listImages('alice', { limit: 2 });
        expect(first.items).toEqual([alice[4], alice[3]]);
      });

      it('ends with a null cursor when the last page is exactly full', async () => {
        for (let index = 0; index < 4; index += 1) await store.insertImage(makeImage());
        const first = await store.listImages('alice', { limit: 2 });
        expect(first.nextCursor).toEqual(expect.any(String));
        const second = await store.listImages('alice', { limit: 2, cursor: first.nextCursor ?? '' });
        expect(second.items).toHaveLength(2);
        expect(second.nextCursor).toBeNull();
      });

      it('answers an empty page for an owner without images, and treats an empty cursor as none', async () => {
        await store.insertImage(makeImage({ owner: 'bob' }));
        expect(await store.listImages('alice', { limit: 10 })).toEqual({ items: [], nextCursor: null });
        // `?cursor=` (SPEC §4 shows it empty) means the first page.
        expect((await store.listImages('bob', { limit: 10, cursor: '' })).items).toHaveLength(1);
      });

      it('orders images created in the same millisecond by id, and pages through them', async () => {
        const createdAt = new Date('2025-06-01T12:00:00.000Z');
        const images = Array.from({ length: 5 }, () => makeImage({ createdAt }));
        for (const image of images) await store.insertImage(image);
        const expected = images.map((image) => image.id).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
        expect(await listAll(store, 'alice', 1)).toEqual({ ids: expected, pages: 5 });
        expect(await listAll(store, 'alice', 2)).toEqual({ ids: expected, pages: 3 });
      });

      it('keeps a cursor stable while images are added and removed', async () => {
        const images = Array.from({ length: 6 }, () => makeImage());
        for (const image of images) await store.insertImage(image);
        const newestFirst = images.map((image) => image.id).reverse();

        const first = await store.listImages('alice', { limit: 2 });
        expect(first.items.map((item) => item.id)).toEqual(newestFirst.slice(0, 2));

        // Newer uploads land before the cursor; one in the same millisecond as the cursor's
        // row but with a larger id sorts before it too. None may shift the next page.
        await store.insertImage(makeImage());
        await store.insertImage(makeImage());
        const cursorRow = first.items[1];
        if (!cursorRow) throw new Error('no cursor row');
        await store.insertImage(makeImage({ id: `${cursorRow.id}~`, createdAt: cursorRow.createdAt }));
        // Deleting the row the cursor points at does not break it either.
        expect(await store.deleteImage(cursorRow.id)).toBe(true);

        const ids: string[] = [];
        let cursor = first.nextCursor;
        while (cursor !== null) {
          const page = await store.listImages('alice', { limit: 2, cursor });
          ids.push(...page.items.map((item) => item.id));
          cursor = page.nextCursor;
        }
        expect(ids).toEqual(newestFirst.slice(2));
      });

      it('refuses malformed cursors with invalid_request "Invalid cursor"', async () => {
        for (let index = 0; index < 3; index += 1) await store.insertImage(makeImage());
        const { nextCursor } = await store.listImages('alice', { limit: 1 });
        if (nextCursor === null) throw new Error('expected a cursor');

        const bad = [
          'garbage!',
          'not base64url at all',
          Buffer.from('junk').toString('base64url'),
          Buffer.from('v1.abc.someid').toString('base64url'),
          Buffer.from('v1.123.').toString('base64url'),
          Buffer.from('v2.123.someid').toString('base64url'),
          Buffer.from('v1.0123.someid').toString('base64url'),
          Buffer.from('v1.99999999999999999.someid').toString('base64url'),
          Buffer.from([0xff, 0xfe, 0x00, 0x01]).toString('base64url'),
          // Standard base64 padding and spellings other than the one issued.
          `${nextCursor}=`,
          `${nextCursor}A`,
          nextCursor.slice(0, -1),
          'A'.repeat(10_000),
        ];
        for (const cursor of bad) await expectInvalidCursor(store.listImages('alice', { limit: 1, cursor }));
      });

      it("accepts another owner's cursor as a mere position and still lists only the caller's images", async () => {
        const mine = [makeImage(), makeImage()];
        const theirs = makeImage({ owner: 'bob' });
        const later = makeImage();
        for (const image of [mine[0], theirs, mine[1], later]) if (image) await store.insertImage(image);
        await store.insertImage(makeImage({ owner: 'bob' }));

        const bobs = await store.listImages('bob', { limit: 1 });
        expect(bobs.items[0]?.owner).toBe('bob');
        if (bobs.nextCursor === null) throw new Error('expected a cursor');
        // Bob's cursor points at his newest image; alice's images older than it follow it.
        const page = await store.listImages('alice', { limit: 10, cursor: bobs.nextCursor });
        expect(page.items.every((item) => item.owner === 'alice')).toBe(true);
        expect(page.items.map((item) => item.id)).toEqual([later.id, mine[1]?.id, mine[0]?.id]);
      });

      it('refuses a limit outside 1..100', async () => {
        for (const limit of [0, 101, 1.5, -1, Number.NaN]) {
          await expect(store.listImages('alice', { limit })).rejects.toMatchObject({
            code: 'invalid_request',
            publicMessage: `Expected integer 1..100 for limit but received ${limit}`,
          });
        }
      });
    });

    describe('setVisibility', () => {
      it('returns the updated record and changes nothing else', async () => {
        const image = makeImage({ visibility: 'private', hasAlpha: true });
        const other = makeImage();
        await store.insertImage(image);
        await store.insertImage(other);
        const updated = await store.setVisibility(image.id, 'public');
        expect(updated).toEqual({ ...image, visibility: 'public' });
        expect(await store.getImage(image.id)).toEqual({ ...image, visibility: 'public' });
        expect(await store.getImage(other.id)).toEqual(other);
        expect(await store.setVisibility(image.id, 'preview')).toEqual({ ...image, visibility: 'preview' });
      });

      it('answers undefined for a missing image', async () => {
        expect(await store.setVisibility(newId(), 'public')).toBeUndefined();
      });
    });

    const t0 = Date.parse('2025-06-01T00:00:00.000Z');
    const makeLink = (image: ImageRecord, overrides: Partial<LinkRecord> = {}): LinkRecord => ({
      id: newId(),
      imageId: image.id,
      tokenHash: randomBytes(32).toString('base64url'),
      imageVersion: image.version,
      createdBy: image.owner,
      createdAt: new Date(t0),
      expiresAt: new Date(t0 + 60_000),
      maxViews: null,
      maxWidth: null,
      views: 0,
      ...overrides,
    });

    describe('deleteImage', () => {
      it('deletes one image and says whether it existed', async () => {
        const image = makeImage();
        const other = makeImage();
        await store.insertImage(image);
        await store.insertImage(other);
        expect(await store.deleteImage(image.id)).toBe(true);
        expect(await store.getImage(image.id)).toBeUndefined();
        expect(await store.deleteImage(image.id)).toBe(false);
        expect(await store.deleteImage(newId())).toBe(false);
        expect(await store.getImage(other.id)).toEqual(other);
        expect((await store.listImages('alice', { limit: 10 })).items).toEqual([other]);
      });

      it('with beforeCommit, deletes only once it succeeded: a failure changes nothing, links included', async () => {
        const image = makeImage();
        await store.insertImage(image);
        const link = makeLink(image);
        await store.insertLink(link);
        const refusal = new Error('the origin refused');
        await expect(
          store.deleteImage(image.id, {
            beforeCommit: () => Promise.reject(refusal),
          }),
        ).rejects.toBe(refusal);
        expect(await store.getImage(image.id)).toEqual(image);
        expect(await store.getLink(link.id)).toEqual(link);

        const ran: string[] = [];
        const deleted = await store.deleteImage(image.id, {
          beforeCommit: async () => {
            ran.push(image.id);
          },
        });
        expect(deleted).toBe(true);
        expect(ran).toEqual([image.id]);
        expect(await store.getImage(image.id)).toBeUndefined();
        expect(await store.getLink(link.id)).toBeUndefined();
        // No row: nothing to delete, and beforeCommit does not run.
        expect(await store.deleteImage(image.id, { beforeCommit: () => Promise.reject(refusal) })).toBe(
          false,
        );
      });
    });

    // Issue 4: revocation, quota and share links.
    describe('bumpVersion / ownerBytes', () => {
      it('bumps only the version and answers undefined for a missing image', async () => {
        const image = makeImage();
        await store.insertImage(image);
        expect(await store.bumpVersion(image.id)).toEqual({ ...image, version: 2 });
        expect(await store.bumpVersion(image.id)).toEqual({ ...image, version: 3 });
        expect(await store.getImage(image.id)).toEqual({ ...image, version: 3 });
        expect(await store.bumpVersion(newId())).toBeUndefined();
      });

      it('sums the bytes of one owner', async () => {
        expect(await store.ownerBytes('alice')).toBe(0);
        await store.insertImage(makeImage({ bytes: 1000 }));
        await store.insertImage(makeImage({ bytes: 3_000_000_000 }));
        await store.insertImage(makeImage({ owner: 'bob', bytes: 7 }));
        expect(await store.ownerBytes('alice')).toBe(3_000_001_000);
        expect(await store.ownerBytes('bob')).toBe(7);
      });

      it('inserts within an owner quota, refusing with quota_exceeded one that would pass it', async () => {
        await store.insertImage(makeImage({ bytes: 600 }), { ownerQuotaBytes: 1000 });
        await store.insertImage(makeImage({ owner: 'bob', bytes: 900 }), { ownerQuotaBytes: 1000 });
        const over = makeImage({ bytes: 401 });
        await expect(store.insertImage(over, { ownerQuotaBytes: 1000 })).rejects.toMatchObject({
          code: 'quota_exceeded',
          status: 403,
        });
        expect(await store.getImage(over.id)).toBeUndefined();
        // Exactly at the quota is within it.
        await store.insertImage(makeImage({ bytes: 400 }), { ownerQuotaBytes: 1000 });
        expect(await store.ownerBytes('alice')).toBe(1000);
      });

      it('lets concurrent inserts under one quota store no more than it', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, () =>
            store.insertImage(makeImage({ bytes: 300 }), { ownerQuotaBytes: 1000 }),
          ),
        );
        expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(3);
        expect(await store.ownerBytes('alice')).toBe(900);
      });
    });

    describe('links', () => {
      it('round-trips, finds by hash, lists live ones and deletes', async () => {
        const image = makeImage();
        await store.insertImage(image);
        const link = makeLink(image, { maxViews: 3, maxWidth: 640 });
        const expired = makeLink(image, { expiresAt: new Date(t0) });
        await store.insertLink(link);
        await store.insertLink(expired);
        expect(await store.getLink(link.id)).toEqual(link);
        expect(await store.findLinkByTokenHash(link.tokenHash)).toEqual(link);
        expect(await store.findLinkByTokenHash(randomBytes(32).toString('base64url'))).toBeUndefined();
        expect((await store.listLinks(image.id, new Date(t0))).map((l) => l.id)).toEqual([link.id]);
        // A revoked image (new version) has no live links.
        await store.bumpVersion(image.id);
        expect(await store.listLinks(image.id, new Date(t0))).toEqual([]);
        expect(await store.deleteLink(link.id)).toBe(true);
        expect(await store.deleteLink(link.id)).toBe(false);
        expect(await store.getLink(link.id)).toBeUndefined();
      });

      it('counts views only within the budget and before expiry, also when racing', async () => {
        const image = makeImage();
        await store.insertImage(image);
        const link = makeLink(image, { maxViews: 2 });
        await store.insertLink(link);
        const results = await Promise.all([1, 2, 3, 4].map(() => store.countLinkView(link.id, new Date(t0))));
        expect(results.filter(Boolean)).toHaveLength(2);
        expect((await store.getLink(link.id))?.views).toBe(2);
        const open = makeLink(image);
        await store.insertLink(open);
        expect(await store.countLinkView(open.id, new Date(t0 + 59_999))).toBe(true);
        expect(await store.countLinkView(open.id, new Date(t0 + 60_000))).toBe(false);
        expect(await store.countLinkView(newId(), new Date(t0))).toBe(false);
        // Revoked (a new image version) between the lookup and the count: not counted, not served.
        await store.bumpVersion(image.id);
        expect(await store.countLinkView(open.id, new Date(t0))).toBe(false);
      });

      it('go with their image', async () => {
        const image = makeImage();
        await store.insertImage(image);
        const link = makeLink(image);
        await store.insertLink(link);
        await store.deleteImage(image.id);
        expect(await store.getLink(link.id)).toBeUndefined();
      });
    });

    describe('check / close', () => {
      it('check() answers while open and fails once closed; close() twice is harmless', async () => {
        await expect(store.check()).resolves.toBeUndefined();
        await store.close();
        await expect(store.check()).rejects.toThrow();
        await store.close();
      });
    });
  });
}
