import type BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Principal } from '../../../src/auth/principal.js';
import { createSessions, type SessionStore } from '../../../src/auth/sessions.js';
import { AppError } from '../../../src/errors.js';
import type { Database } from '../../../src/store/database.js';
import { createKyselySessionStore } from '../../../src/store/kysely-session-store.js';
import { migrateToLatest } from '../../../src/store/migrate.js';
import { openSqliteDatabase } from '../../../src/store/sqlite.js';
import { compared } from '../../helpers/timing-safe-equal.js';

/**
 * Session logic over the real session store (kysely on SQLite, as main.ts builds it; in memory
 * here, the file is the integration tests' business) and an injected clock.
 */

// Every timingSafeEqual sessions.ts makes, passed through to the real one.
vi.mock('node:crypto', async (original) =>
  (await import('../../helpers/timing-safe-equal.js')).recordingTimingSafeEqual(original),
);

const opened: BetterSqlite3.Database[] = [];
afterEach(() => {
  for (const sqlite of opened.splice(0)) if (sqlite.open) sqlite.close();
});

/** The store, and the SQLite connection under it: to read its rows, or to close it under the store. */
async function sqliteStore(): Promise<{ store: SessionStore; sqlite: BetterSqlite3.Database }> {
  const sqlite = openSqliteDatabase(':memory:');
  opened.push(sqlite);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrateToLatest(db);
  return { store: createKyselySessionStore(db), sqlite };
}

const T0 = Date.UTC(2026, 0, 1);
const alice = (expiresInSeconds: number): Principal => ({
  subject: 'alice',
  scopes: new Set(['images:read', 'images:write']),
  expiresAt: T0 / 1000 + expiresInSeconds,
});

describe('createSessions', () => {
  it('keeps only the hash of the id, and the principal', async () => {
    const { store, sqlite } = await sqliteStore();
    const sessions = createSessions({ store, clock: { now: () => T0 }, maxSeconds: 3600 });
    const started = await sessions.start(alice(600));
    const rows = sqlite.prepare('select * from sessions').all() as Array<Record<string, unknown>>;
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row?.id_hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(row?.id_hash).not.toBe(started.id);
    expect(JSON.stringify(row)).not.toContain(started.id);
    expect(JSON.stringify(row)).not.toContain(started.csrfToken);
    expect(row).toMatchObject({ subject: 'alice', scopes: 'images:read images:write' });
    const principal = await sessions.find(started.id);
    expect(principal?.subject).toBe('alice');
    expect([...(principal?.scopes ?? [])]).toEqual(['images:read', 'images:write']);
  });

  it('ends at the token exp, or earlier at the maximum', async () => {
    let now = T0;
    const { store } = await sqliteStore();
    const sessions = createSessions({ store, clock: { now: () => now }, maxSeconds: 3600 });
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
    const { store, sqlite } = await sqliteStore();
    const sessions = createSessions({ store, clock: { now: () => T0 }, maxSeconds: 3600 });
    const started = await sessions.start(alice(600));
    await sessions.end(started.id);
    expect(await sessions.find(started.id)).toBeNull();
    expect(sqlite.prepare('select count(*) as n from sessions').get()).toEqual({ n: 0 });
    // With the database closed, asking the store would throw: these ids never reach it.
    sqlite.close();
    expect(await sessions.find('short')).toBeNull();
    expect(await sessions.find(`${started.id}!`)).toBeNull();
    await sessions.end('short');
  });

  it('checks the CSRF token of the session, and nothing else', async () => {
    const { store } = await sqliteStore();
    const sessions = createSessions({ store, clock: { now: () => T0 }, maxSeconds: 3600 });
    const a = await sessions.start(alice(600));
    const b = await sessions.start(alice(600));
    expect(sessions.isCsrfToken(a.id, a.csrfToken)).toBe(true);
    expect(sessions.isCsrfToken(a.id, b.csrfToken)).toBe(false);
    expect(sessions.isCsrfToken(a.id, undefined)).toBe(false);
    expect(sessions.isCsrfToken(a.id, `${a.csrfToken}x`)).toBe(false);
    expect(a.csrfToken).not.toBe(a.id);
  });

  it('compares the CSRF token in constant time: timingSafeEqual over equal lengths (security review)', async () => {
    const { store } = await sqliteStore();
    const sessions = createSessions({ store, clock: { now: () => T0 }, maxSeconds: 3600 });
    const a = await sessions.start(alice(600));
    const nearMiss = `${a.csrfToken.slice(0, -1)}${a.csrfToken.endsWith('A') ? 'B' : 'A'}`;
    compared.length = 0;
    expect(sessions.isCsrfToken(a.id, a.csrfToken)).toBe(true);
    expect(sessions.isCsrfToken(a.id, nearMiss)).toBe(false);
    expect(compared.map(([given]) => given.toString())).toEqual([a.csrfToken, nearMiss]);
    for (const [given, expected] of compared) {
      expect(given.length).toBe(expected.length);
      expect(expected.toString()).toBe(a.csrfToken);
    }
  });

  it('fails closed with 503 unavailable when the store is down, for every operation', async () => {
    const { store, sqlite } = await sqliteStore();
    const sessions = createSessions({ store, clock: { now: () => T0 }, maxSeconds: 3600 });
    const started = await sessions.start(alice(600));
    expect((await sessions.find(started.id))?.subject).toBe('alice');
    // The database goes away under the store for real: every query now fails in the driver.
    sqlite.close();
    for (const attempt of [
      () => sessions.find(started.id),
      () => sessions.start(alice(600)),
      () => sessions.end(started.id),
    ]) {
      const error = await attempt().then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(AppError);
      expect(error).toMatchObject({
        status: 503,
        code: 'unavailable',
        publicMessage: 'The session store is unavailable',
      });
    }
  });
});
