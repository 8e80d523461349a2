/**
 * Where originals live: a local directory (default), an S3 bucket, or an HTTP origin that itself
 * needs credentials. Keys are made by pixgate (image ids) or validated by `register`; a request
 * never chooses a key, a host or a scheme.
 *
 * Errors are AppErrors: `not_found` (no such key), `origin_error` (502: refused, down, bad
 * answer), `origin_timeout` (504), `insufficient_storage` (507, writes), `read_only_storage` (403).
 */

export interface OriginObject {
  readonly body: Buffer;
  /** The origin's identity for these bytes, when it has one (S3 ETag, HTTP ETag). */
  readonly etag?: string | undefined;
  readonly lastModified?: Date | undefined;
  /**
   * When present, `body` is pooled memory: call it once done with the bytes (after the render),
   * and never touch `body` afterwards. Not calling it is safe (the memory is just not reused).
   */
  readonly release?: (() => void) | undefined;
}

export interface ReadOptions {
  /** Stop reading beyond this many bytes (origin_error). */
  readonly maxBytes: number;
  readonly signal?: AbortSignal | undefined;
}

export interface Origin {
  /** `file`, `s3`, `http`: for logs and readiness. */
  readonly kind: string;
  readonly isWritable: boolean;
  read(key: string, options: ReadOptions): Promise<OriginObject>;
  /**
   * Stores a complete file under `key` and takes ownership of `tempPath` (moved or removed).
   * Atomic: after a failure or a crash, `key` holds either nothing or the whole file.
   */
  write(key: string, tempPath: string, contentType: string): Promise<void>;
  /** Removing a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Throws when the origin cannot be reached (readiness). */
  check(): Promise<void>;
  /**
   * The keys under `prefix` (a plain relative path, or '' for all), for `pixgate register
   * --prefix`. Absent where the origin cannot list (HTTP).
   */
  list?(prefix: string): AsyncIterable<string>;
}
