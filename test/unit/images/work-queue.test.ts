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

  it('drops a job whose signal aborts while it waits, before its load or its work', async () => {
    const queue = createWorkQueue({ concurrency: 1, queueSize: 10 });
    const gate = deferred();
    const loaded: number[] = [];
    const worked: number[] = [];
    const done: number[] = [];
    const job = (index: number, signal?: AbortSignal) =>
      queue.run(
        async () => {
          loaded.push(index);
          return index;
        },
        async (input) => {
          worked.push(input);
          if (input === 0) await gate.promise;
          return input;
        },
        (input) => done.push(input),
        signal,
      );
    const first = job(0);
    // Job 1 loads ahead of the slot (its input is ready), job 2 waits without a load.
    const loadedAhead = new AbortController();
    const waiting = new AbortController();
    const second = job(1, loadedAhead.signal);
    const third = job(2, waiting.signal);
    const fourth = job(3);
    await tick();
    expect(loaded).toEqual([0, 1]);
    expect(queue.waiting).toBe(3);

    const gone = new Error('client went away');
    loadedAhead.abort(gone);
    waiting.abort(gone);
    await expect(second).rejects.toBe(gone);
    await expect(third).rejects.toBe(gone);
    // They left at once, while job 0 still works; job 1's loaded input went back.
    expect(queue.waiting).toBe(1);
    expect(done).toEqual([1]);

    gate.resolve();
    expect(await Promise.all([first, fourth])).toEqual([0, 3]);
    expect(worked).toEqual([0, 3]);
    expect(loaded).toEqual([0, 1, 3]);
    expect(queue.running + queue.waiting).toBe(0);
  });

  it('refuses a job whose signal has already aborted, and keeps running one that started', async () => {
    const queue = createWorkQueue({ concurrency: 1, queueSize: 1 });
    const gone = new Error('client went away');
    await expect(
      queue.run(
        async () => 1,
        async () => 1,
        undefined,
        AbortSignal.abort(gone),
      ),
    ).rejects.toBe(gone);
    const gate = deferred();
    const started = new AbortController();
    const running = queue.run(
      async () => 2,
      async (input) => {
        await gate.promise;
        return input;
      },
      undefined,
      started.signal,
    );
    await tick();
    // A transform under way is not cut off: its variant is cached for whoever asks next.
    started.abort(gone);
    gate.resolve();
    expect(await running).toBe(2);
    expect(queue.running + queue.waiting).toBe(0);
  });
});
