import type { Kysely } from 'kysely';

/**
 * Browser sessions (SPEC §3.3, issue 3). A row holds the SHA-256 of the cookie's session id,
 * never the id itself nor the access token it was made from: a copy of the database lets nobody
 * act as a user. The principal is kept as the token gave it (subject, scopes), and the session
 * ends at `expires_at` (ms since the epoch, the token's `exp` or earlier).
 */

// biome-ignore lint/suspicious/noExplicitAny: kysely's documented type for migrations.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sessions')
    .addColumn('id_hash', 'text', (column) => column.primaryKey())
    .addColumn('subject', 'text', (column) => column.notNull())
    /** Space-separated, as in a token's `scope`. */
    .addColumn('scopes', 'text', (column) => column.notNull())
    .addColumn('expires_at', 'bigint', (column) => column.notNull())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .execute();
  // Expired rows are swept by expiry.
  await db.schema.createIndex('sessions_expires_at_index').on('sessions').column('expires_at').execute();
}

// biome-ignore lint/suspicious/noExplicitAny: kysely's documented type for migrations.
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('sessions').execute();
}
