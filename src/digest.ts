/**
 * The digests pixgate computes, with the fast built-ins where this Node.js has them. Both
 * built-ins are newer than `engines` (>= 20.9): `crypto.hash` is from Node 20.12, `zlib.crc32`
 * from 20.15. A named import of either would fail the whole module at load on an older Node, so
 * they are looked up, not imported, and each has a fallback that gives the same result.
 */
import * as crypto from 'node:crypto';
import * as zlib from 'node:zlib';

type OneShot = (algorithm: string, data: string, encoding: 'base64url') => string;
type Crc32 = (data: Uint8Array, value?: number) => number;

/**
 * base64url(SHA-256(text)): token caches and variant keys, on every cached request.
 * `crypto.hash` does it in one call, about twice as fast as a Hash object for inputs this short.
 */
export function createSha256(oneShot: OneShot | undefined): (text: string) => string {
  if (oneShot) return (text) => oneShot('sha256', text, 'base64url');
  return (text) => crypto.createHash('sha256').update(text).digest('base64url');
}

export const sha256 = createSha256((crypto as { hash?: OneShot }).hash);

/**
 * base64url(SHA-256(bytes)) of a whole original (an upload's identity, a check that bytes are
 * the ones recorded or already judged): on libuv's thread pool (WebCrypto), not the event loop,
 * where 25 MB take about 30 ms that every request in flight would wait out.
 */
export async function sha256OfBytes(bytes: Uint8Array): Promise<string> {
  return Buffer.from(await crypto.webcrypto.subtle.digest('SHA-256', bytes)).toString('base64url');
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, zlib's), table-driven; `value` continues an earlier CRC. */
function crc32Fallback(data: Uint8Array, value = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = ~value;
  for (let i = 0; i < data.length; i++)
    crc = (crcTable[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}

export function createCrc32(builtIn: Crc32 | undefined): Crc32 {
  return builtIn ?? crc32Fallback;
}

/** CRC-32 of disk cache entries (cache/disk-entry.ts). */
export const crc32 = createCrc32((zlib as { crc32?: Crc32 }).crc32);
