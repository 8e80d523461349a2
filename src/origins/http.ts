import { rm } from 'node:fs/promises';
import { AppError, notFound } from '../errors.js';
import type { BufferPool } from './buffer-pool.js';
import { checkOriginKey } from './key.js';
import type { Origin, OriginObject, ReadOptions } from './origin.js';
import {
  type ClientCredentialsSettings,
  createTokenSource,
  networkCode,
  type TokenSource,
} from './origin-token.js';
import { originTimeout, readBody, startDeadline } from './read-body.js';

/** How pixgate proves itself to an HTTP origin. */
export type OriginAuth =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer'; readonly token: string }
  | { readonly kind: 'basic'; readonly user: string; readonly password: string }
  | { readonly kind: 'header'; readonly name: string; readonly value: string }
  | ({ readonly kind: 'client-credentials' } & ClientCredentialsSettings);

export interface HttpOriginOptions {
  /** `http(s)://host[:port]/path/`: trusted, even on loopback or a private network. */
  readonly baseUrl: string;
  readonly auth: OriginAuth;
  /** For one whole read: token, redirects, answer and body. */
  readonly timeoutMs: number;
  /** Same-origin redirects followed per read. */
  readonly maxRedirects?: number | undefined;
  readonly pool?: BufferPool | undefined;
  /** For token expiry; tests pass their own. */
  readonly now?: (() => number) | undefined;
}

const DEFAULT_MAX_REDIRECTS = 3;

const readFailed = (detail: string) =>
  new AppError('origin_error', 'The original could not be read', { detail: `http origin: ${detail}` });

/**
 * Originals fetched from an HTTP(S) service as base URL + key, with pixgate's own credentials.
 * The base is the only place pixgate ever talks to: keys are plain relative paths (key.ts) whose
 * segments are percent-encoded, redirects are followed by hand and only within the base's own
 * scheme, host, port and path, and nothing in a request can name another host. Bodies are
 * capped and timed (read-body.ts) and their Content-Type is ignored: the bytes are sniffed by
 * sharp.
 * Read-only: uploads are refused with 403 `read_only_storage`; originals are registered.
 */
export function createHttpOrigin(options: HttpOriginOptions): Origin {
  const base = new URL(options.baseUrl);
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new TypeError('Expected an http(s) base URL');
  if (base.username || base.password || base.search || base.hash) {
    throw new TypeError('Expected a base URL without credentials, query or fragment');
  }
  if (!base.pathname.endsWith('/')) base.pathname = `${base.pathname}/`;
  const { auth, timeoutMs, pool } = options;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const tokens: TokenSource | undefined =
    auth.kind === 'client-credentials'
      ? createTokenSource(auth, options.now ?? Date.now, timeoutMs)
      : undefined;

  function urlOf(key: string): URL {
    const path = checkOriginKey(key).split('/').map(encodeURIComponent).join('/');
    const url = new URL(path, base);
    // Cannot happen with a checked key; kept because the whole point is that it never does.
    if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) {
      throw new AppError('invalid_request', 'Invalid source key');
    }
    return url;
  }

  async function headersFor(
    signal: AbortSignal,
  ): Promise<{ headers: Record<string, string>; token?: string }> {
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'pixgate' };
    switch (auth.kind) {
      case 'none':
        return { headers };
      case 'bearer':
        return { headers: { ...headers, authorization: `Bearer ${auth.token}` } };
      case 'basic':
        return {
          headers: {
            ...headers,
            authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`,
          },
        };
      case 'header':
        return { headers: { ...headers, [auth.name.toLowerCase()]: auth.value } };
      case 'client-credentials': {
        const token = await (tokens as TokenSource).get(signal);
        return { headers: { ...headers, authorization: `Bearer ${token}` }, token };
      }
    }
  }

  /** One GET with the redirects it may follow; answers the final non-redirect response. */
  async function get(url: URL, method: 'GET' | 'HEAD', signal: AbortSignal): Promise<Response> {
    let current = url;
    for (let hop = 0; ; hop++) {
      const { headers, token } = await headersFor(signal);
      let response: Response;
      try {
        response = await fetch(current.href, { method, headers, redirect: 'manual', signal });
      } catch (error) {
        if (signal.aborted) throw error;
        throw readFailed(`cannot reach the origin (${networkCode(error)})`);
      }
      // The token may have been revoked or rotated early: one fresh token, one more try, unless
      // a fresh one was just refused too (origin-token.ts).
      if (response.status === 401 && token !== undefined && hop === 0 && tokens?.invalidate(token)) {
        await response.body?.cancel();
        const retry = await headersFor(signal);
        try {
          response = await fetch(current.href, {
            method,
            headers: retry.headers,
            redirect: 'manual',
            signal,
          });
        } catch (error) {
          if (signal.aborted) throw error;
          throw readFailed(`cannot reach the origin (${networkCode(error)})`);
        }
      }
      if (response.status < 300 || response.status >= 400 || response.status === 304) return response;
      await response.body?.cancel();
      const location = response.headers.get('location');
      if (location === null) throw readFailed(`answered ${response.status} without a Location`);
      if (hop >= maxRedirects) throw readFailed(`more than ${maxRedirects} redirects`);
      const next = URL.canParse(location, current.href) ? new URL(location, current.href) : undefined;
      // Same scheme, host and port as the configured base, or not at all: a redirect is how an
      // origin (or whoever took it over) would send pixgate, with its credentials, elsewhere.
      if (!next || next.origin !== base.origin) {
        throw readFailed(`refused a redirect to another host or scheme (${response.status})`);
      }
      // And under the base path, like every key (SPEC §6): on a shared host, another path is
      // another service, which must not get pixgate's credentials either. An encoded slash or
      // backslash is refused too: a server that decodes it before resolving `..` would leave
      // the base path all the same (`/lib/..%2Fadmin`). Keys never produce one.
      if (!next.pathname.startsWith(base.pathname) || /%(2f|5c)/i.test(next.pathname)) {
        throw readFailed(`refused a redirect out of the origin's base path (${response.status})`);
      }
      current = next;
    }
  }

  return {
    kind: 'http',
    isWritable: false,

    async read(key: string, readOptions: ReadOptions): Promise<OriginObject> {
      const url = urlOf(key);
      const deadline = startDeadline(timeoutMs, readOptions.signal);
      try {
        const response = await get(url, 'GET', deadline.signal);
        if (response.status !== 200) {
          await response.body?.cancel();
          throw statusError(response.status, key);
        }
        const lengthHeader = response.headers.get('content-length');
        // An encoded body (gzip sent although we asked for identity) comes decoded from fetch,
        // while Content-Length is its encoded size (RFC 9110 §8.6): no length to hold it to, only
        // the cap, which then counts decoded bytes.
        const encoded = (response.headers.get('content-encoding') ?? 'identity').toLowerCase() !== 'identity';
        const length =
          !encoded && lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
        if (!response.body) throw readFailed('answered 200 without a body');
        let read: Awaited<ReturnType<typeof readBody>>;
        try {
          read = await readBody(response.body as AsyncIterable<Uint8Array>, {
            kind: 'http',
            maxBytes: readOptions.maxBytes,
            length,
            pool,
          });
        } catch (error) {
          // Beyond the cap: stop reading, and let the connection go.
          await response.body.cancel().catch(() => {});
          throw error;
        }
        const lastModified = response.headers.get('last-modified');
        return {
          ...read,
          etag: unquote(response.headers.get('etag')),
          lastModified: lastModified ? new Date(lastModified) : undefined,
        };
      } catch (error) {
        if (error instanceof AppError) throw error;
        if (deadline.timedOut()) throw originTimeout('http', timeoutMs);
        throw readFailed(`the read failed (${networkCode(error)})`);
      } finally {
        deadline.dispose();
      }
    },

    async write(_key: string, tempPath: string): Promise<void> {
      await rm(tempPath, { force: true });
      throw new AppError(
        'read_only_storage',
        'The origin is read-only: register its originals instead of uploading',
      );
    },

    async delete(): Promise<void> {
      // Read-only: the library stays as it is; deleting an image removes pixgate's record only.
    },

    async check(): Promise<void> {
      const deadline = startDeadline(timeoutMs);
      try {
        const response = await get(new URL(base), 'HEAD', deadline.signal);
        await response.body?.cancel();
        if (response.status === 401 || response.status === 403 || response.status >= 500) {
          throw statusError(response.status, '');
        }
      } catch (error) {
        if (deadline.timedOut()) throw originTimeout('http', timeoutMs);
        throw error;
      } finally {
        deadline.dispose();
      }
    },
  };
}

function statusError(status: number, key: string): AppError {
  if (status === 404 || status === 410) return notFound(`http origin: no ${key}`);
  if (status === 401 || status === 403)
    return readFailed(`the origin refused pixgate's credentials (${status})`);
  return readFailed(`the origin answered ${status}`);
}

function unquote(etag: string | null): string | undefined {
  return etag === null ? undefined : etag.replace(/^(W\/)?"(.*)"$/, '$2');
}
