import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { AppError } from '../../../src/errors.js';
import { refuseSvgResources } from '../../../src/images/svg-guard.js';

/**
 * librsvg draws an image an SVG embeds as a `data:` URL at its own size, which libvips's pixel
 * limit never sees (it counts the SVG's canvas): a 65 KB SVG holding a 20000² PNG took 3.6 GB.
 * Every spelling that reaches a `data:` URL is refused; drawings without one pass.
 */
const PNG = 'iVBORw0KGgo=';
const svg = (body: string, head = '') =>
  `<?xml version="1.0" encoding="UTF-8"?>${head}<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="30">${body}</svg>`;

function refusal(input: string | Buffer): AppError | undefined {
  try {
    refuseSvgResources(typeof input === 'string' ? Buffer.from(input) : input);
    return undefined;
  } catch (error) {
    return error as AppError;
  }
}

describe('refuseSvgResources', () => {
  it.each([
    [
      'an <image> with a data: URL',
      svg(`<image href="data:image/png;base64,${PNG}" width="40" height="30"/>`),
    ],
    ['xlink:href, upper case', svg(`<image xlink:href="DATA:image/png;base64,${PNG}"/>`)],
    [
      'a prefixed element',
      svg(`<s:image xmlns:s="http://www.w3.org/2000/svg" href=" data:image/png;base64,${PNG}"/>`),
    ],
    ['feImage', svg(`<filter id="f"><feImage href="data:image/png;base64,${PNG}"/></filter>`)],
    ['use of a data: document', svg('<use href="data:image/svg+xml;base64,PHN2Zy8+#x"/>')],
    ['character references', svg(`<image href="&#100;&#x61;ta:image/png;base64,${PNG}"/>`)],
    ['a predefined entity next to it', svg(`<image href="d&#97;ta&#58;image/png;base64,${PNG}"/>`)],
    ['a CSS escape', svg('<style>@import url("d\\61 ta:text/css,x");</style>')],
    ['a CSS escape of one character', svg('<style>@import url("da\\ta:text/css,x");</style>')],
    ['a comment splitting the word', svg('<style>@import url(da<!-- x -->ta:text/css,x);</style>')],
    ['CDATA splitting the word', svg('<style>@import url(da<![CDATA[ta:text/css,x]]>);</style>')],
    ['a stylesheet instruction', svg('<rect/>', '<?xml-stylesheet href="data:text/css,x"?>')],
    ['a media type a loader ignores (it sniffs the bytes)', svg('<image href="data:%00,x"/>')],
    ['text that reads "data:" (the price of not parsing)', svg('<text>Data: 42</text>')],
    // A URL parser drops tabs and newlines anywhere in a URL, and librsvg's is one.
    ['a tab inside the scheme', svg(`<image href="da&#9;ta:image/png;base64,${PNG}"/>`)],
    ['a newline inside the scheme', svg(`<image href="d&#13;&#10;ata:image/png;base64,${PNG}"/>`)],
    ['a raw tab inside the scheme (CSS)', svg('<style>@import url("da\tta:text/css,x");</style>')],
    // CSS drops a backslash before a newline in a string, and a CR LF after a hex escape is one.
    ['a CSS line continuation', svg('<style>@import "da\\\nta:text/css,x";</style>')],
    ['a CR LF after a CSS escape', svg('<style>@import url("\\64\r\nata:text/css,x");</style>')],
    // "<!--" inside CDATA, a processing instruction or a DOCTYPE literal opens no comment.
    ['"<!--" in CDATA', svg('<style><![CDATA[/*<!--*/]]></style><image href="data:,x"/><!-- -->')],
    ['"<!--" in a processing instruction', svg('<?x <!-- ?><image href="data:,x"/><!-- -->')],
    ['"<!--" in a DOCTYPE literal', svg('<image href="data:,x"/><!-- -->', '<!DOCTYPE svg SYSTEM "<!--">')],
    [
      '"<!--" in the internal subset',
      svg('<image href="data:,x"/><!-- -->', '<!DOCTYPE svg [<!NOTATION n SYSTEM "<!--">]>'),
    ],
    [
      'an XInclude',
      svg('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="data:text/plain,x" parse="text"/>'),
    ],
  ])('refuses %s', (_what, text) => {
    const error = refusal(text);
    expect(error?.code).toBe('unprocessable_image');
    expect(error?.publicMessage).toBe(
      'SVG images that load other images or documents (data: URLs) are not supported',
    );
  });

  it('refuses entity declarations, which could spell anything', () => {
    const text = svg('<image href="&u;"/>', `<!DOCTYPE svg [<!ENTITY u "data:image/png;base64,${PNG}">]>`);
    expect(refusal(text)?.publicMessage).toBe('SVG images that declare entities are not supported');
  });

  it('refuses markup inside a style element (librsvg joins the text around it)', () => {
    for (const inside of ['<x/>', '<x>junk</x>', '<?x?>']) {
      const text = svg(`<style>@import url(da${inside}ta:text/css,x);</style>`);
      expect(refusal(text)?.code).toBe('unprocessable_image');
    }
    const comment = svg('<style type="text/css"><!-- a { fill: red } --></style><style/><rect/>');
    expect(refusal(comment)).toBeUndefined();
  });

  it('takes linear time on what would make a lazy regex rescan the file (ReDoS)', () => {
    // Quadratic, each of these would take hours at this size; linear, milliseconds.
    for (const unit of ['<!--', '<?xml ', '&#x1', '\\1', 'data ', '<', '<!DOCTYPE "', 'd\t']) {
      expect(refusal(svg(unit.repeat(1_000_000 / unit.length)))?.code ?? 'passed').toMatch(
        /passed|unprocessable/,
      );
    }
  });

  it('reads svgz (gzip) as librsvg does', () => {
    const text = svg(`<image href="data:image/png;base64,${PNG}"/>`);
    expect(refusal(gzipSync(text))?.code).toBe('unprocessable_image');
    expect(refusal(gzipSync(svg('<rect width="40" height="30"/>')))).toBeUndefined();
  });

  it('refuses encodings in which the word could hide (UTF-16, UTF-7)', () => {
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(svg('<rect/>'), 'utf16le')]);
    expect(refusal(utf16)?.publicMessage).toBe('SVG images must be UTF-8 (or ASCII, or ISO-8859-1)');
    const utf7 = svg('<rect/>').replace('encoding="UTF-8"', 'encoding="UTF-7"');
    expect(refusal(utf7)?.publicMessage).toBe('SVG images must be UTF-8 (or ASCII, or ISO-8859-1)');
    expect(refusal(svg('<rect/>').replace('UTF-8', 'iso-8859-1'))).toBeUndefined();
    // A UTF-8 byte order mark does not hide the declaration.
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(utf7)]);
    expect(refusal(bom)?.publicMessage).toBe('SVG images must be UTF-8 (or ASCII, or ISO-8859-1)');
    expect(
      refusal(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(svg('<rect/>'))])),
    ).toBeUndefined();
    // EBCDIC ("<?xm" is 4C 6F A7 94), which libxml2 detects by its first bytes.
    expect(refusal(Buffer.from([0x4c, 0x6f, 0xa7, 0x94, 0x93]))?.publicMessage).toBe(
      'SVG images must be UTF-8 (or ASCII, or ISO-8859-1)',
    );
  });

  it('passes drawings that load nothing: fragments, text that mentions data, char refs, metadata', async () => {
    const drawing = svg(
      '<metadata>metadata: none</metadata><defs><linearGradient id="g"><stop offset="0" stop-color="#f00"/></linearGradient></defs>' +
        '<rect id="r" width="40" height="30" fill="url(#g)" style="font-family:&quot;Arial&quot;"/>' +
        '<use href="#r" xlink:href="#r"/><text x="1" y="20">Sales &#x2014; database: 42 &amp; more</text>',
    );
    expect(refusal(drawing)).toBeUndefined();
    // And it is an SVG libvips reads.
    expect((await sharp(Buffer.from(drawing)).metadata()).format).toBe('svg');
  });
});
