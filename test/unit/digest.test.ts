import { createHash, hash } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createCrc32, createSha256, sha256 } from '../../src/digest.js';

describe('sha256', () => {
  const text = 'pixgate-variant-v1\n22:aaaaaaaaaaaaaaaaaaaaaa\n1:1\n5:w=360\n4:jpeg\n';
  const expected = createHash('sha256').update(text).digest('base64url');

  it('is base64url(SHA-256) of the UTF-8 text', () => {
    expect(sha256(text)).toBe(expected);
    expect(sha256('é')).toBe(createHash('sha256').update('é', 'utf8').digest('base64url'));
  });

  it('gives the same digest without crypto.hash (Node before 20.12) as with it', () => {
    expect(createSha256(undefined)(text)).toBe(expected);
    expect(createSha256(hash)(text)).toBe(expected);
  });
});

describe('crc32', () => {
  const fallback = createCrc32(undefined);

  it('without zlib.crc32 (Node before 20.15) is zlib’s CRC-32, continued the same way', () => {
    // The check value of CRC-32/ISO-HDLC.
    expect(fallback(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(fallback(new Uint8Array(0))).toBe(0);
    const header = Buffer.from('PXGV\u0001header');
    const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31 + 7) & 0xff));
    expect(fallback(body, fallback(header))).toBe(zlibCrc32(body, zlibCrc32(header)));
    expect(fallback(Buffer.concat([header, body]))).toBe(zlibCrc32(Buffer.concat([header, body])));
  });
});
