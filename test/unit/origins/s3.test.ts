import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { createBufferPool } from '../../../src/origins/buffer-pool.js';
import { parseS3Url } from '../../../src/origins/location.js';
import { createS3Client, createS3Origin } from '../../../src/origins/s3.js';
import { closedPort, startSilentServer } from '../../helpers/net.js';
import { S3RVER_CREDENTIALS, startS3rver } from '../../helpers/s3rver.js';
import { describeOriginConformance } from './origin-conformance.js';

const s3 = await startS3rver(['originals']);
const silent = await startSilentServer();
const temp = await mkdtemp(join(tmpdir(), 'pixgate-s3-origin-'));
afterAll(async () => {
  await silent.close();
  await s3.close();
  await rm(temp, { recursive: true, force: true });
});

/** How many of this process's descriptors point at `path` (deleted or not). */
async function openFiles(path: string): Promise<number> {
  let count = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target === path || target === `${path} (deleted)`) count++;
  }
  return count;
}

let prefixes = 0;
type Credentials = { accessKeyId: string; secretAccessKey: string };
// As production makes it (origins/open.ts): the idle timeout is the origin timeout.
const clientFor = (endpoint: string, credentials: Credentials = S3RVER_CREDENTIALS, idleTimeoutMs = 5000) =>
  createS3Client({
    endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials,
    maxAttempts: 1,
    idleTimeoutMs,
  });

function originAt(
  prefix: string,
  timeoutMs = 5000,
  endpoint = s3.endpoint,
  credentials: Credentials = S3RVER_CREDENTIALS,
) {
  return createS3Origin({
    client: clientFor(endpoint, credentials, timeoutMs),
    location: { bucket: 'originals', prefix },
    timeoutMs,
    pool: createBufferPool(8 * 1024 * 1024),
  });
}

describeOriginConformance('s3 (s3rver)', () => ({
  async open(timeoutMs) {
    const prefix = `conformance-${++prefixes}/`;
    return {
      origin: originAt(prefix, timeoutMs),
      async put(key, bytes) {
        await s3.client.send(
          new PutObjectCommand({ Bucket: 'originals', Key: `${prefix}${key}`, Body: bytes }),
        );
      },
    };
  },
  async slow(timeoutMs) {
    return originAt('', timeoutMs, silent.url);
  },
  async down() {
    return originAt('', 2000, `http://127.0.0.1:${await closedPort()}`);
  },
  async refusing() {
    const credentials = { accessKeyId: 'NOT-S3RVER-KEY', secretAccessKey: 'not-the-secret-key' };
    return {
      origin: originAt('', 2000, s3.endpoint, credentials),
      secrets: [credentials.accessKeyId, credentials.secretAccessKey],
    };
  },
}));

describe('S3 origin', () => {
  it('stores uploads byte for byte (no aws-chunked framing) and reads them back', async () => {
    const origin = originAt('uploads/');
    const bytes = randomBytes(12_000);
    const path = join(temp, 'upload');
    await writeFile(path, bytes);
    await origin.write('ab/abcdef', path, 'image/jpeg');
    // Checked with a separate client, straight from the store: the bytes stored are the bytes sent.
    const stored = await s3.client.send(
      new GetObjectCommand({ Bucket: 'originals', Key: 'uploads/ab/abcdef' }),
    );
    const storedBytes = Buffer.from(
      await (stored.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    expect(storedBytes.length).toBe(12_000);
    expect(storedBytes.equals(bytes)).toBe(true);
    expect(stored.ContentType).toBe('image/jpeg');
    // The temp file was consumed.
    await expect(writeFile(path, '', { flag: 'wx' })).resolves.toBeUndefined();
    expect((await origin.read('ab/abcdef', { maxBytes: 20_000 })).body.equals(bytes)).toBe(true);
    await origin.delete('ab/abcdef');
    await expect(origin.read('ab/abcdef', { maxBytes: 20_000 })).rejects.toMatchObject({ code: 'not_found' });
    // Deleting a missing key is not an error.
    await origin.delete('ab/abcdef');
  });

  it('an upload to a store that is down is a 502 origin_error, and the temp file goes', async () => {
    const down = originAt('uploads/', 1000, `http://127.0.0.1:${await closedPort()}`);
    const path = join(temp, 'upload-down');
    await writeFile(path, randomBytes(100));
    await expect(down.write('ab/x', path, 'image/jpeg')).rejects.toMatchObject({
      code: 'origin_error',
      status: 502,
    });
    await expect(writeFile(path, '', { flag: 'wx' })).resolves.toBeUndefined();
  });

  it('gives up on a store that never answers an upload, a delete or a check (504 origin_timeout)', async () => {
    const stalled = originAt('uploads/', 300, silent.url);
    const path = join(temp, 'upload-stalled');
    // More than the socket buffers take: the store stops reading, the body stays half sent.
    await writeFile(path, randomBytes(8 * 1024 * 1024));
    const timedOut = { code: 'origin_timeout', status: 504 };
    const openBefore = await openFiles(path);
    await expect(stalled.write('ab/x', path, 'image/jpeg')).rejects.toMatchObject(timedOut);
    await expect(writeFile(path, '', { flag: 'wx' })).resolves.toBeUndefined();
    // Nothing holds the unlinked temp file open (its disk space would never come back).
    await rm(path);
    expect(await openFiles(path)).toBe(openBefore);
    await expect(stalled.delete('ab/x')).rejects.toMatchObject(timedOut);
    await expect(stalled.check()).rejects.toMatchObject(timedOut);
  });

  it('a delete on a store that is down is a 502 origin_error', async () => {
    const down = originAt('uploads/', 1000, `http://127.0.0.1:${await closedPort()}`);
    await expect(down.delete('ab/x')).rejects.toMatchObject({ code: 'origin_error', status: 502 });
  });

  it('check() passes for the bucket and fails for a missing one or a down store', async () => {
    await expect(originAt('').check()).resolves.toBeUndefined();
    const missing = createS3Origin({
      client: clientFor(s3.endpoint),
      location: { bucket: 'nope', prefix: '' },
      timeoutMs: 1000,
    });
    await expect(missing.check()).rejects.toThrow();
    await expect(originAt('', 1000, `http://127.0.0.1:${await closedPort()}`).check()).rejects.toThrow();
  });

  it('a read from a missing bucket is a 502 origin_error, not a 404 for every image', async () => {
    // A bucket deleted or misnamed is the origin's failure: answered as "no such image", every
    // original looked gone, and `register` skipped each key as missing instead of failing.
    const missing = createS3Origin({
      client: clientFor(s3.endpoint),
      location: { bucket: 'nope', prefix: '' },
      timeoutMs: 1000,
    });
    const error = await missing.read('a/photo.jpg', { maxBytes: 1000 }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'origin_error', status: 502 });
    expect((error as Error).message).toContain('NoSuchBucket');
  });

  it('parses s3://bucket/prefix', () => {
    expect(parseS3Url('s3://photos')).toEqual({ bucket: 'photos', prefix: '' });
    expect(parseS3Url('s3://photos/')).toEqual({ bucket: 'photos', prefix: '' });
    expect(parseS3Url('s3://photos/library/2024/')).toEqual({ bucket: 'photos', prefix: 'library/2024/' });
    for (const bad of [
      's3://',
      's3://A_B',
      's3://photos/../x',
      's3://photos/a//b',
      'http://photos',
      's3://p',
    ]) {
      expect(parseS3Url(bad), bad).toBeUndefined();
    }
  });
});
