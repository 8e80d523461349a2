import { checkOriginKey } from './key.js';

/**
 * Where `PIXGATE_STORAGE` and `PIXGATE_CACHE` point, parsed without loading any client: the
 * settings loader checks these, and only `main.ts` opens what they name.
 */

/** `s3://bucket/prefix`: the bucket, and a prefix that is empty or ends with `/`. */
export interface S3Location {
  readonly bucket: string;
  readonly prefix: string;
}

// Bucket names as S3 allows them (3..63 of a-z 0-9 . -); the prefix is checked like a key.
const S3_URL = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/;

export function parseS3Url(url: string): S3Location | undefined {
  const match = S3_URL.exec(url);
  if (!match) return undefined;
  const prefix = (match[2] ?? '').replace(/\/+$/, '');
  if (prefix !== '') {
    try {
      checkOriginKey(prefix);
    } catch {
      return undefined;
    }
  }
  return { bucket: match[1] as string, prefix: prefix === '' ? '' : `${prefix}/` };
}

/**
 * Whether a URL carries a user or password, as the URL parser (and so fetch) reads it:
 * `https:///user:pass@host` does too. fetch refuses such a URL with an error that quotes it.
 */
export const hasCredentials = (url: URL) => url.username !== '' || url.password !== '';

/** An HTTP origin's base: http(s), no credentials, query or fragment in it. */
export function isHttpBase(url: string): boolean {
  if (!/^https?:\/\//i.test(url) || !URL.canParse(url)) return false;
  const parsed = new URL(url);
  return !hasCredentials(parsed) && parsed.search === '' && parsed.hash === '';
}
