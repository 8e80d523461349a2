import { gunzipSync } from 'node:zlib';
import { AppError } from '../errors.js';

/**
 * librsvg draws an image an SVG embeds as a `data:` URL (`<image>`, `<feImage>`, `<use>` of a
 * document, XInclude, CSS `@import`, a stylesheet instruction) at the embedded image's own size,
 * and libvips's pixel limit counts only the SVG's canvas: a 65 KB SVG of 40 × 30 holding a
 * 20000² PNG took 3.6 GB and 17 s to render. librsvg has no limit of its own for them, and from
 * a Buffer (decode.ts) a `data:` URL is the only resource it loads. So an SVG that could reach
 * one is refused, found by over-approximation rather than by parsing as librsvg would: every
 * spelling XML and CSS allow (character references, CSS escapes, a comment or CDATA splitting
 * the word) is undone before the search, and what could spell anything (an entity declaration,
 * an encoding other than UTF-8 or a superset of ASCII) is refused outright. A drawing whose
 * text says "data: …" is refused too: the price of not parsing.
 */
export function refuseSvgResources(input: Buffer): void {
  const text = svgText(input);
  if (/<!ENTITY/i.test(text)) throw refused('SVG images that declare entities are not supported');
  // Bounded: an unbounded `[^>]*` would rescan the rest of the file at every "<?xml" (ReDoS).
  const encoding = /<\?xml\b[^>]{0,256}?\bencoding\s*=\s*["']([^"']{0,64})["']/i.exec(text)?.[1];
  if (encoding !== undefined && !/^(utf-?8|us-ascii|ascii|iso-8859-1|latin1)$/i.test(encoding)) {
    throw refused(NOT_UTF8);
  }
  const unspelled = undoCssEscapes(
    undoXmlReferences(withoutComments(text).replace(/<!\[CDATA\[|\]\]>/g, '')),
  );
  // A URL scheme starts at a boundary ("metadata:" is none). Whatever follows counts: a
  // loader may sniff the bytes whatever the media type says.
  if (/(^|[^a-z0-9+.-])data\s*:/i.test(unspelled)) {
    throw refused('SVG images that load other images or documents (data: URLs) are not supported');
  }
}

const NOT_UTF8 = 'SVG images must be UTF-8 (or ASCII, or ISO-8859-1)';
/** Far beyond any drawing; librsvg itself refuses XML documents over a few MB unless `unlimited`. */
const MAX_INFLATED_BYTES = 32 * 1024 * 1024;

const refused = (message: string) => new AppError('unprocessable_image', message);

/** The document as librsvg reads it: svgz inflated, in an encoding where "data:" is ASCII. */
function svgText(input: Buffer): string {
  let bytes = input;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: MAX_INFLATED_BYTES });
    } catch (error) {
      throw new AppError('unprocessable_image', 'The image is corrupt', { detail: 'svgz', cause: error });
    }
  }
  // UTF-16 and UTF-32 (with or without a byte order mark) put NUL bytes between the letters;
  // EBCDIC, which libxml2 detects too, has none, but its "<" is no ASCII "<".
  const text = bytes.toString('latin1').replace(/^\xef\xbb\xbf/, '');
  if (bytes.includes(0) || !text.trimStart().startsWith('<')) throw refused(NOT_UTF8);
  return text;
}

/**
 * Comments removed, so that one splitting a word (`da<!-- -->ta:`) joins it. By hand: a lazy
 * regex would rescan the rest of the file at every unclosed "<!--" (quadratic, ReDoS).
 */
function withoutComments(text: string): string {
  let kept = '';
  let at = 0;
  for (;;) {
    const start = text.indexOf('<!--', at);
    if (start === -1) return kept + text.slice(at);
    kept += text.slice(at, start);
    const end = text.indexOf('-->', start + 4);
    // Unclosed: it runs to the end (libxml2 refuses such a file anyway).
    if (end === -1) return kept;
    at = end + 3;
  }
}

const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function undoXmlReferences(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (whole, name: string) => {
    if (!name.startsWith('#')) return PREDEFINED[name.toLowerCase()] ?? whole;
    const code =
      name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

/** `\61` and `\61 ` are "a" in CSS (up to six hex digits, one space after); `\t` is "t". */
function undoCssEscapes(text: string): string {
  return text.replace(
    /\\([0-9a-f]{1,6})\s?|\\([\s\S])/gi,
    (whole, hex: string | undefined, other: string | undefined) => {
      if (other !== undefined) return other;
      const code = Number.parseInt(hex ?? '', 16);
      return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    },
  );
}
