/** The shapes shared by transform parsing, policy, format negotiation and the pipeline. */

export type Fit = 'cover' | 'contain' | 'fill' | 'inside' | 'outside';
export const fits: readonly Fit[] = ['cover', 'contain', 'fill', 'inside', 'outside'];

export type OutputFormat = 'jpeg' | 'png' | 'webp' | 'avif';
export const outputFormats: readonly OutputFormat[] = ['jpeg', 'png', 'webp', 'avif'];

export const contentTypes: Readonly<Record<string, string>> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  avif: 'image/avif',
  gif: 'image/gif',
  tiff: 'image/tiff',
  heif: 'image/heif',
  svg: 'image/svg+xml',
};

/**
 * A normalized transform: `dpr` already multiplied into `w`/`h`, a preset already expanded,
 * defaults filled in, `fit` kept only where it changes the result (both `w` and `h` given).
 * Two requests that mean the same variant have equal transforms, so they share a cache entry.
 */
export interface Transform {
  readonly w?: number | undefined;
  readonly h?: number | undefined;
  readonly fit: Fit;
  readonly format: OutputFormat | 'auto';
  readonly q?: number | undefined;
  readonly blur?: number | undefined;
  /**
   * Set by the server, never by a request: the preview watermark (PIXGATE_PREVIEW_WATERMARK)
   * is drawn on this variant. Part of the canonical text, so it has its own cache entry.
   */
  readonly watermark?: true | undefined;
}

/** What the pipeline is asked to make: a transform with its format and quality decided. */
export interface RenderPlan {
  readonly transform: Transform;
  readonly format: OutputFormat;
  readonly quality: number;
}

/** What an upload turned out to be, learned from its bytes alone. */
export interface ImageFacts {
  /** sharp's name of the format: jpeg, png, webp, avif, gif, svg, tiff, heif. */
  readonly format: string;
  readonly contentType: string;
  /** Displayed size, after EXIF orientation; for animations, one frame. */
  readonly width: number;
  readonly height: number;
  readonly hasAlpha: boolean;
  readonly pages: number;
  /** ThumbHash, base64. */
  readonly placeholder: string;
}
