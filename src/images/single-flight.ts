/**
 * Identical concurrent requests are computed once (SPEC §6, after imagor's singleflight): the
 * first caller runs the job, the others await the same promise. The entry is dropped when the
 * job settles, so a failure is not remembered.
 *
 * A caller may come with a signal that aborts when it leaves (its client went away). When every
 * caller has left, the job's own signal aborts with the last one's reason, and the key is free
 * for a fresh job: nobody is left to wait for this one. A caller without a signal never leaves.
 */
export interface SingleFlight<T> {
  run(key: string, job: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T>;
}

interface Flight<T> {
  readonly promise: Promise<T>;
  readonly controller: AbortController;
  /** Callers with a signal that has not aborted yet. */
  staying: number;
  /** A caller came without a signal: the job runs to its end. */
  pinned: boolean;
}

export function createSingleFlight<T>(): SingleFlight<T> {
  const inFlight = new Map<string, Flight<T>>();

  function start(key: string, job: (signal: AbortSignal) => Promise<T>): Flight<T> {
    const controller = new AbortController();
    const promise = job(controller.signal).finally(() => {
      if (inFlight.get(key) === flight) inFlight.delete(key);
    });
    const flight: Flight<T> = { promise, controller, staying: 0, pinned: false };
    inFlight.set(key, flight);
    return flight;
  }

  return {
    run(key, job, signal) {
      const flight = inFlight.get(key) ?? start(key, job);
      if (signal === undefined) {
        flight.pinned = true;
        return flight.promise;
      }
      const leave = () => {
        flight.staying--;
        if (flight.staying > 0 || flight.pinned) return;
        if (inFlight.get(key) === flight) inFlight.delete(key);
        flight.controller.abort(signal.reason);
      };
      flight.staying++;
      if (signal.aborted) {
        leave();
        return flight.promise;
      }
      signal.addEventListener('abort', leave, { once: true });
      return flight.promise.finally(() => signal.removeEventListener('abort', leave));
    },
  };
}
