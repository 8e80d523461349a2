/**
 * The one error catalogue. Every error a client can see has a code here, a status, and a
 * public message; `http/reply.ts` turns an AppError into `{ "error": { "code", "message" } }`.
 * A test fails when a code is missing from the README's error table.
 */

export const errorStatus = {
  invalid_request: 400,
  invalid_transform: 400,
  unauthenticated: 401,
  invalid_token: 401,
  insufficient_scope: 403,
  forbidden: 403,
  host_not_allowed: 403,
  not_found: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unprocessable_image: 422,
  internal: 500,
  origin_error: 502,
  overloaded: 503,
  unavailable: 503,
  origin_timeout: 504,
  insufficient_storage: 507,
  // Issue 5 (private origins): uploads to an origin pixgate may only read (HTTP).
  read_only_storage: 403,
  // Issue 3: sessions and the JSON form.
  csrf_failed: 403,
  output_too_large: 422,
  // Issue 4: signed URLs, share links, limits.
  invalid_signature: 403,
  quota_exceeded: 403,
  rate_limited: 429,
  not_configured: 501,
  // Requests Node's HTTP parser refuses before any route sees them (http/reply.ts).
  headers_too_large: 431,
  request_timeout: 408,
  // An `Expect` we do not understand (anything but 100-continue, RFC 9110 §10.1.1).
  expectation_failed: 417,
  // HTTP conformance (RFC 9110, 9112): a method the path does not take (with `Allow`), a
  // request line too long to parse, CONNECT or a transfer coding we do not decode, a failed
  // If-Match.
  method_not_allowed: 405,
  uri_too_long: 414,
  not_implemented: 501,
  precondition_failed: 412,
  // Never sent (nobody is left to read it): the log line and the metrics of a request whose
  // client closed the connection first. 499 as nginx logs it.
  client_closed: 499,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export const errorCodes = Object.keys(errorStatus) as ErrorCode[];

export interface AppErrorOptions {
  /** For logs only: what really happened. Never sent to the client. */
  detail?: string;
  headers?: Record<string, string>;
  cause?: unknown;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** What the client reads. Never holds a token, a secret, an origin key or a stack. */
  readonly publicMessage: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, publicMessage: string, options: AppErrorOptions = {}) {
    super(options.detail ? `${publicMessage} (${options.detail})` : publicMessage, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = errorStatus[code];
    this.publicMessage = publicMessage;
    this.headers = options.headers ?? {};
  }
}

export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError;
}

// Messages that must read the same for every reason behind them, so that the answer does not
// tell an attacker which check failed (SPEC §4, "Status codes, decided once").
export const messages = {
  notFound: 'No such image',
  invalidToken: 'The access token is invalid or expired',
  unauthenticated: 'An access token is required',
  invalidSignature: 'The signed URL is invalid or expired',
  noSuchLink: 'No such link',
} as const;

export const notFound = (detail?: string) => new AppError('not_found', messages.notFound, { detail });

/** Refused an owner whose stored originals would pass PIXGATE_QUOTA_BYTES (SPEC §6). */
export const quotaExceeded = (quotaBytes: number) =>
  new AppError('quota_exceeded', `The upload would pass the storage quota of ${quotaBytes} bytes`);

/**
 * The origin gave an original that is not the one recorded (replaced there, or damaged): neither
 * rendered past the bounds the policy set from the record, nor sent under its recorded ETag.
 */
export const notTheRecordedOriginal = (found: string) =>
  new AppError('origin_error', 'The original at the origin is not the image registered', {
    detail: `${found}: register or upload it again`,
  });

export const clientClosed = () =>
  new AppError('client_closed', 'The client closed the connection before its response was complete');
