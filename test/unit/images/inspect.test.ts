import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { thumbHashToAverageRGBA } from 'thumbhash';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors.js';
import { inspectImage } from '../../../src/images/inspect.js';
import { animatedGif, multiPageTiff, pngBomb } from '../../helpers/images.js';

let dir: string;
let counter = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixgate-inspect-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const limits = { maxInputPixels: 50_000_000, maxFrames: 100 };

/** Writes bytes under a misleading name: only the bytes may decide. */
async function upload(body: Buffer | string, name = `upload-${++counter}.jpg`): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, body);
  return path;
}

async function failure(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected inspect to fail');
}

/** The average colour a ThumbHash encodes, RGB 0..255. */
const average = (placeholder: string) => {
  const { r, g, b } = thumbHashToAverageRGBA(Buffer.from(placeholder, 'base64'));
  return [r, g, b].map((value) => Math.round(value * 255));
};

/** ThumbHash quantizes: its average colour is close, not exact. */
function expectColour(placeholder: string, rgb: readonly number[], message?: string) {
  const actual = average(placeholder);
  rgb.forEach((value, i) => {
    expect(Math.abs((actual[i] as number) - value), `${message ?? ''} ${actual} vs ${rgb}`).toBeLessThan(20);
  });
}

const orange = { r: 240, g: 140, b: 20 };
const base = (channels: 3 | 4 = 3) =>
  sharp({
    create: { width: 64, height: 48, channels, background: { ...orange, alpha: channels === 4 ? 0.5 : 1 } },
  });

describe('inspectImage: formats, from the bytes alone', () => {
  it.each([
    ['jpeg', 'image/jpeg', () => base().jpeg().toBuffer(), false],
    ['png', 'image/png', () => base(4).png().toBuffer(), true],
    ['webp', 'image/webp', () => base().webp().toBuffer(), false],
    // libvips decodes every GIF with an alpha channel.
    ['gif', 'image/gif', () => base().gif().toBuffer(), true],
    ['avif', 'image/avif', () => base().avif({ effort: 0 }).toBuffer(), false],
    ['tiff', 'image/tiff', () => base().tiff().toBuffer(), false],
  ] as const)('%s', async (format, contentType, make, hasAlpha) => {
    const facts = await inspectImage(await upload(await make()), limits);
    expect(facts).toMatchObject({ format, contentType, width: 64, height: 48, pages: 1, hasAlpha });
    expectColour(facts.placeholder, [orange.r, orange.g, orange.b]);
  });

  it('avif with the major brand mif1, as older encoders write it (libvips then reports HEVC)', async () => {
    const avif = await base().avif({ effort: 0 }).toBuffer();
    avif.write('mif1', 8, 'latin1');
    expect((await sharp(avif).metadata()).compression).toBe('hevc');
    const facts = await inspectImage(await upload(avif), limits);
    expect(facts).toMatchObject({ format: 'avif', contentType: 'image/avif', width: 64, height: 48 });
    expectColour(facts.placeholder, [orange.r, orange.g, orange.b]);
  });

  it('svg', async () => {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80"><rect width="120" height="80" fill="#0000ff"/></svg>';
    const facts = await inspectImage(await upload(svg, 'drawing.png'), limits);
    expect(facts).toMatchObject({
      format: 'svg',
      contentType: 'image/svg+xml',
      width: 120,
      height: 80,
      pages: 1,
    });
    expectColour(facts.placeholder, [0, 0, 255]);
  });

  it('reports the displayed size of an EXIF-rotated photo (orientation 5..8 swaps)', async () => {
    const rotated = await base().jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const facts = await inspectImage(await upload(rotated), limits);
    expect([facts.width, facts.height]).toStrictEqual([48, 64]);
    const flipped = await base().jpeg().withMetadata({ orientation: 3 }).toBuffer();
    const upside = await inspectImage(await upload(flipped), limits);
    expect([upside.width, upside.height]).toStrictEqual([64, 48]);
  });

  it('reports frames and the size of one frame for an animation', async () => {
    const facts = await inspectImage(await upload(await animatedGif(30, 20, 5)), limits);
    expect(facts).toMatchObject({ format: 'gif', width: 30, height: 20, pages: 5 });
  });

  it('computes a real ThumbHash', async () => {
    const facts = await inspectImage(await upload(await base().png().toBuffer()), limits);
    expect(facts.placeholder).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(facts.placeholder, 'base64').length).toBeGreaterThanOrEqual(5);
    expect(Buffer.from(facts.placeholder, 'base64').length).toBeLessThanOrEqual(25);
  });

  it('is fast on a 4000×3000 JPEG (shrink-on-load)', async () => {
    const photo = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: orange } })
      .jpeg()
      .toBuffer();
    const path = await upload(photo);
    const started = performance.now();
    const facts = await inspectImage(path, limits);
    expect([facts.width, facts.height]).toStrictEqual([4000, 3000]);
    // Typically ~50 ms here; a full 12 MP decode would be several times that.
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('inspectImage: refusals', () => {
  it.each([
    ['text', 'hello, I am not an image\n'],
    ['empty file', ''],
    ['HTML', '<!doctype html><html><body>hi</body></html>'],
    ['PDF', '%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF'],
    ['BMP', Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)])],
    ['PPM', Buffer.concat([Buffer.from('P6\n2 2\n255\n'), Buffer.alloc(12, 200)])],
  ])('%s is a 415', async (_name, body) => {
    const error = await failure(inspectImage(await upload(body, 'photo.png'), limits));
    expect(error.code).toBe('unsupported_media_type');
    expect(error.status).toBe(415);
    expect(error.publicMessage).toBe('Not an image: expected JPEG, PNG, WebP, GIF, AVIF, TIFF or SVG');
  });

  it('a decompression bomb is a 422 before any pixel is decoded', async () => {
    const error = await failure(inspectImage(await upload(pngBomb(20000, 20000)), limits));
    expect(error.code).toBe('unprocessable_image');
    expect(error.status).toBe(422);
    expect(error.publicMessage).toBe(
      'The image has 20000 × 20000 = 400000000 pixels, more than the 50000000 allowed',
    );
  });

  it('an SVG declaring 100000×100000 is a 422', async () => {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="9" height="9"/></svg>';
    const error = await failure(inspectImage(await upload(svg), limits));
    expect(error.code).toBe('unprocessable_image');
    expect(error.publicMessage).toBe(
      'The image has 100000 × 100000 = 10000000000 pixels, more than the 50000000 allowed',
    );
  });

  it('counts every frame of an animation', async () => {
    const gif = await upload(await animatedGif(30, 20, 5));
    const error = await failure(inspectImage(gif, { maxInputPixels: 2999, maxFrames: 100 }));
    expect(error.code).toBe('unprocessable_image');
    expect(error.publicMessage).toBe(
      'The image has 30 × 20 × 5 frames = 3000 pixels, more than the 2999 allowed',
    );
    await expect(inspectImage(gif, { maxInputPixels: 3000, maxFrames: 100 })).resolves.toMatchObject({
      pages: 5,
    });
  });

  it('an animation with a corrupt later frame is a 422, not a failed animated render later', async () => {
    // Noise frames (a fixed LCG, so the same bytes every run), so the damage falls in a later
    // frame's pixel data, past the first frame.
    const frames = 8;
    const noise = Buffer.alloc(64 * 64 * frames * 4);
    let seed = 12345;
    for (let i = 0; i < noise.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      noise[i] = i % 4 === 3 ? 255 : seed >>> 24;
    }
    const gif = await sharp(noise, { raw: { width: 64, height: 64 * frames, channels: 4, pageHeight: 64 } })
      .gif({ loop: 0 })
      .toBuffer();
    const damaged = Buffer.from(gif);
    damaged.fill(0xff, Math.floor(gif.length * 0.9), Math.floor(gif.length * 0.9) + 64);
    // The first frame alone still decodes: the damage is only seen when the later ones are.
    await sharp(damaged, { failOn: 'error' }).raw().toBuffer();

    const error = await failure(inspectImage(await upload(damaged), limits));
    expect(error.code).toBe('unprocessable_image');
    await expect(inspectImage(await upload(gif), limits)).resolves.toMatchObject({ pages: frames });
    // Kept to its first frame (PIXGATE_MAX_FRAMES=1), the animation never decodes the others.
    await expect(inspectImage(await upload(damaged), { ...limits, maxFrames: 1 })).resolves.toMatchObject({
      pages: frames,
    });
  });

  it('accepts a multi-page TIFF with pages of different sizes (only its first page is shown)', async () => {
    const tiff = multiPageTiff([
      [64, 48],
      [16, 12],
    ]);
    expect((await sharp(tiff).metadata()).pages).toBe(2);
    await expect(inspectImage(await upload(tiff), limits)).resolves.toMatchObject({
      format: 'tiff',
      width: 64,
      height: 48,
      pages: 2,
    });
  });

  it('a JPEG cut in half is a 422, even when decoded with shrink-on-load', async () => {
    // Large enough that the placeholder decode shrinks on load (1/8); noise so the cut falls in pixel data.
    const photo = await sharp({
      create: {
        width: 1600,
        height: 1200,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 30 },
      },
    })
      .jpeg({ quality: 70 })
      .toBuffer();
    const error = await failure(inspectImage(await upload(photo.subarray(0, photo.length >> 1)), limits));
    expect(error.code).toBe('unprocessable_image');
    expect(error.publicMessage).toBe('The image is corrupt or truncated');
    expect(error.message).toContain('premature end of JPEG');
  });

  it('a truncated PNG is a 422', async () => {
    const png = await sharp({
      create: {
        width: 300,
        height: 200,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 30 },
      },
    })
      .png()
      .toBuffer();
    const error = await failure(inspectImage(await upload(png.subarray(0, png.length >> 1)), limits));
    expect(error.code).toBe('unprocessable_image');
    expect(error.publicMessage).toBe('The image is corrupt or truncated');
  });

  it.each([8, 20, 40])(
    'a PNG cut after %i bytes is a 422, not a 415 (the bytes do say PNG)',
    async (length) => {
      const png = await base().png().toBuffer();
      const error = await failure(inspectImage(await upload(png.subarray(0, length)), limits));
      expect(error.code).toBe('unprocessable_image');
      expect(error.publicMessage).toBe('The image is corrupt');
    },
  );
});

describe('inspectImage: an SVG cannot read its neighbours (it is read as bytes, not as a path)', () => {
  const svgWith = (href: string) =>
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="40">` +
    `<rect width="40" height="40" fill="#00ff00"/>` +
    `<image href="${href}" xlink:href="${href}" width="40" height="40"/></svg>`;

  it('does not embed a sibling file or an absolute file URL', async () => {
    const magenta = await sharp({
      create: { width: 40, height: 40, channels: 3, background: { r: 255, g: 0, b: 255 } },
    })
      .png()
      .toBuffer();
    const secret = await upload(magenta, 'other-users-original.png');
    // Control: the same picture embedded is drawn (by sharp itself: an upload refuses an embedded
    // image, svg-guard.ts), so the check below can fail.
    const embedded = Buffer.from(svgWith(`data:image/png;base64,${magenta.toString('base64')}`));
    const drawn = await sharp(embedded).resize(1, 1).removeAlpha().raw().toBuffer();
    expect([...drawn]).toEqual([255, 0, 255]);
    await expect(inspectImage(await upload(embedded), limits)).rejects.toMatchObject({
      code: 'unprocessable_image',
    });

    for (const href of ['other-users-original.png', `file://${secret}`, secret]) {
      const facts = await inspectImage(await upload(svgWith(href), `drawing-${++counter}.svg`), limits);
      expectColour(facts.placeholder, [0, 255, 0], href);
    }
  });
});
