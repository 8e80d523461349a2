import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { LRUCache } from 'lru-cache';
import { type Clock, systemClock } from '../clock.js';
import type { S3Location } from '../origins/location.js';
import { readBody, startDeadline } from '../origins/read-body.js';
import { decodeEntry, encodeEntry } from './disk-entry.js';
import type { LookupHook } from './memory.js';
import { type CacheLogger, createThrottledLog } from './throttled-log.js';
import type { Variant, VariantCache, VariantKey } from './variant-cache.js';

export interface S3CacheOptions {
  readonly client: S3Client;
  readonly location: S3Location;
  /** Bound on the total bytes of the entries this instance knows of; 0 keeps nothing. */
  readonly maxBytes: number;
  readonly logger: CacheLogger;
  /** A lookup or a write slower than this is a miss or a variant not cached, never a stall. */
  readonly timeoutMs?: number | undefined;
  readonly onLookup?: LookupHook | undefined;
  readonly clock?: Clock | undefined;
}

const SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;
const DEFAULT_TIMEOUT_MS = 5000;
/** Objects deleted at once by deleteImage. */
const DELETE_CONCURRENCY = 16;

interface Entry {
  readonly size: number;
}

/**
 * Variants in an S3 bucket, so that several instances share them: `<prefix><imageId>/<hash>`,
 * each object in the disk cache's entry format (disk-entry.ts: content type, size, body, CRC),
 * so a torn or foreign object is a miss, never a broken image. PutObject is atomic.
 *
 * The bound works like the disk cache's: an LRU index in memory of the entries this instance
 * knows (rebuilt at start from a listing, oldest first; entries other instances wrote join it
 * when read), whose evictions delete the objects. With several instances each keeps its own
 * view, so the bucket can hold somewhat more than the bound; a lifecycle rule on the prefix
 * (README) is the backstop. Every S3 failure is a miss or a variant not cached, logged without
 * flooding, never an exception (SPEC §4).
 */
export async function createS3Cache(options: S3CacheOptions): Promise<VariantCache> {
  const { client, maxBytes, onLookup } = options;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new TypeError(`Expected a whole number of bytes for maxBytes but received ${maxBytes}`);
  }
  const { bucket, prefix } = options.location;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const log = createThrottledLog(options.logger, options.clock ?? systemClock);
  const where = { bucket, prefix };

  let evictions: Promise<void>[] = [];
  const writes = new Map<string, Promise<void>>();
  let closed = false;

  const index = new LRUCache<string, Entry>({
    maxSize: Math.max(1, maxBytes),
    sizeCalculation: (entry) => Math.max(1, entry.size),
    dispose: (_entry, mapKey, reason) => {
      if (reason === 'evict') evictions.push(remove(mapKey));
    },
  });

  const objectKey = (mapKey: string) => `${prefix}${mapKey}`;

  async function remove(mapKey: string): Promise<void> {
    try {
      await withTimeout((signal) =>
        client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(mapKey) }), {
          abortSignal: signal,
        }),
      );
    } catch (error) {
      log(
        'error',
        `evict:${nameOf(error)}`,
        { ...where, error: nameOf(error) },
        'variant cache: cannot remove an evicted entry',
      );
    }
  }

  async function withTimeout<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const deadline = startDeadline(timeoutMs);
    try {
      return await run(deadline.signal);
    } finally {
      deadline.dispose();
    }
  }

  async function write(mapKey: string, variant: Variant): Promise<void> {
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
    if (data.length > maxBytes) return;
    await withTimeout((signal) =>
      client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: objectKey(mapKey),
          Body: data,
          ContentType: 'application/octet-stream',
        }),
        { abortSignal: signal },
      ),
    );
    index.set(mapKey, { size: data.length });
    const mine = evictions;
    evictions = [];
    await Promise.all(mine);
  }

  async function read(mapKey: string): Promise<Variant | undefined> {
    let data: Buffer;
    try {
      data = await withTimeout(async (signal) => {
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey(mapKey) }), {
          abortSignal: signal,
        });
        const body = answer.Body as Readable;
        signal.addEventListener('abort', () => body.destroy(), { once: true });
        // A cached object is never larger than the bound it was written under.
        return (
          await readBody(body, {
            kind: 's3 cache',
            maxBytes: Math.max(maxBytes, 1),
            length: answer.ContentLength,
          })
        ).body;
      });
    } catch (error) {
      index.delete(mapKey);
      if (nameOf(error) !== 'NoSuchKey') {
        log(
          'warn',
          `read:${nameOf(error)}`,
          { ...where, error: nameOf(error) },
          'variant cache: cannot read an entry',
        );
      }
      return undefined;
    }
    const variant = decodeEntry(data);
    if (variant) {
      // Refreshes recency, or learns of an entry another instance wrote.
      if (!index.get(mapKey)) index.set(mapKey, { size: data.length });
      return variant;
    }
    index.delete(mapKey);
    log('warn', 'corrupt', { ...where, key: mapKey }, 'variant cache: ignored a corrupt entry');
    return undefined;
  }

  const cache: VariantCache = {
    async get(key: VariantKey): Promise<Variant | undefined> {
      const variant = closed || maxBytes === 0 || !isValidKey(key) ? undefined : await read(mapKeyOf(key));
      onLookup?.('s3', variant !== undefined);
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
      const done = write(mapKey, variant)
        .catch((error: unknown) => {
          log(
            'error',
            `write:${nameOf(error)}`,
            { ...where, error: nameOf(error) },
            'variant cache: variant not cached',
          );
        })
        .finally(() => writes.delete(mapKey));
      writes.set(mapKey, done);
      return done;
    },

    async deleteImage(imageId: string): Promise<void> {
      if (!SEGMENT.test(imageId)) return;
      const dir = `${imageId}/`;
      for (const mapKey of [...index.keys()]) if (mapKey.startsWith(dir)) index.delete(mapKey);
      try {
        // Every instance's variants of the image, not only the ones this one knows of.
        const keys: string[] = [];
        for await (const object of listObjects(client, bucket, `${prefix}${dir}`)) keys.push(object.key);
        for (let at = 0; at < keys.length; at += DELETE_CONCURRENCY) {
          await Promise.all(
            keys
              .slice(at, at + DELETE_CONCURRENCY)
              .map((Key) =>
                withTimeout((signal) =>
                  client.send(new DeleteObjectCommand({ Bucket: bucket, Key }), { abortSignal: signal }),
                ),
              ),
          );
        }
      } catch (error) {
        // Left-over objects are unreachable: the image is gone from the store.
        log(
          'error',
          `delete:${nameOf(error)}`,
          { ...where, error: nameOf(error) },
          'variant cache: cannot remove an image',
        );
      }
    },

    async check(): Promise<void> {
      if (closed) throw new Error('The variant cache is closed');
      const probe = `${prefix}.check`;
      await withTimeout(async (signal) => {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: probe, Body: 'ok' }), {
          abortSignal: signal,
        });
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: probe }), { abortSignal: signal });
      });
    },

    async close(): Promise<void> {
      closed = true;
      await Promise.allSettled([...writes.values(), ...evictions]);
    },
  };

  // The start-up listing: entries oldest first, so the LRU starts in write order; objects that
  // are not `<base64url>/<base64url>` are not ours and are left alone.
  try {
    const found: { mapKey: string; size: number; at: number }[] = [];
    for await (const object of listObjects(client, bucket, prefix)) {
      const mapKey = object.key.slice(prefix.length);
      const [imageId = '', hash = '', ...rest] = mapKey.split('/');
      if (rest.length === 0 && SEGMENT.test(imageId) && SEGMENT.test(hash)) {
        found.push({ mapKey, size: object.size, at: object.lastModified });
      }
    }
    found.sort((a, b) => a.at - b.at);
    for (const { mapKey, size } of found) {
      if (size > maxBytes) evictions.push(remove(mapKey));
      else index.set(mapKey, { size });
    }
  } catch (error) {
    throw new Error(`Cannot use the S3 variant cache s3://${bucket}/${prefix}: ${nameOf(error)}`, {
      cause: error,
    });
  }
  const first = evictions;
  evictions = [];
  await Promise.all(first);
  return cache;
}

async function* listObjects(client: S3Client, bucket: string, prefix: string) {
  let ContinuationToken: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }),
    );
    for (const object of page.Contents ?? []) {
      if (object.Key) {
        yield { key: object.Key, size: object.Size ?? 0, lastModified: object.LastModified?.getTime() ?? 0 };
      }
    }
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
}

function isValidKey(key: VariantKey): boolean {
  return SEGMENT.test(key.imageId) && SEGMENT.test(key.hash);
}

function mapKeyOf(key: VariantKey): string {
  return `${key.imageId}/${key.hash}`;
}

function nameOf(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  return (error as Error | undefined)?.name ?? 'unknown';
}
