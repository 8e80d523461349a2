/**
 * The abuse limits of SPEC §6, on top of Limiter (limiter.ts):
 * - rate: image requests per minute per requester (a principal, an IP when anonymous, a share link);
 * - scrape: distinct originals per hour per requester. An image counts the first time the
 *   requester sees it in the window (a `seen` marker per requester and image); the owner's own
 *   images never count. A refused image is forgotten again, so it counts when it is finally served;
 * - upload: uploads per hour per owner.
 * Over a limit: 429 `rate_limited` with Retry-After and the IETF RateLimit / RateLimit-Policy
 * fields (draft-ietf-httpapi-ratelimit-headers-10: `"name";q=;w=` and `"name";r=;t=`).
 */
import { AppError } from '../errors.js';
import type { Limiter } from './limiter.js';

export type LimitName = 'rate' | 'scrape' | 'upload';

export interface LimitsOptions {
  readonly rateLimit: number;
  readonly scrapeLimit: number;
  readonly uploadLimit: number;
  /** Makes one limiter; 0 points means the limit is off and is never asked for. */
  readonly createLimiter: (name: string, points: number, windowSeconds: number) => Limiter;
  readonly onLimited?: (limit: LimitName) => void;
}

export interface Limits {
  /**
   * One request by `requester` (`p:sub`, `ip:addr`, `l:linkId`, `refused:addr`) that shows no
   * original: `/meta`, the list, a refused credential, a share-link miss. Takes from the rate
   * budget only.
   */
  request(requester: string): Promise<void>;
  /** One image request by `requester` for an image: the rate budget, then the scrape budget. */
  view(requester: string, imageId: string, isOwnImage: boolean): Promise<void>;
  /** One upload by `owner`. */
  upload(owner: string): Promise<void>;
}

const messages: Record<LimitName, string> = {
  rate: 'Too many requests; try again later',
  scrape: 'Too many different images in the last hour; try again later',
  upload: 'Too many uploads in the last hour; try again later',
};

function limited(name: LimitName, limiter: Limiter, resetSeconds: number): AppError {
  return new AppError('rate_limited', messages[name], {
    headers: {
      'Retry-After': String(resetSeconds),
      'RateLimit-Policy': `"${name}";q=${limiter.points};w=${limiter.windowSeconds}`,
      RateLimit: `"${name}";r=0;t=${resetSeconds}`,
    },
  });
}

export function createLimits(options: LimitsOptions): Limits {
  const { createLimiter, onLimited } = options;
  const rate = options.rateLimit > 0 ? createLimiter('rate', options.rateLimit, 60) : undefined;
  const scrape = options.scrapeLimit > 0 ? createLimiter('scrape', options.scrapeLimit, 3600) : undefined;
  // One point per (requester, image) and hour: the first take is allowed, every later one not.
  const seen = scrape ? createLimiter('seen', 1, 3600) : undefined;
  const uploads = options.uploadLimit > 0 ? createLimiter('upload', options.uploadLimit, 3600) : undefined;

  async function take(name: LimitName, limiter: Limiter, key: string): Promise<void> {
    const result = await limiter.take(key);
    if (result.allowed) return;
    onLimited?.(name);
    throw limited(name, limiter, result.resetSeconds);
  }

  return {
    async request(requester) {
      if (rate) await take('rate', rate, requester);
    },
    async view(requester, imageId, isOwnImage) {
      if (rate) await take('rate', rate, requester);
      if (!scrape || !seen || isOwnImage) return;
      // A newline cannot occur in a requester key nor in an image id: the pair is unambiguous.
      const marker = `${requester}\n${imageId}`;
      // Peeked first: an image seen before (the common case) costs one lookup, not a refusal.
      if ((await seen.peek(marker)) > 0) return;
      const first = await seen.take(marker);
      if (!first.allowed) return;
      try {
        await take('scrape', scrape, requester);
      } catch (error) {
        await seen.forget(marker);
        throw error;
      }
    },
    async upload(owner) {
      if (uploads) await take('upload', uploads, owner);
    },
  };
}
