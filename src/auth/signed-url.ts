/**
 * Signed URLs (SPEC §5): an image URL that carries its own narrow credential, `exp`, `kid` and
 * `sig`, good for exactly one variant of one version of one image until `exp`.
 *
 * canonical = "pixgate-sig-v1\n" + path + "\n" + version + "\n" + query
 *   path     the URL path as requested, e.g. `/v1/images/Xb3…`
 *   version  the image's version in decimal (bumped by revocation, so old URLs die at once)
 *   query    every query parameter but `sig`, sorted by name (then value), each as
 *            encodeURIComponent(name) "=" encodeURIComponent(value), joined by "&"
 * sig = base64url(HMAC-SHA256(secret of kid, canonical)), without padding (43 characters).
 *
 * The version tag means a future change of scheme can never verify an old string or the reverse;
 * the newline separators cannot occur inside the path (it is an id) or the query (encoded).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { AppError, messages } from '../errors.js';

export const SIGNATURE_VERSION = 'pixgate-sig-v1';

export interface SigningKey {
  readonly kid: string;
  /** base64 (or base64url) text, as in PIXGATE_SIGNING_KEYS. */
  readonly secret: string;
}

/** The one 403 for every bad signed URL: the answer must not tell which check failed. */
export const invalidSignature = (detail: string) =>
  new AppError('invalid_signature', messages.invalidSignature, { detail });

export function canonicalString(path: string, version: number, params: Iterable<[string, string]>): string {
  const pairs = [...params]
    .filter(([name]) => name !== 'sig')
    .map(([name, value]) => [encodeURIComponent(name), encodeURIComponent(value)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return `${SIGNATURE_VERSION}\n${path}\n${version}\n${pairs.map(([n, v]) => `${n}=${v}`).join('&')}`;
}

const SIG = /^[A-Za-z0-9_-]{43}$/;
const EXP = /^[1-9]\d{0,11}$/;

export interface SignedUrls {
  /** Whether a key is there to sign with. */
  readonly canSign: boolean;
  /**
   * The signed URL (path and query, relative to the server) for `transformQuery` (the normalized
   * transform as query parameters) until `exp`, rounded up to the bucket.
   */
  sign(
    path: string,
    version: number,
    transformQuery: URLSearchParams,
    ttlSeconds: number,
    nowMs: number,
  ): { url: string; exp: number };
  /**
   * Checks `exp`, `kid` and `sig` of a request's query against the image version; throws the one
   * 403 otherwise. Costs two HMAC block operations and no I/O; `rawQuery` (the query exactly as
   * requested), when given, lets a URL already verified skip even those.
   */
  verify(path: string, version: number, query: URLSearchParams, nowMs: number, rawQuery?: string): void;
}

export function createSignedUrls(keys: readonly SigningKey[], bucketSeconds: number): SignedUrls {
  const secrets = new Map(keys.map((key) => [key.kid, Buffer.from(key.secret, 'base64')]));
  const signer = keys[0];
  // URLs already verified, by their exact text and the image version, with their exp: the same
  // <img src> is asked for again and again. The answer is a pure function of that text while the
  // keys are fixed (they are, for a process), so remembering it is as safe as recomputing it.
  const verified = new LRUCache<string, number>({ max: 10_000 });

  const mac = (secret: Buffer, canonical: string) =>
    createHmac('sha256', secret).update(canonical, 'utf8').digest('base64url');

  return {
    canSign: signer !== undefined,

    sign(path, version, transformQuery, ttlSeconds, nowMs) {
      if (!signer) {
        throw new AppError(
          'not_configured',
          'Signed URLs need PIXGATE_SIGNING_KEYS (pixgate keygen makes one)',
        );
      }
      // Rounded up: the same URL comes back within a bucket, so browsers and CDNs can cache it.
      const exp = Math.ceil((nowMs / 1000 + ttlSeconds) / bucketSeconds) * bucketSeconds;
      const params = new URLSearchParams(transformQuery);
      params.set('exp', String(exp));
      params.set('kid', signer.kid);
      const sig = mac(secrets.get(signer.kid) as Buffer, canonicalString(path, version, params));
      params.set('sig', sig);
      return { url: `${path}?${params.toString()}`, exp };
    },

    verify(path, version, query, nowMs, rawQuery) {
      const cacheKey = rawQuery === undefined ? undefined : `${version}\n${path}\n${rawQuery}`;
      const known = cacheKey === undefined ? undefined : verified.get(cacheKey);
      if (known !== undefined) {
        if (nowMs >= known * 1000) throw invalidSignature('expired');
        return;
      }
      const sigs = query.getAll('sig');
      const exps = query.getAll('exp');
      const kids = query.getAll('kid');
      if (sigs.length !== 1 || exps.length !== 1 || kids.length !== 1) throw invalidSignature('parameters');
      const [sig, exp, kid] = [sigs[0] as string, exps[0] as string, kids[0] as string];
      const secret = secrets.get(kid);
      if (!secret) throw invalidSignature('unknown kid');
      // The length check first: timingSafeEqual throws on buffers of different lengths.
      if (!SIG.test(sig)) throw invalidSignature('malformed sig');
      const expected = Buffer.from(mac(secret, canonicalString(path, version, query)), 'utf8');
      // timingSafeEqual: a timing difference would leak the MAC byte by byte.
      if (!timingSafeEqual(Buffer.from(sig, 'utf8'), expected)) throw invalidSignature('bad sig');
      // After the MAC: `exp` is covered by it, so it is ours; at exp itself the URL is over.
      if (!EXP.test(exp) || nowMs >= Number(exp) * 1000) throw invalidSignature('expired');
      if (cacheKey !== undefined) verified.set(cacheKey, Number(exp));
    },
  };
}

const DEV_KEY_FILE = 'signing-key.txt';

/**
 * Dev mode's signing key, `kid:base64secret` in the data dir (0600), made on first use. Created
 * exclusively (hard link of a complete temp file) so two processes starting together agree.
 */
export async function loadDevSigningKey(dataDir: string): Promise<SigningKey> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, DEV_KEY_FILE);
  const read = async () => {
    const text = (await readFile(path, 'utf8')).trim();
    const colon = text.indexOf(':');
    if (colon < 1) throw new Error(`${path} does not hold kid:base64secret; delete it to create a new key`);
    return { kid: text.slice(0, colon), secret: text.slice(colon + 1) };
  };
  try {
    return await read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, `dev-${randomBytes(4).toString('hex')}:${randomBytes(32).toString('base64')}\n`, {
    mode: 0o600,
    flag: 'wx',
  });
  try {
    await link(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  return read();
}
