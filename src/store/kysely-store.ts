import type { Insertable, Kysely, Selectable } from 'kysely';
import { sql } from 'kysely';
import { AppError, quotaExceeded } from '../errors.js';
import type { Database, ImagesTable, LinksTable } from './database.js';
import type { ImagePage, ImageRecord, LinkRecord, ListOptions, Store, Visibility } from './store.js';

/**
 * The Store on kysely, shared by every SQL dialect we run on (SQLite embedded, PostgreSQL when
 * scaled out). The dialect-specific part (opening, pragmas, pools) lives in sqlite.ts and
 * postgres.ts; they pass the Kysely instance here, and `close()` destroys it.
 */
export function createKyselyStore(db: Kysely<Database>): Store {
  let closed = false;

  return {
    async insertImage(image, options = {}): Promise<void> {
      const quota = options.ownerQuotaBytes;
      // A duplicate id fails on the primary key with the driver's error: 128 random bits do
      // not collide, so it is a bug and surfaces as one (500), never as a silent overwrite.
      if (quota === undefined) {
        await db.insertInto('images').values(toRow(image)).execute();
        return;
      }
      // One transaction: on SQLite the connection is ours until it ends (kysely queues every
      // other query of this process behind it). The insert comes first, so the transaction
      // takes the write lock before it reads, waiting out another connection's write (`pixgate
      // import` beside the server) as any insert does. Read first, it would hold a snapshot
      // that write makes stale: SQLITE_BUSY at once, a 503 where a wait would do.
      await db.transaction().execute(async (trx) => {
        await trx.insertInto('images').values(toRow(image)).execute();
        if ((await sumOwnerBytes(trx, image.owner)) > quota) throw quotaExceeded(quota);
      });
    },

    async getImage(id: string): Promise<ImageRecord | undefined> {
      const row = await db.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },

    async listImages(owner: string, options: ListOptions): Promise<ImagePage> {
      const { limit } = options;
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        throw new AppError('invalid_request', `Expected integer 1..100 for limit but received ${limit}`);
      }
      // An empty cursor is no cursor: SPEC §4 writes the first page as `?cursor=`.
      const after = options.cursor ? decodeCursor(options.cursor) : undefined;

      // Keyset pagination on (created_at, id), both descending, served by the index
      // images_owner_created_at_id_index: a page never repeats or skips a row when images are
      // added or removed between two requests, which OFFSET would.
      let query = db
        .selectFrom('images')
        .selectAll()
        .where('owner', '=', owner)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit + 1);
      if (after) {
        query = query.where((eb) =>
          eb.or([
            eb('created_at', '<', after.createdAt),
            eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)]),
          ]),
        );
      }
      const rows = await query.execute();
      const items = rows.slice(0, limit).map(toRecord);
      const last = items.at(-1);
      const nextCursor = rows.length > limit && last ? encodeCursor(last.createdAt.getTime(), last.id) : null;
      return { items, nextCursor };
    },

    async setVisibility(id: string, visibility: Visibility): Promise<ImageRecord | undefined> {
      // RETURNING: one statement, so the answer is the row as this update left it (SQLite has
      // it since 3.35, PostgreSQL always).
      const row = await db
        .updateTable('images')
        .set({ visibility })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },

    async deleteImage(id, options = {}): Promise<boolean> {
      const { beforeCommit } = options;
      if (!beforeCommit) {
        const result = await db.deleteFrom('images').where('id', '=', id).executeTakeFirst();
        return result.numDeletedRows > 0n;
      }
      // One transaction around the origin's delete: a store that cannot take the deletion
      // (locked past the busy timeout) refuses before the original is touched, and an origin
      // that refuses (S3 down) rolls the row back. On SQLite the transaction holds the write
      // lock, and kysely queues this process's other queries behind it, for that one call.
      return db.transaction().execute(async (trx) => {
        const result = await trx.deleteFrom('images').where('id', '=', id).executeTakeFirst();
        if (result.numDeletedRows === 0n) return false;
        await beforeCommit();
        return true;
      });
    },

    async bumpVersion(id: string): Promise<ImageRecord | undefined> {
      const row = await db
        .updateTable('images')
        .set((eb) => ({ version: eb('version', '+', 1) }))
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },

    ownerBytes: (owner: string) => sumOwnerBytes(db, owner),

    async insertLink(link: LinkRecord): Promise<void> {
      await db.insertInto('links').values(toLinkRow(link)).execute();
    },

    async getLink(id: string): Promise<LinkRecord | undefined> {
      const row = await db.selectFrom('links').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toLinkRecord(row) : undefined;
    },

    async findLinkByTokenHash(tokenHash: string): Promise<LinkRecord | undefined> {
      const row = await db
        .selectFrom('links')
        .selectAll()
        .where('token_hash', '=', tokenHash)
        .executeTakeFirst();
      return row ? toLinkRecord(row) : undefined;
    },

    async listLinks(imageId: string, now: Date): Promise<LinkRecord[]> {
      const rows = await db
        .selectFrom('links')
        .innerJoin('images', 'images.id', 'links.image_id')
        .selectAll('links')
        .where('links.image_id', '=', imageId)
        .whereRef('links.image_version', '=', 'images.version')
        .where('links.expires_at', '>', now.getTime())
        .where((eb) =>
          eb.or([eb('links.max_views', 'is', null), eb('links.views', '<', eb.ref('links.max_views'))]),
        )
        .orderBy('links.created_at', 'desc')
        .orderBy('links.id', 'desc')
        .execute();
      return rows.map(toLinkRecord);
    },

    async deleteLink(id: string): Promise<boolean> {
      const result = await db.deleteFrom('links').where('id', '=', id).executeTakeFirst();
      return result.numDeletedRows > 0n;
    },

    async countLinkView(id: string, now: Date): Promise<boolean> {
      // One statement: two concurrent views of the last allowed one cannot both pass, and a
      // revocation (a new image version) that landed while the variant was rendering stops it.
      const result = await db
        .updateTable('links')
        .set((eb) => ({ views: eb('views', '+', 1) }))
        .where('id', '=', id)
        .where('expires_at', '>', now.getTime())
        .where((eb) => eb.or([eb('max_views', 'is', null), eb('views', '<', eb.ref('max_views'))]))
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom('images')
              .select('images.id')
              .whereRef('images.id', '=', 'links.image_id')
              .whereRef('images.version', '=', 'links.image_version'),
          ),
        )
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },

    async check(): Promise<void> {
      await sql`select 1`.execute(db);
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

async function sumOwnerBytes(db: Kysely<Database>, owner: string): Promise<number> {
  const row = await db
    .selectFrom('images')
    .select((eb) => eb.fn.sum<number | string | bigint | null>('bytes').as('total'))
    .where('owner', '=', owner)
    .executeTakeFirst();
  return Number(row?.total ?? 0);
}

function toRow(image: ImageRecord): Insertable<ImagesTable> {
  const createdAt = image.createdAt.getTime();
  // Programmer mistakes, not user input: an Invalid Date would be stored as NULL or NaN.
  if (!Number.isSafeInteger(createdAt)) throw new TypeError('Expected a valid Date for createdAt');
  return {
    id: image.id,
    owner: image.owner,
    visibility: image.visibility,
    version: image.version,
    origin_key: image.originKey,
    origin_etag: image.originEtag,
    format: image.format,
    width: image.width,
    height: image.height,
    bytes: image.bytes,
    has_alpha: image.hasAlpha ? 1 : 0,
    pages: image.pages,
    placeholder: image.placeholder,
    created_at: createdAt,
  };
}

function toRecord(row: Selectable<ImagesTable>): ImageRecord {
  return {
    id: row.id,
    owner: row.owner,
    visibility: row.visibility,
    version: row.version,
    originKey: row.origin_key,
    originEtag: row.origin_etag,
    format: row.format,
    width: row.width,
    height: row.height,
    bytes: Number(row.bytes),
    hasAlpha: row.has_alpha === 1,
    pages: row.pages,
    placeholder: row.placeholder,
    createdAt: new Date(Number(row.created_at)),
  };
}

function toLinkRow(link: LinkRecord): Insertable<LinksTable> {
  return {
    id: link.id,
    image_id: link.imageId,
    token_hash: link.tokenHash,
    image_version: link.imageVersion,
    created_by: link.createdBy,
    created_at: link.createdAt.getTime(),
    expires_at: link.expiresAt.getTime(),
    max_views: link.maxViews,
    max_width: link.maxWidth,
    views: link.views,
  };
}

function toLinkRecord(row: Selectable<LinksTable>): LinkRecord {
  return {
    id: row.id,
    imageId: row.image_id,
    tokenHash: row.token_hash,
    imageVersion: row.image_version,
    createdBy: row.created_by,
    createdAt: new Date(Number(row.created_at)),
    expiresAt: new Date(Number(row.expires_at)),
    maxViews: row.max_views,
    maxWidth: row.max_width,
    views: row.views,
  };
}

/**
 * The cursor is base64url of `v1.<createdAt ms>.<id>`: opaque to clients, versioned so that
 * the format can change, and checked strictly on the way back in (a cursor must re-encode to
 * the same text) so that only cursors this store made are accepted.
 *
 * It is not bound to the owner: a cursor taken from another owner's listing only names a
 * position (a time and an id) and the query still reads the caller's own rows only, so it
 * reveals nothing and is accepted as that position.
 */
// The id part is any text: ids are base64url by contract, but the cursor must keep working for
// any row the table holds, and it only ever becomes a bound parameter.
const CURSOR = /^v1\.(-?(?:0|[1-9][0-9]{0,15}))\.(.{1,256})$/s;

function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(`v1.${createdAt}.${id}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  const invalid = () => new AppError('invalid_request', 'Invalid cursor');
  if (cursor.length === 0 || cursor.length > 400 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid();
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const match = CURSOR.exec(text);
  if (!match?.[1] || !match[2]) throw invalid();
  const createdAt = Number(match[1]);
  if (!Number.isSafeInteger(createdAt)) throw invalid();
  // Node's base64url decoder skips junk and ignores trailing bits: re-encoding rejects every
  // spelling of a cursor but the one we issued.
  if (encodeCursor(createdAt, match[2]) !== cursor) throw invalid();
  return { createdAt, id: match[2] };
}
