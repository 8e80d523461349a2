import { type RateLimiterAbstract, RateLimiterRes } from 'rate-limiter-flexible';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors.js';
import { createMemoryLimiter, fromRateLimiterFlexible, type Limiter } from '../../../src/limits/limiter.js';
import { createLimits, type LimitName } from '../../../src/limits/limits.js';
import { describeLimiterConformance } from './limiter-conformance.js';

describeLimiterConformance('memory (rate-limiter-flexible)', (points, windowSeconds) =>
  createMemoryLimiter({ name: `test-${Math.random()}`, points, windowSeconds }),
);

function limitsWith(options: { rateLimit?: number; scrapeLimit?: number; uploadLimit?: number }) {
  const limited: LimitName[] = [];
  const made: string[] = [];
  const limits = createLimits({
    rateLimit: options.rateLimit ?? 0,
    scrapeLimit: options.scrapeLimit ?? 0,
    uploadLimit: options.uploadLimit ?? 0,
    createLimiter: (name, points, windowSeconds): Limiter => {
      made.push(`${name}:${points}/${windowSeconds}`);
      return createMemoryLimiter({ name: `${name}-${Math.random()}`, points, windowSeconds });
    },
    onLimited: (limit) => limited.push(limit),
  });
  return { limits, limited, made };
}

async function refusal(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

describe('limits', () => {
  it('makes only the limiters that are on, with their windows', () => {
    expect(limitsWith({ rateLimit: 5 }).made).toEqual(['rate:5/60']);
    expect(limitsWith({ scrapeLimit: 7, uploadLimit: 2 }).made).toEqual([
      'scrape:7/3600',
      'seen:1/3600',
      'upload:2/3600',
    ]);
  });

  it('answers 429 rate_limited with Retry-After and the IETF fields', async () => {
    const { limits, limited } = limitsWith({ rateLimit: 1 });
    await limits.view('p:a', 'img', false);
    const error = await refusal(limits.view('p:a', 'img', false));
    expect(error.status).toBe(429);
    expect(error.code).toBe('rate_limited');
    expect(error.headers).toEqual({
      'Retry-After': '60',
      'RateLimit-Policy': '"rate";q=1;w=60',
      RateLimit: '"rate";r=0;t=60',
    });
    expect(limited).toEqual(['rate']);
  });

  it('counts a request that shows no original in the rate budget only', async () => {
    const { limits, limited } = limitsWith({ rateLimit: 3, scrapeLimit: 1 });
    await limits.request('ip:1');
    await limits.request('ip:1');
    // The one scrape point is still there for an image: the requests took none.
    await limits.view('ip:1', 'img', false);
    expect((await refusal(limits.request('ip:1'))).headers?.['RateLimit-Policy']).toBe('"rate";q=3;w=60');
    expect(limited).toEqual(['rate']);
  });

  it('counts each image once per requester for scraping, never the owner, and forgets a refused one', async () => {
    const { limits, limited } = limitsWith({ scrapeLimit: 2 });
    for (let i = 0; i < 3; i++) {
      await limits.view('p:a', 'one', false);
      await limits.view('p:a', 'two', false);
    }
    await limits.view('p:a', 'mine', true);
    expect((await refusal(limits.view('p:a', 'three', false))).headers['RateLimit-Policy']).toBe(
      '"scrape";q=2;w=3600',
    );
    // Still unseen after the refusal: refused again rather than passed as a repeat.
    await refusal(limits.view('p:a', 'three', false));
    await limits.view('p:b', 'three', false);
    expect(limited).toEqual(['scrape', 'scrape']);
  });

  it('limits uploads per owner', async () => {
    const { limits } = limitsWith({ uploadLimit: 1 });
    await limits.upload('a');
    expect((await refusal(limits.upload('a'))).headers['Retry-After']).toBe('3600');
    await limits.upload('b');
  });
});

describe('fromRateLimiterFlexible', () => {
  /** A limiter that refuses with `msBeforeNext` left in the window. */
  const refusing = (msBeforeNext: number) =>
    fromRateLimiterFlexible({
      points: 5,
      duration: 60,
      consume: () => Promise.reject(new RateLimiterRes(0, msBeforeNext, 6, false)),
    } as unknown as RateLimiterAbstract);

  it.each([
    [1200, 2],
    [1000, 1],
    [300, 1],
    // The window's last instant: a Retry-After of 0 would have the client retry at once, refused.
    [0, 1],
  ])('rounds %i ms left up to %i s (Retry-After is never early, never 0)', async (ms, seconds) => {
    expect(await refusing(ms).take('k')).toEqual({
      allowed: false,
      remaining: 0,
      resetSeconds: seconds,
      consumed: 6,
    });
  });
});
