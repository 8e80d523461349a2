import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import { type Clock, systemClock } from '../clock.js';
import { decodeEntry, encodeEntry } from './disk-entry.js';
import type { LookupHook } from './memory.js';
import { type CacheLogger, createThrottledLog } from './throttled-log.js';
import type { Variant, VariantCache, VariantKey } from './variant-cache.js';

export interface DiskCacheOptions {
  readonly dir: string;
  /** Bound on the total bytes of the entry files (headers included); 0 keeps nothing. */
  readonly maxBytes: number;
  readonly logger: CacheLogger;
  readonly onLookup?: LookupHook | undefined;
  /** For the log throttle only. */
  readonly clock?: Clock | undefined;
}

export interface DiskCache extends VariantCache {
  /**
   * Marks the entry as just used, without reading it. The tiered cache calls it on a memory
   * hit, so that the variants read most often are not the first ones the disk layer evicts.
   */
  touch(key: VariantKey): void;
}

/**
 * Ids and hashes are base64url; checking that before building a path makes traversal
 * impossible whatever a caller passes (`..`, `/`, `\`, NUL and `.` are all outside the set),
 * and an empty id can never name the cache directory itself.
 */
const SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;
/** Temporary files start with a dot, so they can never be mistaken for an entry. */
const TEMP_FILE = /^\..*\.tmp$/;
/** Directories read at once during the start-up scan. */
const SCAN_CONCURRENCY = 16;

interface Entry {
  readonly size: number;
}

/**
 * Variants on local disk: `<dir>/<imageId>/<hash>`, one directory per image so that deleting an
 * image removes its variants in one `rm`. Each file holds the content type, size and body
 * (disk-entry.ts). Writes go to a temporary file in the same directory and are renamed into
 * place, so a reader or a crash never sees half an entry. The total size is bounded: an LRU
 * index in memory, built by scanning the directory at start (oldest modification first),
 * evicts the least recently used files. Every I/O failure is a miss or a variant not cached,
 * logged without flooding, never an exception (SPEC §4, disk full).
 */
export async function createDiskCache(options: DiskCacheOptions): Promise<DiskCache> {
  const { maxBytes, onLookup } = options;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new TypeError(`Expected a whole number of bytes for maxBytes but received ${maxBytes}`);
  }
  const root = resolve(options.dir);
  const log = createThrottledLog(options.logger, options.clock ?? systemClock);

  /** Unlinks started by evictions; a `set` waits for its own, so the bound holds when it returns. */
  let evictions: Promise<void>[] = [];
  /** Writes in flight by key: a second `set` of the same key waits for the first. */
  const writes = new Map<string, Promise<void>>();
  let closed = false;

  const index = new LRUCache<string, Entry>({
    // lru-cache needs a positive bound; 1 byte holds nothing, as no entry is that small.
    maxSize: Math.max(1, maxBytes),
    sizeCalculation: (entry) => Math.max(1, entry.size),
    dispose: (_entry, key, reason) => {
      // Only an eviction removes the file: a `delete` is done by whoever called it, and a
      // `set` over an existing key has already renamed the new file over the old one.
      if (reason === 'evict') evictions.push(removeEvicted(key));
    },
  });

  function pathOf(mapKey: string): { dir: string; file: string } {
    const [imageId = '', hash = ''] = mapKey.split('/');
    const dir = join(root, imageId);
    return { dir, file: join(dir, hash) };
  }

  async function removeEvicted(mapKey: string): Promise<void> {
    const { dir, file } = pathOf(mapKey);
    try {
      await unlink(file);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') {
        log(
          'error',
          `evict:${errorCode(error)}`,
          { err: error, dir: root },
          'variant cache: cannot remove an evicted entry',
        );
      }
      return;
    }
    // An image directory left empty goes too; any other entry or temporary file keeps it.
    await rmdir(dir).catch(() => {});
  }

  async function write(key: VariantKey, mapKey: string, variant: Variant): Promise<void> {
    const data = encodeEntry(variant);
    if (!data) {
      log(
        'error',
        'unencodable',
        { contentType: variant.contentType },
        'variant cache: variant not cacheable',
      );
      return;
    }
    // Larger than the whole bound: not kept, and the others are not evicted for it.
    if (data.length > maxBytes) return;
    const { dir, file } = pathOf(mapKey);
    const temp = join(dir, `.${key.hash}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeTemp(dir, temp, data);
      await rename(temp, file);
    } catch (error) {
      await rm(temp, { force: true }).catch(() => {});
      // The image was deleted while its variant was being written: nothing to keep.
      if (errorCode(error) === 'ENOENT') return;
      throw error;
    }
    index.set(mapKey, { size: data.length });
    const mine = evictions;
    evictions = [];
    await Promise.all(mine);
  }

  const cache: DiskCache = {
    async get(key: VariantKey): Promise<Variant | undefined> {
      const variant = closed || !isValidKey(key) ? undefined : await read(mapKeyOf(key));
      onLookup?.('disk', variant !== undefined);
      return variant;
    },

    async set(key: VariantKey, variant: Variant): Promise<void> {
      if (closed) return;
      if (!isValidKey(key)) {
        log('error', 'invalid_key', {}, 'variant cache: refused a key that is not base64url');
        return;
      }
      const mapKey = mapKeyOf(key);
      const running = writes.get(mapKey);
      if (running) return running;
      const done = write(key, mapKey, variant)
        .catch((error: unknown) => {
          log(
            'error',
            `write:${errorCode(error)}`,
            { err: error, dir: root },
            'variant cache: variant not cached',
          );
        })
        .finally(() => writes.delete(mapKey));
      writes.set(mapKey, done);
      return done;
    },

    async deleteImage(imageId: string): Promise<void> {
      // Nothing can be stored under an id that is not base64url, so there is nothing to delete.
      if (!SEGMENT.test(imageId)) return;
      const prefix = `${imageId}/`;
      for (const mapKey of [...index.keys()]) if (mapKey.startsWith(prefix)) index.delete(mapKey);
      try {
        await rm(join(root, imageId), { recursive: true, force: true });
      } catch (error) {
        // Left-over files are unreachable (the image is gone from the store) and the next
        // start-up scan counts them against the bound again.
        log(
          'error',
          `delete:${errorCode(error)}`,
          { err: error, dir: root },
          'variant cache: cannot remove an image',
        );
      }
    },

    touch(key: VariantKey): void {
      if (isValidKey(key)) index.get(mapKeyOf(key));
    },

    async check(): Promise<void> {
      if (closed) throw new Error('The variant cache is closed');
      // A real write: access(W_OK) says yes to root on a read-only bind mount or a full disk.
      const probe = join(root, `.check-${randomBytes(6).toString('hex')}.tmp`);
      try {
        await mkdir(root, { recursive: true });
        await writeFile(probe, 'ok');
        await unlink(probe);
      } catch (error) {
        await rm(probe, { force: true }).catch(() => {});
        throw new Error(`The variant cache directory ${root} is not writable: ${errorCode(error)}`, {
          cause: error,
        });
      }
    },

    async close(): Promise<void> {
      closed = true;
      await Promise.allSettled([...writes.values(), ...evictions]);
    },
  };

  async function read(mapKey: string): Promise<Variant | undefined> {
    const entry = index.get(mapKey); // refreshes recency
    if (!entry) return undefined;
    const { file } = pathOf(mapKey);
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      forget(mapKey, entry);
      if (errorCode(error) !== 'ENOENT') {
        log(
          'warn',
          `read:${errorCode(error)}`,
          { err: error, dir: root },
          'variant cache: cannot read an entry',
        );
      }
      return undefined;
    }
    const variant = decodeEntry(data);
    if (variant) return variant;
    // Truncated or corrupt: a miss, and the file goes so that the next set writes it anew.
    if (forget(mapKey, entry)) await rm(file, { force: true }).catch(() => {});
    log('warn', 'corrupt', { file }, 'variant cache: removed a corrupt entry');
    return undefined;
  }

  /** Drops the index entry unless a concurrent `set` has replaced it meanwhile. */
  function forget(mapKey: string, entry: Entry): boolean {
    if (index.peek(mapKey) !== entry) return false;
    index.delete(mapKey);
    return true;
  }

  try {
    await mkdir(root, { recursive: true });
    await scan(root, maxBytes, index, log);
  } catch (error) {
    throw new Error(`Cannot use the variant cache directory ${root}: ${errorCode(error)}`, { cause: error });
  }
  // Entries beyond a bound lowered since the last run were evicted by the scan.
  const first = evictions;
  evictions = [];
  await Promise.all(first);
  return cache;
}

/**
 * Rebuilds the index from the files: entries oldest modification first, so the LRU starts in
 * write order. Temporary files are a crash's leftovers and go; anything else that is not
 * `<base64url>/<base64url>` is not ours and is left alone (and does not count).
 */
async function scan(
  root: string,
  maxBytes: number,
  index: LRUCache<string, Entry>,
  log: ReturnType<typeof createThrottledLog>,
): Promise<void> {
  const found: { mapKey: string; size: number; mtimeMs: number }[] = [];
  const top = await readdir(root, { withFileTypes: true });
  await Promise.all(
    top.filter((dirent) => isTempFile(dirent)).map((dirent) => rm(join(root, dirent.name), { force: true })),
  );
  const imageDirs = top.filter((dirent) => dirent.isDirectory() && SEGMENT.test(dirent.name));

  let next = 0;
  async function worker(): Promise<void> {
    for (let dirent = imageDirs[next++]; dirent; dirent = imageDirs[next++]) {
      const dir = join(root, dirent.name);
      try {
        const files = await readdir(dir, { withFileTypes: true });
        for (const file of files) {
          const path = join(dir, file.name);
          if (isTempFile(file)) {
            await rm(path, { force: true });
          } else if (file.isFile() && SEGMENT.test(file.name)) {
            const { size, mtimeMs } = await stat(path);
            found.push({ mapKey: `${dirent.name}/${file.name}`, size, mtimeMs });
          }
        }
      } catch (error) {
        // One unreadable directory does not stop the cache: its files are just not indexed.
        log(
          'warn',
          `scan:${errorCode(error)}`,
          { err: error, dir },
          'variant cache: cannot scan a directory',
        );
      }
    }
  }
  await Promise.all(Array.from({ length: SCAN_CONCURRENCY }, worker));

  found.sort((a, b) => a.mtimeMs - b.mtimeMs);
  for (const { mapKey, size } of found) {
    // lru-cache silently refuses an entry larger than the whole bound (lowered since the file
    // was written); the file would then stay forever, untracked, so it goes now.
    if (size > maxBytes) await rm(join(root, mapKey), { force: true });
    else index.set(mapKey, { size });
  }
}

function isTempFile(dirent: Dirent): boolean {
  return dirent.isFile() && TEMP_FILE.test(dirent.name);
}

async function writeTemp(dir: string, temp: string, data: Buffer): Promise<void> {
  await mkdir(dir, { recursive: true });
  try {
    await writeFile(temp, data, { flag: 'wx' });
  } catch (error) {
    // The directory was removed between mkdir and the write (its last entry was evicted):
    // make it again, once.
    if (errorCode(error) !== 'ENOENT') throw error;
    await mkdir(dir, { recursive: true });
    await writeFile(temp, data, { flag: 'wx' });
  }
}

function isValidKey(key: VariantKey): boolean {
  return SEGMENT.test(key.imageId) && SEGMENT.test(key.hash);
}

function mapKeyOf(key: VariantKey): string {
  return `${key.imageId}/${key.hash}`;
}

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'unknown';
}
