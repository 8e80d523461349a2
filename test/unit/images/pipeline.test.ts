import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors.js';
import { createPipeline, defaultQuality, type PipelineOptions } from '../../../src/images/pipeline.js';
import type { OutputFormat, RenderPlan, Transform } from '../../../src/images/types.js';
import {
  animatedGif,
  iptcApp13,
  pngBomb,
  pngChunk,
  withJpegSegment,
  withPngChunks,
  xmpWithGps,
} from '../../helpers/images.js';

const options: PipelineOptions = { maxInputPixels: 50_000_000, maxFrames: 100, avifEffort: 2 };
const pipeline = createPipeline(options);
const single = { pages: 1 };

const plan = (
  transform: Partial<Transform>,
  format: OutputFormat,
  quality = defaultQuality[format],
): RenderPlan => ({
  transform: { fit: 'inside', format, ...transform },
  format,
  quality,
});

/** Raw RGBA pixels of an encoded image. */
async function pixels(body: Buffer) {
  const { data, info } = await sharp(body).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => [
    ...data.subarray((y * info.width + x) * 4, (y * info.width + x) * 4 + 4),
  ];
  return { data, info, at };
}

function expectClose(actual: number[], expected: number[], tolerance: number) {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((value, i) => {
    expect(
      Math.abs(value - (expected[i] as number)),
      `channel ${i}: ${actual} vs ${expected}`,
    ).toBeLessThanOrEqual(tolerance);
  });
}

async function failure(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected the render to fail');
}

const photo = sharp({
  create: { width: 400, height: 300, channels: 3, background: { r: 30, g: 120, b: 200 } },
});

describe('pipeline: sizes and formats', () => {
  it.each<[OutputFormat, string, string]>([
    ['jpeg', 'jpeg', 'image/jpeg'],
    ['png', 'png', 'image/png'],
    ['webp', 'webp', 'image/webp'],
    ['avif', 'heif', 'image/avif'],
  ])('really produces %s', async (format, sharpFormat, contentType) => {
    const input = await photo.clone().png().toBuffer();
    const variant = await pipeline.render(input, plan({ w: 100 }, format), single);
    const meta = await sharp(variant.body).metadata();
    expect(meta.format).toBe(sharpFormat);
    if (format === 'avif') expect(meta.compression).toBe('av1');
    expect(variant).toMatchObject({ contentType, width: 100, height: 75 });
    expect([meta.width, meta.height]).toStrictEqual([100, 75]);
  });

  it('never enlarges', async () => {
    const input = await sharp({ create: { width: 100, height: 50, channels: 3, background: 'red' } })
      .png()
      .toBuffer();
    for (const transform of [{ w: 400 }, { h: 4000 }, { w: 1000, h: 1000, fit: 'inside' as const }]) {
      const variant = await pipeline.render(input, plan(transform, 'jpeg'), single);
      expect([variant.width, variant.height]).toStrictEqual([100, 50]);
    }
    const cover = await pipeline.render(input, plan({ w: 400, h: 20, fit: 'cover' }, 'jpeg'), single);
    expect([cover.width, cover.height]).toStrictEqual([100, 20]);
  });

  it('re-encodes at full size without a box', async () => {
    const input = await photo.clone().png().toBuffer();
    const variant = await pipeline.render(input, plan({}, 'webp'), single);
    expect([variant.width, variant.height]).toStrictEqual([400, 300]);
  });

  it('uses the quality of the plan', async () => {
    const input = await sharp({
      create: {
        width: 200,
        height: 200,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 50 },
      },
    })
      .png()
      .toBuffer();
    for (const format of ['jpeg', 'webp', 'avif'] as const) {
      const low = await pipeline.render(input, plan({}, format, 10), single);
      const high = await pipeline.render(input, plan({}, format, 95), single);
      expect(high.body.length, format).toBeGreaterThan(low.body.length * 2);
    }
  });

  it('pads contain with white under JPEG and transparency elsewhere', async () => {
    const input = await photo.clone().png().toBuffer();
    const box = { w: 100, h: 100, fit: 'contain' as const };
    const jpeg = await pixels((await pipeline.render(input, plan(box, 'jpeg'), single)).body);
    expectClose(jpeg.at(50, 2), [255, 255, 255, 255], 3);
    expectClose(jpeg.at(50, 50), [30, 120, 200, 255], 3);
    const png = await pixels((await pipeline.render(input, plan(box, 'png'), single)).body);
    expect(png.at(50, 2)[3]).toBe(0);
    expect(png.at(50, 50)).toStrictEqual([30, 120, 200, 255]);
  });

  it('flattens alpha on white for JPEG', async () => {
    const input = await sharp({
      create: { width: 20, height: 20, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const jpeg = await pixels((await pipeline.render(input, plan({}, 'jpeg'), single)).body);
    expectClose(jpeg.at(10, 10), [255, 255, 255, 255], 2);
    const webp = await pixels((await pipeline.render(input, plan({}, 'webp'), single)).body);
    expect(webp.at(10, 10)[3]).toBe(0);
  });

  it('blurs', async () => {
    // A checkerboard of 1 px squares: blurred, it becomes a flat grey.
    const raw = Buffer.alloc(64 * 64 * 3);
    for (let i = 0; i < 64 * 64; i++)
      raw.fill(((i % 64) + Math.floor(i / 64)) % 2 ? 255 : 0, i * 3, i * 3 + 3);
    const input = await sharp(raw, { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toBuffer();
    const sharpOut = await sharp((await pipeline.render(input, plan({}, 'png'), single)).body).stats();
    const blurred = await sharp(
      (await pipeline.render(input, plan({ blur: 3 }, 'png'), single)).body,
    ).stats();
    expect(sharpOut.channels[0]?.stdev).toBeGreaterThan(100);
    expect(blurred.channels[0]?.stdev).toBeLessThan(10);
  });
});

describe('pipeline: metadata, orientation and colour (SPEC §2)', () => {
  it.each<OutputFormat>(['jpeg', 'png', 'webp', 'avif'])('strips EXIF, GPS and XMP (%s)', async (format) => {
    const input = await photo
      .clone()
      .jpeg()
      .withExif({
        IFD0: { Make: 'AcmeCam', Model: 'Spy 3000', Copyright: 'SecretOwner' },
        IFD3: {
          GPSLatitudeRef: 'N',
          GPSLatitude: '48/1 51/1 2400/100',
          GPSLongitudeRef: 'E',
          GPSLongitude: '2/1 21/1 0/1',
        },
      })
      .withXmp(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="SecretOwner"/></rdf:RDF></x:xmpmeta>',
      )
      .toBuffer();
    const source = await sharp(input).metadata();
    expect(source.exif?.toString('latin1')).toContain('AcmeCam');
    expect(source.exif?.toString('latin1')).toContain('SecretOwner');
    expect(source.xmpAsString).toContain('SecretOwner');

    const variant = await pipeline.render(input, plan({ w: 200 }, format), single);
    const meta = await sharp(variant.body).metadata();
    expect(meta.exif).toBeUndefined();
    expect(meta.xmp).toBeUndefined();
    expect(meta.iptc).toBeUndefined();
    expect(meta.comments).toBeUndefined();
    const bytes = variant.body.toString('latin1');
    expect(bytes).not.toContain('AcmeCam');
    expect(bytes).not.toContain('SecretOwner');
    expect(bytes).not.toContain('Exif');
  });

  it('applies the EXIF orientation before resizing', async () => {
    // Stored 40×20: left half red, right half blue. Orientation 6 turns it 90° clockwise:
    // displayed 20×40, red on top.
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let i = 0; i < 40 * 20; i++) raw.set(i % 40 < 20 ? [255, 0, 0] : [0, 0, 255], i * 3);
    const input = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(input).metadata()).orientation).toBe(6);

    const variant = await pipeline.render(input, plan({ w: 10 }, 'png'), single);
    expect([variant.width, variant.height]).toStrictEqual([10, 20]);
    const out = await pixels(variant.body);
    expectClose(out.at(5, 2), [255, 0, 0, 255], 30);
    expectClose(out.at(5, 17), [0, 0, 255, 255], 30);
    expect((await sharp(variant.body).metadata()).orientation).toBeUndefined();
  });

  // sRGB (200, 100, 50) stored in Display P3 numbers: shown right only if the profile is applied.
  const colour = { r: 200, g: 100, b: 50 };

  it.each([
    ['8-bit', false],
    ['16-bit', true],
  ])('converts a Display P3 image to sRGB and writes no profile (%s)', async (_name, sixteen) => {
    let source = sharp({ create: { width: 16, height: 16, channels: 3, background: colour } }).withIccProfile(
      'p3',
    );
    if (sixteen) source = source.toColourspace('rgb16');
    const input = await source.png().toBuffer();
    const meta = await sharp(input).metadata();
    expect(meta.hasProfile).toBe(true);
    expect(meta.depth).toBe(sixteen ? 'ushort' : 'uchar');
    // The stored numbers are far from the colour: a pipeline ignoring the profile would show them.
    const stored = [
      ...(await sharp(input, { ignoreIcc: true }).toColourspace('srgb').raw().toBuffer()).subarray(0, 3),
    ];
    expect(Math.abs((stored[0] as number) - colour.r)).toBeGreaterThan(8);

    for (const format of ['jpeg', 'png', 'webp'] as const) {
      const variant = await pipeline.render(input, plan({ w: 8 }, format), single);
      const out = await sharp(variant.body).metadata();
      expect(out.hasProfile, format).toBe(false);
      expect(out.space).toBe('srgb');
      expectClose((await pixels(variant.body)).at(4, 4), [colour.r, colour.g, colour.b, 255], 3);
    }
  });
});

describe('pipeline: metadata in every container, for every output (SPEC §2)', () => {
  const secret = 'SecretOwnerXmpIptc';
  const blue = () =>
    sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 30, g: 120, b: 200 } } });
  const exifOf = async (make: string) =>
    (
      await sharp(
        await blue()
          .jpeg()
          .withExif({ IFD0: { Make: make } })
          .toBuffer(),
      ).metadata()
    ).exif as Buffer;

  const sources: Record<string, () => Promise<Buffer>> = {
    // EXIF, XMP with a GPS position, IPTC by-line and caption (APP13), a JPEG comment (COM).
    'JPEG with EXIF, XMP, IPTC and a comment': async () => {
      const jpeg = await blue()
        .jpeg()
        .withExif({ IFD0: { Make: secret } })
        .withXmp(xmpWithGps(secret))
        .toBuffer();
      return withJpegSegment(
        withJpegSegment(jpeg, 0xed, iptcApp13(secret)),
        0xfe,
        Buffer.from(`by ${secret}`),
      );
    },
    // eXIf (its TIFF header without JPEG's "Exif\0\0"), a tEXt comment, XMP in iTXt.
    'PNG with eXIf, tEXt and iTXt XMP': async () =>
      withPngChunks(await blue().png().toBuffer(), [
        pngChunk('eXIf', (await exifOf(secret)).subarray(6)),
        pngChunk('tEXt', Buffer.from(`Comment\0${secret}`, 'latin1')),
        pngChunk(
          'iTXt',
          Buffer.concat([Buffer.from('XML:com.adobe.xmp\0\0\0\0\0'), Buffer.from(xmpWithGps(secret))]),
        ),
      ]),
    'WebP with EXIF and XMP': () =>
      blue()
        .webp()
        .withExif({ IFD0: { Make: secret } })
        .withXmp(xmpWithGps(secret))
        .toBuffer(),
  };

  it.each(Object.keys(sources))('%s: nothing of it in any output format', async (name) => {
    const input = await (sources[name] as () => Promise<Buffer>)();
    // The source really carries it (the check below would pass on an empty source).
    const source = await sharp(input).metadata();
    expect(source.exif?.toString('latin1')).toContain(secret);
    expect(source.xmpAsString).toContain('GPSLatitude');
    if (name.startsWith('JPEG')) expect(source.iptc?.toString('latin1')).toContain(secret);
    if (name.startsWith('PNG')) expect(source.comments).toEqual([{ keyword: 'Comment', text: secret }]);

    for (const format of ['jpeg', 'png', 'webp', 'avif'] as const) {
      for (const transform of [{}, { w: 32 }]) {
        const variant = await pipeline.render(input, plan(transform, format), single);
        const meta = await sharp(variant.body).metadata();
        expect(meta.format, format).toBe(format === 'avif' ? 'heif' : format);
        for (const field of ['exif', 'xmp', 'iptc', 'icc', 'comments'] as const) {
          expect(meta[field], `${format} ${field}`).toBeUndefined();
        }
        const bytes = variant.body.toString('latin1');
        expect(bytes, format).not.toContain(secret);
        expect(bytes, format).not.toContain('GPS');
      }
    }
  });
});

describe('pipeline: colour spaces and alpha of unusual sources', () => {
  const colour = { r: 200, g: 100, b: 50 };

  it.each([
    ['without a profile (libvips assumes its CMYK default)', false],
    ['with an embedded CMYK profile', true],
  ])('converts a CMYK JPEG %s to sRGB', async (_name, withProfile) => {
    const source = sharp({ create: { width: 32, height: 24, channels: 3, background: colour } });
    const input = await (withProfile ? source.withIccProfile('cmyk') : source.toColourspace('cmyk'))
      .jpeg({ quality: 100 })
      .toBuffer();
    const meta = await sharp(input).metadata();
    expect([meta.space, meta.channels, meta.hasProfile]).toStrictEqual(['cmyk', 4, withProfile]);
    // What libvips makes of it at full size: the colour through the CMYK profile, close to the
    // sRGB it was made from (a CMYK round trip is not exact) and nothing like raw C, M, Y, K.
    const reference = [...(await sharp(input).toColourspace('srgb').raw().toBuffer()).subarray(0, 3)];
    expectClose(reference, [colour.r, colour.g, colour.b], 32);

    for (const format of ['jpeg', 'png', 'webp', 'avif'] as const) {
      const variant = await pipeline.render(input, plan({ w: 16 }, format), single);
      const out = await sharp(variant.body).metadata();
      expect([out.space, out.channels, out.hasProfile], format).toStrictEqual(['srgb', 3, false]);
      expectClose((await pixels(variant.body)).at(8, 6).slice(0, 3), reference, 4);
    }
  });

  it('keeps a greyscale JPEG grey, as sRGB', async () => {
    const input = await sharp({ create: { width: 32, height: 24, channels: 3, background: '#5a5a5a' } })
      .toColourspace('b-w')
      .jpeg()
      .toBuffer();
    expect((await sharp(input).metadata()).channels).toBe(1);
    for (const format of ['jpeg', 'png', 'webp', 'avif'] as const) {
      const variant = await pipeline.render(input, plan({ w: 16 }, format), single);
      expect((await sharp(variant.body).metadata()).space, format).toBe('srgb');
      expectClose((await pixels(variant.body)).at(8, 6), [90, 90, 90, 255], 3);
    }
  });

  /** Left half opaque `left`, right half fully transparent blue: the colour it hides. */
  function halves(left: readonly [number, number, number]) {
    const raw = Buffer.alloc(32 * 24 * 4);
    for (let i = 0; i < 32 * 24; i++) raw.set(i % 32 < 16 ? [...left, 255] : [0, 0, 255, 0], i * 4);
    return sharp(raw, { raw: { width: 32, height: 24, channels: 4 } });
  }
  const orange = [200, 100, 50] as const;
  const grey = [90, 90, 90] as const;

  it.each<[string, () => Promise<Buffer>, readonly [number, number, number]]>([
    ['greyscale PNG with alpha', () => halves(grey).toColourspace('b-w').png().toBuffer(), grey],
    ['palette PNG with tRNS', () => halves(orange).png({ palette: true, colours: 4 }).toBuffer(), orange],
    ['16-bit PNG with alpha', () => halves(orange).toColourspace('rgb16').png().toBuffer(), orange],
    // sharp's TIFF default, JPEG compression, would drop the alpha: LZW keeps it.
    ['TIFF with alpha', () => halves(orange).tiff({ compression: 'lzw' }).toBuffer(), orange],
    ['AVIF with alpha', () => halves(orange).avif({ lossless: true }).toBuffer(), orange],
    ['WebP with alpha', () => halves(orange).webp({ lossless: true }).toBuffer(), orange],
  ])(
    '%s: keeps transparency where the format can, and flattens on white for JPEG',
    async (_name, make, left) => {
      const input = await make();
      expect((await sharp(input).metadata()).hasAlpha).toBe(true);
      for (const format of ['png', 'webp', 'avif'] as const) {
        const out = await pixels((await pipeline.render(input, plan({ w: 16 }, format), single)).body);
        expect([out.info.width, out.info.height], format).toStrictEqual([16, 12]);
        expectClose(out.at(3, 6), [...left, 255], 6);
        expect(out.at(12, 6)[3], format).toBe(0);
      }
      const jpeg = await pixels((await pipeline.render(input, plan({ w: 16 }, 'jpeg'), single)).body);
      expectClose(jpeg.at(3, 6), [...left, 255], 6);
      expectClose(jpeg.at(12, 6), [255, 255, 255, 255], 3);
    },
  );
});

describe('pipeline: EXIF orientations 1..8, every fit', () => {
  // Stored 60×40 in quadrants: top left red, top right green, bottom left blue, bottom right white.
  const stored = (() => {
    const raw = Buffer.alloc(60 * 40 * 3);
    for (let i = 0; i < 60 * 40; i++) {
      const [x, y] = [i % 60, Math.floor(i / 60)];
      raw.set(y < 20 ? (x < 30 ? [255, 0, 0] : [0, 255, 0]) : x < 30 ? [0, 0, 255] : [255, 255, 255], i * 3);
    }
    return sharp(raw, { raw: { width: 60, height: 40, channels: 3 } });
  })();
  // The quadrants as displayed (EXIF 2.3, Orientation): top left, top right / bottom left, bottom right.
  const displayed: Record<number, string> = {
    1: 'RG/BW', // as stored
    2: 'GR/WB', // mirrored left to right
    3: 'WB/GR', // turned 180°
    4: 'BW/RG', // mirrored top to bottom
    5: 'RB/GW', // transposed (mirrored about the main diagonal)
    6: 'BR/WG', // turned 90° clockwise
    7: 'WG/BR', // transversed (mirrored about the other diagonal)
    8: 'GW/RB', // turned 90° counter-clockwise
  };
  const landscape: Array<[Partial<Transform>, [number, number], [number, number]]> = [
    // transform, output of a 60×40 display, output of a 40×60 display
    [{ w: 30 }, [30, 20], [30, 45]],
    [{ h: 30 }, [45, 30], [20, 30]],
    [{ w: 30, h: 30, fit: 'cover' }, [30, 30], [30, 30]],
    [{ w: 30, h: 30, fit: 'contain' }, [30, 30], [30, 30]],
    [{ w: 30, h: 20, fit: 'fill' }, [30, 20], [30, 20]],
    [{ w: 30, h: 30, fit: 'inside' }, [30, 20], [20, 30]],
    [{ w: 30, h: 30, fit: 'outside' }, [45, 30], [30, 45]],
    [{}, [60, 40], [40, 60]],
  ];
  const name = ([r, g, b]: number[]) =>
    (r as number) > 128 && (g as number) > 128 && (b as number) > 128
      ? 'W'
      : (r as number) > 128
        ? 'R'
        : (g as number) > 128
          ? 'G'
          : (b as number) > 128
            ? 'B'
            : '?';

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('orientation %i, from JPEG and WebP', async (orientation) => {
    for (const container of ['jpeg', 'webp'] as const) {
      const input = await stored.clone()[container]({ quality: 95 }).withMetadata({ orientation }).toBuffer();
      expect((await sharp(input).metadata()).orientation).toBe(orientation);
      const sideways = orientation >= 5;
      for (const [transform, ifLandscape, ifPortrait] of landscape) {
        const variant = await pipeline.render(input, plan(transform, 'png'), single);
        const out = await pixels(variant.body);
        const where = `${container} ${JSON.stringify(transform)}`;
        expect([out.info.width, out.info.height], where).toStrictEqual(sideways ? ifPortrait : ifLandscape);
        expect([variant.width, variant.height], where).toStrictEqual([out.info.width, out.info.height]);
        // Sampled at the middle of each quadrant (inside the image where contain pads it).
        const [w, h] = [out.info.width, out.info.height];
        const at = (fx: number, fy: number) => name(out.at(Math.floor(w * fx), Math.floor(h * fy)));
        expect(`${at(0.25, 0.25)}${at(0.75, 0.25)}/${at(0.25, 0.75)}${at(0.75, 0.75)}`, where).toBe(
          displayed[orientation],
        );
        expect((await sharp(variant.body).metadata()).orientation, where).toBeUndefined();
      }
    }
  });
});

describe('pipeline: animations', () => {
  const frame = (body: Buffer) => pixels(body).then((p) => p.at(2, 2));

  it('keeps an animated GIF animated in WebP, resized per frame', async () => {
    const input = await animatedGif(30, 20, 5);
    const variant = await pipeline.render(input, plan({ w: 15 }, 'webp'), { pages: 5 });
    const meta = await sharp(variant.body).metadata();
    expect(meta.format).toBe('webp');
    expect(meta.pages).toBe(5);
    expect([meta.width, meta.height]).toStrictEqual([15, 10]); // one frame: no `pages` asked
    expect([variant.width, variant.height]).toStrictEqual([15, 10]);
    expect(meta.delay).toStrictEqual([100, 100, 100, 100, 100]);
    // Frame 3 is frame 3 of the source (red = 120).
    const third = await sharp(variant.body, { page: 3 }).raw().toBuffer();
    expectClose([...third.subarray(0, 3)], [120, 200, 60], 12);
  });

  it('keeps at most maxFrames frames', async () => {
    const capped = createPipeline({ ...options, maxFrames: 2 });
    const variant = await capped.render(await animatedGif(30, 20, 5), plan({ w: 15 }, 'webp'), { pages: 5 });
    expect((await sharp(variant.body).metadata()).pages).toBe(2);
  });

  it('cuts an animation to the frames that fit maxInputPixels, rather than failing', async () => {
    // sharp's limitInputPixels counts all decoded frames: 30×20×5 = 3000 pixels > 1500.
    const budget = createPipeline({ ...options, maxInputPixels: 30 * 20 * 2 + 100 });
    const variant = await budget.render(await animatedGif(30, 20, 5), plan({}, 'webp'), { pages: 5 });
    expect((await sharp(variant.body).metadata()).pages).toBe(2);
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8])(
    'never plays an EXIF-oriented animated WebP out of order (orientation %i)',
    async (orientation) => {
      // 3 frames of 30×20, each with its top half red, green, blue (frame 0, 1, 2), bottom half black.
      const [width, height, colours] = [
        30,
        20,
        [
          [255, 0, 0],
          [0, 255, 0],
          [0, 0, 255],
        ],
      ] as const;
      const raw = Buffer.alloc(width * height * colours.length * 3);
      colours.forEach((colour, f) => {
        for (let i = 0; i < width * (height / 2); i++) raw.set(colour, (f * width * height + i) * 3);
      });
      const input = await sharp(raw, { raw: { width, height: height * 3, channels: 3, pageHeight: height } })
        .webp({ lossless: true, delay: [100, 200, 300], loop: 0 })
        .withMetadata({ orientation })
        .toBuffer();
      const variant = await pipeline.render(input, plan({}, 'webp'), { pages: 3 });
      const meta = await sharp(variant.body).metadata();
      const frames = meta.pages ?? 1;
      // Each frame kept is the source's frame of that index, displayed as sharp orients one image.
      // (Sampled away from the edges: the output is lossy WebP.)
      for (let f = 0; f < frames; f++) {
        const expected = await pixels(await sharp(input, { page: f }).autoOrient().png().toBuffer());
        const actual = await pixels(await sharp(variant.body, { page: f }).png().toBuffer());
        expect([actual.info.width, actual.info.height]).toStrictEqual([
          expected.info.width,
          expected.info.height,
        ]);
        const { width: w, height: h } = expected.info;
        for (const [x, y] of [
          [w / 4, h / 4],
          [(3 * w) / 4, h / 4],
          [w / 4, (3 * h) / 4],
          [(3 * w) / 4, (3 * h) / 4],
        ]) {
          const at = [Math.floor(x as number), Math.floor(y as number)] as const;
          expectClose(actual.at(...at), expected.at(...at), 24);
        }
      }
      if (frames > 1) expect(meta.delay).toStrictEqual([100, 200, 300]);
    },
  );

  it.each<OutputFormat>(['jpeg', 'png', 'avif'])('renders the first frame only for %s', async (format) => {
    const variant = await pipeline.render(await animatedGif(30, 20, 5), plan({ w: 15 }, format), {
      pages: 5,
    });
    const meta = await sharp(variant.body).metadata();
    expect(meta.pages ?? 1).toBe(1);
    expect([meta.width, meta.height]).toStrictEqual([15, 10]);
    expectClose((await frame(variant.body)).slice(0, 3), [0, 200, 60], 12);
  });
});

describe('pipeline: SVG', () => {
  let dir: string;
  let secretPath: string;
  // A solid, distinctive magenta: it must never show up in the output.
  const isMagenta = (data: Buffer, i: number) =>
    (data[i] as number) > 200 && (data[i + 1] as number) < 60 && (data[i + 2] as number) > 200;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pixgate-svg-'));
    secretPath = join(dir, 'secret.png');
    await writeFile(
      secretPath,
      await sharp({ create: { width: 50, height: 50, channels: 3, background: { r: 255, g: 0, b: 255 } } })
        .png()
        .toBuffer(),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const svg = (href: string) =>
    Buffer.from(
      `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="50" height="50">` +
        `<rect width="50" height="50" fill="#00ff00"/>` +
        `<image href="${href}" xlink:href="${href}" x="0" y="0" width="50" height="50"/></svg>`,
    );

  async function magentaPixels(input: Buffer): Promise<number> {
    const variant = await pipeline.render(input, plan({ w: 25 }, 'png'), single);
    expect((await sharp(variant.body).metadata()).format).toBe('png');
    const { data } = await pixels(variant.body);
    let count = 0;
    for (let i = 0; i < data.length; i += 4) if (isMagenta(data, i)) count++;
    return count;
  }

  it('rasterizes SVG', async () => {
    const variant = await pipeline.render(svg('#none'), plan({}, 'webp'), single);
    expect(variant.contentType).toBe('image/webp');
    expect((await sharp(variant.body).metadata()).format).toBe('webp');
    expectClose((await pixels(variant.body)).at(25, 25), [0, 255, 0, 255], 2);
  });

  it('can see an embedded image (the detector works), which the pipeline then refuses', async () => {
    const { readFile } = await import('node:fs/promises');
    const inline = svg(`data:image/png;base64,${(await readFile(secretPath)).toString('base64')}`);
    // librsvg itself draws it: the checks below would see a file that got in.
    const { data } = await sharp(inline).resize(25).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    let count = 0;
    for (let i = 0; i < data.length; i += 4) if (isMagenta(data, i)) count++;
    expect(count).toBeGreaterThan(100);
    // An embedded image escapes the pixel limit (svg-guard.ts): refused, even this small one.
    const error = await failure(pipeline.render(inline, plan({ w: 25 }, 'png'), single));
    expect([error.status, error.code]).toEqual([422, 'unprocessable_image']);
  });

  it('checks other bytes under the same record again: a render does not tie them to its identity', async () => {
    const { readFile } = await import('node:fs/promises');
    const embedding = svg(`data:image/png;base64,${(await readFile(secretPath)).toString('base64')}`);
    const recorded = { pages: 1, id: 'svg-once', originEtag: 'v1' };
    await pipeline.render(svg('#none'), plan({ w: 25 }, 'png'), recorded);
    await expect(pipeline.render(svg('#none'), plan({ w: 20 }, 'png'), recorded)).resolves.toBeDefined();
    // Replaced at the origin, same record: what passed was other bytes.
    const error = await failure(pipeline.render(embedding, plan({ w: 20 }, 'png'), recorded));
    expect(error.code).toBe('unprocessable_image');
  });

  it('refuses an SVG embedding a pixel bomb, before drawing it', async () => {
    const bomb = svg(`data:image/png;base64,${pngBomb(20000, 20000).toString('base64')}`);
    expect(bomb.length).toBeLessThan(150_000); // its PNG twice: href and xlink:href
    const error = await failure(pipeline.render(bomb, plan({ w: 25 }, 'png'), single));
    expect(error.publicMessage).toBe(
      'SVG images that load other images or documents (data: URLs) are not supported',
    );
  });

  it('never fetches or embeds external references', async () => {
    for (const href of [
      `file://${secretPath}`,
      secretPath,
      'secret.png',
      './secret.png',
      'http://169.254.169.254/latest/meta-data/',
      'https://example.com/a.png',
    ]) {
      expect(await magentaPixels(svg(href)), href).toBe(0);
    }
  });
});

describe('pipeline: bad input is a 422, never a crash', () => {
  it('refuses a decompression bomb (a small PNG that declares 20000×20000)', async () => {
    const bomb = pngBomb(20000, 20000);
    expect(bomb.length).toBeLessThan(100_000);
    const error = await failure(pipeline.render(bomb, plan({ w: 100 }, 'jpeg'), single));
    expect(error.code).toBe('unprocessable_image');
    expect(error.status).toBe(422);
    expect(error.publicMessage).toBe(
      'The image has 20000 × 20000 = 400000000 pixels, more than the 50000000 allowed',
    );
  });

  it('refuses an SVG that declares 100000×100000', async () => {
    const huge = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="10" height="10"/></svg>',
    );
    const error = await failure(pipeline.render(huge, plan({ w: 100 }, 'png'), single));
    expect(error.code).toBe('unprocessable_image');
    expect(error.publicMessage).toContain('100000 × 100000');
  });

  it('refuses a truncated JPEG', async () => {
    const full = await sharp({
      create: {
        width: 300,
        height: 200,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 40 },
      },
    })
      .jpeg()
      .toBuffer();
    const error = await failure(
      pipeline.render(full.subarray(0, full.length >> 1), plan({ w: 100 }, 'jpeg'), single),
    );
    expect(error.code).toBe('unprocessable_image');
    expect(error.publicMessage).toBe('The image could not be processed');
    expect(error.message).toContain('premature end of JPEG');
    expect(error.cause).toBeInstanceOf(Error);
  });

  it('refuses bytes that are not an image', async () => {
    const error = await failure(
      pipeline.render(Buffer.from('not an image at all'), plan({ w: 100 }, 'jpeg'), single),
    );
    expect(error.code).toBe('unprocessable_image');
    expect(error.publicMessage).toBe('The image could not be processed');
  });
});

describe('pipeline: the input must be the image recorded', () => {
  it('renders an input of the recorded size, and refuses one of another size (origin_error)', async () => {
    const input = await photo.clone().png().toBuffer();
    const rendered = await pipeline.render(input, plan({}, 'png'), { pages: 1, width: 400, height: 300 });
    expect([rendered.width, rendered.height]).toEqual([400, 300]);

    const error = await failure(
      pipeline.render(input, plan({}, 'png'), { pages: 1, width: 200, height: 150 }),
    );
    expect(error.code).toBe('origin_error');
    expect(error.status).toBe(502);
    expect(error.publicMessage).toBe('The original at the origin is not the image registered');
    expect(error.message).toContain('recorded 200 × 150, found 400 × 300');
  });

  it('compares the displayed size: an EXIF-rotated original is recorded upright', async () => {
    // Stored 400 × 300 with orientation 6 (90° clockwise): displayed 300 × 400, as inspect records it.
    const rotated = await photo.clone().jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const rendered = await pipeline.render(rotated, plan({}, 'jpeg'), { pages: 1, width: 300, height: 400 });
    expect([rendered.width, rendered.height]).toEqual([300, 400]);
  });
});
