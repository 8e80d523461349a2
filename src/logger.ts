import { type DestinationStream, type Level, type Logger, pino } from 'pino';

/**
 * pino, with every place a credential can sit censored: credential headers and raw request bytes
 * wherever a log line carries them (`scrubLine`), the `access_token` and `sig` query parameters,
 * and share-link tokens in `/s/` paths. Request lines use `redactUrl`, so a token never reaches a
 * log line (tested).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'pixgate' },
      formatters: { log: scrubLine },
      // pino's own (fastify's too) would serialize again what scrubLine already made an error's
      // JSON, as a plain object; an Error that still gets here (a child binding) is serialized here.
      serializers: { err: (value: unknown) => (value instanceof Error ? serializeError(value) : value) },
    },
    // Asynchronous writes to stdout: under load, lines written while one write is in flight go
    // out together (one syscall, not one per request); when idle, a line goes out at once.
    // pino flushes what is pending when the process exits.
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/**
 * Keys whose value is a credential wherever they sit in a line, compared lower-cased: header
 * sets (`req.headers`, the options @fastify/multipart hands busboy at trace level, an origin
 * request's headers) and the raw bytes of a request Node's parser refused (`err.rawPacket`, which
 * fastify's client error handler logs at trace level), Authorization, cookies and query included.
 */
const SECRET_KEYS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-csrf-token',
  'rawheaders',
  'rawpacket',
]);
const CENSOR = '[redacted]';
/** pino's own depth limit (safe-stable-stringify's depthLimit 5) cuts a line there anyway. */
const MAX_DEPTH = 6;

/**
 * pino's `formatters.log`: a line whose values are all primitives, like the request line on the
 * cached path, passes untouched after one `typeof` per key (no measurable cost, where pino's
 * wildcard redact paths made every line several times slower). Only the rare line that carries
 * an object or an error is copied with its credentials censored, at any depth.
 */
export function scrubLine(line: Record<string, unknown>): Record<string, unknown> {
  for (const key in line) {
    const value = line[key];
    if (typeof value === 'object' && value !== null) return scrub(line, 0) as Record<string, unknown>;
  }
  return line;
}

/** An error as pino writes it (type, message, stack, causes, own fields), censored as a line is. */
function serializeError(error: Error, depth = 0): unknown {
  return scrub({ ...pino.stdSerializers.err(error) }, depth);
}

/**
 * What pino's error serializer makes of an Error nested in another's fields (or an
 * AggregateError's `aggregateErrors`): an object of its own prototype, to be censored as a plain
 * one is.
 */
const SERIALIZED_ERROR = Object.getPrototypeOf(pino.stdSerializers.err(new Error('probe'))) as unknown;

/**
 * A censored copy of plain objects, arrays and errors; class instances (a request, a Buffer) are
 * left to their serializers, which write none of these keys.
 */
function scrub(value: unknown, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Error) return serializeError(value, depth + 1);
  if (depth > MAX_DEPTH) return '[...]';
  if (Array.isArray(value)) return value.map((item: unknown) => scrub(item, depth + 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null && proto !== SERIALIZED_ERROR) return value;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    copy[key] = SECRET_KEYS.has(key.toLowerCase()) ? CENSOR : scrub(item, depth + 1);
  }
  return copy;
}

const SECRET_PARAMS = new Set(['access_token', 'sig']);
/**
 * A share-link token: the segment after an `s` segment, anywhere in the path. That covers every
 * spelling fastify routes to `/s/:token` (an absolute-form target, an encoded `s`, repeated
 * slashes) and the ones it does not route (`/./s/…`, `/v1/../s/…`), whose token is live all
 * the same. Over-redacting a path that merely has an `s` segment costs nothing.
 */
const SHARE_TOKEN = /(\/(?:s|%73)\/+)[^/?#]+/gi;
/** A query without this cannot name a SECRET_PARAMS parameter, however it is spelled. */
const MAY_HOLD_SECRET = /access|sig|[%+]/i;

/** A parameter name as URLSearchParams reads it, which is how the server finds credentials. */
function decodedName(rawName: string): string {
  if (!rawName.includes('%') && !rawName.includes('+')) return rawName;
  return new URLSearchParams(`${rawName}=`).keys().next().value ?? '';
}

export function redactUrl(url: string): string {
  const at = url.indexOf('?');
  const path = (at === -1 ? url : url.slice(0, at)).replace(SHARE_TOKEN, '$1[redacted]');
  if (at === -1) return path;
  // The common query (`w=360&format=webp`) holds neither name in any spelling: no encoded
  // character, so nothing to decode, and no name to hide. Logged as it is, without the split.
  const rawQuery = url.slice(at + 1);
  if (!MAY_HOLD_SECRET.test(rawQuery)) return `${path}?${rawQuery}`;
  // URLSearchParams drops one leading `?`: `/x??access_token=T` carries the access_token.
  const lead = rawQuery.startsWith('?') ? '?' : '';
  // Names are compared decoded: `?access%5Ftoken=` is the access_token parameter to the server,
  // so a raw-text match would log the token in clear.
  const query = rawQuery
    .slice(lead.length)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return pair;
      const rawName = pair.slice(0, eq);
      return SECRET_PARAMS.has(decodedName(rawName).toLowerCase()) ? `${rawName}=[redacted]` : pair;
    });
  return `${path}?${lead}${query.join('&')}`;
}

export type { Logger };

/**
 * A request's logger (fastify's `request.log`) that becomes a pino child, bound to the request id,
 * only when something logs through it. Our request line goes through the root logger with the
 * id in it, so on a normal request no child is made (a measurable share of a cached hit); the
 * rare lines fastify writes itself (a failed stream, a reply sent twice) still carry `reqId`.
 */
export class LazyChildLogger {
  #child: Logger | undefined;
  constructor(
    private readonly parent: Logger,
    private readonly bindings: Record<string, unknown>,
  ) {}

  get level(): string {
    return this.parent.level;
  }

  child(bindings: Record<string, unknown>): Logger {
    return this.#logger().child(bindings);
  }

  fatal(...args: unknown[]): void {
    this.#log('fatal', args);
  }
  error(...args: unknown[]): void {
    this.#log('error', args);
  }
  warn(...args: unknown[]): void {
    this.#log('warn', args);
  }
  info(...args: unknown[]): void {
    this.#log('info', args);
  }
  debug(...args: unknown[]): void {
    this.#log('debug', args);
  }
  trace(...args: unknown[]): void {
    this.#log('trace', args);
  }
  silent(): void {}

  #log(level: Level, args: unknown[]): void {
    // The level check first: a debug line on an info logger makes no child either.
    if (!this.parent.isLevelEnabled(level)) return;
    (this.#logger()[level] as (...values: unknown[]) => void)(...args);
  }

  #logger(): Logger {
    this.#child ??= this.parent.child(this.bindings);
    return this.#child;
  }
}
