/**
 * Identical concurrent requests are computed once (SPEC §6, after imagor's singleflight): the
 * first caller runs the job, the others await the same promise. The entry is dropped when the
 * job settles, so a failure is not remembered.
 */
export interface SingleFlight<T> {
  run(key: string, job: () => Promise<T>): Promise<T>;
}

export function createSingleFlight<T>(): SingleFlight<T> {
  const inFlight = new Map<string, Promise<T>>();
  return {
    run(key, job) {
      const existing = inFlight.get(key);
      if (existing) return existing;
      const promise = job().finally(() => inFlight.delete(key));
      inFlight.set(key, promise);
      return promise;
    },
  };
}
