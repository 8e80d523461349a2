import type { Fit, Transform } from './types.js';

/**
 * The size a transform produces, known before any pixel is decoded, so that policy can clamp
 * previews (SPEC §2) and negotiation can cap AVIF by output pixels. The arithmetic is sharp's
 * own (`ResolveShrink` and the crop/embed stage of its pipeline.cc) for
 * `resize(w, h, { fit, withoutEnlargement: true })` on the displayed (auto-oriented) size.
 * The pipeline asks sharp for exactly this size (see pipeline.ts), and
 * test/unit/images/output-size.test.ts compares both over a randomized grid.
 */

interface Size {
  readonly width: number;
  readonly height: number;
}

/** `fit` only matters when both sides are given; with one side sharp keeps the aspect ratio. */
export function effectiveFit(t: Transform): Fit {
  return t.w !== undefined && t.h !== undefined ? t.fit : 'inside';
}

// libvips rounds a resized side half up (VIPS_ROUND_UINT).
const roundHalfUp = (value: number) => Math.floor(value + 0.5);

/** The size of the resized image before cover's crop or contain's padding. */
export function resizedSize(source: Size, t: Transform): Size {
  const { width, height } = source;
  const fit = effectiveFit(t);
  let hshrink = 1;
  let vshrink = 1;
  if (t.w !== undefined && t.h !== undefined) {
    hshrink = width / t.w;
    vshrink = height / t.h;
    if (fit === 'cover' || fit === 'outside') hshrink = vshrink = Math.min(hshrink, vshrink);
    else if (fit === 'contain' || fit === 'inside') hshrink = vshrink = Math.max(hshrink, vshrink);
  } else if (t.w !== undefined) {
    hshrink = vshrink = width / t.w;
  } else if (t.h !== undefined) {
    hshrink = vshrink = height / t.h;
  }
  // withoutEnlargement: never scale up (SPEC §2); and never shrink a side below one pixel.
  hshrink = Math.min(Math.max(1, hshrink), width);
  vshrink = Math.min(Math.max(1, vshrink), height);
  return {
    width: hshrink === 1 ? width : roundHalfUp(width * (1 / hshrink)),
    height: vshrink === 1 ? height : roundHalfUp(height * (1 / vshrink)),
  };
}

export function predictOutputSize(source: Size, t: Transform): Size {
  const resized = resizedSize(source, t);
  const fit = effectiveFit(t);
  // Contain pads the resized image to the whole box (the image itself is not enlarged); cover
  // crops it to the box, or to the image where the image is the smaller.
  if (fit === 'contain') return { width: t.w ?? resized.width, height: t.h ?? resized.height };
  if (fit === 'cover') {
    return {
      width: Math.min(t.w ?? resized.width, resized.width),
      height: Math.min(t.h ?? resized.height, resized.height),
    };
  }
  return resized;
}

const fits = (size: Size, maxSide: number) => size.width <= maxSide && size.height <= maxSide;

/**
 * The transform changed as little as possible so that both output sides are <= maxSide
 * (previews, SPEC §2): the requested box is scaled down, keeping its proportions, fit and
 * everything else; without a box, `w = h = maxSide` with fit inside. Returns the same object
 * when nothing needs changing.
 */
export function clampTransform(source: Size, t: Transform, maxSide: number): Transform {
  if (fits(predictOutputSize(source, t), maxSide)) return t;
  const fallback: Transform = { ...t, w: maxSide, h: maxSide, fit: 'inside' };
  const longest = Math.max(t.w ?? 0, t.h ?? 0);
  if (longest === 0) return fallback;

  // The box scaled so that its longest side is `side`; the output grows with `side` for every
  // fit, so a binary search finds the largest box that fits.
  const box = (side: number): Transform => ({
    ...t,
    ...(t.w !== undefined && { w: Math.max(1, Math.floor((t.w * side) / longest)) }),
    ...(t.h !== undefined && { h: Math.max(1, Math.floor((t.h * side) / longest)) }),
  });
  // `outside` (or a single side) on a panorama may not fit even with a 1 px box: its output
  // covers the box, so the long side stays long. Then only fitting inside the square helps.
  if (!fits(predictOutputSize(source, box(1)), maxSide)) return fallback;
  let low = 1;
  let high = longest;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (fits(predictOutputSize(source, box(middle)), maxSide)) low = middle;
    else high = middle - 1;
  }
  return box(low);
}
