/**
 * Browser sessions (SPEC §3.3): a cookie that stands for a verified access token, for pages whose
 * `<img>` cannot send `Authorization`. The cookie holds a random session id (256 bits); the store
 * keeps only its SHA-256 and the principal, never the id nor the token, so a copy of the store
 * lets nobody act as a user. A session ends at the token's `exp`, or earlier at the configured
 * maximum, and at once when it is ended or replaced (rotation).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import { sha256 } from '../digest.js';
import { AppError } from '../errors.js';
import type { SessionStore } from '../store/session-store.js';
import type { Principal } from './principal.js';

// The store's shape lives with the store (imports go down only, DESIGN.md); re-exported here.
export type { SessionRecord, SessionStore } from '../store/session-store.js';

export interface StartedSession {
  /** The cookie value. Only the client ever holds it. */
  readonly id: string;
  readonly csrfToken: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

export interface Sessions {
  start(principal: Principal): Promise<StartedSession>;
  /** The principal of a live session, or null for an unknown, ended or expired one. */
  find(id: string): Promise<Principal | null>;
  end(id: string): Promise<void>;
  /** Whether `presented` is the CSRF token of session `id` (constant time). */
  isCsrfToken(id: string, presented: string | undefined): boolean;
}

export interface SessionsOptions {
  readonly store: SessionStore;
  readonly clock: Clock;
  readonly maxSeconds: number;
}

const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/**
 * The CSRF token is derived from the session id, so nothing more is stored, and only who holds
 * the (HttpOnly) cookie value can know it. The label keeps it from ever equalling the id's hash
 * that the store keeps.
 */
const csrfTokenOf = (id: string) => sha256(`pixgate-csrf:${id}`);

/** Fail closed (SPEC §4): a store that cannot answer is a 503, never an anonymous guess. */
async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw new AppError('unavailable', 'The session store is unavailable', { cause: error });
  }
}

export function createSessions(options: SessionsOptions): Sessions {
  const { store, clock, maxSeconds } = options;
  let lastSweep = 0;

  async function sweep(now: number): Promise<void> {
    // At most once a minute, on the write path: lookups delete their own expired row anyway.
    if (now - lastSweep < 60_000) return;
    lastSweep = now;
    await store.deleteExpired(now);
  }

  return {
    async start(principal) {
      const now = clock.now();
      const id = randomBytes(32).toString('base64url');
      const expiresAt = Math.min(principal.expiresAt * 1000, now + maxSeconds * 1000);
      await guarded(async () => {
        await store.insert({
          idHash: sha256(id),
          subject: principal.subject,
          scopes: [...principal.scopes],
          expiresAt,
          createdAt: now,
        });
        await sweep(now);
      });
      return { id, csrfToken: csrfTokenOf(id), expiresAt };
    },

    async find(id) {
      // Not our shape: no store round trip for junk cookies.
      if (!SESSION_ID.test(id)) return null;
      const idHash = sha256(id);
      const session = await guarded(() => store.get(idHash));
      if (!session) return null;
      if (session.expiresAt <= clock.now()) {
        await guarded(() => store.delete(idHash));
        return null;
      }
      return {
        subject: session.subject,
        scopes: new Set(session.scopes),
        expiresAt: Math.floor(session.expiresAt / 1000),
      };
    },

    async end(id) {
      if (!SESSION_ID.test(id)) return;
      await guarded(() => store.delete(sha256(id)));
    },

    isCsrfToken(id, presented) {
      if (presented === undefined || !SESSION_ID.test(id)) return false;
      const expected = Buffer.from(csrfTokenOf(id));
      const given = Buffer.from(presented);
      // timingSafeEqual: a timing difference would leak the token byte by byte.
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}
