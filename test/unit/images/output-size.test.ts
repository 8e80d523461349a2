import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { clampTransform, predictOutputSize } from '../../../src/images/output-size.js';
import { createPipeline } from '../../../src/images/pipeline.js';
import type { Fit, OutputFormat, Transform } from '../../../src/images/types.js';
import { random, type SourceKind, type Synth, synth } from '../../helpers/images.js';

const fits: readonly Fit[] = ['cover', 'contain', 'fill', 'inside', 'outside'];
const pipeline = createPipeline({ maxInputPixels: 50_000_000, maxFrames: 10, avifEffort: 0 });

/** What the pipeline really produces, one frame. */
async function rendered(source: Synth, transform: Transform) {
  // Animated sources render to WebP, which keeps the frames; JPEG elsewhere (fastest).
  const format: OutputFormat = source.pages > 1 ? 'webp' : 'jpeg';
  const variant = await pipeline.render(source.body, { transform, format, quality: 50 }, source);
  const meta = await sharp(variant.body).metadata();
  expect({ width: meta.width, height: meta.pageHeight ?? meta.height }).toStrictEqual({
    width: variant.width,
    height: variant.height,
  });
  if (source.pages > 1) expect(meta.pages).toBe(source.pages);
  return { width: variant.width, height: variant.height };
}

/** The normalized transforms of a source: only w, only h, both with every fit, boxes above and below it. */
function transformsFor(source: { width: number; height: number }, next: (n: number) => number): Transform[] {
  const side = () => (next(4) === 0 ? 1 + next(3) : 1 + next(Math.max(source.width, source.height) + 60));
  const list: Transform[] = [
    { w: side(), fit: 'inside', format: 'auto' },
    { h: side(), fit: 'inside', format: 'auto' },
    { w: source.width + 1 + next(50), fit: 'inside', format: 'auto' },
    { fit: 'inside', format: 'auto' },
  ];
  for (const fit of fits) {
    list.push({ w: side(), h: side(), fit, format: 'auto' });
    // A box larger than the image on both sides: never enlarged.
    list.push({ w: source.width + next(40), h: source.height + next(40), fit, format: 'auto' });
  }
  return list;
}

const kinds: readonly SourceKind[] = [
  'png',
  'png-alpha',
  'jpeg',
  'jpeg-rotated',
  'webp',
  'gif',
  'gif-animated',
];

describe('predictOutputSize', () => {
  it('is sharp resize(w, h, { fit, withoutEnlargement }) exactly, without shrink-on-load (PNG)', async () => {
    const next = random(1);
    let cases = 0;
    for (let i = 0; i < 40; i++) {
      const width = 1 + next(150);
      const height = 1 + next(150);
      const source = await synth('png', width, height);
      await Promise.all(
        transformsFor(source, next).map(async (transform) => {
          const { info } = await sharp(source.body)
            .resize(transform.w, transform.h, { fit: transform.fit, withoutEnlargement: true })
            .raw()
            .toBuffer({ resolveWithObject: true });
          expect({ case: transform, size: predictOutputSize(source, transform) }).toStrictEqual({
            case: transform,
            size: { width: info.width, height: info.height },
          });
          cases++;
        }),
      );
    }
    expect(cases).toBe(40 * 14);
  });

  it('matches the pipeline over a randomized grid of sources, fits and boxes', async () => {
    const next = random(7);
    let cases = 0;
    for (const kind of kinds) {
      for (let i = 0; i < 10; i++) {
        // Mostly small; some tiny and some extreme proportions (a 1 px side must survive).
        const shape = next(6);
        const width = shape === 0 ? 1 + next(3) : 1 + next(shape === 1 ? 400 : 120);
        const height = shape === 1 ? 1 + next(3) : 1 + next(120);
        const source = await synth(kind, width, height);
        // In parallel: libuv runs several sharp tasks at once, which halves the test's time.
        await Promise.all(
          transformsFor(source, next).map(async (transform) => {
            const predicted = predictOutputSize(source, transform);
            const size = await rendered(source, transform);
            expect({ kind, source: [width, height], transform, size }).toStrictEqual({
              kind,
              source: [width, height],
              transform,
              size: predicted,
            });
            expect(predicted.width).toBeGreaterThanOrEqual(1);
            expect(predicted.height).toBeGreaterThanOrEqual(1);
            cases++;
          }),
        );
      }
    }
    expect(cases).toBe(kinds.length * 10 * 14);
  });

  it.each<[string, Transform, { width: number; height: number }]>([
    ['w only', { w: 400, fit: 'inside', format: 'auto' }, { width: 400, height: 300 }],
    ['h only', { h: 300, fit: 'inside', format: 'auto' }, { width: 400, height: 300 }],
    ['inside', { w: 400, h: 400, fit: 'inside', format: 'auto' }, { width: 400, height: 300 }],
    ['outside', { w: 400, h: 400, fit: 'outside', format: 'auto' }, { width: 533, height: 400 }],
    ['cover', { w: 400, h: 400, fit: 'cover', format: 'auto' }, { width: 400, height: 400 }],
    ['contain', { w: 400, h: 400, fit: 'contain', format: 'auto' }, { width: 400, height: 400 }],
    ['fill', { w: 400, h: 100, fit: 'fill', format: 'auto' }, { width: 400, height: 100 }],
    ['never enlarged: w', { w: 8000, fit: 'inside', format: 'auto' }, { width: 4000, height: 3000 }],
    [
      'never enlarged: cover',
      { w: 8000, h: 100, fit: 'cover', format: 'auto' },
      { width: 4000, height: 100 },
    ],
    ['never enlarged: fill', { w: 8000, h: 100, fit: 'fill', format: 'auto' }, { width: 4000, height: 100 }],
    // Contain pads to the box even when the image itself is not enlarged (sharp's behaviour).
    ['contain pads', { w: 8000, h: 8000, fit: 'contain', format: 'auto' }, { width: 8000, height: 8000 }],
    ['no box', { fit: 'inside', format: 'auto' }, { width: 4000, height: 3000 }],
  ])('%s on 4000×3000', (_name, transform, size) => {
    expect(predictOutputSize({ width: 4000, height: 3000 }, transform)).toStrictEqual(size);
  });
});

describe('clampTransform', () => {
  const big = { width: 4000, height: 3000 };

  it('returns the same object when the output already fits', () => {
    const small: Transform = { w: 300, fit: 'inside', format: 'webp', q: 60 };
    expect(clampTransform(big, small, 360)).toBe(small);
    const tiny: Transform = { fit: 'inside', format: 'auto' };
    expect(clampTransform({ width: 200, height: 360 }, tiny, 360)).toBe(tiny);
    const padded: Transform = { w: 360, h: 360, fit: 'contain', format: 'auto' };
    expect(clampTransform({ width: 10, height: 10 }, padded, 360)).toBe(padded);
  });

  it.each<[string, Transform, Transform]>([
    ['no box', { fit: 'inside', format: 'auto' }, { w: 360, h: 360, fit: 'inside', format: 'auto' }],
    ['w only', { w: 1000, fit: 'inside', format: 'auto' }, { w: 360, fit: 'inside', format: 'auto' }],
    [
      'h only, keeps the rest',
      { h: 1000, fit: 'inside', format: 'avif', q: 40, blur: 2 },
      { h: 270, fit: 'inside', format: 'avif', q: 40, blur: 2 },
    ],
    [
      'cover keeps the crop proportions',
      { w: 1000, h: 500, fit: 'cover', format: 'auto' },
      { w: 360, h: 180, fit: 'cover', format: 'auto' },
    ],
    [
      'contain',
      { w: 4096, h: 2048, fit: 'contain', format: 'auto' },
      { w: 360, h: 180, fit: 'contain', format: 'auto' },
    ],
    [
      'fill',
      { w: 500, h: 1000, fit: 'fill', format: 'auto' },
      { w: 180, h: 360, fit: 'fill', format: 'auto' },
    ],
    [
      'inside',
      { w: 2000, h: 2000, fit: 'inside', format: 'auto' },
      { w: 360, h: 360, fit: 'inside', format: 'auto' },
    ],
    // Outside covers the box: a square box gives 480×360 for 4:3, so the box shrinks to 270.
    [
      'outside',
      { w: 2000, h: 2000, fit: 'outside', format: 'auto' },
      { w: 270, h: 270, fit: 'outside', format: 'auto' },
    ],
  ])('%s', (_name, transform, clamped) => {
    const result = clampTransform(big, transform, 360);
    expect(result).toStrictEqual(clamped);
    const size = predictOutputSize(big, result);
    expect(Math.max(size.width, size.height)).toBe(360);
  });

  it('falls back to fitting inside the square when even a 1 px box overflows (outside on a panorama)', () => {
    const panorama = { width: 12000, height: 10 };
    for (const transform of [
      { w: 100, h: 100, fit: 'outside', format: 'auto' },
      { h: 5, fit: 'inside', format: 'auto' },
    ] as Transform[]) {
      const result = clampTransform(panorama, transform, 360);
      expect(result).toStrictEqual({ w: 360, h: 360, fit: 'inside', format: 'auto' });
      expect(predictOutputSize(panorama, result)).toStrictEqual({ width: 360, height: 1 });
    }
  });

  it('keeps the real output within maxSide for many random cases, scaling down no more than needed', async () => {
    const next = random(3);
    let clamped = 0;
    let reachingMaxSide = 0;
    for (const kind of ['png', 'jpeg', 'jpeg-rotated', 'webp'] as const) {
      for (let i = 0; i < 8; i++) {
        const width = 1 + next(160);
        const height = 1 + next(160);
        const source = await synth(kind, width, height);
        const cases = transformsFor(source, next).map((transform) => ({ transform, maxSide: 8 + next(60) }));
        await Promise.all(
          cases.map(async ({ transform, maxSide }) => {
            const result = clampTransform(source, transform, maxSide);
            const size = await rendered(source, result);
            const fits = size.width <= maxSide && size.height <= maxSide;
            expect({ kind, source: [width, height], transform, maxSide, fits }).toStrictEqual({
              kind,
              source: [width, height],
              transform,
              maxSide,
              fits: true,
            });
            const before = predictOutputSize(source, transform);
            if (before.width <= maxSide && before.height <= maxSide) {
              expect(result).toBe(transform);
              return;
            }
            clamped++;
            if (Math.max(size.width, size.height) === maxSide) reachingMaxSide++;
            // Only the box changes (or, for the fallback, becomes the maxSide square).
            expect({ ...result, w: undefined, h: undefined, fit: undefined }).toStrictEqual({
              ...transform,
              w: undefined,
              h: undefined,
              fit: undefined,
            });
          }),
        );
      }
    }
    expect(clamped).toBeGreaterThan(100);
    // Proportional boxes are whole pixels, so a few land a pixel short; most reach maxSide.
    expect(reachingMaxSide / clamped).toBeGreaterThan(0.9);
  });
});
