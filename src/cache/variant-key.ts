import { sha256 } from '../digest.js';
import type { VariantKey } from './variant-cache.js';

/** Image ids are server-made base64url (SPEC §1); cache layers build paths and keys from them. */
const BASE64URL_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The identity of a variant: the image id, its version (bumped on revocation, so old variants
 * become unreachable at once), the canonical transform, the output format, and the settings the
 * render depends on (images/pipeline.ts `renderSettings`: a new watermark text or frame cap must
 * not be answered from a disk cache that outlived the restart).
 *
 * hash = base64url(SHA-256(encoding)), where the encoding is the tag `pixgate-variant-v2`
 * followed by each field as `<UTF-8 byte length>:<bytes>\n`, in the order id, version,
 * transform, format, render settings. Length prefixes make it unambiguous whatever the fields contain (a
 * transform with a newline or a colon cannot pass for another split of the same bytes); the
 * tag makes a future change of scheme change every key.
 */
export function variantKey(
  image: { readonly id: string; readonly version: number },
  canonicalTransform: string,
  format: string,
  renderSettings: string,
): VariantKey {
  // Programmer mistakes, not user input: ids and versions come from the store.
  if (!BASE64URL_ID.test(image.id)) throw new TypeError('Expected a base64url image id');
  if (!Number.isSafeInteger(image.version) || image.version < 1) {
    throw new TypeError(`Expected a positive integer version but received ${image.version}`);
  }
  let encoding = 'pixgate-variant-v2\n';
  for (const field of [image.id, String(image.version), canonicalTransform, format, renderSettings]) {
    encoding += `${Buffer.byteLength(field, 'utf8')}:${field}\n`;
  }
  // One-shot hash of the whole encoding: computed on every image request.
  return { imageId: image.id, hash: sha256(encoding) };
}

/** The strong ETag of a variant (SPEC §4): its hash, which already names id, version, format and settings. */
export function etagOf(key: VariantKey): string {
  return `"${key.hash}"`;
}
