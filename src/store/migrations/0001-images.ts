import { type Kysely, sql } from 'kysely';

/**
 * The images table. Dialect-neutral on purpose, because the same migrations run on SQLite and
 * PostgreSQL: times are `bigint` milliseconds since the epoch (not a native timestamp type, whose
 * precision and time-zone handling differ between the two), booleans are 0/1 integers with a
 * check (SQLite has no boolean type), and the few enumerations are checked text.
 */

// `any`: a migration is frozen in time and must not follow later changes of the Database type.
// biome-ignore lint/suspicious/noExplicitAny: kysely's documented type for migrations.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('images')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('owner', 'text', (column) => column.notNull())
    .addColumn('visibility', 'text', (column) => column.notNull())
    .addColumn('version', 'integer', (column) => column.notNull())
    .addColumn('origin_key', 'text', (column) => column.notNull())
    .addColumn('origin_etag', 'text', (column) => column.notNull())
    .addColumn('format', 'text', (column) => column.notNull())
    .addColumn('width', 'integer', (column) => column.notNull())
    .addColumn('height', 'integer', (column) => column.notNull())
    // bigint: a configured upload limit may pass 2 GiB, beyond a 32-bit integer.
    .addColumn('bytes', 'bigint', (column) => column.notNull())
    .addColumn('has_alpha', 'integer', (column) => column.notNull())
    .addColumn('pages', 'integer', (column) => column.notNull())
    .addColumn('placeholder', 'text', (column) => column.notNull())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addCheckConstraint('images_visibility_check', sql`visibility in ('private', 'preview', 'public')`)
    .addCheckConstraint('images_has_alpha_check', sql`has_alpha in (0, 1)`)
    .addCheckConstraint('images_version_check', sql`version >= 1`)
    .execute();

  // Serves listImages: one owner, newest first, id as the tie-breaker of the keyset cursor.
  await db.schema
    .createIndex('images_owner_created_at_id_index')
    .on('images')
    .columns(['owner', 'created_at desc', 'id desc'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: kysely's documented type for migrations.
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('images').execute();
}
