import type { FailOnOptions, SharpOptions } from 'sharp';
import { AppError } from '../errors.js';

/**
 * What inspect.ts and pipeline.ts share about reading untrusted bytes, so that an image the
 * upload accepted is one the pipeline renders.
 *
 * Input is always a Buffer, never a path: librsvg resolves `<image href>` in an SVG read from
 * a file against that file's directory (and `file:///` anywhere), which would embed other
 * originals or local files into the output; from a Buffer it has no base and fetches nothing.
 * A path would also be cached by libvips' operation cache under its name.
 */

// 'error' rejects truncated and corrupt pixel data (a JPEG cut in half) but accepts the
// harmless libjpeg warnings many camera files carry ("extraneous bytes before marker"), which
// sharp's default, 'warning', would refuse.
export const FAIL_ON: FailOnOptions = 'error';

export function inputOptions(maxInputPixels: number, pages = 1): SharpOptions {
  return { failOn: FAIL_ON, limitInputPixels: maxInputPixels, pages };
}

/**
 * How many frames of an animation are decoded: sharp's limitInputPixels counts every decoded
 * frame (a 100-frame GIF is 100 images), so an animation is cut to the frames that fit the
 * pixel budget as well as to PIXGATE_MAX_FRAMES. The upload checks exactly these (inspect.ts),
 * the render keeps them (pipeline.ts).
 */
export function framesKept(
  pages: number,
  framePixels: number,
  limits: { readonly maxInputPixels: number; readonly maxFrames: number },
): number {
  return Math.min(pages, limits.maxFrames, Math.floor(limits.maxInputPixels / framePixels));
}

/** A sharp failure on untrusted bytes: 422 with a plain public message, sharp's words in the log. */
export function unprocessable(publicMessage: string, error: unknown): AppError {
  const detail = error instanceof Error ? error.message : String(error);
  return new AppError('unprocessable_image', publicMessage, { detail, cause: error });
}

export function tooManyPixels(
  width: number,
  height: number,
  frames: number,
  maxInputPixels: number,
): AppError {
  const counted = frames > 1 ? `${width} × ${height} × ${frames} frames` : `${width} × ${height}`;
  return new AppError(
    'unprocessable_image',
    `The image has ${counted} = ${width * height * frames} pixels, more than the ${maxInputPixels} allowed`,
  );
}
