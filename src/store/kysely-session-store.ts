import type { Kysely } from 'kysely';
import type { Database } from './database.js';
import { migrateToLatest } from './migrate.js';
import type { SessionRecord, SessionStore } from './session-store.js';
import { checkedFirst, openSqliteKysely, watchDatabaseFile } from './sqlite.js';

/**
 * Sessions in SQL (migrations/0002-sessions.ts): the embedded default, so that a restart does
 * not sign every browser out. Works on any kysely dialect; PostgreSQL shares it when scaled out.
 */
export function createKyselySessionStore(db: Kysely<Database>): SessionStore {
  return {
    async insert(session: SessionRecord) {
      await db
        .insertInto('sessions')
        .values({
          id_hash: session.idHash,
          subject: session.subject,
          scopes: session.scopes.join(' '),
          expires_at: session.expiresAt,
          created_at: session.createdAt,
        })
        .execute();
    },

    async get(idHash) {
      const row = await db
        .selectFrom('sessions')
        .selectAll()
        .where('id_hash', '=', idHash)
        .executeTakeFirst();
      if (!row) return undefined;
      return {
        idHash: row.id_hash,
        subject: row.subject,
        scopes: row.scopes === '' ? [] : row.scopes.split(' '),
        expiresAt: Number(row.expires_at),
        createdAt: Number(row.created_at),
      };
    },

    async delete(idHash) {
      const result = await db.deleteFrom('sessions').where('id_hash', '=', idHash).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },

    async deleteExpired(now) {
      const result = await db.deleteFrom('sessions').where('expires_at', '<=', now).executeTakeFirst();
      return Number(result.numDeletedRows);
    },

    async close() {
      await db.destroy();
    },
  };
}

/** Its own connection to the SQLite file (WAL: it never blocks the image reads). */
export async function openSqliteSessionStore(path: string): Promise<SessionStore> {
  const db = openSqliteKysely(path);
  try {
    await migrateToLatest(db);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return checkedFirst(createKyselySessionStore(db), watchDatabaseFile(path));
}
