import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { AppError } from '../errors.js';

/**
 * Every line of header `name` (lower-case) as sent. `request.headers` hides repeats: Node keeps
 * the first Host or Authorization line and drops the others.
 */
export function headerLines(request: IncomingMessage, name: string): string[] {
  const raw = request.rawHeaders;
  const lines: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === name) lines.push(raw[i + 1] ?? '');
  }
  return lines;
}

/**
 * Headers every response carries (SPEC §3, §4): no MIME sniffing, no Referer carrying a
 * query-parameter token onward, nothing in an image body allowed to run or load.
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'",
};

/** Image responses depend on Accept: the format (`auto`) and the JSON form. */
export const VARY_IMAGE = 'Accept';

/**
 * An image response authenticated by the Authorization header depends on it too. A browser's
 * own cache ignores Authorization unless told (RFC 9111 §4.1): without it, another token or an
 * anonymous request in the same browser would be answered the owner's private image from that
 * cache instead of its 404 or 401. (The cookie's answers vary on Cookie: session-cookie.ts.)
 */
export const VARY_IMAGE_BY_HEADER = 'Accept, Authorization';

/**
 * An anonymous answer that a credential would have changed (a preview, with
 * PIXGATE_PREVIEW_ANONYMOUS: the owner gets the full image) depends on the absence of both: without
 * them in Vary, the browser that showed the preview answered the same URL from its cache with it
 * after its user signed in, by token or by cookie. Only for `private` answers: an anonymous
 * `public` one keeps `Vary: Accept`, for shared caches, and is what any caller may see anyway.
 */
export const VARY_IMAGE_ANONYMOUS = 'Accept, Authorization, Cookie';

/**
 * The entity-tags of an If-Match or If-None-Match list (RFC 9110 §8.8.3): each element exactly
 * `"opaque"` or `W/"opaque"`, so that a comma inside the quotes stays in its tag; an element that
 * is neither counts for nothing.
 */
function entityTags(header: string): { weak: boolean; tag: string }[] {
  return [...header.matchAll(/(?:^|,)[ \t]*(W\/)?("[^"]*")[ \t]*(?=,|$)/g)].map((match) => ({
    weak: match[1] !== undefined,
    tag: match[2] as string,
  }));
}

/** Strong or weak ETag list of If-None-Match against our strong ETag (RFC 9110 §13.1.2: weak comparison). */
export function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  const ours = etag.replace(/^W\//, '');
  return entityTags(header).some((candidate) => candidate.tag === ours);
}

/**
 * If-Match against our strong ETag (RFC 9110 §13.1.1: strong comparison, so a weak tag never
 * matches); `*` matches any current representation, which ours is. True without the header.
 */
export function matchesIfMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined || header.trim() === '*') return true;
  return entityTags(header).some((candidate) => !candidate.weak && candidate.tag === etag);
}

const preconditionFailed = (message: string) => new AppError('precondition_failed', message);

/**
 * The preconditions of a request on an image whose current state has the tags `etags` (one, the
 * selected representation's, for GET and HEAD; for PATCH and DELETE every tag of the original,
 * images.ts), in RFC 9110 §13.2.2's order (the dates are never evaluated: there is no
 * Last-Modified): If-Match naming none of them is a 412; then If-None-Match naming one is a 304
 * for GET and HEAD (answered `'not-modified'`), a 412 for a method that would change the image.
 * Called only once the policy has let the caller see the image, so a 412 tells nothing that a 404
 * hides.
 */
export function evaluatePreconditions(
  request: { method: string; headers: IncomingHttpHeaders },
  etags: string | readonly string[],
): 'not-modified' | undefined {
  const current = typeof etags === 'string' ? [etags] : etags;
  const ifMatch = request.headers['if-match'];
  if (!current.some((etag) => matchesIfMatch(ifMatch, etag))) {
    throw preconditionFailed('If-Match names no current tag of this image');
  }
  const ifNoneMatch = request.headers['if-none-match'];
  if (!current.some((etag) => matchesIfNoneMatch(ifNoneMatch, etag))) return undefined;
  if (request.method === 'GET' || request.method === 'HEAD') return 'not-modified';
  throw preconditionFailed('If-None-Match names the current tag of this image');
}
