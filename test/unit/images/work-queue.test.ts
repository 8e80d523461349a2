import { describe, expect, it } from 'vitest';
import type { AppError } from '../../../src/errors.js';
import { createWorkQueue } from '../../../src/images/work-queue.js';

/** A promise the test resolves by hand, so no test waits on time. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('work queue', () => {
  it('runs at most `concurrency` works at once and refuses beyond concurrency + queueSize', async () => {
    const queue = createWorkQueue({ concurrency: 2, queueSize: 3 });
    const gates = Array.from({ length: 5 }, () => deferred());
    let running = 0;
    let peak = 0;
    const jobs = gates.map((gate, index) =>
      queue.run(
        async () => index,
        async (input) => {
          running++;
          peak = Math.max(peak, running);
          await gate.promise;
          running--;
          return input;
        },
      ),
    );
    const refused = queue.run(
      async () => 0,
      async () => 0,
    );
    await expect(refused).rejects.toMatchObject({ code: 'overloaded', status: 503 });
    await refused.catch((error: AppError) =>
      expect(Number(error.headers['Retry-After'])).toBeGreaterThanOrEqual(1),
    );
    await tick();
    expect(queue.running).toBe(2);
    expect(queue.waiting).toBe(3);
    for (const gate of gates) gate.resolve();
    expect(await Promise.all(jobs)).toEqual([0, 1, 2, 3, 4]);
    expect(peak).toBe(2);
    expect(queue.running + queue.waiting).toBe(0);
  });

  it('loads at most `concurrency` jobs ahead of the works, and calls done after each work', async () => {
    const queue = createWorkQueue({ concurrency: 1, queueSize: 10 });
    const gate = deferred();
    const loaded: number[] = [];
    const done: number[] = [];
    const jobs = [0, 1, 2, 3].map((index) =>
      queue.run(
        async () => {
          loaded.push(index);
          return index;
        },
        async (input) => {
          if (input === 0) await gate.promise;
          return input;
        },
        (input) => done.push(input),
      ),
    );
    await tick();
    // Job 0 works, job 1 has its input ready, jobs 2 and 3 hold nothing yet.
    expect(loaded).toEqual([0, 1]);
    expect(done).toEqual([]);
    gate.resolve();
    await Promise.all(jobs);
    expect(loaded).toEqual([0, 1, 2, 3]);
    expect(done).toEqual([0, 1, 2, 3]);
  });

  it('frees its places when a load or a work fails', async () => {
    const queue = createWorkQueue({ concurrency: 1, queueSize: 0 });
    await expect(
      queue.run(
        async () => {
          throw new Error('origin down');
        },
        async () => 1,
      ),
    ).rejects.toThrow('origin down');
    await expect(
      queue.run(
        async () => 1,
        async () => {
          throw new Error('corrupt');
        },
      ),
    ).rejects.toThrow('corrupt');
    expect(
      await queue.run(
        async () => 2,
        async (input) => input,
      ),
    ).toBe(2);
    expect(queue.running + queue.waiting).toBe(0);
  });
});
