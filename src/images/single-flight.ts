/**
 * Identical concurrent requests are computed once (SPEC §6, after imagor's singleflight): the
 * first caller runs the job, the others await the same promise. The entry is dropped when the
 * job settles, so a failure is not remembered.
 *
 * A caller may come with a signal that aborts when it leaves (its client went away). When every
 * caller has left, the job's own signal aborts with the last one's reason. The job may be past
 * stopping (a transform under way runs to its end): a caller who comes next (a reload) joins it,
 * and only if it did stop, rejecting with that reason, starts a fresh one. A caller without a
 * signal never leaves.
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

const isAbandoned = (flight: Flight<unknown>) => flight.controller.signal.aborted;

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

  function run(key: string, job: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const current = inFlight.get(key);
    if (current && isAbandoned(current)) {
      const reason = current.controller.signal.reason as unknown;
      return current.promise.catch((error: unknown) => {
        if (error !== reason) throw error;
        return run(key, job, signal);
      });
    }
    const flight = current ?? start(key, job);
    if (signal === undefined) {
      flight.pinned = true;
      return flight.promise;
    }
    const leave = () => {
      flight.staying--;
      if (flight.staying > 0 || flight.pinned) return;
      // The entry stays until the job settles: see run() for who comes next.
      flight.controller.abort(signal.reason);
    };
    flight.staying++;
    if (signal.aborted) {
      leave();
      return flight.promise;
    }
    signal.addEventListener('abort', leave, { once: true });
    return flight.promise.finally(() => signal.removeEventListener('abort', leave));
  }

  return { run };
}
