import { type Kysely, sql } from 'kysely';

/**
 * Share links (issue 4). Only the SHA-256 of a link's token is stored, so a copy of the database
 * cannot open any link. `image_version` is the image's version when the link was made: revoking
 * the image (a new version) ends every link at once. Links go with their image (cascade).
 */

// biome-ignore lint/suspicious/noExplicitAny: kysely's documented type for migrations.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('links')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('image_id', 'text', (column) => column.notNull().references('images.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (column) => column.notNull().unique())
    .addColumn('image_version', 'integer', (column) => column.notNull())
    .addColumn('created_by', 'text', (column) => column.notNull())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addColumn('expires_at', 'bigint', (column) => column.notNull())
    .addColumn('max_views', 'integer')
    .addColumn('max_width', 'integer')
    .addColumn('views', 'integer', (column) => column.notNull().defaultTo(0))
    .addCheckConstraint('links_views_check', sql`views >= 0`)
    .execute();
  await db.schema.createIndex('links_image_id_index').on('links').column('image_id').execute();
}

// biome-ignore lint/suspicious/noExplicitAny: kysely's documented type for migrations.
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('links').execute();
}
