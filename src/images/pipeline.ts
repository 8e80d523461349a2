import sharp, { type Metadata, type Sharp } from 'sharp';
import type { Variant } from '../cache/variant-cache.js';
import { notTheRecordedOriginal } from '../errors.js';
import { framesKept, inputOptions, tooManyPixels, unprocessable } from './decode.js';
import { isAnimated } from './negotiate.js';
import { effectiveFit, predictOutputSize } from './output-size.js';
import { refuseSvgResourcesOnce } from './svg-guard.js';
import { contentTypes, type OutputFormat, type RenderPlan } from './types.js';

/**
 * The sharp pipeline: a short list of steps sharing one context, as imgproxy's. `open` reads
 * the header and decides what is decoded; the steps only describe the work; sharp runs it all
 * in one pass at `toBuffer`. sharp's own defaults are kept on purpose: `sharp.concurrency()`
 * (1 libvips thread per image on glibc without jemalloc; parallelism comes from the work queue
 * and libuv's pool) and its operation cache.
 */

export interface PipelineOptions {
  maxInputPixels: number;
  /** Animated output keeps at most this many frames. */
  maxFrames: number;
  avifEffort: number;
  /** Text drawn on variants whose transform asks for the watermark (clamped previews). */
  previewWatermark?: string | undefined;
}

/**
 * The settings a variant's bytes depend on beyond its transform and format, for its cache key
 * (cache/variant-key.ts): the frame cap and pixel budget (how much of an animation is kept), the
 * AVIF effort and the watermark text.
 */
export function renderSettings(options: PipelineOptions): string {
  const { maxInputPixels, maxFrames, avifEffort, previewWatermark } = options;
  return JSON.stringify({
    maxInputPixels,
    maxFrames,
    avifEffort,
    previewWatermark: previewWatermark ?? null,
  });
}

export const defaultQuality: Record<OutputFormat, number> = {
  jpeg: 80,
  webp: 80,
  avif: 50,
  // Unused: PNG is lossless (a palette, where quality would apply, is never asked for).
  png: 100,
};

interface Source {
  /** Displayed size (after EXIF orientation) of one frame. */
  readonly width: number;
  readonly height: number;
  readonly hasAlpha: boolean;
  readonly isHighDepth: boolean;
}

interface RenderContext {
  readonly plan: RenderPlan;
  readonly options: PipelineOptions;
  readonly source: Source;
  readonly image: Sharp;
  /** Frames decoded: more than one only for an animation kept in WebP output. */
  readonly frames: number;
  /** The output size of one frame, as output-size.ts predicts it. */
  readonly size: { readonly width: number; readonly height: number };
}

type Step = (ctx: RenderContext) => void;

/** Auto-orientation before the resize, so w and h mean the displayed sides. */
const autoOrient: Step = ({ image }) => {
  image.autoOrient();
};

/**
 * sharp converts an embedded profile to sRGB and writes none, which keeps a Display P3 photo
 * looking right. 16-bit images are the exception: sharp processes them in P3 and then only
 * relabels them sRGB (desaturated output), so they are converted to sRGB on load instead.
 */
const toSrgb: Step = ({ image, source }) => {
  if (source.isHighDepth) image.pipelineColourspace('srgb');
  image.toColourspace('srgb');
};

/**
 * Never enlarged (SPEC §2). For cover and contain sharp's own crop or padding gives exactly
 * the predicted size. For inside, outside and fill the exact predicted size is asked for:
 * sharp's JPEG/WebP shrink-on-load rounds the auto-scaled side from the reduced image and can
 * land a pixel (or two) off, which would break the preview bound and the AVIF cap.
 */
const resize: Step = ({ image, plan, source, size }) => {
  const t = plan.transform;
  if (t.w === undefined && t.h === undefined) return;
  const fit = effectiveFit(t);
  if (fit === 'cover' || fit === 'contain') {
    image.resize(t.w, t.h, { fit, withoutEnlargement: true, background: padding(plan.format) });
  } else if (size.width !== source.width || size.height !== source.height) {
    image.resize(size.width, size.height, { fit: 'fill' });
  }
};

/** Contain's padding: white under JPEG (no alpha), transparent elsewhere. */
const padding = (format: OutputFormat) =>
  format === 'jpeg' ? { r: 255, g: 255, b: 255, alpha: 1 } : { r: 0, g: 0, b: 0, alpha: 0 };

/** JPEG has no alpha: transparent pixels become white, not whatever colour they hide. */
const flatten: Step = ({ image, plan, source }) => {
  if (plan.format === 'jpeg' && source.hasAlpha) image.flatten({ background: '#ffffff' });
};

/** sharp blurs after resizing, so sigma is in output pixels. */
const blur: Step = ({ image, plan }) => {
  if (plan.transform.blur !== undefined) image.blur(plan.transform.blur);
};

const escapeXml = (text: string) =>
  text.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c,
  );

/**
 * The preview watermark (issue 4): a translucent band across the lower part with the configured
 * text, so a sniff is visibly a sniff. The band alone already marks the image should the system
 * have no font for the text. sharp composites after the resize and the blur, at the output size.
 */
const watermark: Step = ({ image, plan, options, size }) => {
  const text = plan.transform.watermark ? options.previewWatermark : undefined;
  if (!text) return;
  const { width, height } = size;
  const band = Math.max(8, Math.round(height / 5));
  const fontSize = Math.max(6, Math.round(band * 0.6));
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<rect x="0" y="${height - band}" width="${width}" height="${band}" fill="#000" fill-opacity="0.45"/>
<text x="${width / 2}" y="${height - band / 2}" font-family="sans-serif" font-size="${fontSize}" fill="#fff" fill-opacity="0.9" text-anchor="middle" dominant-baseline="central">${escapeXml(text)}</text>
</svg>`;
  image.composite([{ input: Buffer.from(svg), top: 0, left: 0 }]);
};

/**
 * No keepMetadata()/withMetadata(): sharp writes no EXIF, GPS, XMP, IPTC, comment or ICC
 * (SPEC §2, nothing about the camera or the place leaves through a variant). Encoders are set
 * for speed: no mozjpeg, no progressive scans.
 */
const encode: Step = ({ image, plan, options }) => {
  const quality = plan.quality;
  switch (plan.format) {
    case 'jpeg':
      image.jpeg({ quality, mozjpeg: false, progressive: false });
      break;
    case 'png':
      image.png({ palette: false });
      break;
    case 'webp':
      image.webp({ quality });
      break;
    case 'avif':
      image.avif({ quality, effort: options.avifEffort });
      break;
  }
};

const steps: readonly Step[] = [autoOrient, toSrgb, resize, flatten, blur, watermark, encode];

const FAILED = 'The image could not be processed';

/**
 * What the store recorded of the image to render: how many pages it has, and its displayed size,
 * from which the policy bounded the output (a preview's previewMax). Without a size (tests of the
 * pipeline alone) any input is taken as it is.
 */
export interface RecordedImage {
  readonly pages: number;
  readonly width?: number;
  readonly height?: number;
}

export function createPipeline(options: PipelineOptions) {
  /** Reads the header only: what the image is, and how many frames are decoded. */
  async function open(input: Buffer, plan: RenderPlan, recorded: RecordedImage): Promise<RenderContext> {
    let meta: Metadata;
    try {
      // No pixel limit on the header: the budget below counts frames, which sharp cannot.
      meta = await sharp(input, { limitInputPixels: false }).metadata();
    } catch (error) {
      throw unprocessable(FAILED, error);
    }
    // Checked at upload too; here for originals stored before that check, or registered ones
    // replaced at their origin.
    if (meta.format === 'svg') await refuseSvgResourcesOnce(input);
    const found = meta.autoOrient;
    if (
      recorded.width !== undefined &&
      (found.width !== recorded.width || found.height !== recorded.height)
    ) {
      throw notTheRecordedOriginal(
        `recorded ${recorded.width} × ${recorded.height}, found ${found.width} × ${found.height}`,
      );
    }
    // Without `pages`, sharp's header describes the first frame.
    const framePixels = meta.width * meta.height;
    if (framePixels > options.maxInputPixels) {
      throw tooManyPixels(meta.width, meta.height, 1, options.maxInputPixels);
    }
    // Frames are decoded as one tall strip, which autoOrient turns as a whole: only orientation
    // 2 (a mirror left to right) is right for every frame. A 90° one cannot be applied to several
    // frames, and 3 and 4 (turned 180°, flipped upside down) would play the frames backwards
    // under the delays of the forward order: such a rarity gets its first frame.
    const available = Math.min(recorded.pages, meta.pages ?? 1);
    // A watermarked preview is one frame: the overlay is drawn once, and a sniff need not move.
    const keepsAnimation =
      plan.format === 'webp' &&
      isAnimated(meta.format, available) &&
      (meta.orientation ?? 1) <= 2 &&
      !plan.transform.watermark;
    const frames = keepsAnimation ? framesKept(available, framePixels, options) : 1;
    const source: Source = {
      width: found.width,
      height: found.height,
      hasAlpha: meta.hasAlpha,
      isHighDepth: meta.depth !== 'uchar' && meta.depth !== 'char',
    };
    return {
      plan,
      options,
      source,
      image: sharp(input, inputOptions(options.maxInputPixels, frames)),
      frames,
      size: predictOutputSize(source, plan.transform),
    };
  }

  return {
    async render(input: Buffer, plan: RenderPlan, recorded: RecordedImage): Promise<Variant> {
      const ctx = await open(input, plan, recorded);
      for (const step of steps) step(ctx);
      try {
        const { data, info } = await ctx.image.toBuffer({ resolveWithObject: true });
        return {
          body: data,
          contentType: contentTypes[plan.format] ?? 'application/octet-stream',
          width: info.width,
          height: ctx.frames > 1 ? (info.pageHeight ?? info.height / ctx.frames) : info.height,
        };
      } catch (error) {
        throw unprocessable(FAILED, error);
      }
    },
  };
}

export type Pipeline = ReturnType<typeof createPipeline>;
