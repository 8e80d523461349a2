/**
 * Opaque (non-JWT) access tokens, verified by asking the authorization server (RFC 7662). The
 * second TokenVerifier, behind the same interface as jwt.ts.
 *
 * - pixgate authenticates as a client with HTTP Basic (RFC 7662 §2.1, RFC 6749 §2.3.1: id and
 *   secret form-encoded before base64).
 * - An active answer is remembered (by token digest) until the token's `exp`, but at most
 *   `maxCacheSeconds`, so a revocation at the server is seen within that bound.
 * - An inactive answer is remembered for `inactiveCacheSeconds`, so a flood of garbage tokens
 *   costs the authorization server one request per token and window, not one per request.
 * - The server down, slow, or answering nonsense: 503 `unavailable`, never remembered, never a
 *   guess (SPEC §4, fail closed). JWTs do not pass through here and keep working.
 */
import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock.js';
import { sha256 } from '../digest.js';
import { AppError } from '../errors.js';
import type { Principal } from './principal.js';
import { invalidToken, principalFromClaims, TokenRejection, type TokenVerifier } from './token-verifier.js';

export interface IntrospectionOptions {
  url: string;
  clientId: string;
  clientSecret: string;
  /** Our audience: an answer whose `aud` does not contain it is refused. */
  audience: string;
  /** The expected `iss`, checked when the answer has one. */
  issuer?: string | undefined;
  clock: Clock;
  /** Longest time an active answer is trusted. */
  maxCacheSeconds?: number;
  /** How long an inactive answer is remembered. */
  inactiveCacheSeconds?: number;
  /** Most remembered answers; 0 remembers none (PIXGATE_TOKEN_CACHE_SIZE=0), inactive ones included. */
  cacheSize?: number;
  timeoutMs?: number;
  /** Metrics hook, as jwt.ts's: 'inactive', 'audience', 'issuer', 'expired', 'claims', 'introspection_unavailable'. */
  onFailure?: (reason: string) => void;
}

type Remembered = { readonly principal: Principal; readonly until: number } | { readonly until: number };

const formEncode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
const ACCESS_TOKEN_TYPES = new Set(['bearer', 'access_token']);

class IntrospectionUnavailable extends Error {}

export function createIntrospectionVerifier(options: IntrospectionOptions): TokenVerifier {
  const { url, audience, issuer, clock, onFailure } = options;
  const maxCacheMs = (options.maxCacheSeconds ?? 300) * 1000;
  const inactiveCacheMs = (options.inactiveCacheSeconds ?? 10) * 1000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const authorization = `Basic ${Buffer.from(`${formEncode(options.clientId)}:${formEncode(options.clientSecret)}`).toString('base64')}`;
  const cacheSize = options.cacheSize ?? 10_000;
  // lru-cache refuses a max of 0; no cache then, as withTokenCache does for JWTs.
  const answers = cacheSize > 0 ? new LRUCache<string, Remembered>({ max: cacheSize }) : undefined;
  const pending = new Map<string, Promise<Principal>>();

  async function ask(token: string): Promise<Record<string, unknown>> {
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: {
          authorization,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: `token=${formEncode(token)}&token_type_hint=access_token`,
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
    } catch (error) {
      throw new IntrospectionUnavailable(`request failed: ${(error as Error).message}`, { cause: error });
    }
    const text = await response.text().catch(() => '');
    if (response.status !== 200) throw new IntrospectionUnavailable(`answered ${response.status}`);
    try {
      const body = JSON.parse(text) as unknown;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
      return body as Record<string, unknown>;
    } catch (error) {
      throw new IntrospectionUnavailable('answered something other than a JSON object', { cause: error });
    }
  }

  /** The principal of an active answer, or a TokenRejection. */
  function judge(claims: Record<string, unknown>, now: number): Principal {
    if (claims.active !== true) throw new TokenRejection('inactive', 'the token is not active');
    const { aud, iss, exp, nbf, token_type: tokenType } = claims;
    if (typeof tokenType === 'string' && !ACCESS_TOKEN_TYPES.has(tokenType.toLowerCase())) {
      throw new TokenRejection('claims', 'not an access token');
    }
    // RFC 7662 makes `aud` optional; when it is there, it must name us.
    if (aud !== undefined && !(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) {
      throw new TokenRejection('audience', 'the token is for another audience');
    }
    if (iss !== undefined && issuer !== undefined && iss !== issuer) {
      throw new TokenRejection('issuer', 'the token is from another issuer');
    }
    if (typeof nbf === 'number' && now < nbf * 1000)
      throw new TokenRejection('claims', 'the token is not valid yet');
    // Without `exp` the principal lives as long as the answer is trusted.
    const withExp = exp === undefined ? { ...claims, exp: Math.floor((now + maxCacheMs) / 1000) } : claims;
    const principal = principalFromClaims(withExp);
    if (now >= principal.expiresAt * 1000) throw new TokenRejection('expired', 'the token has expired');
    return principal;
  }

  async function introspect(token: string, key: string): Promise<Principal> {
    let claims: Record<string, unknown>;
    try {
      claims = await ask(token);
    } catch (error) {
      onFailure?.('introspection_unavailable');
      throw new AppError('unavailable', 'Access tokens cannot be verified right now', {
        detail: `introspection ${(error as Error).message}`,
        cause: error,
      });
    }
    const now = clock.now();
    try {
      const principal = judge(claims, now);
      answers?.set(key, { principal, until: Math.min(principal.expiresAt * 1000, now + maxCacheMs) });
      return principal;
    } catch (error) {
      if (!(error instanceof TokenRejection)) throw error;
      answers?.set(key, { until: now + inactiveCacheMs });
      onFailure?.(error.reason);
      throw invalidToken(`${error.reason}: ${error.message}`);
    }
  }

  return {
    verify(token) {
      // Cache keys are digests: a heap dump must not turn up live tokens.
      const key = sha256(token);
      const hit = answers?.get(key);
      if (hit) {
        if (clock.now() < hit.until) {
          return 'principal' in hit
            ? Promise.resolve(hit.principal)
            : Promise.reject(invalidToken('inactive (remembered)'));
        }
        answers?.delete(key);
      }
      const inFlight = pending.get(key);
      if (inFlight) return inFlight;
      const promise = introspect(token, key).finally(() => pending.delete(key));
      pending.set(key, promise);
      return promise;
    },
  };
}
