import type { FastifyReply, FastifyRequest } from 'fastify';
import { etagOf, variantKey } from '../cache/variant-key.js';
import type { Config } from '../config/schema.js';
import { chooseFormat, isAnimated } from '../images/negotiate.js';
import { predictOutputSize } from '../images/output-size.js';
import { defaultQuality, renderSettings } from '../images/pipeline.js';
import { canonicalTransform } from '../images/transform.js';
import type { RenderPlan, Transform } from '../images/types.js';
import type { VariantService } from '../images/variants.js';
import type { ImageRecord } from '../store/store.js';
import { evaluatePreconditions, VARY_IMAGE } from './headers.js';
import { jsonFormEtag, outputTooLarge, sendJsonForm, wantsJsonForm } from './json-form.js';
import { clientGoneSignal } from './request-state.js';

/**
 * The methods of an image URL (`/v1/images/{id}`, `/s/{token}`), HEAD declared rather than
 * left to fastify: its generated HEAD route writes `Content-Length: 0` for an empty payload, a
 * 304's too, which says the 200 is empty (RFC 9110 §8.6 allows only the 200's length) and which
 * a cache could copy into the image it stores (RFC 7234 §4.3.4). Declared, a HEAD is answered
 * as its GET, and Node leaves the body out.
 */
export const IMAGE_METHODS = ['GET', 'HEAD'];

export interface SendVariantOptions {
  readonly cacheControl: string;
  /** The Vary header: VARY_IMAGE unless the credential adds to it (headers.ts). */
  readonly vary?: string;
  /** Scaled down from what was asked: `Pixgate-Clamped: 1`. */
  readonly isClamped: boolean;
  /**
   * For someone who may only see a sniff (the policy's preview class), clamped or already within
   * previewMax: PIXGATE_PREVIEW_BLUR and PIXGATE_PREVIEW_WATERMARK apply. A share link held to
   * its `maxWidth` is clamped but not a preview: its owner granted that image, unmarked.
   */
  readonly isPreview?: boolean;
  /**
   * Called once the variant is ready, before a 200 GET is sent (share links count a view here,
   * and throw when the budget is gone). Not called for HEAD or 304.
   */
  readonly beforeBody?: () => Promise<void>;
}

/**
 * The variant half of an image response, shared by bearer requests, signed URLs and share links:
 * format negotiation, the ETag decided before any processing (a 304 costs no sharp work and no
 * origin read), then the variant from the cache or the pipeline.
 */
export function createVariantSender(config: Config, variants: VariantService) {
  const settings = renderSettings(config);
  return async function sendVariant(
    request: FastifyRequest,
    reply: FastifyReply,
    record: ImageRecord,
    requested: Transform,
    options: SendVariantOptions,
  ) {
    // A preview is visibly a sniff (issue 4): blurred when PIXGATE_PREVIEW_BLUR is set,
    // watermarked when PIXGATE_PREVIEW_WATERMARK is.
    let transform = requested;
    if (options.isPreview) {
      if (config.previewBlur > 0 && (transform.blur ?? 0) < config.previewBlur) {
        transform = { ...transform, blur: config.previewBlur };
      }
      if (config.previewWatermark) transform = { ...transform, watermark: true };
    }
    reply.header('vary', options.vary ?? VARY_IMAGE).header('cache-control', options.cacheControl);
    const output = predictOutputSize(record, transform);
    const format = chooseFormat(
      transform.format,
      request.headers.accept,
      { hasAlpha: record.hasAlpha, isAnimated: isAnimated(record.format, record.pages) },
      output.width * output.height,
      config.avifAutoMaxPixels,
    );
    const plan: RenderPlan = { transform, format, quality: transform.q ?? defaultQuality[format] };
    const key = variantKey(record, canonicalTransform(transform), format, settings);
    // The JSON (data URI) form is another representation: its own ETag, so 304s never cross.
    const asJson = wantsJsonForm(request.headers.accept);
    const etag = asJson ? jsonFormEtag(etagOf(key)) : etagOf(key);
    reply.header('etag', etag);
    if (options.isClamped) reply.header('pixgate-clamped', '1');
    // Decided before any processing: a revalidation costs no sharp work and no origin read.
    if (evaluatePreconditions(request, etag) === 'not-modified') return reply.code(304).send();

    const variant = await variants.variant(record, plan, key, () => clientGoneSignal(request));
    // Refused before a share link counts the view.
    if (asJson && variant.body.length > config.jsonMaxBytes) {
      throw outputTooLarge(variant.body.length, config.jsonMaxBytes);
    }
    if (options.beforeBody && request.method === 'GET') await options.beforeBody();
    if (asJson) return sendJsonForm(reply, variant, config.jsonMaxBytes);
    return reply.type(variant.contentType).send(variant.body);
  };
}

export type VariantSender = ReturnType<typeof createVariantSender>;
