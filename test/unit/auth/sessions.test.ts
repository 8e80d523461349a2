import { describe, expect, it } from 'vitest';
import type { Principal } from '../../../src/auth/principal.js';
import { createSessions, type SessionRecord, type SessionStore } from '../../../src/auth/sessions.js';
import { AppError } from '../../../src/errors.js';

/** Session logic with an in-memory store and an injected clock (the SQLite store runs in integration). */

function memoryStore(): SessionStore & { rows: Map<string, SessionRecord> } {
  const rows = new Map<string, SessionRecord>();
  return {
    rows,
    insert: async (session) => {
      rows.set(session.idHash, session);
    },
    get: async (idHash) => rows.get(idHash),
    delete: async (idHash) => rows.delete(idHash),
    deleteExpired: async (now) => {
      let count = 0;
      for (const [key, row] of rows) {
        if (row.expiresAt <= now) {
          rows.delete(key);
          count += 1;
        }
      }
      return count;
    },
    close: async () => undefined,
  };
}

const T0 = Date.UTC(2026, 0, 1);
const alice = (expiresInSeconds: number): Principal => ({
  subject: 'alice',
  scopes: new Set(['images:read', 'images:write']),
  expiresAt: T0 / 1000 + expiresInSeconds,
});

describe('createSessions', () => {
  it('keeps only the hash of the id, and the principal', async () => {
    const store = memoryStore();
    const sessions = createSessions({ store, clock: { now: () => T0 }, maxSeconds: 3600 });
    const started = await sessions.start(alice(600));
    const [row] = [...store.rows.values()];
    expect(row?.idHash).not.toBe(started.id);
    expect(JSON.stringify(row)).not.toContain(started.id);
    expect(row).toMatchObject({ subject: 'alice', scopes: ['images:read', 'images:write'] });
    const principal = await sessions.find(started.id);
    expect(principal?.subject).toBe('alice');
    expect([...(principal?.scopes ?? [])]).toEqual(['images:read', 'images:write']);
  });

  it('ends at the token exp, or earlier at the maximum', async () => {
    let now = T0;
    const sessions = createSessions({ store: memoryStore(), clock: { now: () => now }, maxSeconds: 3600 });
    const short = await sessions.start(alice(600));
    expect(short.expiresAt).toBe(T0 + 600_000);
    const long = await sessions.start(alice(86_400));
    expect(long.expiresAt).toBe(T0 + 3_600_000);
    now = T0 + 599_999;
    expect(await sessions.find(short.id)).not.toBeNull();
    now = T0 + 600_000;
    expect(await sessions.find(short.id)).toBeNull();
    expect(await sessions.find(long.id)).not.toBeNull();
    now = T0 + 3_600_000;
    expect(await sessions.find(long.id)).toBeNull();
  });

  it('forgets an ended session, and ignores ids of the wrong shape without asking the store', async () => {
    const store = memoryStore();
    const sessions = createSessions({ store, clock: { now: () => T0 }, maxSeconds: 3600 });
    const started = await sessions.start(alice(600));
    await sessions.end(started.id);
    expect(await sessions.find(started.id)).toBeNull();
    store.get = async () => {
      throw new Error('must not be asked');
    };
    expect(await sessions.find('short')).toBeNull();
  });

  it('checks the CSRF token of the session, and nothing else', async () => {
    const sessions = createSessions({ store: memoryStore(), clock: { now: () => T0 }, maxSeconds: 3600 });
    const a = await sessions.start(alice(600));
    const b = await sessions.start(alice(600));
    expect(sessions.isCsrfToken(a.id, a.csrfToken)).toBe(true);
    expect(sessions.isCsrfToken(a.id, b.csrfToken)).toBe(false);
    expect(sessions.isCsrfToken(a.id, undefined)).toBe(false);
    expect(sessions.isCsrfToken(a.id, `${a.csrfToken}x`)).toBe(false);
    expect(a.csrfToken).not.toBe(a.id);
  });

  it('fails closed with 503 when the store is down', async () => {
    const store = memoryStore();
    const sessions = createSessions({ store, clock: { now: () => T0 }, maxSeconds: 3600 });
    const started = await sessions.start(alice(600));
    store.get = async () => {
      throw new Error('disk I/O error');
    };
    const error = await sessions.find(started.id).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).status).toBe(503);
    expect((error as AppError).code).toBe('unavailable');
  });
});
