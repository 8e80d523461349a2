import type { ColumnType } from 'kysely';
import type { Visibility } from './store.js';

/**
 * The tables as kysely sees them, shared by SQLite and PostgreSQL. Columns are dialect-neutral
 * (see migrations/0001-images.ts): times are integer milliseconds since the epoch, booleans are
 * 0/1 integers.
 */

/**
 * A 64-bit integer column. better-sqlite3 answers a number; node-postgres answers int8 as a
 * string (it cannot know the value fits a double), so reads go through `Number()`.
 */
export type Int8 = ColumnType<number | string | bigint, number, number>;

export interface ImagesTable {
  id: string;
  owner: string;
  visibility: Visibility;
  version: number;
  origin_key: string;
  origin_etag: string;
  format: string;
  width: number;
  height: number;
  bytes: Int8;
  /** 0 or 1. */
  has_alpha: number;
  pages: number;
  placeholder: string;
  /** Milliseconds since the epoch, UTC. */
  created_at: Int8;
}

/** Issue 3 (migrations/0002-sessions.ts). */
export interface SessionsTable {
  id_hash: string;
  subject: string;
  scopes: string;
  expires_at: Int8;
  created_at: Int8;
}

/** Share links (issue 4, migrations/0003-capabilities.ts). */
export interface LinksTable {
  id: string;
  image_id: string;
  /** SHA-256 of the token, base64url: the token itself is never stored. */
  token_hash: string;
  image_version: number;
  created_by: string;
  created_at: Int8;
  expires_at: Int8;
  max_views: number | null;
  max_width: number | null;
  views: ColumnType<number, number | undefined, number>;
}

export interface Database {
  images: ImagesTable;
  sessions: SessionsTable;
  links: LinksTable;
}
