import { AppError } from '../errors.js';

/**
 * OAuth 2.0 client credentials (RFC 6749 §4.4) for an HTTP origin: one token, fetched when first
 * needed, shared by concurrent reads, kept until shortly before it expires, and dropped when the
 * origin answers 401 so the next read fetches a fresh one. The client secret is sent as HTTP
 * Basic (client_secret_basic) and never appears in an error or a log line.
 */
export interface ClientCredentialsSettings {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scope?: string | undefined;
}

export interface TokenSource {
  /** A valid access token; fetches one when none is cached. */
  get(signal: AbortSignal): Promise<string>;
  /**
   * The origin refused `token`: forgets it, so the next `get` fetches another. Answers whether
   * trying again may use another token: false when a token refused this way was already
   * replaced within the last REFETCH_AFTER_REFUSAL_MS (the origin refuses fresh tokens too).
   * A newer token already cached is kept.
   */
  invalidate(token: string): boolean;
}

/** Refresh this long before `expires_in` runs out, so a token never expires on its way. */
const EARLY_MS = 30_000;
/** Without `expires_in`, a token is reused this long. */
const DEFAULT_LIFETIME_MS = 5 * 60_000;
/**
 * At most one token fetched per this interval because the origin refused one: an origin that
 * refuses every token (wrong audience, revoked grant) would otherwise cost the token endpoint
 * one request per image request, which an identity provider rate-limits or locks out.
 */
const REFETCH_AFTER_REFUSAL_MS = 10_000;

const tokenError = (detail: string) =>
  new AppError('origin_error', 'The original could not be read', { detail: `http origin: ${detail}` });
const tokenTooSlow = (timeoutMs: number) =>
  tokenError(`the token endpoint did not answer within ${timeoutMs} ms`);

/** `signal`'s abort rejects the wait, not `shared`: other reads may be waiting on it too. */
function waitFor<T>(shared: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    shared.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * `timeoutMs` bounds the token request itself, which belongs to no single read: one read giving
 * up (its client went away, its own deadline passed) must not fail the others sharing the fetch.
 */
export function createTokenSource(
  settings: ClientCredentialsSettings,
  now: () => number,
  timeoutMs: number,
): TokenSource {
  let cached: { token: string; refreshAt: number } | undefined;
  let pending: Promise<string> | undefined;
  let refusedAt = Number.NEGATIVE_INFINITY;
  // RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
  const basic = Buffer.from(
    `${encodeURIComponent(settings.clientId)}:${encodeURIComponent(settings.clientSecret)}`,
  ).toString('base64');

  async function fetchToken(signal: AbortSignal): Promise<string> {
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (settings.scope) form.set('scope', settings.scope);
    let response: Response;
    try {
      response = await fetch(settings.tokenUrl, {
        method: 'POST',
        headers: {
          authorization: `Basic ${basic}`,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: form,
        redirect: 'manual',
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw tokenTooSlow(timeoutMs);
      throw tokenError(`the token endpoint cannot be reached (${networkCode(error)})`);
    }
    let text: string;
    try {
      text = await response.text();
    } catch {
      throw signal.aborted ? tokenTooSlow(timeoutMs) : tokenError('the token endpoint broke off its answer');
    }
    if (response.status !== 200) {
      const refused = response.status === 400 || response.status === 401;
      throw tokenError(
        `the token endpoint answered ${response.status}${refused ? ": it refused pixgate's client credentials" : ''}`,
      );
    }
    let body: { access_token?: unknown; expires_in?: unknown; token_type?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw tokenError('the token endpoint answered something that is not JSON');
    }
    if (typeof body.access_token !== 'string' || body.access_token === '') {
      throw tokenError('the token endpoint answered without an access_token');
    }
    // Visible ASCII only (RFC 6749 A.12, less the space a Bearer header cannot hold): anything
    // else fails every request it is put in, for as long as it would be cached.
    if (!/^[\x21-\x7e]+$/.test(body.access_token)) {
      throw tokenError('the token endpoint answered an access_token that is not a token');
    }
    const lifetimeMs =
      typeof body.expires_in === 'number' && body.expires_in > 0
        ? body.expires_in * 1000
        : DEFAULT_LIFETIME_MS;
    // Short-lived tokens are refreshed at half their life rather than never used.
    cached = { token: body.access_token, refreshAt: now() + Math.max(lifetimeMs - EARLY_MS, lifetimeMs / 2) };
    return body.access_token;
  }

  return {
    async get(signal) {
      if (cached && now() < cached.refreshAt) return cached.token;
      // A read that has already given up starts nothing: a fetch nobody waits on would fail
      // unhandled, and Node ends the process on an unhandled rejection.
      if (signal.aborted) throw signal.reason;
      // One fetch for every read waiting on it, under its own deadline; each read waits under its own.
      pending ??= fetchToken(AbortSignal.timeout(timeoutMs)).finally(() => {
        pending = undefined;
      });
      return waitFor(pending, signal);
    },
    invalidate(token) {
      if (cached?.token !== token) return true;
      if (now() - refusedAt < REFETCH_AFTER_REFUSAL_MS) return false;
      refusedAt = now();
      cached = undefined;
      return true;
    },
  };
}

export function networkCode(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : ((error as Error).name ?? 'error');
}
