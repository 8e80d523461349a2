import type * as Crypto from 'node:crypto';

/**
 * A test that a secret is compared in constant time, in three lines:
 *
 *   import { compared } from '../helpers/timing-safe-equal.js';
 *   vi.mock('node:crypto', async (original) =>
 *     (await import('../helpers/timing-safe-equal.js')).recordingTimingSafeEqual(original));
 *
 * (vi.mock is hoisted above the imports, so its factory imports this module itself: the same
 * instance, and the same `compared`, as the test's own import.)
 */

/** Every `timingSafeEqual(given, expected)` made since the test last emptied it. */
export const compared: [Buffer, Buffer][] = [];

/** node:crypto whose timingSafeEqual records its arguments and passes through to the real one. */
export async function recordingTimingSafeEqual(importOriginal: () => Promise<typeof Crypto>) {
  const crypto = await importOriginal();
  return {
    ...crypto,
    // digest.ts reads crypto.hash, which Node has from 20.12; where it lacks it, the real module
    // reads undefined and a mock throws (no such export): here too, it is undefined.
    hash: (crypto as { hash?: unknown }).hash,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      compared.push([
        Buffer.from(a.buffer, a.byteOffset, a.byteLength),
        Buffer.from(b.buffer, b.byteOffset, b.byteLength),
      ]);
      return crypto.timingSafeEqual(a, b);
    },
  };
}
