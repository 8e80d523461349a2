/**
 * The service-worker logic (SPEC §3.5): adds `Authorization` to image GETs, asking a page for the
 * token on demand. Used by pixgate's own worker (sw/pixgate-sw.ts) and importable into an app's
 * own service worker (`createImageAuthHandler`) when the app's pages live on another origin.
 *
 * Compiled under both the DOM and the WebWorker libraries, so it names only what both have
 * (fetch, Request, MessageChannel) and describes the worker-only parts it needs structurally.
 */

/** What a page answers a token question with. */
export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

export const MESSAGES = {
  /** worker → page, on a MessageChannel port: which token to use now? */
  tokenRequest: 'pixgate:token-request',
  /** page → worker, on that port. */
  token: 'pixgate:token',
  /** page → worker: forget the token (refresh); acknowledged with `forgotten`. */
  forget: 'pixgate:forget',
  forgotten: 'pixgate:forgotten',
  /** page → worker: take control of uncontrolled pages (after Shift+Reload); acknowledged. */
  claim: 'pixgate:claim',
  claimed: 'pixgate:claimed',
} as const;

/** The parts of a worker's `Client` and `Clients` used here. */
export interface ClientLike {
  readonly id: string;
  postMessage(message: unknown, transfer: Transferable[]): void;
}
export interface ClientsLike {
  get(id: string): Promise<ClientLike | undefined | null>;
  matchAll(options: { type: 'window'; includeUncontrolled: boolean }): Promise<readonly ClientLike[]>;
}
export interface FetchEventLike {
  readonly request: Request;
  readonly clientId: string;
  respondWith(response: Promise<Response>): void;
}
export interface MessageEventLike {
  readonly data: unknown;
  readonly ports: readonly MessagePort[];
}

export interface ImageAuthHandlerOptions {
  /** The worker's `self.clients`: pages are asked for tokens through it. */
  readonly clients: ClientsLike;
  /** Only GETs whose path starts with this are touched. */
  readonly imagePrefix?: string;
  /**
   * Origins whose images get the header: the worker's own by default; an app on another origin
   * lists pixgate's (which must allow the app's origin in PIXGATE_CORS_ORIGINS).
   */
  readonly origins?: readonly string[];
  /**
   * A token source inside the worker, when the app has one there; asked before any page. When
   * absent (or it answers nothing), the page that made the request is asked.
   */
  readonly getToken?: TokenSource;
  /** How long a page may take to answer; then the request goes without a header (a 401). */
  readonly pageTimeoutMs?: number;
}

export interface ImageAuthHandler {
  /** Call from the `fetch` listener; returns whether it answered the event. */
  handleFetch(event: FetchEventLike): boolean;
  /** Call from the `message` listener; returns whether the message was ours. */
  handleMessage(event: MessageEventLike): boolean;
  /** Drops the token (the next image asks again). */
  forget(): void;
}

interface Question {
  readonly answer: Promise<string | null>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/**
 * A token that can go in `Authorization` (RFC 6750's b64token is visible ASCII; surrounding
 * whitespace is trimmed, as Headers does), else null. Any other answer (a line break inside,
 * non-ASCII) made Headers throw: every image a network error, and the worker, keeping the token,
 * never asked again.
 */
function usableToken(value: unknown): string | null {
  const token = typeof value === 'string' ? value.trim() : '';
  return /^[\x21-\x7e]+$/.test(token) ? token : null;
}

/** Asks one page through a MessageChannel; null on no answer in time. */
function askPage(client: ClientLike, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => {
      channel.port1.close();
      resolve(null);
    }, timeoutMs);
    channel.port1.onmessage = (event: MessageEvent) => {
      clearTimeout(timer);
      channel.port1.close();
      const data: unknown = event.data;
      resolve(isObject(data) ? usableToken(data.token) : null);
    };
    client.postMessage({ type: MESSAGES.tokenRequest }, [channel.port2]);
  });
}

export function createImageAuthHandler(options: ImageAuthHandlerOptions): ImageAuthHandler {
  const prefix = options.imagePrefix ?? '/v1/images/';
  const timeoutMs = options.pageTimeoutMs ?? 3000;
  // Kept in the worker's memory only: the browser may stop the worker at any time, and then the
  // next image simply asks a page again.
  let token: string | null = null;
  // Concurrent images while no token is known share one question.
  let pending: Question | null = null;

  function isOurs(request: Request): URL | null {
    if (request.method !== 'GET') return null;
    const url = new URL(request.url);
    const origins = options.origins ?? [self.location.origin];
    if (!origins.includes(url.origin) || !url.pathname.startsWith(prefix)) return null;
    // Already an explicit credential in the URL: a header too would be a 400 (SPEC §3).
    if (url.searchParams.has('access_token') || url.searchParams.has('sig')) return null;
    // Or the page's own header (loadAsBlob, a fetch of /meta): replacing it would answer the
    // call as whoever the worker's token belongs to, not as the caller asked.
    if (request.headers.has('authorization')) return null;
    return url;
  }

  async function pageToken(clientId: string): Promise<string | null> {
    const own = clientId ? await options.clients.get(clientId) : undefined;
    const candidates = own
      ? [own]
      : await options.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const client of candidates) {
      const answer = await askPage(client, timeoutMs);
      if (answer) return answer;
    }
    return null;
  }

  function currentToken(clientId: string): Promise<string | null> {
    if (token) return Promise.resolve(token);
    if (!pending) {
      const question: Question = {
        answer: (async () => {
          const inWorker = options.getToken ? usableToken(await options.getToken()) : null;
          return inWorker ?? (await pageToken(clientId));
        })()
          .catch(() => null)
          .then((answer) => {
            // A refresh while the question was out makes this answer stale: not remembered.
            if (pending === question) {
              pending = null;
              token = answer;
            }
            return answer;
          }),
      };
      pending = question;
    }
    return pending.answer;
  }

  function authorized(url: URL, original: Request, bearer: string | null): Request {
    const headers = new Headers();
    const accept = original.headers.get('accept');
    if (accept) headers.set('accept', accept);
    if (bearer) headers.set('authorization', `Bearer ${bearer}`);
    // A fresh request: an <img> request is `no-cors`, and copying it would silently drop
    // Authorization. `cors` works same-origin without any CORS headers, and cross-origin with
    // pixgate's preflight; `omit`: the header is the credential, never a cookie as well.
    return new Request(url.href, { method: 'GET', mode: 'cors', credentials: 'omit', headers });
  }

  async function respond(event: FetchEventLike, url: URL): Promise<Response> {
    const first = await currentToken(event.clientId);
    const response = await fetch(authorized(url, event.request, first));
    if (response.status !== 401 || first === null) return response;
    // The token expired or was revoked: forget it and ask once more.
    if (token === first) token = null;
    const second = await currentToken(event.clientId);
    if (second === null || second === first) return response;
    return fetch(authorized(url, event.request, second));
  }

  return {
    handleFetch(event) {
      const url = isOurs(event.request);
      if (!url) return false;
      event.respondWith(respond(event, url));
      return true;
    },

    handleMessage(event) {
      const data = event.data;
      if (!isObject(data) || data.type !== MESSAGES.forget) return false;
      token = null;
      pending = null;
      event.ports[0]?.postMessage({ type: MESSAGES.forgotten });
      return true;
    },

    forget() {
      token = null;
      pending = null;
    },
  };
}
