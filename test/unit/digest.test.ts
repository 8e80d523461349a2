import * as crypto from 'node:crypto';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createCrc32, createSha256, sha256 } from '../../src/digest.js';

// Looked up, as src/digest.ts does: Node before 20.12 has no crypto.hash, before 20.15 no
// zlib.crc32, and the suite runs on the oldest Node `engines` allows too.
const { createHash } = crypto;
const builtInHash = (crypto as { hash?: Parameters<typeof createSha256>[0] }).hash;
const builtInCrc32 = (zlib as { crc32?: Parameters<typeof createCrc32>[0] }).crc32;

describe('sha256', () => {
  const text = 'pixgate-variant-v1\n22:aaaaaaaaaaaaaaaaaaaaaa\n1:1\n5:w=360\n4:jpeg\n';
  const expected = createHash('sha256').update(text).digest('base64url');

  it('is base64url(SHA-256) of the UTF-8 text', () => {
    expect(sha256(text)).toBe(expected);
    expect(sha256('é')).toBe(createHash('sha256').update('é', 'utf8').digest('base64url'));
  });

  it('gives the same digest without crypto.hash (Node before 20.12)', () => {
    expect(createSha256(undefined)(text)).toBe(expected);
  });

  it.skipIf(!builtInHash)('gives the same digest with crypto.hash (Node 20.12 and later)', () => {
    expect(createSha256(builtInHash)(text)).toBe(expected);
  });
});

describe('crc32', () => {
  const fallback = createCrc32(undefined);

  const header = Buffer.from('PXGV\u0001header');
  const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31 + 7) & 0xff));

  it('without zlib.crc32 (Node before 20.15) is CRC-32/ISO-HDLC, continued across calls', () => {
    // The check value of CRC-32/ISO-HDLC (zlib's).
    expect(fallback(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(fallback(new Uint8Array(0))).toBe(0);
    expect(fallback(body, fallback(header))).toBe(fallback(Buffer.concat([header, body])));
  });

  it.skipIf(!builtInCrc32)('gives what zlib.crc32 gives (Node 20.15 and later)', () => {
    const zlibCrc32 = builtInCrc32 as NonNullable<typeof builtInCrc32>;
    expect(fallback(body, fallback(header))).toBe(zlibCrc32(body, zlibCrc32(header)));
    expect(fallback(Buffer.concat([header, body]))).toBe(zlibCrc32(Buffer.concat([header, body])));
  });
});
