/**
 * A fixed budget of points per key per window (DESIGN.md: one `Limiter` interface, an embedded
 * and a scaled-out implementation). The in-process one is rate-limiter-flexible's
 * RateLimiterMemory; the Redis one (scale-out work) is its RateLimiterRedis with the same
 * options, so both count the same way.
 */
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

export interface LimitOutcome {
  readonly allowed: boolean;
  /** Points left in the window after this one (0 when refused). */
  readonly remaining: number;
  /** Whole seconds until the window resets (at least 1). */
  readonly resetSeconds: number;
  /** Points taken in the window so far, this one included. */
  readonly consumed: number;
}

export interface Limiter {
  readonly points: number;
  readonly windowSeconds: number;
  /** Takes one point of `key`'s budget. Rejects only when the backing store fails. */
  take(key: string): Promise<LimitOutcome>;
  /** Points taken in `key`'s current window, without taking one (0 when none). */
  peek(key: string): Promise<number>;
  /** Drops `key`'s window, as if it had never been seen. */
  forget(key: string): Promise<void>;
}

function outcome(result: RateLimiterRes, allowed: boolean): LimitOutcome {
  return {
    allowed,
    remaining: Math.max(0, result.remainingPoints),
    resetSeconds: Math.max(1, Math.ceil(result.msBeforeNext / 1000)),
    consumed: result.consumedPoints,
  };
}

/** Wraps any rate-limiter-flexible limiter (memory now, Redis later) as a Limiter. */
export function fromRateLimiterFlexible(limiter: RateLimiterAbstract): Limiter {
  return {
    points: limiter.points,
    windowSeconds: limiter.duration,
    async take(key) {
      try {
        return outcome(await limiter.consume(key, 1), true);
      } catch (error) {
        // rate-limiter-flexible rejects with a RateLimiterRes when over the budget, with an
        // Error when its store failed: only the first is an answer.
        if (error instanceof RateLimiterRes) return outcome(error, false);
        throw error;
      }
    },
    async peek(key) {
      return (await limiter.get(key))?.consumedPoints ?? 0;
    },
    async forget(key) {
      await limiter.delete(key);
    },
  };
}

export function createMemoryLimiter(options: {
  name: string;
  points: number;
  windowSeconds: number;
}): Limiter {
  return fromRateLimiterFlexible(
    new RateLimiterMemory({
      keyPrefix: options.name,
      points: options.points,
      duration: options.windowSeconds,
    }),
  );
}
