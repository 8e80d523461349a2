/**
 * Finished variants: a bytes-bounded memory LRU in front of a size-bounded disk cache (S3 when
 * scaled out). Keys come from `variant-key.ts` and contain the image id, its version, the
 * normalized transform and the output format, so a changed image, owner or access class can
 * never be answered with a stale or someone else's variant.
 */

export interface Variant {
  readonly body: Buffer;
  /** image/jpeg, image/png, image/webp, image/avif. */
  readonly contentType: string;
  readonly width: number;
  readonly height: number;
}

export interface VariantKey {
  readonly imageId: string;
  /** base64url digest of version, normalized transform and format; also the strong ETag. */
  readonly hash: string;
}

export interface VariantCache {
  get(key: VariantKey): Promise<Variant | undefined>;
  /**
   * Stores a variant. Never throws for a full disk or a failing backend: a variant that cannot
   * be cached is still served (SPEC §4, 507 row); the failure is logged by the implementation.
   */
  set(key: VariantKey, variant: Variant): Promise<void>;
  /**
   * Removes every variant of the image (DELETE of the image). A set for it landing afterwards
   * is refused by the fence main.ts puts around the layers (delete-fence.ts), not by each layer.
   */
  deleteImage(imageId: string): Promise<void>;
  /** Throws when the cache cannot be used (readiness). */
  check(): Promise<void>;
  close(): Promise<void>;
}
