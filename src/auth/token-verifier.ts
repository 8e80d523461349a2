/**
 * What every access-token verifier shares: the contract, the one 401 answer, the claims → Principal
 * mapping, and the cache of verified tokens. JWT verification (jwt.ts) is the first verifier;
 * RFC 7662 introspection of opaque tokens is meant to be the second, behind the same interface.
 */
import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock.js';
import { sha256 } from '../digest.js';
import { AppError, messages } from '../errors.js';
import { bearerChallenge } from './credentials.js';
import type { Principal } from './principal.js';

export interface TokenVerifier {
  /** The principal behind a token, or an AppError: 401 `invalid_token`, or 503 `unavailable`. */
  verify(token: string): Promise<Principal>;
}

/**
 * Why a token was refused, as a short stable label for logs and metrics; never sent to the client
 * (SPEC §4: one message for all reasons, so the answer does not tell an attacker which check failed).
 */
export class TokenRejection extends Error {
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TokenRejection';
  }
}

const invalidTokenChallenge = bearerChallenge('invalid_token', messages.invalidToken);

/** The one 401 for every bad token. `detail` is for logs: callers never put the token in it. */
export function invalidToken(detail: string, cause?: unknown): AppError {
  return new AppError('invalid_token', messages.invalidToken, {
    detail,
    cause,
    headers: { 'WWW-Authenticate': invalidTokenChallenge },
  });
}

/** SPEC §2: a token with no scope claim at all may still view. */
const DEFAULT_SCOPE = 'images:read';

const isNonEmptyString = (value: unknown): value is string => typeof value === 'string' && value !== '';

function spaceSeparated(value: string): string[] {
  return value.split(' ').filter((scope) => scope !== '');
}

function scopesFrom(claims: Readonly<Record<string, unknown>>): Set<string> {
  const { scope, scp } = claims;
  if (scope === undefined && scp === undefined) return new Set([DEFAULT_SCOPE]);
  const scopes = new Set<string>();
  // A scope claim of the wrong type is refused, not read as "no scope": that would quietly grant
  // images:read to a token whose issuer meant something else.
  if (scope !== undefined) {
    if (typeof scope !== 'string') throw new TokenRejection('claims', '"scope" claim must be a string');
    for (const item of spaceSeparated(scope)) scopes.add(item);
  }
  if (typeof scp === 'string') {
    for (const item of spaceSeparated(scp)) scopes.add(item);
  } else if (Array.isArray(scp) && scp.every((item) => typeof item === 'string')) {
    for (const item of scp) if (item !== '') scopes.add(item);
  } else if (scp !== undefined) {
    throw new TokenRejection('claims', '"scp" claim must be a string or an array of strings');
  }
  return scopes;
}

/**
 * SPEC §1: the subject is `sub`, or `client_id` when there is no `sub` (client-credentials tokens,
 * introspection answers); the scopes come from `scope` or `scp`; the principal ends at `exp`.
 * Throws a TokenRejection when the claims cannot make a principal.
 */
export function principalFromClaims(claims: Readonly<Record<string, unknown>>): Principal {
  const { sub, client_id: clientId, exp } = claims;
  let subject: string;
  if (isNonEmptyString(sub)) subject = sub;
  else if (sub !== undefined) throw new TokenRejection('claims', '"sub" claim must be a non-empty string');
  else if (isNonEmptyString(clientId)) subject = clientId;
  else throw new TokenRejection('no_subject', 'the token has neither "sub" nor "client_id"');
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    throw new TokenRejection('claims', '"exp" claim must be a number');
  }
  return Object.freeze({ subject, scopes: scopesFrom(claims), expiresAt: exp });
}

/** Cache keys are digests: a heap dump or a debugger must not turn up live tokens. */
const tokenDigest = (token: string) => sha256(token);

export interface TokenCacheOptions {
  /** Most remembered tokens; 0 disables the cache. */
  size: number;
  clock: Clock;
}

/**
 * Remembers verified tokens (by SHA-256 digest, never the token) until their `exp`, checked against
 * the injected clock on every hit, so a repeated token costs a hash and a map lookup instead of a
 * signature check. Concurrent verifications of one uncached token share one promise. Failures are
 * not remembered: a refused token is cheap to refuse again, and an outage must not outlive itself.
 */
export function withTokenCache(
  verify: (token: string) => Promise<Principal>,
  options: TokenCacheOptions,
): TokenVerifier {
  const { size, clock } = options;
  const verified = size > 0 ? new LRUCache<string, Principal>({ max: size }) : undefined;
  const pending = new Map<string, Promise<Principal>>();

  return {
    verify(token) {
      const key = tokenDigest(token);
      const hit = verified?.get(key);
      if (hit) {
        // Not `<=`: at exp itself the token is over, the same instant jose refuses it.
        if (clock.now() < hit.expiresAt * 1000) return Promise.resolve(hit);
        verified?.delete(key);
      }
      const inFlight = pending.get(key);
      if (inFlight) return inFlight;
      const promise = verify(token)
        .then((principal) => {
          // A token accepted only thanks to the clock skew is not worth remembering.
          if (clock.now() < principal.expiresAt * 1000) verified?.set(key, principal);
          return principal;
        })
        .finally(() => pending.delete(key));
      pending.set(key, promise);
      return promise;
    },
  };
}
