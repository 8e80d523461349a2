import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { crc32 } from '../../src/digest.js';

/** Images synthesized by the tests (no binary fixtures). */

export type SourceKind = 'png' | 'png-alpha' | 'jpeg' | 'jpeg-rotated' | 'webp' | 'gif' | 'gif-animated';

export interface Synth {
  readonly kind: SourceKind;
  readonly body: Buffer;
  /** Displayed size (after EXIF orientation) of one frame. */
  readonly width: number;
  readonly height: number;
  readonly pages: number;
}

const grey = { r: 128, g: 128, b: 128 };

/** A solid image of the given displayed size; `jpeg-rotated` is stored sideways with orientation 6. */
export async function synth(kind: SourceKind, width: number, height: number): Promise<Synth> {
  switch (kind) {
    case 'png':
      return done(kind, await solid(width, height).png().toBuffer(), width, height);
    case 'png-alpha':
      return done(kind, await solid(width, height, 0.5).png().toBuffer(), width, height);
    case 'jpeg':
      return done(kind, await solid(width, height).jpeg().toBuffer(), width, height);
    case 'jpeg-rotated':
      // Stored height × width; orientation 6 (rotate 90° clockwise) displays it width × height.
      return done(
        kind,
        await solid(height, width).jpeg().withMetadata({ orientation: 6 }).toBuffer(),
        width,
        height,
      );
    case 'webp':
      return done(kind, await solid(width, height).webp().toBuffer(), width, height);
    case 'gif':
      return done(kind, await solid(width, height).gif().toBuffer(), width, height);
    case 'gif-animated':
      return done(kind, await animatedGif(width, height, 3), width, height, 3);
  }
}

const done = (kind: SourceKind, body: Buffer, width: number, height: number, pages = 1): Synth => ({
  kind,
  body,
  width,
  height,
  pages,
});

function solid(width: number, height: number, alpha = 1) {
  return sharp({ create: { width, height, channels: alpha < 1 ? 4 : 3, background: { ...grey, alpha } } });
}

/** An animated GIF whose frame i is filled with a colour of red = 40 × i. */
export async function animatedGif(width: number, height: number, frames: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * frames * 4);
  for (let frame = 0; frame < frames; frame++) {
    for (let i = frame * width * height; i < (frame + 1) * width * height; i++) {
      raw.set([(40 * frame) % 256, 200, 60, 255], i * 4);
    }
  }
  return sharp(raw, { raw: { width, height: height * frames, channels: 4, pageHeight: height } })
    .gif({ delay: Array.from({ length: frames }, () => 100), loop: 0 })
    .toBuffer();
}

/** A PNG chunk: length, type, data and CRC. */
export function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A real, valid PNG of width × height 1-bit black pixels: a few tens of KB that decode to
 * width × height pixels (a decompression bomb).
 */
export function pngBomb(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 1; // bit depth
  header[9] = 0; // greyscale
  const rowBytes = 1 + Math.ceil(width / 8); // filter byte + packed bits
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(Buffer.alloc(rowBytes * height), { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** `chunks` inserted into a PNG right after its IHDR (signature 8 bytes, IHDR 25). */
export function withPngChunks(png: Buffer, chunks: readonly Buffer[]): Buffer {
  return Buffer.concat([png.subarray(0, 33), ...chunks, png.subarray(33)]);
}

/** A JPEG marker segment (APPn, COM) inserted right after the SOI marker. */
export function withJpegSegment(jpeg: Buffer, marker: number, payload: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(payload.length + 2);
  return Buffer.concat([jpeg.subarray(0, 2), Buffer.from([0xff, marker]), length, payload, jpeg.subarray(2)]);
}

/**
 * A Photoshop APP13 payload holding IPTC-IIM (8BIM resource 0x0404) with `text` as the by-line
 * (2:80) and in the caption (2:120), as news and stock photo tools write it.
 */
export function iptcApp13(text: string): Buffer {
  const dataset = (tag: number, value: string) => {
    const bytes = Buffer.from(value, 'latin1');
    const head = Buffer.from([0x1c, 2, tag, 0, 0]);
    head.writeUInt16BE(bytes.length, 3);
    return Buffer.concat([head, bytes]);
  };
  const iim = Buffer.concat([dataset(80, text), dataset(120, `Caption by ${text}`)]);
  const resource = Buffer.alloc(12);
  resource.write('8BIM', 0, 'latin1');
  resource.writeUInt16BE(0x0404, 4); // IPTC-NAA; an empty name (2 bytes, padded) follows
  resource.writeUInt32BE(iim.length, 8);
  return Buffer.concat([
    Buffer.from('Photoshop 3.0\0', 'latin1'),
    resource,
    iim,
    Buffer.alloc(iim.length % 2),
  ]);
}

/** An XMP packet naming `creator` and a GPS position, as cameras and phone apps write it. */
export const xmpWithGps = (creator: string) =>
  '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">' +
  '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""' +
  ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:exif="http://ns.adobe.com/exif/1.0/"' +
  ` dc:creator="${creator}" exif:GPSLatitude="48,51.4N" exif:GPSLongitude="2,17.6E"/>` +
  '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>';

/** A deterministic pseudo-random generator, so a failing case can be replayed. */
export function random(seed: number) {
  let state = seed;
  return (n: number) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % n;
  };
}

/** A photo-like JPEG (noise, blurred) with EXIF camera data and a GPS position. */
export async function photoWithGps(width: number, height: number): Promise<Buffer> {
  return sharp({
    create: {
      width,
      height,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma: 50 },
    },
  })
    .blur(2)
    .jpeg({ quality: 85 })
    .withExif({
      IFD0: { Make: 'PixgateTestCam', Model: 'Model-GPS-42' },
      IFD3: {
        GPSLatitudeRef: 'N',
        GPSLatitude: '48/1 51/1 29/1',
        GPSLongitudeRef: 'E',
        GPSLongitude: '2/1 17/1 40/1',
      },
    })
    .toBuffer();
}

/**
 * An uncompressed 8-bit greyscale TIFF with one page per size, written by hand: sharp writes
 * multi-page TIFFs only with pages of one size, and a scanner's or fax's file often has others.
 */
export function multiPageTiff(sizes: ReadonlyArray<readonly [number, number]>): Buffer {
  const parts: Buffer[] = [];
  let offset = 8;
  const header = Buffer.alloc(8);
  header.write('II', 0, 'latin1');
  header.writeUInt16LE(42, 2);
  parts.push(header);
  const ifdOffsets: number[] = [];
  const ifds: Buffer[] = [];
  for (const [width, height] of sizes) {
    const pixels = Buffer.alloc(width * height + ((width * height) % 2), 128);
    const stripOffset = offset;
    parts.push(pixels);
    offset += pixels.length;
    const entries: Array<[tag: number, type: number, value: number]> = [
      [256, 3, width],
      [257, 3, height],
      [258, 3, 8],
      [259, 3, 1],
      [262, 3, 1],
      [273, 4, stripOffset],
      [277, 3, 1],
      [278, 3, height],
      [279, 4, width * height],
    ];
    const ifd = Buffer.alloc(2 + entries.length * 12 + 4);
    ifd.writeUInt16LE(entries.length, 0);
    entries.forEach(([tag, type, value], i) => {
      const at = 2 + i * 12;
      ifd.writeUInt16LE(tag, at);
      ifd.writeUInt16LE(type, at + 2);
      ifd.writeUInt32LE(1, at + 4);
      if (type === 3) ifd.writeUInt16LE(value, at + 8);
      else ifd.writeUInt32LE(value, at + 8);
    });
    ifdOffsets.push(offset);
    ifds.push(ifd);
    parts.push(ifd);
    offset += ifd.length;
  }
  header.writeUInt32LE(ifdOffsets[0] ?? 0, 4);
  ifds.forEach((ifd, i) => {
    ifd.writeUInt32LE(ifdOffsets[i + 1] ?? 0, ifd.length - 4);
  });
  return Buffer.concat(parts);
}

/**
 * The header of a HEIC photo (HEVC in a HEIF container, as iPhones take them), made from a
 * sharp AVIF by rewriting its boxes: the item type `av01` becomes `hvc1`, the `av1C` property an
 * `hvcC` one (a minimal HEVC decoder configuration), and every size and offset after it moves by
 * the difference, so that libheif finds an HEVC image to decode and, lacking the decoder, says so.
 * (The major brand `heic` alone would only make libvips report HEVC for what is still AV1.) There
 * is no HEVC encoder here to make a real one.
 */
export async function heicHeader(): Promise<Buffer> {
  const avif = await sharp({ create: { width: 64, height: 48, channels: 3, background: grey } })
    .avif()
    .toBuffer();
  const hvcC = Buffer.from([
    ...[0, 0, 0, 31, ...Buffer.from('hvcC')],
    ...[1, 0x01, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 90, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f, 0],
  ]);
  const av1C = avif.indexOf('av1C') - 4;
  const av1CSize = avif.readUInt32BE(av1C);
  const delta = hvcC.length - av1CSize;
  const heic = Buffer.concat([avif.subarray(0, av1C), hvcC, avif.subarray(av1C + av1CSize)]);
  // The boxes that contain the property grow with it.
  for (const type of ['meta', 'iprp', 'ipco']) {
    const at = heic.indexOf(type) - 4;
    heic.writeUInt32BE(heic.readUInt32BE(at) + delta, at);
  }
  // iloc (version 0, 4-byte offsets and lengths, as sharp writes it): data offsets into mdat.
  const iloc = heic.indexOf('iloc') + 4;
  if (heic[iloc] !== 0 || heic[iloc + 4] !== 0x44) throw new Error('heicHeader: unexpected iloc layout');
  const baseSize = (heic[iloc + 5] ?? 0) >> 4;
  const shift = (offset: number) => heic.writeUInt32BE(heic.readUInt32BE(offset) + delta, offset);
  let at = iloc + 8;
  for (let items = heic.readUInt16BE(iloc + 6); items > 0; items--) {
    at += 4; // item id, data reference index
    // Extent offsets are relative to a base offset when there is one, else absolute.
    const base = baseSize === 4 ? heic.readUInt32BE(at) : 0;
    if (base > 0) shift(at);
    at += baseSize;
    const extents = heic.readUInt16BE(at);
    at += 2;
    for (let extent = 0; extent < extents; extent++, at += 8) if (base === 0) shift(at);
  }
  heic.write('hvc1', heic.indexOf('av01'), 'latin1');
  heic.write('heic', 8, 'latin1'); // the major brand
  return heic;
}
