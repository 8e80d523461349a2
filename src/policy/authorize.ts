import { bearerChallenge } from '../auth/credentials.js';
import { hasScope, isAdmin, type Principal, type Scope } from '../auth/principal.js';
import { AppError, messages, notFound } from '../errors.js';
import { clampTransform } from '../images/output-size.js';
import { defaultTransform } from '../images/transform.js';
import type { Transform } from '../images/types.js';
import type { ImageRecord } from '../store/store.js';

/**
 * Who may see what: exactly the table of SPEC §2. Pure functions of (principal, image,
 * request); they either return a decision or throw the AppError the caller must answer.
 *
 *   caller            private      preview                      public
 *   owner / admin     anything     anything                     anything
 *   other user        404          variants clamped to preview  any variant
 *   anonymous         401          401, or clamped preview      any variant
 *
 * Only owners and admins ever get the original bytes; everyone else gets a re-encoded variant
 * with metadata stripped, and nobody gets an output side larger than `maxDimension`.
 */

export interface PolicyOptions {
  readonly previewMax: number;
  readonly previewAnonymous: boolean;
  readonly maxDimension: number;
}

export type ViewDecision =
  | { readonly kind: 'original' }
  | {
      readonly kind: 'variant';
      readonly transform: Transform;
      /** Scaled down from what was asked, to previewMax. */
      readonly isClamped: boolean;
      /**
       * Seen by someone who may only see a preview, whatever the size asked for: the settings
       * that mark a preview (blur, watermark) apply, or asking for a width within previewMax
       * would get the same pixels unmarked.
       */
      readonly isPreview: boolean;
    };

export type Access = 'full' | 'preview' | 'public';

// No credential: a challenge without an `error` attribute (RFC 6750 §3.1).
export const unauthenticated = () =>
  new AppError('unauthenticated', messages.unauthenticated, {
    headers: { 'WWW-Authenticate': bearerChallenge() },
  });

function requireScope(principal: Principal, scope: Scope): void {
  if (!hasScope(principal, scope)) {
    throw new AppError('insufficient_scope', `The access token needs the scope ${scope}`, {
      headers: {
        'WWW-Authenticate': `Bearer realm="pixgate", error="insufficient_scope", error_description="The access token needs the scope ${scope}", scope="${scope}"`,
      },
    });
  }
}

export const isOwnerOrAdmin = (principal: Principal | null, image: ImageRecord) =>
  principal !== null && (principal.subject === image.owner || isAdmin(principal));

/**
 * How much of the image the caller may see. A missing image and one the caller may not know
 * of give the same answer: 404 for an authenticated caller, 401 for an anonymous one (a 404
 * to the anonymous would tell them which private ids exist).
 */
export function accessTo(
  principal: Principal | null,
  image: ImageRecord | undefined,
  options: PolicyOptions,
): Access {
  if (principal !== null) requireScope(principal, 'images:read');
  if (image === undefined) throw principal === null ? unauthenticated() : notFound();
  if (isOwnerOrAdmin(principal, image)) return 'full';
  if (image.visibility === 'public') return 'public';
  if (image.visibility === 'preview' && (principal !== null || options.previewAnonymous)) return 'preview';
  // 404, not 403: a 403 would confirm that the id exists.
  throw principal === null ? unauthenticated() : notFound();
}

/** What a GET of the image answers: the stored bytes, or which variant. */
export function authorizeView(
  principal: Principal | null,
  image: ImageRecord | undefined,
  requested: Transform | null,
  options: PolicyOptions,
): ViewDecision {
  const access = accessTo(principal, image, options);
  const record = image as ImageRecord;
  // SVG is only ever rasterized (it can carry script), even for its owner.
  if (access === 'full' && requested === null && record.format !== 'svg') return { kind: 'original' };

  const bounded = clampTransform(record, requested ?? defaultTransform, options.maxDimension);
  if (access !== 'preview')
    return { kind: 'variant', transform: bounded, isClamped: false, isPreview: false };
  const preview = clampTransform(record, bounded, options.previewMax);
  return { kind: 'variant', transform: preview, isClamped: preview !== bounded, isPreview: true };
}

/** `/meta`: readable by whoever may see the image; the owner is named only to owner and admins. */
export function authorizeMeta(
  principal: Principal | null,
  image: ImageRecord | undefined,
  options: PolicyOptions,
): { readonly showOwner: boolean } {
  return { showOwner: accessTo(principal, image, options) === 'full' };
}

/**
 * Changing an image (visibility, delete, links): owner or admin with images:write. A caller who
 * can see the image but does not own it gets 403; one who cannot see it gets 404.
 */
export function authorizeChange(
  principal: Principal | null,
  image: ImageRecord | undefined,
  options: PolicyOptions,
): void {
  if (principal === null) throw unauthenticated();
  requireScope(principal, 'images:write');
  if (accessTo(principal, image, options) !== 'full') {
    throw new AppError('forbidden', 'Only the owner may change this image');
  }
}

/** Uploading: any authenticated caller with images:write. */
export function authorizeUpload(principal: Principal | null): Principal {
  if (principal === null) throw unauthenticated();
  requireScope(principal, 'images:write');
  return principal;
}

/** Registering an original already in the origin (a JSON body to POST /v1/images): admins only. */
export function authorizeRegister(principal: Principal | null): Principal {
  if (principal === null) throw unauthenticated();
  requireScope(principal, 'images:admin');
  return principal;
}

/** Listing: one's own images; admins may list anyone's. */
export function authorizeList(principal: Principal | null, owner: string): Principal {
  if (principal === null) throw unauthenticated();
  requireScope(principal, 'images:read');
  if (owner !== principal.subject && !isAdmin(principal)) {
    throw new AppError('forbidden', 'Only admins may list the images of another owner');
  }
  return principal;
}

/**
 * Signed URLs, share links, revocation (issue 4): the owner or an admin, with `scope`. Anyone
 * else gets the 404 of an unknown image, even a caller who may view it: capabilities of an image
 * are the owner's business, and a 403 would confirm the id.
 */
export function authorizeCapability(
  principal: Principal | null,
  image: ImageRecord | undefined,
  scope: 'images:read' | 'images:write',
): Principal {
  if (principal === null) throw unauthenticated();
  requireScope(principal, scope);
  if (image === undefined || !isOwnerOrAdmin(principal, image)) throw notFound();
  return principal;
}
