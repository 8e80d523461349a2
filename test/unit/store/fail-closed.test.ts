import { describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors.js';
import { failClosed, storeFailure } from '../../../src/store/fail-closed.js';

const sqliteError = (code: string) => Object.assign(new Error(`sqlite said ${code}`), { code });

describe('storeFailure', () => {
  it.each([
    'SQLITE_BUSY',
    'SQLITE_BUSY_SNAPSHOT',
    'SQLITE_IOERR_WRITE',
    'SQLITE_CANTOPEN',
    'SQLITE_CORRUPT',
    'SQLITE_NOTADB',
    'SQLITE_READONLY',
  ])('%s: the store cannot answer now, 503 unavailable with the code for the log', (code) => {
    const cause = sqliteError(code);
    const told = storeFailure(cause);
    expect(told).toBeInstanceOf(AppError);
    expect(told).toMatchObject({ code: 'unavailable', status: 503, cause });
    expect((told as AppError).publicMessage).toBe('The metadata store is unavailable');
    expect((told as AppError).message).toContain(code);
  });

  it('a full disk is 507', () => {
    expect(storeFailure(sqliteError('SQLITE_FULL'))).toMatchObject({
      code: 'insufficient_storage',
      status: 507,
    });
  });

  it.each(['SQLITE_CONSTRAINT_PRIMARYKEY', 'SQLITE_ERROR', 'SQLITE_LOCKED', 'SQLITE_MISUSE', 'SQLITE_RANGE'])(
    '%s is our bug and stays the same error (500)',
    (code) => {
      const error = sqliteError(code);
      expect(storeFailure(error)).toBe(error);
    },
  );

  it('our own refusals and errors without a code pass unchanged', () => {
    const refusal = new AppError('invalid_request', 'bad cursor');
    expect(storeFailure(refusal)).toBe(refusal);
    const plain = new TypeError('x is undefined');
    expect(storeFailure(plain)).toBe(plain);
    expect(storeFailure('text')).toBe('text');
  });
});

describe('failClosed', () => {
  it('answers what the store answers, and tells its failures as storeFailure does', async () => {
    const store = failClosed({
      value: 1,
      async get(n: number) {
        return n * 2;
      },
      async locked(): Promise<void> {
        throw sqliteError('SQLITE_BUSY');
      },
      async broken(): Promise<void> {
        throw sqliteError('SQLITE_ERROR');
      },
    });
    expect(store.value).toBe(1);
    expect(await store.get(21)).toBe(42);
    await expect(store.locked()).rejects.toMatchObject({ code: 'unavailable', status: 503 });
    await expect(store.broken()).rejects.toMatchObject({ code: 'SQLITE_ERROR' });
  });
});
