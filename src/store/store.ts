/** Metadata of images: SQLite in the embedded default, PostgreSQL when scaled out. */

export type Visibility = 'private' | 'preview' | 'public';
export const visibilities: readonly Visibility[] = ['private', 'preview', 'public'];
/** An owner is a token's subject; OIDC keeps `sub` within 255 ASCII characters. */
export const MAX_OWNER_LENGTH = 256;

export interface ImageRecord {
  /** At least 128 random bits, base64url; never derived from the file name or content. */
  readonly id: string;
  /** The principal (`sub`, or `client_id`) that owns it. */
  readonly owner: string;
  readonly visibility: Visibility;
  /** Bumped on revocation: part of every variant key and signature. Starts at 1. */
  readonly version: number;
  /** Where the original sits in the origin. Never shown to anyone but admins. */
  readonly originKey: string;
  /** Identity of the original bytes: sha256 (base64url) for uploads, the origin's ETag otherwise. */
  readonly originEtag: string;
  /** Format of the original as sharp names it: jpeg, png, webp, avif, gif, svg, tiff, heif. */
  readonly format: string;
  /** Displayed size, after EXIF orientation. For animations, one frame. */
  readonly width: number;
  readonly height: number;
  /** Size of the original in bytes. */
  readonly bytes: number;
  readonly hasAlpha: boolean;
  /** Number of frames; more than 1 means animated. */
  readonly pages: number;
  /** ThumbHash of the image, base64. */
  readonly placeholder: string;
  readonly createdAt: Date;
}

export interface ImagePage {
  readonly items: ImageRecord[];
  /** Opaque; null on the last page. */
  readonly nextCursor: string | null;
}

export interface ListOptions {
  /** 1..100. */
  readonly limit: number;
  readonly cursor?: string | undefined;
}

/** A share link (issue 4); the token is never stored, only its hash. */
export interface LinkRecord {
  /** 128 random bits, base64url: names the link in the API (DELETE /v1/links/{id}). */
  readonly id: string;
  readonly imageId: string;
  readonly tokenHash: string;
  /** The image version when the link was made: a revocation (new version) ends the link. */
  readonly imageVersion: number;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly maxViews: number | null;
  readonly maxWidth: number | null;
  readonly views: number;
}

export interface Store {
  /**
   * Inserts a new image; the id is new (a collision of 128 random bits is a bug, so it throws).
   * With `ownerQuotaBytes`, refuses with `quota_exceeded` when the owner's stored bytes and this
   * image's would pass it, checked and inserted as one: concurrent inserts cannot pass it together.
   */
  insertImage(image: ImageRecord, options?: { readonly ownerQuotaBytes?: number }): Promise<void>;
  getImage(id: string): Promise<ImageRecord | undefined>;
  /** Newest first. A cursor that this store did not make is an AppError `invalid_request`. */
  listImages(owner: string, options: ListOptions): Promise<ImagePage>;
  /** Returns the updated record, or undefined when the image does not exist. */
  setVisibility(id: string, visibility: Visibility): Promise<ImageRecord | undefined>;
  /**
   * Returns whether a row was deleted. With `beforeCommit`, as one: the row is deleted, then
   * `beforeCommit` runs (removing the original), and only if it succeeds is the deletion
   * committed; if either fails (the store locked, the origin down), nothing changes. It runs
   * while the store holds its write lock: keep it short (one origin call).
   */
  deleteImage(id: string, options?: { readonly beforeCommit?: () => Promise<void> }): Promise<boolean>;
  // Issue 4: revocation, quota, share links.
  /** Bumps the version (revocation); returns the updated record, or undefined when missing. */
  bumpVersion(id: string): Promise<ImageRecord | undefined>;
  /** Bytes of originals the owner stores (quota). */
  ownerBytes(owner: string): Promise<number>;
  insertLink(link: LinkRecord): Promise<void>;
  getLink(id: string): Promise<LinkRecord | undefined>;
  findLinkByTokenHash(tokenHash: string): Promise<LinkRecord | undefined>;
  /** The image's links that may still be used at `now`, newest first. */
  listLinks(imageId: string, now: Date): Promise<LinkRecord[]>;
  deleteLink(id: string): Promise<boolean>;
  /**
   * Counts one view if the link is live at `now`, within its budget and its image not revoked
   * since (still at the link's version), in one conditional UPDATE (no read-then-write race);
   * returns whether it was counted.
   */
  countLinkView(id: string, now: Date): Promise<boolean>;
  /** Throws when the store cannot answer (readiness). */
  check(): Promise<void>;
  close(): Promise<void>;
}
