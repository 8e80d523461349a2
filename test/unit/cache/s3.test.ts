import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createS3Cache } from '../../../src/cache/s3.js';
import type { CacheLogger } from '../../../src/cache/throttled-log.js';
import type { VariantCache } from '../../../src/cache/variant-cache.js';
import { createS3Client } from '../../../src/origins/s3.js';
import { closedPort } from '../../helpers/net.js';
import { S3RVER_CREDENTIALS, startS3rver } from '../../helpers/s3rver.js';
import {
  describeVariantCacheConformance,
  keyFor,
  makeVariant,
  newImage,
  TWO_ENTRIES_BYTES,
} from './cache-conformance.js';

const s3 = await startS3rver(['variants']);
afterAll(() => s3.close());

const client = createS3Client({
  endpoint: s3.endpoint,
  region: s3.region,
  forcePathStyle: true,
  credentials: S3RVER_CREDENTIALS,
});
let prefixes = 0;
const freshPrefix = () => `cache-${++prefixes}/`;

function recordingLogger(): CacheLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (_obj, msg) => lines.push(msg), error: (_obj, msg) => lines.push(msg) };
}

describeVariantCacheConformance('s3 (s3rver)', ({ maxBytes }) =>
  createS3Cache({
    client,
    location: { bucket: 'variants', prefix: freshPrefix() },
    maxBytes,
    logger: recordingLogger(),
  }),
);

describe('S3 variant cache', () => {
  const opened: VariantCache[] = [];
  async function open(
    prefix: string,
    maxBytes = 10 * 1024 * 1024,
    logger = recordingLogger(),
    endpointClient = client,
  ) {
    const cache = await createS3Cache({
      client: endpointClient,
      location: { bucket: 'variants', prefix },
      maxBytes,
      logger,
      timeoutMs: 1000,
    });
    opened.push(cache);
    return cache;
  }
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((cache) => cache.close()));
  });

  it('is shared: a variant one instance wrote is a hit for another, and deleteImage removes it for both', async () => {
    const prefix = freshPrefix();
    const [one, two] = [await open(prefix), await open(prefix)];
    const image = newImage();
    const variant = makeVariant();
    await one.set(keyFor(image), variant);
    expect((await two.get(keyFor(image)))?.body.equals(variant.body)).toBe(true);
    await two.set(keyFor(image, 'w=100'), makeVariant());
    await one.deleteImage(image.id);
    expect(await two.get(keyFor(image))).toBeUndefined();
    expect(await two.get(keyFor(image, 'w=100'))).toBeUndefined();
  });

  it('stores the entry format, so a corrupt or foreign object is a miss', async () => {
    const prefix = freshPrefix();
    const cache = await open(prefix);
    const key = keyFor(newImage());
    await cache.set(key, makeVariant());
    const stored = await s3.client.send(
      new GetObjectCommand({ Bucket: 'variants', Key: `${prefix}${key.imageId}/${key.hash}` }),
    );
    const bytes = Buffer.from(
      await (stored.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    expect(bytes.subarray(0, 4).toString()).toBe('PXGV');
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 10) ^ 0xff, bytes.length - 10);
    await s3.client.send(
      new PutObjectCommand({ Bucket: 'variants', Key: `${prefix}${key.imageId}/${key.hash}`, Body: bytes }),
    );
    expect(await cache.get(key)).toBeUndefined();
  });

  it('rebuilds its index at start, evicting beyond a lowered bound', async () => {
    const prefix = freshPrefix();
    const first = await open(prefix);
    const keys = [keyFor(newImage()), keyFor(newImage()), keyFor(newImage())];
    for (const key of keys) {
      await first.set(key, makeVariant());
      // LastModified has whole seconds in s3rver: order the writes visibly.
      await new Promise((resolve) => setTimeout(resolve, 1050));
    }
    await first.close();
    const second = await open(prefix, TWO_ENTRIES_BYTES);
    const extra = keyFor(newImage());
    await second.set(extra, makeVariant());
    // The oldest two went to make room for the new one.
    expect(await second.get(keys[0] ?? extra)).toBeUndefined();
    expect(await second.get(keys[1] ?? extra)).toBeUndefined();
    expect(await second.get(keys[2] ?? extra)).toBeDefined();
    expect(await second.get(extra)).toBeDefined();
  }, 15_000);

  it('a store that goes down: misses and variants not cached, logged, never thrown', async () => {
    const own = await startS3rver(['variants']);
    const logger = recordingLogger();
    const ownClient = createS3Client({
      endpoint: own.endpoint,
      region: own.region,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
      maxAttempts: 1,
    });
    const cache = await open('', 10 * 1024 * 1024, logger, ownClient);
    const key = keyFor(newImage());
    await cache.set(key, makeVariant());
    expect(await cache.get(key)).toBeDefined();
    await own.close();
    await expect(cache.set(keyFor(newImage()), makeVariant())).resolves.toBeUndefined();
    await expect(cache.get(key)).resolves.toBeUndefined();
    await expect(cache.check()).rejects.toThrow();
    expect(logger.lines).toEqual([
      'variant cache: variant not cached',
      'variant cache: cannot read an entry',
    ]);
    // A store that is down at start is an error at start, naming the cache.
    const down = createS3Client({
      endpoint: `http://127.0.0.1:${await closedPort()}`,
      region: s3.region,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
      maxAttempts: 1,
    });
    await expect(
      createS3Cache({ client: down, location: { bucket: 'variants', prefix: '' }, maxBytes: 1000, logger }),
    ).rejects.toThrow(/Cannot use the S3 variant cache s3:\/\/variants\/: ECONNREFUSED/);
  });
});
