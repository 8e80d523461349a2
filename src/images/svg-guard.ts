import { gunzipSync } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import { sha256OfBytes } from '../digest.js';
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
  const unspelled = undoCssEscapes(undoXmlReferences(withoutCommentsOrCdata(text)));
  // A URL scheme starts at a boundary ("metadata:" is none). Whatever follows counts: a
  // loader may sniff the bytes whatever the media type says. A URL parser (librsvg's too)
  // drops tabs and newlines anywhere in a URL ("da&#9;ta:" is "data:"), and so does CSS after
  // a backslash in a string or as the one whitespace ending a hex escape ("\\64\r\n").
  if (/(^|[^a-z0-9+.-])d[\t\n\r\f]*a[\t\n\r\f]*t[\t\n\r\f]*a\s*:/i.test(unspelled)) {
    throw refused('SVG images that load other images or documents (data: URLs) are not supported');
  }
}

/**
 * SVGs that passed, by the SHA-256 of their bytes. Not by image id and recorded identity: a
 * render does not check what the origin gave against that identity (only sending the original
 * does, variants.ts), so an SVG replaced at its origin by one embedding an image would be trusted
 * under its old identity. The guard runs on the event loop, up to seconds for a large SVG full of
 * escapes; hashing runs on the thread pool.
 */
const passed = new LRUCache<string, true>({ max: 10_000 });

/**
 * refuseSvgResources, once per distinct bytes: the upload's check spares the first render, and
 * every new variant of an original (stored before the check existed, or registered and replaced
 * at its origin) does not pay it again.
 */
export async function refuseSvgResourcesOnce(input: Buffer): Promise<void> {
  const digest = await sha256OfBytes(input);
  if (passed.has(digest)) return;
  refuseSvgResources(input);
  passed.set(digest, true);
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
 * Comments and CDATA markers removed, so that one splitting a word (`da<!-- -->ta:`) joins it.
 * In document order: a "<!--" inside CDATA, a processing instruction or a DOCTYPE literal opens
 * no comment, and must not hide what follows it. librsvg also joins the text a `<style>` holds
 * around any markup in it (`da<x>junk</x>ta:` is "data:"), so markup there other than comments
 * and CDATA is refused. By hand, each search starting where the last ended: a lazy regex would
 * rescan the rest of the file at every unclosed "<!--" (quadratic, ReDoS).
 */
function withoutCommentsOrCdata(text: string): string {
  let kept = '';
  let at = 0; // text before this is in `kept` (or removed)
  let from = 0; // where to look for the next "<"
  let inStyle = false;
  for (;;) {
    const lt = text.indexOf('<', from);
    if (lt === -1) return kept + text.slice(at);
    if (text.startsWith('<!--', lt)) {
      kept += text.slice(at, lt);
      const end = text.indexOf('-->', lt + 4);
      // Unclosed: it runs to the end (libxml2 refuses such a file anyway).
      if (end === -1) return kept;
      at = from = end + 3;
    } else if (text.startsWith('<![CDATA[', lt)) {
      kept += text.slice(at, lt);
      const end = text.indexOf(']]>', lt + 9);
      if (end === -1) return kept + text.slice(lt + 9);
      kept += text.slice(lt + 9, end);
      at = from = end + 3;
    } else if (inStyle && text[lt + 1] !== '/') {
      throw refused('SVG style elements may hold only text');
    } else if (text.startsWith('<?', lt)) {
      const end = text.indexOf('?>', lt + 2);
      from = end === -1 ? text.length : end + 2;
    } else if (startsAt(DOCTYPE, text, lt)) {
      from = doctypeEnd(text, lt + 9);
    } else if (text[lt + 1] === '/') {
      inStyle = false;
      from = lt + 1;
    } else {
      // Any other tag: "<" never appears in an attribute value, so the next "<" is markup.
      from = lt + 1;
      if (startsAt(STYLE_TAG, text, lt)) inStyle = text[tagEnd(text, lt + 1) - 2] !== '/'; // `<style/>`
    }
  }
}

// Sticky: matched where the "<" is, without copying the text after it.
const DOCTYPE = /<!DOCTYPE/iy;
const STYLE_TAG = /<(?:[^\s/>:<]{1,256}:)?style[\s/>]/iy;
const startsAt = (pattern: RegExp, text: string, index: number) => {
  pattern.lastIndex = index;
  return pattern.test(text);
};

/** Just past the ">" ending a start tag, skipping quoted attribute values (which may hold ">"). */
function tagEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "'") {
      const close = text.indexOf(c, i + 1);
      if (close === -1) return text.length;
      i = close;
    } else if (c === '>') return i + 1;
    else if (c === '<') return i;
  }
  return text.length;
}

/**
 * Just past the ">" ending a DOCTYPE, skipping its quoted literals and the comments and
 * processing instructions of its internal subset, any of which may hold "<!--", "]" or ">".
 */
function doctypeEnd(text: string, from: number): number {
  let subset = false;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    let close = -1;
    if (c === '"' || c === "'") close = text.indexOf(c, i + 1);
    else if (subset && text.startsWith('<!--', i)) close = text.indexOf('-->', i + 4) + 2;
    else if (subset && text.startsWith('<?', i)) close = text.indexOf('?>', i + 2) + 1;
    else if (c === '[') subset = true;
    else if (c === ']') subset = false;
    else if (c === '>' && !subset) return i + 1;
    else continue;
    if (close < i) return text.length;
    i = close;
  }
  return text.length;
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
