import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Limiter } from '../../../src/limits/limiter.js';

/**
 * One suite for every Limiter (DESIGN.md, Tests): the in-process one now, Redis with the
 * scale-out work. `make` gives a fresh limiter; time is vitest's fake clock.
 */
export function describeLimiterConformance(
  name: string,
  make: (points: number, windowSeconds: number) => Limiter,
): void {
  describe(`Limiter conformance: ${name}`, () => {
    beforeEach(() => {
      vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    it('allows `points` takes per key and window, then refuses with the time to the reset', async () => {
      const limiter = make(3, 60);
      expect(limiter.points).toBe(3);
      expect(limiter.windowSeconds).toBe(60);
      const outcomes = [];
      for (let i = 0; i < 4; i++) outcomes.push(await limiter.take('a'));
      expect(outcomes.map((o) => o.allowed)).toEqual([true, true, true, false]);
      expect(outcomes.map((o) => o.remaining)).toEqual([2, 1, 0, 0]);
      expect(outcomes.map((o) => o.consumed)).toEqual([1, 2, 3, 4]);
      expect(outcomes[3]?.resetSeconds).toBe(60);
      vi.advanceTimersByTime(20_000);
      expect((await limiter.take('a')).resetSeconds).toBe(40);
    });

    it('keeps keys apart', async () => {
      const limiter = make(1, 60);
      expect((await limiter.take('a')).allowed).toBe(true);
      expect((await limiter.take('a')).allowed).toBe(false);
      expect((await limiter.take('b')).allowed).toBe(true);
    });

    it('starts a new window after the old one', async () => {
      const limiter = make(1, 60);
      await limiter.take('a');
      expect((await limiter.take('a')).allowed).toBe(false);
      vi.advanceTimersByTime(60_001);
      expect((await limiter.take('a')).allowed).toBe(true);
    });

    it('peeks without taking, and forgets a key', async () => {
      const limiter = make(2, 60);
      expect(await limiter.peek('a')).toBe(0);
      await limiter.take('a');
      expect(await limiter.peek('a')).toBe(1);
      expect(await limiter.peek('a')).toBe(1);
      await limiter.forget('a');
      expect(await limiter.peek('a')).toBe(0);
      expect((await limiter.take('a')).remaining).toBe(1);
    });
  });
}
