/** Browser sessions as stored (auth/sessions.ts has the logic; SPEC §3.3). */

export interface SessionRecord {
  /** base64url SHA-256 of the session id. */
  readonly idHash: string;
  readonly subject: string;
  readonly scopes: readonly string[];
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  readonly createdAt: number;
}

/** Where sessions live: SQLite in the embedded default (they survive a restart); Redis when scaled out. */
export interface SessionStore {
  insert(session: SessionRecord): Promise<void>;
  get(idHash: string): Promise<SessionRecord | undefined>;
  /** Returns whether a row was deleted. */
  delete(idHash: string): Promise<boolean>;
  /** Removes every session that ended before `now` (ms); returns how many. */
  deleteExpired(now: number): Promise<number>;
  close(): Promise<void>;
}
