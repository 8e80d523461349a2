import type { Clock } from '../clock.js';

/** What the caches log through: a pino logger fits. */
export interface CacheLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type ThrottledLog = (level: 'warn' | 'error', kind: string, obj: object, msg: string) => void;

/**
 * Logs each kind of problem at most once per interval, with the number of repeats it
 * swallowed since: a full disk fails every cache write, and must not flood the log with one
 * line per request (SPEC §4, disk full).
 */
export function createThrottledLog(logger: CacheLogger, clock: Clock, intervalMs = 60_000): ThrottledLog {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (level, kind, obj, msg) => {
    const now = clock.now();
    const seen = last.get(kind);
    if (seen && now - seen.at < intervalMs) {
      seen.suppressed += 1;
      return;
    }
    last.set(kind, { at: now, suppressed: 0 });
    logger[level]({ ...obj, kind, suppressed: seen?.suppressed ?? 0 }, msg);
  };
}
