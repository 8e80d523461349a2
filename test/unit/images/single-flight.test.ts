import { describe, expect, it } from 'vitest';
import { createSingleFlight } from '../../../src/images/single-flight.js';

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A job that waits for its gate, or rejects with its signal's reason when that aborts first. */
function gatedJob<T>(gate: Promise<T>) {
  const signals: AbortSignal[] = [];
  const job = (signal: AbortSignal) => {
    signals.push(signal);
    return new Promise<T>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      void gate.then(resolve);
    });
  };
  return { job, signals };
}

describe('single flight', () => {
  it('runs one job for concurrent callers of a key, and forgets it once settled', async () => {
    const flights = createSingleFlight<number>();
    const gate = deferred<number>();
    const { job, signals } = gatedJob(gate.promise);
    const callers = [flights.run('k', job), flights.run('k', job)];
    gate.resolve(7);
    expect(await Promise.all(callers)).toEqual([7, 7]);
    expect(signals).toHaveLength(1);
    expect(await flights.run('k', async () => 8)).toBe(8);
  });

  it('aborts the job when every caller has left, not before', async () => {
    const flights = createSingleFlight<number>();
    const gone = new Error('client went away');
    const { job, signals } = gatedJob(new Promise<number>(() => {}));
    const a = new AbortController();
    const b = new AbortController();
    const first = flights.run('k', job, a.signal);
    const second = flights.run('k', job, b.signal);
    a.abort(gone);
    expect(signals[0]?.aborted).toBe(false);
    b.abort(gone);
    expect(signals[0]?.aborted).toBe(true);
    expect(signals[0]?.reason).toBe(gone);
    await expect(first).rejects.toBe(gone);
    await expect(second).rejects.toBe(gone);
  });

  it('never aborts a job a caller without a signal waits for', async () => {
    const flights = createSingleFlight<number>();
    const gate = deferred<number>();
    const { job, signals } = gatedJob(gate.promise);
    const leaving = new AbortController();
    const left = flights.run('k', job, leaving.signal);
    const staying = flights.run('k', job);
    leaving.abort(new Error('gone'));
    gate.resolve(3);
    expect(signals[0]?.aborted).toBe(false);
    expect(await staying).toBe(3);
    expect(await left).toBe(3);
  });

  it('starts a new job for a caller that comes after the last one left', async () => {
    const flights = createSingleFlight<number>();
    const { job } = gatedJob(new Promise<number>(() => {}));
    const leaving = new AbortController();
    const left = flights.run('k', job, leaving.signal);
    leaving.abort(new Error('gone'));
    await expect(left).rejects.toThrow('gone');
    expect(await flights.run('k', async () => 5)).toBe(5);
  });

  it('counts a caller whose signal has already aborted as gone at once', async () => {
    const flights = createSingleFlight<number>();
    const { job, signals } = gatedJob(new Promise<number>(() => {}));
    const late = flights.run('k', job, AbortSignal.abort(new Error('gone')));
    await expect(late).rejects.toThrow('gone');
    expect(signals[0]?.aborted).toBe(true);
  });

  it('lets a caller who comes after the last one left share a job already past stopping', async () => {
    const flights = createSingleFlight<number>();
    const gate = deferred<number>();
    let runs = 0;
    // A transform under way: it does not stop when its signal aborts.
    const job = () => {
      runs++;
      return gate.promise;
    };
    const leaving = new AbortController();
    const left = flights.run('k', job, leaving.signal);
    leaving.abort(new Error('gone'));
    const reloaded = flights.run('k', job, new AbortController().signal);
    gate.resolve(9);
    expect(await reloaded).toBe(9);
    expect(await left).toBe(9);
    expect(runs).toBe(1);
  });
});
