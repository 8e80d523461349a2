import { readFile } from 'node:fs/promises';
import sharp, { type Metadata } from 'sharp';
import { rgbaToThumbHash } from 'thumbhash';
import { AppError } from '../errors.js';
import { framesKept, inputOptions, tooManyPixels, unprocessable } from './decode.js';
import { isAnimated } from './negotiate.js';
import { refuseSvgResourcesOnce } from './svg-guard.js';
import { contentTypes, type ImageFacts } from './types.js';

/**
 * What an upload is, learned from its bytes alone (SPEC §6): the Content-Type header is
 * ignored. libvips sniffs the format; only an allowlist is accepted (415 otherwise); the pixel
 * budget counts every frame, and the first frame is decoded in full while computing the
 * ThumbHash (an animation: every frame an animated render may decode), so a corrupt or
 * truncated file is a 422 now rather than a failed render later.
 */

export interface InspectLimits {
  readonly maxInputPixels: number;
  /** PIXGATE_MAX_FRAMES: the most frames an animated render decodes. */
  readonly maxFrames: number;
}

/** sharp's format names; `heif` is the container of AVIF (AV1) and of HEIC (HEVC). */
const ALLOWED = new Set(['jpeg', 'png', 'webp', 'gif', 'heif', 'tiff', 'svg']);
const EXPECTED = 'expected JPEG, PNG, WebP, GIF, AVIF, TIFF or SVG';
/** libheif's words for a codec the build lacks: HEVC, so an iPhone's HEIC photo is no corrupt file. */
const MISSING_DECODER = /has not been built in|no decoding plugin/i;
/** ThumbHash encodes at most 100×100. */
const PLACEHOLDER_SIDE = 100;

export async function inspectImage(path: string, options: InspectLimits): Promise<ImageFacts> {
  // Read whole (the upload size is capped before this): from a path librsvg would resolve an
  // SVG's `<image href>` against the upload directory and embed other files (decode.ts).
  return inspectBytes(await readFile(path), options);
}

/** The same, for bytes already in memory (an original registered from the origin). */
export async function inspectBytes(input: Buffer, options: InspectLimits): Promise<ImageFacts> {
  const meta = await readHeader(input);
  if (!ALLOWED.has(meta.format)) {
    throw new AppError('unsupported_media_type', `Unsupported image format "${meta.format}": ${EXPECTED}`);
  }
  // A HEIF file this libvips can decode is AV1: sharp's build has no HEVC decoder (a HEIC photo
  // fails in thumbHash below). Its `compression` cannot tell: libvips derives it from the major
  // brand, and older encoders write `mif1` on AVIF files.
  const format = meta.format === 'heif' ? 'avif' : meta.format;
  if (format === 'svg') await refuseSvgResourcesOnce(input);
  const pages = meta.pages ?? 1;
  if (meta.width * meta.height * pages > options.maxInputPixels) {
    throw tooManyPixels(meta.width, meta.height, pages, options.maxInputPixels);
  }
  const placeholder = await thumbHash(input, meta, options.maxInputPixels);
  // Only an animation is ever decoded frame by frame (pipeline.ts); the pages of a TIFF may
  // differ in size, which libvips cannot decode together, and only the first is shown.
  if (isAnimated(format, pages)) await decodeFrames(input, meta.width * meta.height, pages, options);
  return {
    format,
    contentType: contentTypes[format] ?? 'application/octet-stream',
    width: meta.autoOrient.width,
    height: meta.autoOrient.height,
    hasAlpha: meta.hasAlpha,
    pages,
    placeholder,
  };
}

async function readHeader(input: Buffer): Promise<Metadata> {
  try {
    // The header only, no pixel limit: the budget is checked by us, frames included.
    return await sharp(input, { limitInputPixels: false }).metadata();
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    // sharp's words for bytes no loader claims (and for an empty file).
    if (/unsupported image format|empty/i.test(detail)) {
      throw new AppError('unsupported_media_type', `Not an image: ${EXPECTED}`, { detail, cause: error });
    }
    throw unprocessable('The image is corrupt', error);
  }
}

/**
 * Decodes the first frame completely (shrink-on-load keeps a 12 MP JPEG fast) with FAIL_ON, so
 * truncated or corrupt pixel data fails here.
 */
async function thumbHash(input: Buffer, meta: Metadata, maxInputPixels: number): Promise<string> {
  try {
    const image = sharp(input, inputOptions(maxInputPixels)).autoOrient();
    // 16-bit images: see toSrgb in pipeline.ts.
    if (meta.depth !== 'uchar' && meta.depth !== 'char') image.pipelineColourspace('srgb');
    const { data, info } = await image
      .resize(PLACEHOLDER_SIDE, PLACEHOLDER_SIDE, { fit: 'inside', withoutEnlargement: true })
      .toColourspace('srgb')
      .ensureAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return Buffer.from(rgbaToThumbHash(info.width, info.height, data)).toString('base64');
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    if (meta.format === 'heif' && MISSING_DECODER.test(detail)) {
      throw new AppError(
        'unsupported_media_type',
        `HEIC (HEVC) images are not supported; convert to JPEG or AVIF: ${EXPECTED}`,
        {
          detail,
          cause: error,
        },
      );
    }
    throw unprocessable('The image is corrupt or truncated', error);
  }
}

/**
 * Decodes the frames an animated render keeps (decode.ts `framesKept`), shrunk to a few pixels:
 * a later frame's damage, unseen by the first frame's decode, fails here too.
 */
async function decodeFrames(input: Buffer, framePixels: number, pages: number, limits: InspectLimits) {
  const frames = framesKept(pages, framePixels, limits);
  if (frames < 2) return;
  try {
    await sharp(input, inputOptions(limits.maxInputPixels, frames))
      .resize(8, 8, { fit: 'inside' })
      .raw()
      .toBuffer();
  } catch (error) {
    throw unprocessable('The image is corrupt or truncated', error);
  }
}
