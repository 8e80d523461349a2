import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isAppError } from '../errors.js';
import { securityHeaders } from './headers.js';
import { requestState } from './request-state.js';

/**
 * The one place where anything thrown becomes an HTTP answer:
 * `{ "error": { "code", "message" } }`, its status, `Cache-Control: no-store`, and never a
 * stack, a token or an origin key. Unknown errors are 500 `internal`, logged with the request id.
 */
export function toAppError(error: unknown): AppError {
  if (isAppError(error)) return error;
  const fastifyError = error as Partial<FastifyError> & { statusCode?: number };
  switch (fastifyError.code) {
    // No detail and no cause for these two: fastify's message holds the whole URL, and with it
    // an access_token parameter, which must never reach a log line (SPEC §3.2).
    case 'FST_ERR_BAD_URL':
      return new AppError('invalid_request', 'The URL is malformed');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      // A path segment longer than any id or route: it names nothing.
      return new AppError('not_found', 'No such route');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupported_media_type', 'Unsupported Content-Type', { cause: error });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return new AppError('payload_too_large', 'The request body is too large', { cause: error });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('invalid_request', 'The JSON body is invalid', { cause: error });
  }
  if (error instanceof SyntaxError && fastifyError.statusCode === 400) {
    return new AppError('invalid_request', 'The JSON body is invalid', { cause: error });
  }
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // A client error found by fastify or a plugin (multipart limits, bad headers): its message is
    // about the request's shape, not about us.
    return new AppError('invalid_request', 'The request is malformed', {
      detail: fastifyError.message,
      cause: error,
    });
  }
  return new AppError('internal', 'Internal error', { cause: error });
}

/** The error contract's body and headers, for a reply and for a raw socket alike. */
const errorBody = (error: AppError) => ({ error: { code: error.code, message: error.publicMessage } });
const ERROR_HEADERS = {
  'cache-control': 'no-store',
  'content-type': 'application/json; charset=utf-8',
} as const;

const SUCCESS_ONLY_HEADERS = [
  'etag',
  'last-modified',
  'pixgate-clamped',
  'content-disposition',
  'content-length',
];

/** Whether the request announces a body (chunked, or a length above 0). */
export const hasBody = (request: FastifyRequest) =>
  request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;

export async function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const appError = toAppError(error);
  requestState(request).error = appError;
  for (const name of SUCCESS_ONLY_HEADERS) reply.removeHeader(name);
  // Refused before its body was read (an upload over the cap, a bad token): the rest of the
  // body is still on the wire, and the next request on this keep-alive connection would be
  // parsed out of it. Close the connection after answering.
  if (hasBody(request) && !request.raw.complete) reply.header('connection', 'close');
  await reply
    .code(appError.status)
    .headers({ ...appError.headers, ...ERROR_HEADERS })
    .send(errorBody(appError));
}

/**
 * Whether the head Node found too large (HPE_HEADER_OVERFLOW) is so because of its request line
 * alone: a request-target longer than we parse is a 414 (RFC 9112 §3), not a 431 (which says a
 * header field is too large). Node counts both against one limit and says which part only through
 * `rawPacket`, the bytes of the read that overflowed: known when that read began the request
 * (its method first) and holds no line end within the limit. A request line that arrived over
 * several reads cannot be told from a long header field: still a 431.
 */
function isRequestLineOverflow(packet: unknown): boolean {
  if (!Buffer.isBuffer(packet) || !/^[A-Z]+ /.test(packet.subarray(0, 24).toString('latin1'))) return false;
  const lineEnd = packet.indexOf(0x0a);
  return lineEnd === -1 || lineEnd > maxHeaderSize;
}

/** The answer to a request Node's HTTP parser refused (`clientError`): no route or hook ran. */
export function toClientError(error: { code?: string; rawPacket?: unknown }): AppError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      if (isRequestLineOverflow(error.rawPacket)) {
        return new AppError('uri_too_long', 'The request URL is too long');
      }
      return new AppError('headers_too_large', 'The request headers are too large');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new AppError('payload_too_large', 'The request body is too large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new AppError('request_timeout', 'The request took too long to arrive');
    default:
      return new AppError('invalid_request', 'The request is malformed');
  }
}

/**
 * fastify's `clientErrorHandler`: the error contract (JSON shape, no-store, security headers) for
 * a request Node's parser refused, written on the socket by hand as there is no reply object.
 * The connection is closed after it: what is left of the request cannot be parsed. Answers the
 * error, or undefined when the client is gone already; the caller logs its code, never the
 * error itself, whose `rawPacket` holds the request's bytes, credentials included.
 */
export function sendClientError(
  error: Error & { code?: string; rawPacket?: unknown },
  socket: Socket,
): AppError | undefined {
  if (error.code === 'ECONNRESET' || socket.destroyed) return undefined;
  const appError = toClientError(error);
  // As Node does: not while a response on this connection has started, whose bytes ours would
  // corrupt (a pipelined request refused while the one before it is still being answered).
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!inFlight?.headersSent) writeRawError(appError, socket);
  socket.destroy();
  return appError;
}

/**
 * The error contract written on a bare socket (no reply object: a request the parser refused, a
 * CONNECT), with the Date every 4xx needs (RFC 9110 §6.6.1); the caller closes the connection.
 */
export function writeRawError(appError: AppError, socket: Socket): void {
  if (!socket.writable) return;
  const body = JSON.stringify(errorBody(appError));
  const headers = {
    ...securityHeaders,
    ...appError.headers,
    ...ERROR_HEADERS,
    'content-length': String(Buffer.byteLength(body)),
    date: new Date().toUTCString(),
    connection: 'close',
  };
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.write(`HTTP/1.1 ${appError.status} ${STATUS_CODES[appError.status]}\r\n${head.join('')}\r\n${body}`);
}
