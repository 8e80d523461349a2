import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiskCache, type DiskCache } from '../../../src/cache/disk.js';
import { encodeEntry } from '../../../src/cache/disk-entry.js';
import type { CacheLayer } from '../../../src/cache/memory.js';
import type { CacheLogger } from '../../../src/cache/throttled-log.js';
import type { VariantKey } from '../../../src/cache/variant-cache.js';
import { walk } from '../../../src/walk.js';
import { mountTinyDisk } from '../../helpers/tiny-disk.js';
import {
  describeVariantCacheConformance,
  keyFor,
  makeVariant,
  newImage,
  scratchDirs,
  TWO_ENTRIES_BYTES,
} from './cache-conformance.js';

const freshDir = await scratchDirs('pixgate-disk-cache-');

interface LogLine {
  level: 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLogger(): CacheLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    warn: (obj, msg) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
  };
}

const opened: DiskCache[] = [];
async function open(
  dir: string,
  maxBytes = 10 * 1024 * 1024,
  extra: Partial<Parameters<typeof createDiskCache>[0]> = {},
) {
  const logger = recordingLogger();
  const cache = await createDiskCache({ dir, maxBytes, logger, ...extra });
  opened.push(cache);
  return { cache, logger };
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((cache) => cache.close()));
});

const entryPath = (dir: string, key: VariantKey) => join(dir, key.imageId, key.hash);

/** Every file under dir, relative, sorted. */
async function listFiles(dir: string): Promise<string[]> {
  return (await walk(dir))
    .filter(({ entry }) => !entry.isDirectory())
    .map(({ path }) => path.slice(dir.length + 1))
    .sort();
}

async function setMtime(path: string, secondsAgo: number): Promise<void> {
  const time = new Date(Date.now() - secondsAgo * 1000);
  await utimes(path, time, time);
}

describeVariantCacheConformance('disk', async ({ maxBytes }) =>
  createDiskCache({ dir: freshDir(), maxBytes, logger: recordingLogger() }),
);

describe('createDiskCache', () => {
  it('accepts a pino logger', () => {
    // A compile-time check as much as a run-time one: the composition root passes pino.
    const logger: CacheLogger = pino({ level: 'silent' });
    expect(typeof logger.warn).toBe('function');
  });

  it('stores <dir>/<imageId>/<hash> in the versioned format and leaves no temporary file', async () => {
    const dir = freshDir();
    const { cache } = await open(dir);
    const key = keyFor(newImage());
    const variant = makeVariant();
    await cache.set(key, variant);
    expect(await listFiles(dir)).toEqual([`${key.imageId}/${key.hash}`]);
    const data = await readFile(entryPath(dir, key));
    expect(data.subarray(0, 5)).toEqual(Buffer.from('PXGV\x01', 'latin1'));
    expect(data).toEqual(encodeEntry(variant));
  });

  it('reports each lookup as a hit or a miss', async () => {
    const lookups: [CacheLayer, boolean][] = [];
    const { cache } = await open(freshDir(), 1_000_000, {
      onLookup: (layer, hit) => lookups.push([layer, hit]),
    });
    const key = keyFor(newImage());
    await cache.get(key);
    await cache.set(key, makeVariant());
    await cache.get(key);
    await cache.get({ imageId: '..', hash: 'x' });
    expect(lookups).toEqual([
      ['disk', false],
      ['disk', true],
      ['disk', false],
    ]);
  });

  it('removes the file of an evicted entry, and its image directory when empty', async () => {
    const dir = freshDir();
    const { cache } = await open(dir, TWO_ENTRIES_BYTES);
    const [a, b, c] = [keyFor(newImage()), keyFor(newImage()), keyFor(newImage())];
    for (const key of [a, b, c]) await cache.set(key, makeVariant());
    expect(await listFiles(dir)).toEqual([`${b.imageId}/${b.hash}`, `${c.imageId}/${c.hash}`].sort());
    expect((await readdir(dir)).sort()).toEqual([b.imageId, c.imageId].sort());
  });

  describe('restart', () => {
    it('sees the entries of an earlier instance and counts their sizes against the bound', async () => {
      const dir = freshDir();
      const [a, b, c] = [keyFor(newImage()), keyFor(newImage()), keyFor(newImage())];
      const variantA = makeVariant();
      const variantB = makeVariant({ contentType: 'image/png', width: 7, height: 9 });
      const { cache: first } = await open(dir, TWO_ENTRIES_BYTES);
      await first.set(a, variantA);
      await first.set(b, variantB);
      await first.close();
      // Modification times order the LRU at start: a is the older one.
      await setMtime(entryPath(dir, a), 20);
      await setMtime(entryPath(dir, b), 10);

      const { cache: second } = await open(dir, TWO_ENTRIES_BYTES);
      expect((await second.get(b))?.body.equals(variantB.body)).toBe(true);
      expect((await second.get(b))?.width).toBe(7);
      await second.set(c, makeVariant());
      expect(await second.get(a)).toBeUndefined();
      expect(await listFiles(dir)).toEqual([`${b.imageId}/${b.hash}`, `${c.imageId}/${c.hash}`].sort());
    });

    it('evicts at start what a lowered bound no longer holds, oldest first', async () => {
      const dir = freshDir();
      const keys = [keyFor(newImage()), keyFor(newImage()), keyFor(newImage())];
      const { cache: first } = await open(dir);
      for (const key of keys) await first.set(key, makeVariant());
      const huge = keyFor(newImage());
      await first.set(huge, makeVariant({ body: randomBytes(TWO_ENTRIES_BYTES * 2) }));
      await first.close();
      for (const [index, key] of keys.entries()) await setMtime(entryPath(dir, key), 100 - index);

      await open(dir, TWO_ENTRIES_BYTES);
      const [, second, third] = keys;
      if (!second || !third) throw new Error('keys');
      // The oldest goes, and so does an entry larger than the whole new bound.
      expect(await listFiles(dir)).toEqual(
        [`${second.imageId}/${second.hash}`, `${third.imageId}/${third.hash}`].sort(),
      );
    });

    it('scans thousands of files', async () => {
      const dir = freshDir();
      const data = encodeEntry(makeVariant({ body: Buffer.alloc(100) })) ?? Buffer.alloc(0);
      const keys: VariantKey[] = [];
      for (let image = 0; image < 300; image += 1) {
        const { id } = newImage();
        await mkdir(join(dir, id), { recursive: true });
        const batch = Array.from({ length: 10 }, (_, index) => keyFor({ id, version: 1 }, `w=${index}`));
        await Promise.all(batch.map((key) => writeFile(entryPath(dir, key), data)));
        keys.push(...batch);
      }
      const { cache } = await open(dir, data.length * 1000);
      expect(await listFiles(dir)).toHaveLength(1000);
      const hits = await Promise.all(keys.map((key) => cache.get(key)));
      expect(hits.filter(Boolean)).toHaveLength(1000);
    });

    it('removes temporary files left by a crash, at start', async () => {
      const dir = freshDir();
      const key = keyFor(newImage());
      await mkdir(join(dir, key.imageId), { recursive: true });
      await writeFile(join(dir, key.imageId, `.${key.hash}.0123456789ab.tmp`), 'half an entry');
      await writeFile(join(dir, '.check-0123456789ab.tmp'), 'ok');
      const { cache } = await open(dir);
      expect(await listFiles(dir)).toEqual([]);
      expect(await cache.get(key)).toBeUndefined();
    });

    it('ignores files and directories that are not its own, and does not count them', async () => {
      const dir = freshDir();
      const key = keyFor(newImage());
      const junk = [
        'README.txt',
        'not.an.id/whatever',
        `${key.imageId}/notes.txt`,
        `${key.imageId}/${'h'.repeat(43)}/nested-file`,
        'big-junk',
      ];
      for (const path of junk) {
        await mkdir(join(dir, path, '..'), { recursive: true });
        await writeFile(join(dir, path), path === 'big-junk' ? randomBytes(100_000) : 'junk');
      }
      const { cache, logger } = await open(dir, TWO_ENTRIES_BYTES);
      const other = keyFor(newImage());
      await cache.set(key, makeVariant());
      await cache.set(other, makeVariant());
      // Both fit: 100 kB of junk does not count against a bound of 2.5 kB.
      expect(await cache.get(key)).toBeDefined();
      expect(await cache.get(other)).toBeDefined();
      expect(await listFiles(dir)).toEqual(
        [...junk, `${key.imageId}/${key.hash}`, `${other.imageId}/${other.hash}`].sort(),
      );
      expect(logger.lines).toEqual([]);
    });
  });

  describe('corrupt entries', () => {
    async function corrupted(mutate: (data: Buffer) => Buffer) {
      const dir = freshDir();
      const { cache, logger } = await open(dir);
      const key = keyFor(newImage());
      const variant = makeVariant();
      await cache.set(key, variant);
      await writeFile(entryPath(dir, key), mutate(await readFile(entryPath(dir, key))));
      expect(await cache.get(key)).toBeUndefined();
      await expect(stat(entryPath(dir, key))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(logger.lines).toEqual([
        expect.objectContaining({ level: 'warn', msg: 'variant cache: removed a corrupt entry' }),
      ]);
      // The next set writes it anew.
      await cache.set(key, variant);
      expect((await cache.get(key))?.body.equals(variant.body)).toBe(true);
    }

    it('treats a truncated file as a miss and removes it', async () => {
      await corrupted((data) => data.subarray(0, data.length - 1));
      await corrupted((data) => data.subarray(0, 10));
      await corrupted(() => Buffer.alloc(0));
    });

    it('treats a file with a flipped bit or zeroed bytes as a miss and removes it', async () => {
      await corrupted((data) => {
        const copy = Buffer.from(data);
        copy[copy.length - 100] = (copy[copy.length - 100] ?? 0) ^ 1;
        return copy;
      });
      await corrupted((data) => Buffer.alloc(data.length));
      await corrupted((data) => Buffer.concat([data, Buffer.from('x')]));
    });

    it('treats a file of another format version as a miss', async () => {
      await corrupted((data) => {
        const copy = Buffer.from(data);
        copy[4] = 2;
        return copy;
      });
    });

    it('answers a miss when the file vanished behind its back', async () => {
      const dir = freshDir();
      const { cache, logger } = await open(dir);
      const key = keyFor(newImage());
      await cache.set(key, makeVariant());
      await rm(join(dir, key.imageId), { recursive: true });
      expect(await cache.get(key)).toBeUndefined();
      expect(logger.lines).toEqual([]);
    });
  });

  describe('hostile keys', () => {
    it('rejects traversal-shaped ids and hashes without touching the filesystem', async () => {
      const parent = freshDir();
      const dir = join(parent, 'cache');
      await mkdir(parent, { recursive: true });
      await writeFile(join(parent, 'sentinel'), 'keep me');
      const { cache, logger } = await open(dir);
      const good = keyFor(newImage());
      await cache.set(good, makeVariant());
      const before = { parent: await listFiles(parent), dir: await listFiles(dir) };

      const hostile = [
        '',
        '.',
        '..',
        '../sentinel',
        '../../etc',
        'a/b',
        'a\\b',
        '%2e%2e',
        'x\0y',
        '.hidden',
        'x'.repeat(129),
      ];
      for (const bad of hostile) {
        for (const key of [
          { imageId: bad, hash: good.hash },
          { imageId: good.imageId, hash: bad },
        ]) {
          await expect(cache.set(key, makeVariant())).resolves.toBeUndefined();
          expect(await cache.get(key)).toBeUndefined();
        }
        await expect(cache.deleteImage(bad)).resolves.toBeUndefined();
      }

      expect(await listFiles(parent)).toEqual(before.parent);
      expect(await listFiles(dir)).toEqual(before.dir);
      expect(await readFile(join(parent, 'sentinel'), 'utf8')).toBe('keep me');
      expect(await cache.get(good)).toBeDefined();
      // A bug to look into, logged once however many times it happens.
      expect(logger.lines).toEqual([
        expect.objectContaining({
          level: 'error',
          msg: 'variant cache: refused a key that is not base64url',
        }),
      ]);
    });
  });

  describe('unwritable locations', () => {
    it('refuses to start on a directory that cannot be made', async () => {
      const file = join(freshDir(), 'regular-file');
      await mkdir(join(file, '..'), { recursive: true });
      await writeFile(file, '');
      await expect(
        createDiskCache({ dir: join(file, 'cache'), maxBytes: 1000, logger: recordingLogger() }),
      ).rejects.toThrow(/^Cannot use the variant cache directory .*regular-file\/cache: ENOTDIR$/);
    });

    it('set never throws when the directory stops being writable; it logs once a minute', async () => {
      // The cache directory is replaced by a regular file while running: every write then
      // fails for real with ENOTDIR, as root too (where chmod would not stop a write).
      const dir = freshDir();
      let now = 1_000_000;
      const { cache, logger } = await open(dir, 1_000_000, { clock: { now: () => now } });
      const cached = keyFor(newImage());
      await cache.set(cached, makeVariant());
      await rm(dir, { recursive: true });
      await writeFile(dir, 'not a directory');

      for (let index = 0; index < 5; index += 1) {
        await expect(cache.set(keyFor(newImage()), makeVariant())).resolves.toBeUndefined();
      }
      expect(logger.lines).toEqual([
        {
          level: 'error',
          obj: expect.objectContaining({ kind: 'write:ENOTDIR', suppressed: 0 }),
          msg: 'variant cache: variant not cached',
        },
      ]);
      now += 59_999;
      await cache.set(keyFor(newImage()), makeVariant());
      expect(logger.lines).toHaveLength(1);
      now += 1;
      await cache.set(keyFor(newImage()), makeVariant());
      expect(logger.lines).toHaveLength(2);
      expect(logger.lines[1]?.obj).toMatchObject({ kind: 'write:ENOTDIR', suppressed: 5 });

      // Reads of what was cached miss instead of failing; readiness says why.
      expect(await cache.get(cached)).toBeUndefined();
      await expect(cache.check()).rejects.toThrow(/^The variant cache directory .* is not writable: EEXIST$/);
      await expect(cache.deleteImage(cached.imageId)).resolves.toBeUndefined();
    });

    it('set never throws on a full disk (ENOSPC on a real tmpfs), and keeps no partial entry', async () => {
      const disk = await mountTinyDisk(256 * 1024);
      try {
        const dir = join(disk.dir, 'cache');
        const { cache, logger } = await open(dir);
        const kept = keyFor(newImage());
        await cache.set(kept, makeVariant());
        await disk.fill();
        const refused = keyFor(newImage());
        await expect(cache.set(refused, makeVariant())).resolves.toBeUndefined();
        expect(logger.lines).toEqual([
          expect.objectContaining({ obj: expect.objectContaining({ kind: 'write:ENOSPC' }) }),
        ]);
        expect(await cache.get(refused)).toBeUndefined();
        expect(await cache.get(kept)).toBeDefined();
        // No temp file or partial entry left behind by the failed write.
        expect(await listFiles(dir)).toEqual([`${kept.imageId}/${kept.hash}`]);
        await cache.close();
      } finally {
        await disk.unmount();
      }
    });
  });

  it('misses and stores nothing once closed', async () => {
    const dir = freshDir();
    const { cache } = await open(dir);
    const key = keyFor(newImage());
    await cache.set(key, makeVariant());
    await cache.close();
    expect(await cache.get(key)).toBeUndefined();
    await cache.set(keyFor(newImage()), makeVariant());
    expect(await listFiles(dir)).toEqual([`${key.imageId}/${key.hash}`]);
    await expect(cache.check()).rejects.toThrow('The variant cache is closed');
  });
});
