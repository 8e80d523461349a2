import type { OutputFormat } from './types.js';

/**
 * `format=auto` (SPEC §4): AVIF, then WebP, only when the client names them explicitly; else
 * JPEG, or PNG when the image has alpha. Wildcards (`image/*`, `*\/*`) do not count: every
 * browser sends them, including ones that cannot decode AVIF.
 */

// RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
const QVALUE = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/;

/** The ranges of an Accept header, lower-cased, with their q; a range with a malformed q is left out. */
export function acceptRanges(accept: string | undefined): { range: string; q: number }[] {
  if (accept === undefined) return [];
  const ranges: { range: string; q: number }[] = [];
  for (const part of accept.split(',')) {
    const [mediaType = '', ...params] = part.split(';').map((piece) => piece.trim());
    let q = 1;
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'q') continue;
      const value = param.slice(eq + 1).trim();
      q = QVALUE.test(value) ? Number(value) : Number.NaN;
    }
    if (!Number.isNaN(q)) ranges.push({ range: mediaType.toLowerCase(), q });
  }
  return ranges;
}

/**
 * How much `ranges` want `type`, named explicitly: 0 when it is not named, or when any entry
 * refuses it (a type listed twice is accepted only if none does: `q=0` wins), else its lowest q.
 */
export function explicitQuality(ranges: readonly { range: string; q: number }[], type: string): number {
  let quality = 0;
  for (const { range, q } of ranges) {
    if (range !== type) continue;
    if (q === 0) return 0;
    quality = quality === 0 ? q : Math.min(quality, q);
  }
  return quality;
}

/** Whether `accept` names `type` explicitly with q > 0 (explicitQuality). */
export function acceptsExplicitly(accept: string | undefined, type: string): boolean {
  return explicitQuality(acceptRanges(accept), type) > 0;
}

/** Animated means kept as an animation in WebP output: several frames of a GIF or WebP. */
export function isAnimated(format: string, pages: number): boolean {
  return pages > 1 && (format === 'gif' || format === 'webp');
}

export function chooseFormat(
  requested: OutputFormat | 'auto',
  accept: string | undefined,
  source: { hasAlpha: boolean; isAnimated: boolean },
  outputPixels: number,
  avifAutoMaxPixels: number,
): OutputFormat {
  if (requested !== 'auto') return requested;
  const ranges = acceptRanges(accept);
  // AVIF encoding of a large output takes seconds here (effort 2: 0.5 s at 1.9 MP, 1.4 s at
  // 4.3 MP), and AVIF output would drop an animation that WebP keeps.
  if (!source.isAnimated && outputPixels <= avifAutoMaxPixels && explicitQuality(ranges, 'image/avif') > 0) {
    return 'avif';
  }
  if (explicitQuality(ranges, 'image/webp') > 0) return 'webp';
  return source.hasAlpha ? 'png' : 'jpeg';
}
