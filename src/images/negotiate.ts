import type { OutputFormat } from './types.js';

/**
 * `format=auto` (SPEC §4): AVIF, then WebP, only when the client names them explicitly; else
 * JPEG, or PNG when the image has alpha. Wildcards (`image/*`, `*\/*`) do not count: every
 * browser sends them, including ones that cannot decode AVIF.
 */

// RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
const QVALUE = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/;

/**
 * Whether `accept` names `type` explicitly with q > 0. A range with a malformed q counts for
 * nothing; a type listed twice is accepted only if no entry refuses it (`q=0` wins).
 */
export function acceptsExplicitly(accept: string | undefined, type: string): boolean {
  if (accept === undefined) return false;
  let accepted = false;
  for (const range of accept.split(',')) {
    const [mediaType = '', ...params] = range.split(';').map((part) => part.trim());
    if (mediaType.toLowerCase() !== type) continue;
    let q = 1;
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'q') continue;
      const value = param.slice(eq + 1).trim();
      q = QVALUE.test(value) ? Number(value) : Number.NaN;
    }
    if (Number.isNaN(q)) continue;
    if (q === 0) return false;
    accepted = true;
  }
  return accepted;
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
  // AVIF encoding of a large output takes seconds here (effort 2: 0.5 s at 1.9 MP, 1.4 s at
  // 4.3 MP), and AVIF output would drop an animation that WebP keeps.
  if (!source.isAnimated && outputPixels <= avifAutoMaxPixels && acceptsExplicitly(accept, 'image/avif')) {
    return 'avif';
  }
  if (acceptsExplicitly(accept, 'image/webp')) return 'webp';
  return source.hasAlpha ? 'png' : 'jpeg';
}
