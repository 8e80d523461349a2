import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Authenticator } from '../auth/authenticate.js';
import type { Sessions } from '../auth/sessions.js';
import type { SignedUrls } from '../auth/signed-url.js';
import type { VariantCache } from '../cache/variant-cache.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { AppError } from '../errors.js';
import type { Ingest } from '../images/ingest.js';
import type { VariantService } from '../images/variants.js';
import type { Limits } from '../limits/limits.js';
import { LazyChildLogger, type Logger, redactUrl } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Origin } from '../origins/origin.js';
import type { Store } from '../store/store.js';
import { recordAllowedMethods } from './allowed-methods.js';
import { createIdentify } from './authenticate.js';
import { deferContinueForUploads } from './continue.js';
import { registerCors } from './cors.js';
import { headerLines, securityHeaders } from './headers.js';
import { hasBody, sendClientError, sendError, writeRawError } from './reply.js';
import { markEndedEarly, requestState } from './request-state.js';
import { createCapabilities } from './routes/capabilities.js';
import { registerClientRoutes } from './routes/client.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerImageRoutes } from './routes/images.js';
import { registerSessionRoutes } from './routes/sessions.js';
import { createVariantSender } from './send-variant.js';

export interface ServerParts {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly store: Store;
  readonly cache: VariantCache;
  readonly origin: Origin;
  readonly variants: VariantService;
  readonly ingest: Ingest;
  readonly authenticate: Authenticator;
  readonly sessions: Sessions;
  // Issue 4: capabilities and limits.
  readonly signedUrls: SignedUrls;
  readonly limits: Limits;
  readonly clock: Clock;
}

/** Node's own test for 100-continue (lib/_http_server.js): what it lets through, we do too. */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

const LOOPBACK_NAMES = /^(localhost|127\.0\.0\.1|\[::1\]|[a-z0-9-]+\.localhost)$/i;

/**
 * The name in the Host header itself, without the port. Not `request.hostname`: with
 * PIXGATE_TRUST_PROXY that reads X-Forwarded-Host, which a rebinding page (same origin, as far
 * as the browser knows) can set to `localhost` itself.
 */
function hostHeaderName(host: string | undefined): string {
  if (host === undefined) return '';
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  return host.split(':', 1)[0] ?? '';
}

/** RFC 3986 host (IP literal, IPv4 or registered name) and optional port: what a Host may hold. */
const HOST_VALUE = /^(?:\[[\w:.~!$&'()*+,;=-]+\]|[\w.~!$&'()*+,;=%-]*)(?::\d*)?$/;

/** The codings a Transfer-Encoding or Content-Encoding header lists, lower-cased, parameters dropped. */
function codings(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((coding) => coding.split(';', 1)[0]?.trim().toLowerCase() ?? '')
    .filter((coding) => coding !== '');
}

/**
 * What Node's parser lets through but pixgate cannot honour, refused before any body is read
 * (each closes the connection: what is left of the request is not ours to parse).
 * - No Host in HTTP/1.1 (HTTP/1.0 has none), more than one Host line, or one that is not a host
 *   (RFC 9112 §3.2: 400, as Node would answer the first itself; requireHostHeader is off).
 * - Transfer-Encoding in an HTTP/1.0 request: its framing is faulty (RFC 9112 §6.1: 400).
 * - A transfer coding other than chunked: Node decodes chunked and passes the rest on undecoded
 *   (RFC 9112 §6.1: 501).
 * - A body in a content coding: nothing here decodes one, and reading it as identity would store
 *   or parse the wrong bytes (RFC 9110 §8.4, §12.5.3: 415 with Accept-Encoding).
 */
function refuseFraming(request: FastifyRequest): AppError | undefined {
  const close = { connection: 'close' };
  const hosts = headerLines(request.raw, 'host');
  if (hosts.length === 0 && request.raw.httpVersion === '1.1') {
    return new AppError('invalid_request', 'The request has no Host header', { headers: close });
  }
  if (hosts.length > 1 || (hosts.length === 1 && !HOST_VALUE.test(hosts[0] ?? ''))) {
    return new AppError('invalid_request', 'The request needs exactly one valid Host header', {
      headers: close,
    });
  }
  const transfer = request.headers['transfer-encoding'];
  if (transfer !== undefined && request.raw.httpVersion === '1.0') {
    return new AppError('invalid_request', 'Transfer-Encoding is not allowed in an HTTP/1.0 request', {
      headers: close,
    });
  }
  if (codings(transfer).some((coding) => coding !== 'chunked')) {
    return new AppError('not_implemented', 'Only the chunked transfer coding is supported', {
      headers: close,
    });
  }
  if (
    hasBody(request) &&
    codings(request.headers['content-encoding']).some((coding) => coding !== 'identity')
  ) {
    return new AppError('unsupported_media_type', 'Content-Encoding is not supported: send the body as is', {
      headers: { ...close, 'accept-encoding': 'identity' },
    });
  }
  return undefined;
}

/**
 * PIXGATE_TRUST_PROXY trusts one proxy, the peer pixgate talks to, and no address before it:
 * the client IP is the last X-Forwarded-For entry (the one that proxy wrote), X-Forwarded-Proto
 * and -Host their last values. fastify's `true` would trust every hop and take the first entry,
 * which a client behind a proxy that appends (nginx's $proxy_add_x_forwarded_for, AWS ALB)
 * writes itself: a fresh one per request would escape every per-IP limit.
 */
const trustOneProxy = (_address: string, hop: number) => hop === 0;

/**
 * Node's timeouts for a request still arriving. Node checks them every
 * `connectionsCheckingInterval` (30 s by default), so a request is cut off between the timeout
 * and the timeout plus that interval; the interval shrinks with a short timeout. The head alone
 * gets at most Node's default 60 s, and never more than the whole request (Node refuses that).
 */
function requestTimeouts(seconds: number) {
  const requestTimeout = seconds * 1000;
  return {
    requestTimeout,
    http: {
      headersTimeout: Math.min(60_000, requestTimeout),
      connectionsCheckingInterval: Math.min(30_000, Math.ceil(requestTimeout / 4)),
      // Node would refuse an HTTP/1.1 request without Host itself, before fastify or any hook:
      // a bare 400 without our JSON, headers, log line or metrics. Refused in onRequest instead.
      requireHostHeader: false,
    },
  };
}

function requestIds(): () => string {
  const prefix = randomUUID().slice(0, 8);
  let count = 0;
  return () => `${prefix}-${(++count).toString(36)}`;
}

/**
 * The fastify instance with every route, hook and handler. Request life cycle:
 *   onRequest   security headers; dev mode refuses non-loopback Host names
 *   handler     the route's own stages, in order (routes/*.ts)
 *   error       reply.ts turns anything thrown into the JSON error
 *   close       one log line and the request metrics (recordWhenClosed)
 */
/** Servers whose open connections shutdown has cut (`cutConnections`). */
const connectionsCut = new WeakSet<FastifyInstance>();

const cutAtShutdown = () =>
  new AppError('unavailable', 'The server shut down before the response was complete');

/**
 * Ends every connection still open when the shutdown's grace period is over (main.ts). A request
 * cut off then is logged as the server's doing (503 `unavailable`), not as a client that left.
 */
export function cutConnections(app: FastifyInstance): void {
  connectionsCut.add(app);
  app.server.closeAllConnections();
}

export async function buildServer(parts: ServerParts): Promise<FastifyInstance> {
  const { config, logger, metrics } = parts;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One line per request, written when its response closes (recordWhenClosed below).
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: config.trustProxy ? trustOneProxy : false,
    // Our own ids: an incoming X-Request-Id could be anything, including a way to forge log lines.
    // A random prefix per process and a counter: practically unique across restarts and
    // instances, and cheaper than a UUID per request on the cached path.
    genReqId: requestIds(),
    requestIdHeader: false,
    // A pino child per request only when something logs through request.log (logger.ts).
    childLoggerFactory: (logger, bindings) =>
      new LazyChildLogger(logger as Logger, bindings) as unknown as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    ...requestTimeouts(config.requestTimeoutSeconds),
    return503OnClosing: true,
    // A URL fastify cannot route (bad percent-encoding, a path segment over maxParamLength) is
    // answered before any hook runs: by default in fastify's own format, without our headers or
    // log line, and echoing the whole URL, access_token included (SPEC §3.2). Ours instead.
    frameworkErrors: (error, request, reply) => {
      reply.headers(securityHeaders);
      recordWhenClosed(request, reply);
      void sendError(error, request, reply);
    },
    // A request Node's parser refuses (headers over the size limit, a malformed line) reaches no
    // hook: by default fastify answers it in its own format, without no-store or our headers,
    // and logs the error at trace level with the request's raw bytes, credentials and all.
    // It gets its line and metrics like any request (route `unparsed`), with codes only: its URL
    // was never parsed, so it cannot be redacted.
    clientErrorHandler: (error, socket) => {
      // A request whose body the parser refused midway (a broken chunk) is in flight: its own
      // line says so when its connection closes, not a second `unparsed` one.
      const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
      const answered = sendClientError(error, socket);
      if (!answered) return;
      if (inFlight) {
        refusedByParser.set(inFlight, answered);
        return;
      }
      const status = answered.status;
      metrics.requests.inc({ route: 'unparsed', method: '', status: String(status) });
      logger.info({ status, code: answered.code, reason: error.code }, 'client error');
    },
  });

  // Closing waits for open connections. Node closes the idle keep-alive ones itself but not a
  // connection that has never carried a request (a browser's preconnect): one of those would
  // hold a shutdown forever. It holds no work either: dropped when closing starts.
  const unused = new Set<Socket>();
  // Nor does Node close a keep-alive connection whose request was still being answered when
  // closing started: its response goes out `keep-alive`, and the connection, idle from then on,
  // held the shutdown until the grace period cut it (main.ts), however soon the answer was done.
  // Those responses end their connection instead.
  const open = new Set<Socket>();
  /** Responses in flight whose request the parser refused midway, and our answer to it. */
  const refusedByParser = new WeakMap<ServerResponse, AppError>();
  app.server.on('connection', (socket: Socket) => {
    unused.add(socket);
    open.add(socket);
    socket.once('close', () => {
      unused.delete(socket);
      open.delete(socket);
    });
  });
  app.server.on('request', (request: IncomingMessage) => unused.delete(request.socket));
  // Node answers an `Expect` other than 100-continue with its own bare 417 unless this event is
  // heard: handed to fastify as any request instead, for onRequest to refuse in our format.
  app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    app.server.emit('request', request, response);
  });
  // CONNECT asks for a tunnel (RFC 9110 §9.3.6), which an origin server does not make: unless
  // this event is heard Node drops the connection unanswered. Answered 501 in our format instead,
  // and closed (whatever follows on it is the tunnel's, not HTTP).
  app.server.on('connect', (_request: IncomingMessage, socket: Socket) => {
    unused.delete(socket);
    const refusal = new AppError('not_implemented', 'CONNECT is not supported: pixgate is not a proxy');
    writeRawError(refusal, socket);
    socket.destroy();
    metrics.requests.inc({ route: 'unmatched', method: 'CONNECT', status: String(refusal.status) });
    logger.info({ method: 'CONNECT', status: refusal.status, code: refusal.code }, 'request');
  });
  deferContinueForUploads(app.server);
  app.addHook('preClose', (done) => {
    for (const socket of unused) socket.destroy();
    for (const socket of open) {
      const response = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (!response || response.writableFinished) continue;
      // Not sent yet: Node then writes `Connection: close` and ends the connection after it.
      if (!response.headersSent) response.shouldKeepAlive = false;
      // Already on its way (a large body to a slow reader): the connection ends once it is sent.
      else response.once('finish', () => socket.end());
    }
    done();
  });

  // Callback-style hooks: on the cached path an async hook's promise is a measurable share.
  // Added before any plugin: hooks run in the order they were added, and @fastify/cors answers a
  // preflight from its own onRequest hook, which would otherwise go out without these headers.
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(securityHeaders);
    recordWhenClosed(request, reply);
    const refusal = refuseFraming(request);
    if (refusal) {
      done(refusal);
      return;
    }
    const expectation = request.headers.expect;
    if (expectation !== undefined && !CONTINUE.test(expectation)) {
      done(new AppError('expectation_failed', 'Only "Expect: 100-continue" is understood'));
      return;
    }
    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 would reach the dev issuer.
    if (config.dev && !LOOPBACK_NAMES.test(hostHeaderName(request.headers.host))) {
      done(new AppError('host_not_allowed', 'Dev mode answers loopback host names only'));
      return;
    }
    done();
  });

  // Before any route is added: the 405 of a method a known path does not take names the others.
  const allowedMethods = recordAllowedMethods(app);
  await registerCors(app, config.corsOrigins);
  // fastify's default text/plain parser handed a JSON body sent without its type (what fetch
  // sends for a string body) to the routes as a string: a 400 "expected object, received
  // string" rather than the 415 every other wrong type gets. No route reads text.
  app.removeContentTypeParser('text/plain');
  // Raw uploads: the handler gets the request stream itself and counts the bytes (ingest.ts).
  // fastify matches a pattern against the whole type, lower-cased, parameters (`; k="v"`) and all.
  app.addContentTypeParser(
    /^(?:image\/[\w.+-]+|application\/octet-stream)(?:;.*)?$/,
    (_request, payload, done) => {
      done(null, payload);
    },
  );

  app.decorateRequest('pixgateState', null);

  /**
   * The request's one log line and its metrics, when its response closes: after it was sent,
   * or when the connection ended first, which fastify's onResponse never hears of (the line
   * then says why, and work queued only for this client stops: images/work-queue.ts).
   */
  function recordWhenClosed(request: FastifyRequest, reply: FastifyReply): void {
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) {
        const why = refusedByParser.get(reply.raw) ?? (connectionsCut.has(app) ? cutAtShutdown() : undefined);
        markEndedEarly(request, why);
      }
      recordRequest(request, reply);
    });
  }

  function recordRequest(request: FastifyRequest, reply: FastifyReply): void {
    const state = requestState(request);
    const route = request.routeOptions.url ?? 'unmatched';
    const status = state.endedEarly?.status ?? reply.statusCode;
    const labels = { route, method: request.method, status: String(status) };
    const seconds = reply.elapsedTime / 1000;
    metrics.requests.inc(labels);
    metrics.requestDuration.observe(labels, seconds);
    const error = state.error;
    const line = {
      reqId: request.id,
      method: request.method,
      url: redactUrl(request.url),
      route,
      status,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ...(state.principal ? { sub: state.principal.subject } : {}),
      ...(error ? { code: error.code, detail: error.message } : {}),
      // A stack only for bugs; a refusal under load or an origin failure is not one.
      ...(error?.status === 500 ? { err: error.cause ?? error } : {}),
    };
    // The root logger, with reqId in the line: request.log would make a pino child for it.
    if (error?.status === 500) logger.error(line, 'request failed');
    else if (error && error.status > 500) logger.warn(line, 'request refused');
    else logger.info(line, 'request');
  }

  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, _reply) => {
    const allow = allowedMethods.of(request.url);
    if (allow.length > 0) {
      throw new AppError('method_not_allowed', `${request.method} is not allowed on this path`, {
        headers: { allow: allow.join(', ') },
      });
    }
    throw new AppError('not_found', 'No such route');
  });

  // Before the image routes: its preHandler turns a session cookie into their principal.
  const identify = createIdentify(parts.authenticate, parts.limits);
  await registerSessionRoutes(app, { ...parts, identify });
  const sendVariant = createVariantSender(config, parts.variants);
  const capabilities = createCapabilities({ ...parts, identify, sendVariant });
  await registerImageRoutes(app, { ...parts, identify, sendVariant, sendSigned: capabilities.sendSigned });
  capabilities.register(app);
  registerHealthRoutes(app, parts);
  registerClientRoutes(app);
  return app;
}
