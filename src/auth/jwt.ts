/**
 * JWT access tokens, verified locally against the issuer's JWKS (SPEC §3, "Tokens"; RFC 9068).
 * jose does the cryptography, the claim checks and the JWKS fetching; this module picks the
 * options, adds the `typ` rule, and turns every failure into the one 401 (or a 503, fail closed).
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { Principal } from './principal.js';
import {
  invalidToken,
  principalFromClaims,
  TokenRejection,
  type TokenVerifier,
  withTokenCache,
} from './token-verifier.js';

export type { TokenVerifier } from './token-verifier.js';

export interface TokenVerifierOptions {
  issuer: string;
  audience: string;
  /** Either a remote JWKS URL or a local key set (dev mode). */
  jwks: { url: string; cooldownSeconds: number } | { keys: JSONWebKeySet };
  requireAtJwt: boolean;
  clockSkewSeconds: number;
  cacheSize: number;
  clock: Clock;
  /**
   * Metrics hook, called once per failed verification (a cache hit or a shared in-flight
   * verification is not counted again) with a short stable label: 'malformed', 'typ', 'alg',
   * 'signature', 'unknown_kid', 'ambiguous_kid', 'issuer', 'audience', 'expired', 'not_before',
   * 'claims', 'no_subject', 'jwks_unavailable'.
   */
  onFailure?: (reason: string) => void;
}

/**
 * Asymmetric algorithms only. Never `none`, and never HS*: with a symmetric algorithm the "secret"
 * would be a public key anyone can download (the classic RS256 → HS256 confusion attack).
 */
export const ALLOWED_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;

// Three base64url parts; the signature may be empty so that `alg: none` reaches jose and is
// refused as an algorithm, not as a shape.
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Whether a token is a JWT (compact JWS) at all. Anything else is an opaque token: the seam where
 * introspection (RFC 7662) takes over when it is configured (see authenticate.ts).
 */
export const isJwtShaped = (token: string) => JWT_SHAPE.test(token);

/** RFC 9068 §4: `at+jwt`, with or without the `application/` prefix, case-insensitive. */
const ACCESS_TOKEN_TYPES = new Set(['at+jwt', 'application/at+jwt']);
/** Plain JWTs, which many providers still issue, unless `requireAtJwt` refuses them. */
const PLAIN_JWT_TYPES = new Set(['jwt', 'application/jwt']);

function checkType(typ: unknown, requireAtJwt: boolean): void {
  if (typ === undefined && !requireAtJwt) return;
  if (typeof typ === 'string') {
    const normalized = typ.toLowerCase();
    if (ACCESS_TOKEN_TYPES.has(normalized)) return;
    if (!requireAtJwt && PLAIN_JWT_TYPES.has(normalized)) return;
  }
  const shown = typ === undefined ? 'absent' : JSON.stringify(typ).slice(0, 40);
  throw new TokenRejection('typ', `"typ" header ${shown} is not allowed`);
}

/** The JWKS could not be read and no cached key can decide: fail closed with a 503 (SPEC §4). */
class JwksUnavailable extends Error {
  constructor(cause: unknown) {
    super(`the JWKS cannot be fetched: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'JwksUnavailable';
  }
}

/** Errors of choosing a key from a JWKS that was read: the token's fault, so a 401. */
const isKeySelectionError = (error: unknown) =>
  error instanceof errors.JWKSNoMatchingKey ||
  error instanceof errors.JWKSMultipleMatchingKeys ||
  error instanceof errors.JOSENotSupported;

/** How soon a failed fetch is retried while no key set has been fetched yet. */
const FIRST_FETCH_RETRY_MS = 1000;

/**
 * jose's remote JWKS, plus stale-if-error. jose refetches the set on an unknown `kid` at most once
 * per cooldown (so a flood of made-up kids cannot hammer the issuer) and when it is older than
 * 10 minutes; a failed refetch would then fail every token. Instead the last good set keeps
 * verifying the kids it knows while the issuer is down; a kid it does not know is a 503, since
 * the set we cannot read might hold it. With nothing fetched yet, every token is a 503.
 *
 * A failed fetch is not tried again within the cooldown either: jose would refetch for every
 * token while it has no fresh set, and those 503s take from no request budget, so a flood of
 * made-up kids during an outage was one JWKS request each. Meanwhile the stale set decides (or
 * it is a 503); the price is that a recovered issuer is noticed up to one cooldown late.
 */
function remoteKeys(url: string, cooldownSeconds: number): JWTVerifyGetKey {
  const cooldownMs = cooldownSeconds * 1000;
  const remote = createRemoteJWKSet(new URL(url), {
    cooldownDuration: cooldownMs,
    // jose's default, said aloud: a hanging issuer holds requests for at most this long.
    timeoutDuration: 5000,
  });
  let stale: { json: string; keys: JWTVerifyGetKey } | undefined;
  // When the last fetch failed, and why. Date.now(), as jose's own cooldown and max age read it.
  let failed: { at: number; error: unknown } | undefined;
  /**
   * Within the cooldown after a failed fetch. A wall clock set back since (NTP stepping a clock
   * at boot, a VM resumed) ends it: counted from a failure in the future it would last as long
   * as the step, every token a 503 although the issuer is back.
   */
  const coolingDown = (since: number) => {
    const elapsed = Date.now() - since;
    // With no set fetched yet, every token is a 503 whatever we wait for: an issuer that starts
    // after pixgate (a compose file, a reboot) is asked again within a second, not a cooldown.
    const wait = remote.jwks() ? cooldownMs : Math.min(cooldownMs, FIRST_FETCH_RETRY_MS);
    return elapsed >= 0 && elapsed < wait;
  };

  const staleKeys = () => {
    const jwks = remote.jwks();
    if (!jwks) return undefined;
    const json = JSON.stringify(jwks);
    if (stale?.json !== json) stale = { json, keys: createLocalJWKSet(jwks) };
    return stale.keys;
  };

  /** The last good set decides, or, for a kid it lacks or with no set at all, a 503. */
  async function fromStale(
    header: Parameters<JWTVerifyGetKey>[0],
    token: Parameters<JWTVerifyGetKey>[1],
    fetchError: unknown,
  ) {
    const keys = staleKeys();
    if (!keys) throw new JwksUnavailable(fetchError);
    try {
      return await keys(header, token);
    } catch (staleError) {
      if (staleError instanceof errors.JWKSNoMatchingKey) throw new JwksUnavailable(fetchError);
      throw staleError;
    }
  }

  return async (header, token) => {
    if (failed && coolingDown(failed.at)) return fromStale(header, token, failed.error);
    try {
      const key = await remote(header, token);
      failed = undefined;
      return key;
    } catch (error) {
      // A key was chosen from a set jose holds: no fetch failed.
      if (isKeySelectionError(error)) {
        failed = undefined;
        throw error;
      }
      // Network error, timeout, non-200, invalid JSON, not a key set.
      failed = { at: Date.now(), error };
      return fromStale(header, token, error);
    }
  };
}

/** jose's decodeProtectedHeader throws a TypeError on bad input; here that is a malformed token. */
function readHeader(token: string) {
  try {
    return decodeProtectedHeader(token);
  } catch (cause) {
    throw new TokenRejection('malformed', 'the JWT header is not base64url JSON', { cause });
  }
}

const claimReasons: Record<string, string> = { iss: 'issuer', aud: 'audience', nbf: 'not_before' };

/** A short stable label for a failure, or undefined for an error that is not about the token. */
function reasonFor(error: unknown): string | undefined {
  if (error instanceof TokenRejection) return error.reason;
  if (error instanceof JwksUnavailable) return 'jwks_unavailable';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'alg';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  if (error instanceof errors.JWKSNoMatchingKey) return 'unknown_kid';
  if (error instanceof errors.JWKSMultipleMatchingKeys) return 'ambiguous_kid';
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    return error.reason === 'check_failed' ? (claimReasons[error.claim] ?? 'claims') : 'claims';
  }
  // JWSInvalid, JWTInvalid, JOSENotSupported...: a token jose could not even read.
  if (error instanceof errors.JOSEError) return 'malformed';
  return undefined;
}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { issuer, audience, requireAtJwt, clockSkewSeconds, clock, onFailure } = options;
  const keys =
    'url' in options.jwks
      ? remoteKeys(options.jwks.url, options.jwks.cooldownSeconds)
      : createLocalJWKSet(options.jwks.keys);

  async function verifyOnce(token: string): Promise<Principal> {
    if (!isJwtShaped(token)) throw new TokenRejection('malformed', 'not a JWT (three base64url parts)');
    // The header is read before the signature so that a wrong `typ` costs no key lookup; refusing
    // on unauthenticated data is safe, accepting on it never happens here.
    checkType(readHeader(token).typ, requireAtJwt);
    const { payload } = await jwtVerify(token, keys, {
      algorithms: [...ALLOWED_ALGORITHMS],
      issuer,
      audience,
      requiredClaims: ['exp'],
      clockTolerance: clockSkewSeconds,
      currentDate: new Date(clock.now()),
    });
    return principalFromClaims(payload);
  }

  async function verify(token: string): Promise<Principal> {
    try {
      return await verifyOnce(token);
    } catch (error) {
      const reason = reasonFor(error);
      if (reason === undefined) throw error;
      onFailure?.(reason);
      const message = error instanceof Error ? error.message : String(error);
      // jose's messages name the check, never the token; so do ours.
      if (error instanceof JwksUnavailable) {
        throw new AppError('unavailable', 'Access tokens cannot be verified right now', {
          detail: `${reason}: ${message}`,
          cause: error,
        });
      }
      throw invalidToken(`${reason}: ${message}`, error);
    }
  }

  return withTokenCache(verify, { size: options.cacheSize, clock });
}
