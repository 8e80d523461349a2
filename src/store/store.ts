/** Metadata of images: SQLite in the embedded default, PostgreSQL when scaled out. */

export type Visibility = 'private' | 'preview' | 'public';
export const visibilities: readonly Visibility[] = ['private', 'preview', 'public'];

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

export interface Store {
  /** Inserts a new image; the id is new (a collision of 128 random bits is a bug, so it throws). */
  insertImage(image: ImageRecord): Promise<void>;
  getImage(id: string): Promise<ImageRecord | undefined>;
  /** Newest first. A cursor that this store did not make is an AppError `invalid_request`. */
  listImages(owner: string, options: ListOptions): Promise<ImagePage>;
  /** Returns the updated record, or undefined when the image does not exist. */
  setVisibility(id: string, visibility: Visibility): Promise<ImageRecord | undefined>;
  /** Returns whether a row was deleted. */
  deleteImage(id: string): Promise<boolean>;
  /** Throws when the store cannot answer (readiness). */
  check(): Promise<void>;
  close(): Promise<void>;
}
