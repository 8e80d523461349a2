/**
 * The JSON (data URI) form of an image (SPEC §3.4): `Accept: application/json` on an image URL
 * answers `{ mimeType, base64Content, width, height }`, so a page can build a `data:` URL from a
 * fetch that carried `Authorization`. The same URL without it answers bytes (for a blob URL).
 */
import type { FastifyReply } from 'fastify';
import { AppError } from '../errors.js';
import { acceptRanges, explicitQuality } from '../images/negotiate.js';

/**
 * Only when named explicitly: `*\/*` (every fetch's default) must keep meaning bytes. And only
 * when preferred at least as much as the bytes (RFC 9110 §12.4.2): `image/webp,
 * application/json;q=0.1` asks for an image, with JSON as a poor second. A tie is the JSON form
 * (`application/json, image/webp`: the JSON form of a WebP, as loadAsDataUri asks).
 */
export function wantsJsonForm(accept: string | undefined): boolean {
  const ranges = acceptRanges(accept);
  const json = explicitQuality(ranges, 'application/json');
  if (json === 0) return false;
  const image = Math.max(
    0,
    ...ranges.filter(({ range }) => range.startsWith('image/') || range === '*/*').map(({ q }) => q),
  );
  return json >= image;
}

/**
 * Another representation of the same variant needs another strong ETag (RFC 9110 §8.8.3): a
 * cache holding the bytes must never answer a JSON revalidation with a 304, nor the reverse.
 */
export const jsonFormEtag = (etag: string) => etag.replace(/"$/, '.json"');

export function outputTooLarge(bytes: number, maxBytes: number): AppError {
  return new AppError(
    'output_too_large',
    `The image is ${bytes} bytes, over the JSON form's cap of ${maxBytes}: fetch the bytes instead (a blob URL) or ask for a smaller variant`,
  );
}

/** The cap applies to the image bytes before base64 (the JSON is about 4/3 of it). */
export function sendJsonForm(
  reply: FastifyReply,
  image: { body: Buffer; contentType: string; width: number; height: number },
  maxBytes: number,
) {
  if (image.body.length > maxBytes) throw outputTooLarge(image.body.length, maxBytes);
  return reply.type('application/json; charset=utf-8').send(
    JSON.stringify({
      mimeType: image.contentType,
      base64Content: image.body.toString('base64'),
      width: image.width,
      height: image.height,
    }),
  );
}
