import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors.js';
import type { Origin } from '../../../src/origins/origin.js';

/**
 * One suite for every Origin (file, S3, HTTP): what a caller of `read` may rely on whatever the
 * backend. Failure scenarios a backend cannot have (a local directory is never "slow" nor asks
 * for credentials) are left out by its fixture rather than skipped, and each fixture says why.
 */
export interface SeededOrigin {
  readonly origin: Origin;
  /** Puts bytes where the origin reads `key` from, by the backend's own means. */
  put(key: string, bytes: Buffer): Promise<void>;
}

export interface OriginFixture {
  /** A working origin whose reads give up after `timeoutMs`. */
  open(timeoutMs: number): Promise<SeededOrigin>;
  /** An origin whose backend accepts the connection and never answers. */
  slow?(timeoutMs: number): Promise<Origin>;
  /** An origin whose backend is not listening. */
  down?(): Promise<Origin>;
  /** An origin whose backend refuses pixgate's credentials (401 or 403), and those credentials. */
  refusing?(): Promise<{ origin: Origin; secrets: readonly string[] }>;
  close?(): Promise<void>;
}

const TIMEOUT_MS = 400;
const MAX = 64 * 1024;

async function failure(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected the read to fail');
}

export function describeOriginConformance(name: string, fixture: () => OriginFixture): void {
  describe(`Origin conformance: ${name}`, () => {
    const current = fixture();

    it('reads back exactly the bytes stored, with an identity', async () => {
      const { origin, put } = await current.open(TIMEOUT_MS);
      const bytes = randomBytes(12_000);
      await put('a/b/photo.jpg', bytes);
      const first = await origin.read('a/b/photo.jpg', { maxBytes: MAX });
      expect(Buffer.compare(first.body, bytes)).toBe(0);
      first.release?.();
      expect(first.etag ?? first.lastModified).toBeDefined();
      const again = await origin.read('a/b/photo.jpg', { maxBytes: MAX });
      expect(again.etag).toBe(first.etag);
      expect(again.lastModified?.getTime()).toBe(first.lastModified?.getTime());
    });

    it('gives another identity once the object changed', async () => {
      const { origin, put } = await current.open(TIMEOUT_MS);
      await put('changing.png', randomBytes(100));
      const before = await origin.read('changing.png', { maxBytes: MAX });
      // Past one second: LastModified has whole-second precision in S3 and HTTP dates.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const changed = randomBytes(120);
      await put('changing.png', changed);
      const after = await origin.read('changing.png', { maxBytes: MAX });
      expect(Buffer.compare(after.body, changed)).toBe(0);
      if (before.etag !== undefined) expect(after.etag).not.toBe(before.etag);
      else expect(after.lastModified?.getTime()).not.toBe(before.lastModified?.getTime());
    });

    it('answers a missing key with not_found (404 for the caller)', async () => {
      const { origin } = await current.open(TIMEOUT_MS);
      const error = await failure(origin.read('no/such/key.jpg', { maxBytes: MAX }));
      expect(error.code).toBe('not_found');
      expect(error.status).toBe(404);
    });

    it('refuses an original over the size limit without keeping it', async () => {
      const { origin, put } = await current.open(TIMEOUT_MS);
      await put('big.bin', randomBytes(MAX + 1));
      const error = await failure(origin.read('big.bin', { maxBytes: MAX }));
      expect(error.code).toBe('origin_error');
      expect(error.status).toBe(502);
      // Exactly at the limit is fine.
      await put('edge.bin', randomBytes(MAX));
      expect((await origin.read('edge.bin', { maxBytes: MAX })).body.length).toBe(MAX);
    });

    it('refuses keys that are not plain relative paths, before any request', async () => {
      const { origin } = await current.open(TIMEOUT_MS);
      for (const key of [
        '../etc/passwd',
        'a/../../b',
        '/abs',
        '%2e%2e/x',
        '//evil.test/x',
        'http://169.254.169.254/x',
        'a\\b',
      ]) {
        const error = await failure(origin.read(key, { maxBytes: MAX }));
        expect(error.code, key).toBe('invalid_request');
      }
    });

    if (current.slow) {
      const slow = current.slow.bind(current);
      it('gives up on a slow origin with origin_timeout (504) after the timeout', async () => {
        const origin = await slow(TIMEOUT_MS);
        const started = Date.now();
        const error = await failure(origin.read('photo.jpg', { maxBytes: MAX }));
        expect(error.code).toBe('origin_timeout');
        expect(error.status).toBe(504);
        const elapsed = Date.now() - started;
        expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 20);
        expect(elapsed).toBeLessThan(TIMEOUT_MS + 1500);
      });
    }

    if (current.down) {
      const down = current.down.bind(current);
      it('answers origin_error (502) quickly when the origin is down', async () => {
        const origin = await down();
        const started = Date.now();
        const error = await failure(origin.read('photo.jpg', { maxBytes: MAX }));
        expect(error.code).toBe('origin_error');
        expect(error.status).toBe(502);
        expect(Date.now() - started).toBeLessThan(5000);
      });
    }

    if (current.refusing) {
      const refusing = current.refusing.bind(current);
      it('answers origin_error (502) when the origin refuses the credentials, saying so without them', async () => {
        const { origin, secrets } = await refusing();
        const error = await failure(origin.read('photo.jpg', { maxBytes: MAX }));
        expect(error.code).toBe('origin_error');
        expect(error.status).toBe(502);
        // The message is what the server logs (the client only gets the public message).
        expect(error.message).toMatch(/refused pixgate's credentials \((401|403)/);
        for (const secret of secrets) expect(error.message).not.toContain(secret);
        expect(error.publicMessage).not.toMatch(/credential|401|403/);
        expect(error.cause).toBeUndefined();
      });
    }
  });
}
