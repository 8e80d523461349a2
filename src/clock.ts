/** Time is injected, never read directly, so tests never sleep (DESIGN.md, after jose). */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
