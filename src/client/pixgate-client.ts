/**
 * pixgate's browser library, served as the ES module `/pixgate-client.js` (SPEC §3): every way a
 * page can show a protected image when `<img src>` cannot send `Authorization`.
 *
 *   registerImageAuth()   service worker: plain `<img src>` works afterwards
 *   loadAsBlob()          fetch with the header, then an object URL
 *   loadAsDataUri()       the JSON form, then a `data:` URL
 *   startSession()        the session cookie (same site only), endSession(), sessionFetch()
 *   createImageAuthHandler()  the worker logic, for an app's own service worker
 */
import { MESSAGES, type TokenSource } from './pixgate-image-auth.js';

export {
  createImageAuthHandler,
  type ImageAuthHandler,
  type ImageAuthHandlerOptions,
  type TokenSource,
} from './pixgate-image-auth.js';

export interface RegisterOptions {
  /** Answers the worker's token questions: called again after refresh() or a 401. */
  readonly getToken: TokenSource;
  readonly imagePrefix?: string;
  /** Must contain the page (a worker scoped to the images gets no events from the page). */
  readonly scope?: string;
  /** Where pixgate serves the worker; same origin as the page. */
  readonly scriptUrl?: string;
  /** How long to wait for the worker to control the page or acknowledge a message. */
  readonly timeoutMs?: number;
}

export interface ImageAuth {
  /** Makes the worker forget its token; resolves once it acknowledged, so the next image asks getToken(). */
  refresh(): Promise<void>;
  /**
   * Removes the worker. It drops its token at once and gets no other from this page; it still
   * sees this page's requests until the page navigates (service workers end that way).
   */
  unregister(): Promise<void>;
}

/** A failed fetch of an image: the status tells a missing credential (401) from a missing image (404). */
export class ImageLoadError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  constructor(status: number, code: string | undefined) {
    super(`pixgate answered ${status}${code ? ` ${code}` : ''}`);
    this.name = 'ImageLoadError';
    this.status = status;
    this.code = code;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pixgate: ${what} took over ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** Posts a message with a reply port and waits for the answer of type `expected`. */
function ask(worker: ServiceWorker, type: string, expected: string, ms: number): Promise<void> {
  const channel = new MessageChannel();
  const answered = new Promise<void>((resolve) => {
    channel.port1.onmessage = (event: MessageEvent) => {
      if ((event.data as { type?: unknown } | null)?.type === expected) resolve();
    };
  });
  worker.postMessage({ type }, [channel.port2]);
  return withTimeout(answered, ms, `the service worker's answer to ${type}`).finally(() =>
    channel.port1.close(),
  );
}

async function tokenOf(getToken: TokenSource): Promise<string | null> {
  try {
    return (await getToken()) ?? null;
  } catch {
    return null;
  }
}

/**
 * The registerImageAuth() calls of this page that did not fail, oldest first: only the latest
 * one's getToken answers the worker. Every call adds a listener that stays (see onMessage), and
 * the worker takes the first answer on its port: after sign-out (unregister) and sign-in in the
 * same page, the old one's "no token", or an earlier user's getToken, would otherwise win. A call
 * that fails leaves the list, so the one before it answers again, whichever order calls fail in.
 */
const registrations: object[] = [];

export async function registerImageAuth(options: RegisterOptions): Promise<ImageAuth> {
  const container = navigator.serviceWorker;
  if (!container) throw new Error('pixgate: service workers need a secure context (HTTPS or localhost)');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const prefix = options.imagePrefix ?? '/v1/images/';

  // Installed before anything else: a restarted worker may ask at any moment, and messages
  // queue until startMessages() (addEventListener alone does not start the queue).
  let isUnregistered = false;
  const thisCall = {};
  registrations.push(thisCall);
  const onMessage = (event: MessageEvent) => {
    const data = event.data as { type?: unknown } | null;
    const port = event.ports[0];
    if (data?.type !== MESSAGES.tokenRequest || !port || registrations.at(-1) !== thisCall) return;
    // After unregister() the worker still controls this page until it navigates (that is how
    // service workers end): it gets a prompt "no token" rather than silence it would wait out.
    const answer = isUnregistered ? Promise.resolve(null) : tokenOf(options.getToken);
    void answer.then((token) => port.postMessage({ type: MESSAGES.token, token }));
  };
  container.addEventListener('message', onMessage);
  container.startMessages();

  const script = `${options.scriptUrl ?? '/pixgate-sw.js'}?prefix=${encodeURIComponent(prefix)}`;
  let registration: ServiceWorkerRegistration;
  try {
    registration = await container.register(script, {
      scope: options.scope ?? '/',
      type: 'module',
      // The worker script is always checked with the server, never taken from the HTTP cache.
      updateViaCache: 'none',
    });
    await untilControlled(container, timeoutMs);
    // The worker outlives pages and sign-ins: it may still hold a token an earlier registration's
    // getToken gave, another user's when the app never called unregister() (a session that
    // expired, another tab). Dropped, acknowledged, before any image: the first asks this getToken.
    await forgetToken(container, registration, timeoutMs);
  } catch (error) {
    container.removeEventListener('message', onMessage);
    registrations.splice(registrations.indexOf(thisCall), 1);
    throw error;
  }

  return {
    refresh: () => forgetToken(container, registration, timeoutMs),
    async unregister() {
      isUnregistered = true;
      // The worker forgets the token now: images from here on go without a credential.
      await forgetToken(container, registration, timeoutMs).catch(() => undefined);
      await registration.unregister();
    },
  };
}

/** Makes the worker drop its token; resolves once it acknowledged. */
async function forgetToken(
  container: ServiceWorkerContainer,
  registration: ServiceWorkerRegistration,
  timeoutMs: number,
): Promise<void> {
  const worker = container.controller ?? registration.active;
  if (!worker) throw new Error('pixgate: no active service worker to refresh');
  await ask(worker, MESSAGES.forget, MESSAGES.forgotten, timeoutMs);
}

/**
 * `ready` resolving does not mean this page is controlled: wait for `controllerchange`. After
 * Shift+Reload the worker runs but does not control the page until it claims it again.
 */
async function untilControlled(container: ServiceWorkerContainer, timeoutMs: number): Promise<void> {
  if (container.controller) return;
  const changed = new Promise<void>((resolve) =>
    container.addEventListener('controllerchange', () => resolve(), { once: true }),
  );
  const ready = await withTimeout(container.ready, timeoutMs, 'the service worker activation');
  if (container.controller) return;
  ready.active?.postMessage({ type: MESSAGES.claim }, [new MessageChannel().port2]);
  await withTimeout(changed, timeoutMs, 'taking control of the page');
}

async function failure(response: Response): Promise<ImageLoadError> {
  let code: string | undefined;
  try {
    code = ((await response.json()) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return new ImageLoadError(response.status, code);
}

function show(img: HTMLImageElement, src: string, onSettled?: () => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    img.addEventListener(
      'load',
      () => {
        onSettled?.();
        resolve();
      },
      { once: true },
    );
    img.addEventListener(
      'error',
      () => {
        onSettled?.();
        reject(new Error('pixgate: the image could not be decoded'));
      },
      { once: true },
    );
    img.src = src;
  });
}

async function authorizedFetch(url: string, getToken: TokenSource, accept?: string): Promise<Response> {
  const token = await tokenOf(getToken);
  const headers = new Headers();
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (accept) headers.set('accept', accept);
  const response = await fetch(url, { headers, credentials: 'omit' });
  if (!response.ok) throw await failure(response);
  return response;
}

/**
 * The latest load started on each `<img>`. Answers arrive in any order (a token source that
 * refreshes, a bigger variant): an earlier call finishing last must not replace what a later one
 * showed, as in a gallery whose "next" is clicked twice quickly. Returns whether the call is
 * still the latest one.
 */
const latestLoad = new WeakMap<HTMLImageElement, object>();

function startLoad(img: HTMLImageElement): () => boolean {
  const call = {};
  latestLoad.set(img, call);
  return () => latestLoad.get(img) === call;
}

/**
 * Fetches the image with `Authorization` and shows it through an object URL, revoked once the
 * image has loaded (revoking right after setting `src` breaks it). Needs `img-src blob:` in a CSP.
 * A later call on the same `<img>` wins: this one then resolves without touching it.
 */
export async function loadAsBlob(img: HTMLImageElement, url: string, getToken: TokenSource): Promise<void> {
  const isLatest = startLoad(img);
  const response = await authorizedFetch(url, getToken);
  const blob = await response.blob();
  if (!isLatest()) return;
  const objectUrl = URL.createObjectURL(blob);
  await show(img, objectUrl, () => URL.revokeObjectURL(objectUrl));
}

/**
 * The JSON form (`Accept: application/json`) as a `data:` URL. Needs `img-src data:` in a CSP.
 * A later call on the same `<img>` wins, as for loadAsBlob.
 */
export async function loadAsDataUri(
  img: HTMLImageElement,
  url: string,
  getToken: TokenSource,
): Promise<void> {
  const isLatest = startLoad(img);
  // image/avif and image/webp listed: format=auto picks from this Accept too.
  const response = await authorizedFetch(url, getToken, 'application/json, image/avif, image/webp');
  const form = (await response.json()) as { mimeType: string; base64Content: string };
  if (!isLatest()) return;
  await show(img, `data:${form.mimeType};base64,${form.base64Content}`);
}

/**
 * The CSRF token lives as long as the cookie, so it is kept where the cookie is: in the origin's
 * localStorage, not in this module's memory. Kept in memory only, a reload or another tab of the
 * same session had none, and endSession() at sign-out was a 403 that left the session alive.
 * Memory remains the fallback where storage is blocked.
 */
const CSRF_KEY = 'pixgate:csrf-token';
let csrfInMemory: string | null = null;

function keepCsrfToken(token: string | null): void {
  csrfInMemory = token;
  try {
    if (token === null) localStorage.removeItem(CSRF_KEY);
    else localStorage.setItem(CSRF_KEY, token);
  } catch {
    // Storage blocked (a sandboxed frame, some privacy settings): memory only.
  }
}

function keptCsrfToken(): string | null {
  try {
    return localStorage.getItem(CSRF_KEY) ?? csrfInMemory;
  } catch {
    return csrfInMemory;
  }
}

export interface SessionInfo {
  readonly expiresAt: string;
  readonly csrfToken: string;
}

/**
 * Trades the token for the session cookie: afterwards plain `<img src>` works on this site. The
 * cookie is HttpOnly; the CSRF token is kept for unsafe calls (sessionFetch, endSession).
 */
export async function startSession(token: string, baseUrl = ''): Promise<SessionInfo> {
  const response = await fetch(`${baseUrl}/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    credentials: 'same-origin',
  });
  if (response.status !== 201) throw await failure(response);
  const info = (await response.json()) as SessionInfo;
  keepCsrfToken(info.csrfToken);
  return info;
}

/**
 * fetch() carried by the session cookie, with the CSRF token on unsafe methods to this page's
 * origin: the cookie goes nowhere else (`same-origin`), and neither does the token that, with it,
 * allows changes.
 */
export function sessionFetch(input: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const method = (init.method ?? 'GET').toUpperCase();
  const csrfToken = keptCsrfToken();
  const isUnsafe = method !== 'GET' && method !== 'HEAD';
  const isOwnOrigin = new URL(input, location.href).origin === location.origin;
  if (csrfToken && isUnsafe && isOwnOrigin) headers.set('x-csrf-token', csrfToken);
  return fetch(input, { ...init, headers, credentials: 'same-origin' });
}

/** Ends the session server-side: the cookie's value is useless from then on. */
export async function endSession(baseUrl = ''): Promise<void> {
  const response = await sessionFetch(`${baseUrl}/v1/sessions/current`, { method: 'DELETE' });
  // Dropped only once the session has ended: after a refusal (a 503 while the session store is
  // down) the session lives on, and a retry without the CSRF token would be a 403.
  if (response.status !== 204) throw await failure(response);
  keepCsrfToken(null);
}
