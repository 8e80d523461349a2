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

/** Strong or weak ETag list of If-None-Match against our strong ETag (RFC 9110 §13.1.2: weak comparison). */
export function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  const ours = etag.replace(/^W\//, '');
  return header.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === ours);
}
