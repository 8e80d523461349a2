import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { etagOf, variantKey } from '../../../src/cache/variant-key.js';

const image = { id: 'Zm9vYmFyYmF6cXV4cXV1eA', version: 1 };

describe('variantKey', () => {
  it('hashes the documented length-prefixed encoding', () => {
    const key = variantKey(image, 'w=360,fit=inside', 'webp', '{"maxFrames":100}');
    const expected = createHash('sha256')
      .update(
        'pixgate-variant-v2\n22:Zm9vYmFyYmF6cXV4cXV1eA\n1:1\n16:w=360,fit=inside\n4:webp\n17:{"maxFrames":100}\n',
      )
      .digest('base64url');
    expect(key).toEqual({ imageId: image.id, hash: expected });
    expect(key.hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('is stable and changes with every field', () => {
    const base = variantKey(image, 'w=360', 'webp', 's').hash;
    expect(variantKey({ ...image }, 'w=360', 'webp', 's').hash).toBe(base);
    const others = [
      variantKey({ ...image, id: 'Zm9vYmFyYmF6cXV4cXV1eB' }, 'w=360', 'webp', 's'),
      variantKey({ ...image, version: 2 }, 'w=360', 'webp', 's'),
      variantKey(image, 'w=361', 'webp', 's'),
      variantKey(image, 'w=360', 'avif', 's'),
      variantKey(image, 'w=360', 'webp', 't'),
    ].map((key) => key.hash);
    expect(new Set([base, ...others]).size).toBe(6);
  });

  it('cannot be confused by moving bytes between fields', () => {
    // With plain separators these would encode to the same text.
    const a = variantKey(image, 'w=360\nwebp', '', 's');
    const b = variantKey(image, 'w=360', 'webp', 's');
    const c = variantKey(image, 'w=360\n4:webp', '', 's');
    expect(new Set([a.hash, b.hash, c.hash]).size).toBe(3);
  });

  it('counts lengths in UTF-8 bytes, not UTF-16 units', () => {
    // 'é' is 2 bytes and 1 UTF-16 unit, '😀' 4 bytes and 2 units: 'text=é😀' is 11 bytes, 8 units.
    const key = variantKey(image, 'text=é😀', 'webp', 'wm=©');
    const expected = createHash('sha256')
      .update('pixgate-variant-v2\n22:Zm9vYmFyYmF6cXV4cXV1eA\n1:1\n11:text=é😀\n4:webp\n5:wm=©\n', 'utf8')
      .digest('base64url');
    expect(key.hash).toBe(expected);
  });

  it('refuses ids that are not base64url and bad versions', () => {
    for (const id of ['', '../etc', 'a/b', 'a.b', 'x'.repeat(129)]) {
      expect(() => variantKey({ id, version: 1 }, 'w=1', 'png', 's')).toThrow(TypeError);
    }
    for (const version of [0, -1, 1.5, Number.NaN]) {
      expect(() => variantKey({ ...image, version }, 'w=1', 'png', 's')).toThrow(
        `Expected a positive integer version but received ${version}`,
      );
    }
  });
});

describe('etagOf', () => {
  it('is the hash as a strong ETag', () => {
    const key = variantKey(image, 'w=360', 'webp', 's');
    expect(etagOf(key)).toBe(`"${key.hash}"`);
    expect(etagOf(key)).not.toMatch(/^W\//);
  });
});
