import { AppError } from '../errors.js';

/**
 * SQLite's answers that mean the store cannot answer now, not that our SQL is wrong: the file
 * locked by another process past the busy timeout (BUSY), an I/O error, a file it cannot open,
 * read or write. (Extended codes start with these: SQLITE_IOERR_WRITE, SQLITE_BUSY_SNAPSHOT, ...)
 * Not SQLITE_LOCKED: without a shared cache it is a conflict inside our own connection, a bug.
 */
const UNAVAILABLE = /^SQLITE_(BUSY|IOERR|CANTOPEN|PROTOCOL|CORRUPT|NOTADB|READONLY)/;

/**
 * What a client is told when the store fails. The store decides who may see what (rows, share
 * links and their view budgets), so one that cannot answer is SPEC §4's "something needed for a
 * security decision is down": 503, fail closed. A full disk is 507, as for an upload's bytes.
 * Any other error is our bug and stays one (500, with its stack in the log).
 */
export function storeFailure(error: unknown): unknown {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (typeof code !== 'string') return error;
  if (code.startsWith('SQLITE_FULL')) {
    return new AppError('insufficient_storage', 'No space left in the metadata store', {
      detail: code,
      cause: error,
    });
  }
  if (UNAVAILABLE.test(code)) {
    return new AppError('unavailable', 'The metadata store is unavailable', { detail: code, cause: error });
  }
  return error;
}

/** Objects whose methods are all async and their own (a store object literal), as failClosed needs. */
type AsyncMethods<T> = {
  [K in keyof T]: T[K] extends (...args: never[]) => infer R
    ? R extends Promise<unknown>
      ? T[K]
      : never
    : T[K];
};

/** `store` with every failure of its methods told as `storeFailure` tells it. */
export function failClosed<T extends AsyncMethods<T>>(store: T): T {
  const guarded: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(store)) {
    guarded[name] =
      typeof method === 'function'
        ? async (...args: unknown[]) => {
            try {
              return await (method as (...values: unknown[]) => Promise<unknown>).apply(store, args);
            } catch (error) {
              throw storeFailure(error);
            }
          }
        : method;
  }
  return guarded as T;
}
