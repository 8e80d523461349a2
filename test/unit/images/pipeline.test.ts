import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors.js';
import { createPipeline, defaultQuality, type PipelineOptions } from '../../../src/images/pipeline.js';
import type { OutputFormat, RenderPlan, Transform } from '../../../src/images/types.js';
import { animatedGif, pngBomb } from '../../helpers/images.js';

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

  it('can see an embedded image (the detector works)', async () => {
    const { readFile } = await import('node:fs/promises');
    const inline = `data:image/png;base64,${(await readFile(secretPath)).toString('base64')}`;
    expect(await magentaPixels(svg(inline))).toBeGreaterThan(100);
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
