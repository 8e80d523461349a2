import { crc32 } from '../digest.js';
import type { Variant } from './variant-cache.js';

/**
 * The bytes of one disk cache entry, version 1 (all integers big-endian):
 *
 *   offset  size  field
 *   0       4     magic "PXGV"
 *   4       1     format version, 1
 *   5       1     n = length of the content type
 *   6       4     width
 *   10      4     height
 *   14      4     b = length of the body
 *   18      n     content type, ASCII
 *   18+n    b     body
 *   18+n+b  4     CRC-32 of every byte before it
 *
 * The lengths catch a truncated file, the CRC a torn or zero-filled one (a crash after the
 * rename but before the data reached the disk): either is a miss, never a broken image.
 */

const MAGIC = Buffer.from('PXGV', 'latin1');
const VERSION = 1;
const HEADER_BYTES = 18;
const TRAILER_BYTES = 4;
const MAX_U32 = 0xffff_ffff;
/** What `type/subtype` looks like, in the bytes a header may hold. */
const CONTENT_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$/i;

/** Bytes an entry takes beyond its body and content type. */
export const ENTRY_OVERHEAD_BYTES = HEADER_BYTES + TRAILER_BYTES;

/** The file's bytes, or undefined when the variant cannot be represented (then it is not cached). */
export function encodeEntry(variant: Variant): Buffer | undefined {
  const { body, contentType, width, height } = variant;
  if (!CONTENT_TYPE.test(contentType)) return undefined;
  if (!isU32(width) || !isU32(height) || body.length > MAX_U32) return undefined;
  const header = Buffer.alloc(HEADER_BYTES + contentType.length);
  MAGIC.copy(header, 0);
  header.writeUInt8(VERSION, 4);
  header.writeUInt8(contentType.length, 5);
  header.writeUInt32BE(width, 6);
  header.writeUInt32BE(height, 10);
  header.writeUInt32BE(body.length, 14);
  header.write(contentType, HEADER_BYTES, 'latin1');
  const trailer = Buffer.alloc(TRAILER_BYTES);
  trailer.writeUInt32BE(crc32(body, crc32(header)), 0);
  return Buffer.concat([header, body, trailer]);
}

/** The variant, or undefined when the bytes are not exactly one valid version-1 entry. */
export function decodeEntry(data: Buffer): Variant | undefined {
  if (data.length < HEADER_BYTES + TRAILER_BYTES) return undefined;
  if (!data.subarray(0, 4).equals(MAGIC) || data.readUInt8(4) !== VERSION) return undefined;
  const typeLength = data.readUInt8(5);
  const bodyStart = HEADER_BYTES + typeLength;
  const bodyLength = data.readUInt32BE(14);
  if (data.length !== bodyStart + bodyLength + TRAILER_BYTES) return undefined;
  const end = bodyStart + bodyLength;
  if (crc32(data.subarray(0, end)) !== data.readUInt32BE(end)) return undefined;
  const contentType = data.toString('latin1', HEADER_BYTES, bodyStart);
  if (!CONTENT_TYPE.test(contentType)) return undefined;
  return {
    // A copy-free view: the file's buffer belongs to this read alone.
    body: data.subarray(bodyStart, end),
    contentType,
    width: data.readUInt32BE(6),
    height: data.readUInt32BE(10),
  };
}

function isU32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= MAX_U32;
}
