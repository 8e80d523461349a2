import { AppError } from '../errors.js';

/**
 * At most `concurrency` transforms run at once, at most `queueSize` wait; beyond that the
 * request is refused at once with 503 and a Retry-After estimated from recent job times
 * (SPEC §6), instead of piling up memory and latency.
 */
export interface WorkQueue {
  run<T>(job: () => Promise<T>): Promise<T>;
  /** Jobs waiting (not running). */
  readonly waiting: number;
  readonly running: number;
}

export interface WorkQueueOptions {
  concurrency: number;
  queueSize: number;
  onChange?: (waiting: number, running: number) => void;
}

export function createWorkQueue({ concurrency, queueSize, onChange }: WorkQueueOptions): WorkQueue {
  const waiters: Array<() => void> = [];
  let running = 0;
  // Exponentially weighted mean of job durations, for Retry-After.
  let meanJobMs = 100;

  const changed = () => onChange?.(waiters.length, running);

  function release(): void {
    const next = waiters.shift();
    if (next) next();
    else running--;
    changed();
  }

  async function acquire(): Promise<void> {
    if (running < concurrency) {
      running++;
      changed();
      return;
    }
    if (waiters.length >= queueSize) {
      const seconds = Math.max(1, Math.ceil(((waiters.length + 1) * meanJobMs) / concurrency / 1000));
      throw new AppError('overloaded', 'Too many images are being processed; try again shortly', {
        headers: { 'Retry-After': String(seconds) },
      });
    }
    // The slot is handed over by release(): `running` stays the same.
    await new Promise<void>((resolve) => waiters.push(resolve));
  }

  return {
    async run<T>(job: () => Promise<T>): Promise<T> {
      await acquire();
      const started = performance.now();
      try {
        return await job();
      } finally {
        meanJobMs = meanJobMs * 0.8 + (performance.now() - started) * 0.2;
        release();
      }
    },
    get waiting() {
      return waiters.length;
    },
    get running() {
      return running;
    },
  };
}
