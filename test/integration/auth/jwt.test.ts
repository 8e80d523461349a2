import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createTokenVerifier, isJwtShaped, type TokenVerifierOptions } from '../../../src/auth/jwt.js';
import { systemClock } from '../../../src/clock.js';
import { AppError, messages } from '../../../src/errors.js';
import { type JwksServer, startJwksServer } from '../../helpers/jwks-server.js';
import { type OidcProvider, startOidcProvider } from '../../helpers/oidc-provider.js';

const CHALLENGE = `Bearer realm="pixgate", error="invalid_token", error_description="${messages.invalidToken}"`;
const COOLDOWN_SECONDS = 30;
const SKEW_SECONDS = 30;

function createManualClock(start: number) {
  let now = start;
  return {
    now: () => now,
    advanceSeconds(seconds: number) {
      now += seconds * 1000;
    },
    seconds: () => Math.floor(now / 1000),
  };
}

let clock = createManualClock(Date.now());
let issuer: JwksServer;
let failures: string[] = [];

beforeAll(async () => {
  issuer = await startJwksServer({ now: () => clock.now() });
});

afterAll(async () => {
  await issuer.close();
});

beforeEach(() => {
  clock = createManualClock(Date.now());
  failures = [];
  issuer.setFailing(false);
});

afterEach(() => {
  vi.useRealTimers();
});

function verifier(overrides: Partial<TokenVerifierOptions> = {}) {
  return createTokenVerifier({
    issuer: issuer.issuer,
    audience: issuer.audience,
    jwks: { url: issuer.jwksUrl, cooldownSeconds: COOLDOWN_SECONDS },
    requireAtJwt: false,
    clockSkewSeconds: SKEW_SECONDS,
    cacheSize: 100,
    clock,
    onFailure: (reason) => failures.push(reason),
    ...overrides,
  });
}

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

/** A 401 with the one public message and challenge; `reason` only in the log detail and metrics. */
async function expectInvalidToken(promise: Promise<unknown>, token: string, reason: string) {
  const error = await rejection(promise);
  expect(error.code).toBe('invalid_token');
  expect(error.status).toBe(401);
  expect(error.publicMessage).toBe(messages.invalidToken);
  expect(error.headers).toEqual({ 'WWW-Authenticate': CHALLENGE });
  expect(error.message).toContain(`(${reason}: `);
  expect(error.message).not.toContain(token);
  expect(failures.at(-1)).toBe(reason);
  return error;
}

async function expectUnavailable(promise: Promise<unknown>, token: string) {
  const error = await rejection(promise);
  expect(error.code).toBe('unavailable');
  expect(error.status).toBe(503);
  expect(error.publicMessage).toBe('Access tokens cannot be verified right now');
  expect(error.message).not.toContain(token);
  expect(failures.at(-1)).toBe('jwks_unavailable');
}

describe('JWT access tokens against a JWKS over HTTP', () => {
  it.each(['RS256', 'ES256'] as const)('accepts a good %s token', async (alg) => {
    const token = await issuer.sign({ alg, claims: { sub: 'alice', scope: 'images:read images:write' } });
    const principal = await verifier().verify(token);
    expect(principal.subject).toBe('alice');
    expect([...principal.scopes]).toEqual(['images:read', 'images:write']);
    expect(principal.expiresAt).toBe(clock.seconds() + 3600);
    expect(failures).toEqual([]);
  });

  it('accepts an aud array that contains ours', async () => {
    const token = await issuer.sign({ claims: { aud: ['https://other.test', issuer.audience] } });
    await expect(verifier().verify(token)).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('refuses an expired token, and accepts one expired within the clock skew', async () => {
    const expired = await issuer.sign({ claims: { exp: clock.seconds() - SKEW_SECONDS - 1 } });
    await expectInvalidToken(verifier().verify(expired), expired, 'expired');
    const justExpired = await issuer.sign({ claims: { exp: clock.seconds() - SKEW_SECONDS + 5 } });
    await expect(verifier().verify(justExpired)).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('refuses a token without exp', async () => {
    const token = await issuer.sign({ claims: { exp: undefined } });
    await expectInvalidToken(verifier().verify(token), token, 'claims');
  });

  it('refuses a token before its nbf, and accepts one whose nbf is within the clock skew', async () => {
    const early = await issuer.sign({ claims: { nbf: clock.seconds() + SKEW_SECONDS + 30 } });
    await expectInvalidToken(verifier().verify(early), early, 'not_before');
    const almost = await issuer.sign({ claims: { nbf: clock.seconds() + SKEW_SECONDS - 5 } });
    await expect(verifier().verify(almost)).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('uses the injected clock, not the system clock, for exp', async () => {
    const token = await issuer.sign({ claims: { exp: clock.seconds() + 60 } });
    clock.advanceSeconds(60 + SKEW_SECONDS);
    await expectInvalidToken(verifier().verify(token), token, 'expired');
  });

  it.each([
    ['another audience', 'https://other.test'],
    ['an audience that only starts like ours', `${'https://pixgate.test'}/x`],
    ['an empty audience list', []],
  ])('refuses %s', async (_name, aud) => {
    const token = await issuer.sign({ claims: { aud } });
    await expectInvalidToken(verifier().verify(token), token, 'audience');
  });

  it.each([
    ['another issuer', 'https://evil.test'],
    ['our issuer with a trailing slash', 'TRAILING'],
    ['no issuer', undefined],
  ])('refuses %s', async (_name, iss) => {
    const claims = { iss: iss === 'TRAILING' ? `${issuer.issuer}/` : iss };
    const token = await issuer.sign({ claims });
    await expectInvalidToken(verifier().verify(token), token, iss === undefined ? 'claims' : 'issuer');
  });

  it.each(['RS256', 'ES256'] as const)(
    'refuses a %s token signed by a rogue key under a known kid',
    async (alg) => {
      const token = await issuer.sign({ alg, key: 'rogue' });
      await expectInvalidToken(verifier().verify(token), token, 'signature');
    },
  );

  it('refuses a token whose payload was changed after signing', async () => {
    const token = await issuer.sign({ claims: { scope: 'images:read' } });
    const [header, , signature] = token.split('.');
    const forgedPayload = Buffer.from(
      JSON.stringify({ ...issuer.defaultClaims(), scope: 'images:admin' }),
    ).toString('base64url');
    const forged = `${header}.${forgedPayload}.${signature}`;
    await expectInvalidToken(verifier().verify(forged), forged, 'signature');
  });

  it('refuses alg none without even fetching the JWKS', async () => {
    const token = issuer.unsigned();
    const before = issuer.requests;
    await expectInvalidToken(verifier().verify(token), token, 'alg');
    expect(issuer.requests).toBe(before);
  });

  it('refuses HS256 signed with the public key as secret (key confusion)', async () => {
    const token = await issuer.hs256WithPublicKey();
    await expectInvalidToken(verifier().verify(token), token, 'alg');
  });

  it.each([
    ['a word', 'garbage'],
    ['an empty string', ''],
    ['two parts', 'abc.def'],
    ['five parts (a JWE)', 'a.b.c.d.e'],
    ['characters outside base64url', 'ab+c.de/f.ghi'],
    ['a header that is not JSON', `${Buffer.from('nope').toString('base64url')}.e30.c2ln`],
  ])('refuses %s as malformed', async (_name, token) => {
    await expectInvalidToken(verifier().verify(token), token || 'absent', 'malformed');
  });

  it.each([
    ['not JSON', 'nope'],
    ['a JSON array', '["sub"]'],
  ])('refuses a well-signed token whose payload is %s', async (_name, payload) => {
    const token = await issuer.signBytes(payload);
    await expectInvalidToken(verifier().verify(token), token, 'malformed');
  });

  it('tells JWTs from opaque tokens', () => {
    expect(isJwtShaped('eyJh.eyJz.c2ln')).toBe(true);
    expect(isJwtShaped('eyJh.eyJz.')).toBe(true);
    expect(isJwtShaped('v9qE8wv0ixFU5oZql383FkciEokzbhg7zlp-VM3-OaG')).toBe(false);
  });
});

describe('typ (RFC 9068)', () => {
  const accepted = ['at+jwt', 'application/at+jwt', 'AT+JWT', 'Application/At+Jwt'];
  const plain = ['JWT', 'jwt', 'application/jwt', undefined];
  const refused = ['JOSE', 'dpop+jwt', 'secevent+jwt', 'at+jwt; charset=utf-8', '', 42];

  it.each(accepted)('accepts %s, with requireAtJwt on and off', async (typ) => {
    const token = await issuer.sign({ header: { typ } });
    await expect(verifier().verify(token)).resolves.toMatchObject({ subject: 'user-1' });
    await expect(verifier({ requireAtJwt: true }).verify(token)).resolves.toMatchObject({
      subject: 'user-1',
    });
  });

  it.each(plain)('accepts typ %s only while requireAtJwt is off', async (typ) => {
    const token = await issuer.sign({ header: { typ } });
    await expect(verifier().verify(token)).resolves.toMatchObject({ subject: 'user-1' });
    await expectInvalidToken(verifier({ requireAtJwt: true }).verify(token), token, 'typ');
  });

  it.each(refused)('refuses typ %j either way', async (typ) => {
    const token = await issuer.sign({ header: { typ } });
    await expectInvalidToken(verifier().verify(token), token, 'typ');
    await expectInvalidToken(verifier({ requireAtJwt: true }).verify(token), token, 'typ');
  });
});

describe('principal from claims', () => {
  it('falls back to client_id when there is no sub', async () => {
    const token = await issuer.sign({ claims: { sub: undefined, client_id: 'backend-job' } });
    await expect(verifier().verify(token)).resolves.toMatchObject({ subject: 'backend-job' });
  });

  it('prefers sub over client_id', async () => {
    const token = await issuer.sign({ claims: { sub: 'alice', client_id: 'web-app' } });
    await expect(verifier().verify(token)).resolves.toMatchObject({ subject: 'alice' });
  });

  it('refuses a token with neither sub nor client_id', async () => {
    const token = await issuer.sign({ claims: { sub: undefined } });
    await expectInvalidToken(verifier().verify(token), token, 'no_subject');
  });

  it.each([
    ['an empty sub', ''],
    ['a numeric sub', 42],
  ])('refuses %s', async (_name, sub) => {
    const token = await issuer.sign({ claims: { sub, client_id: 'web-app' } });
    await expectInvalidToken(verifier().verify(token), token, 'claims');
  });

  it.each([
    [
      'scope, space-separated',
      { scope: 'images:read  images:write other' },
      ['images:read', 'images:write', 'other'],
    ],
    ['scp as an array', { scp: ['images:admin', 'other'] }, ['images:admin', 'other']],
    ['scp as a string', { scp: 'images:write other' }, ['images:write', 'other']],
    [
      'scope and scp together',
      { scope: 'images:read', scp: ['images:write'] },
      ['images:read', 'images:write'],
    ],
    ['no scope claim at all', {}, ['images:read']],
    ['an empty scope claim', { scope: '' }, []],
  ])('reads %s', async (_name, claims, scopes) => {
    const token = await issuer.sign({ claims });
    const principal = await verifier().verify(token);
    expect([...principal.scopes]).toEqual(scopes);
  });

  it.each([
    ['scope as an array', { scope: ['images:admin'] }],
    ['scp with a number', { scp: ['images:read', 1] }],
  ])('refuses %s rather than defaulting to images:read', async (_name, claims) => {
    const token = await issuer.sign({ claims });
    await expectInvalidToken(verifier().verify(token), token, 'claims');
  });
});

describe('JWKS fetching', () => {
  it('refetches on an unknown kid once, then not again until the cooldown has passed', async () => {
    // jose's JWKS cache reads Date.now(), so only Date is faked; the HTTP server stays real.
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier();
    const start = issuer.requests;
    await v.verify(await issuer.sign());
    expect(issuer.requests - start).toBe(1);

    // Right after a fetch, an unknown kid is refused without asking the issuer again.
    const unknown = await issuer.sign({ header: { kid: 'no-such-kid' } });
    await expectInvalidToken(v.verify(unknown), unknown, 'unknown_kid');
    expect(issuer.requests - start).toBe(1);

    // Nor a second short of the cooldown: it is counted in seconds, not milliseconds.
    vi.setSystemTime(Date.now() + (COOLDOWN_SECONDS - 1) * 1000);
    await expectInvalidToken(v.verify(unknown), unknown, 'unknown_kid');
    expect(issuer.requests - start).toBe(1);

    // After the cooldown, one unknown kid causes exactly one refetch...
    vi.setSystemTime(Date.now() + (COOLDOWN_SECONDS + 1) * 1000);
    await expectInvalidToken(v.verify(unknown), unknown, 'unknown_kid');
    expect(issuer.requests - start).toBe(2);

    // ...and a flood of made-up kids, at once and one after another, causes none.
    const flood = await Promise.all(
      Array.from({ length: 20 }, (_, index) => issuer.sign({ header: { kid: `made-up-${index}` } })),
    );
    await Promise.all(flood.map((token) => expectInvalidToken(v.verify(token), token, 'unknown_kid')));
    for (const token of flood) await expectInvalidToken(v.verify(token), token, 'unknown_kid');
    expect(issuer.requests - start).toBe(2);
  });

  it('picks up a rotated key on its first use after the cooldown', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier();
    await v.verify(await issuer.sign());
    issuer.publishNextKey();
    const rotated = await issuer.sign({ key: 'next' });
    await expectInvalidToken(v.verify(rotated), rotated, 'unknown_kid');
    const before = issuer.requests;
    vi.setSystemTime(Date.now() + (COOLDOWN_SECONDS + 1) * 1000);
    await expect(v.verify(rotated)).resolves.toMatchObject({ subject: 'user-1' });
    expect(issuer.requests - before).toBe(1);
  });

  it.each(['status', 'close', 'invalid_json'] as const)(
    'answers 503 while the JWKS fails (%s) and no key is cached, then recovers',
    async (mode) => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const v = verifier();
      const token = await issuer.sign();
      issuer.setFailing(mode);
      await expectUnavailable(v.verify(token), token);
      // Failures are not cached as the token's fault: once the issuer is back and the cooldown
      // after the failed fetch has passed, the same token works.
      issuer.setFailing(false);
      vi.setSystemTime(Date.now() + (COOLDOWN_SECONDS + 1) * 1000);
      await expect(v.verify(token)).resolves.toMatchObject({ subject: 'user-1' });
    },
  );

  it('answers 503 when nothing listens at the JWKS URL', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const v = verifier({ jwks: { url: `http://127.0.0.1:${port}/jwks`, cooldownSeconds: COOLDOWN_SECONDS } });
    const token = await issuer.sign();
    await expectUnavailable(v.verify(token), token);
  });

  it('keeps verifying known kids with the last good key set while the issuer is down', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ cacheSize: 0 });
    await v.verify(await issuer.sign());
    issuer.setFailing('status');
    // Past jose's 10 minute JWKS max age: it tries to refetch, fails, and the stale set decides.
    vi.setSystemTime(Date.now() + 11 * 60 * 1000);
    const before = issuer.requests;
    await expect(v.verify(await issuer.sign({ alg: 'RS256' }))).resolves.toMatchObject({ subject: 'user-1' });
    expect(issuer.requests).toBeGreaterThan(before);
    // A rogue key is still refused as a bad signature...
    const rogue = await issuer.sign({ key: 'rogue' });
    await expectInvalidToken(v.verify(rogue), rogue, 'signature');
    // ...but a kid the stale set does not know might be in the set we cannot read: 503.
    const unknown = await issuer.sign({ header: { kid: 'maybe-new' } });
    await expectUnavailable(v.verify(unknown), unknown);
  });

  it('is not held back past the cooldown by a wall clock set back after a failed fetch', async () => {
    // The wall clock can step back (NTP correcting a clock at boot, a VM resumed): counted from a
    // failure now in the future, the cooldown would last as long as the step, every token a 503
    // although the issuer is back.
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier();
    const token = await issuer.sign();
    issuer.setFailing('status');
    await expectUnavailable(v.verify(token), token);
    issuer.setFailing(false);
    vi.setSystemTime(Date.now() - 60 * 60 * 1000);
    await expect(v.verify(token)).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('asks an issuer that has never answered again after a second, not a whole cooldown', async () => {
    // An issuer that starts after pixgate (a compose file, a reboot): with no key set yet, every
    // token is a 503 however long we wait, so the first set is asked for again soon, and still
    // only once a second, however many tokens arrive.
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ cacheSize: 0 });
    const token = await issuer.sign();
    issuer.setFailing('status');
    const start = issuer.requests;
    for (let i = 0; i < 5; i++) await expectUnavailable(v.verify(token), token);
    expect(issuer.requests - start).toBe(1);
    issuer.setFailing(false);
    vi.setSystemTime(Date.now() + 500);
    await expectUnavailable(v.verify(token), token);
    expect(issuer.requests - start).toBe(1);
    vi.setSystemTime(Date.now() + 600);
    await expect(v.verify(token)).resolves.toMatchObject({ subject: 'user-1' });
    expect(issuer.requests - start).toBe(2);
  });

  it('asks a failing issuer at most once per cooldown, however many tokens arrive (regression)', async () => {
    // Security review: every verification of an uncached token while the JWKS could not be
    // fetched (never fetched, or past jose's 10 minute max age) asked the issuer again, and the
    // 503s it ended in take from no budget: a flood of made-up kids was one JWKS request each.
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = verifier({ cacheSize: 0 });
    const flood = await Promise.all(
      Array.from({ length: 10 }, (_, index) => issuer.sign({ header: { kid: `made-up-${index}` } })),
    );
    issuer.setFailing('status');
    const start = issuer.requests;
    await Promise.all(flood.slice(0, 5).map((token) => expectUnavailable(v.verify(token), token)));
    for (const token of flood) await expectUnavailable(v.verify(token), token);
    expect(issuer.requests - start).toBe(1);

    // Within the cooldown even a good token is not worth another request: still a 503.
    const good = await issuer.sign();
    issuer.setFailing(false);
    await expectUnavailable(v.verify(good), good);
    expect(issuer.requests - start).toBe(1);
    // After it, one request, and the issuer is back.
    vi.setSystemTime(Date.now() + (COOLDOWN_SECONDS + 1) * 1000);
    await expect(v.verify(good)).resolves.toMatchObject({ subject: 'user-1' });
    expect(issuer.requests - start).toBe(2);

    // Failing again past jose's max age: one request, then the last good set decides known kids
    // and made-up ones are a 503, without asking again until the cooldown has passed.
    issuer.setFailing('status');
    vi.setSystemTime(Date.now() + 11 * 60 * 1000);
    const before = issuer.requests;
    await expect(v.verify(good)).resolves.toMatchObject({ subject: 'user-1' });
    for (const token of flood) await expectUnavailable(v.verify(token), token);
    await expect(v.verify(good)).resolves.toMatchObject({ subject: 'user-1' });
    expect(issuer.requests - before).toBe(1);
    vi.setSystemTime(Date.now() + (COOLDOWN_SECONDS + 1) * 1000);
    await expectUnavailable(v.verify(flood[0] as string), flood[0] as string);
    expect(issuer.requests - before).toBe(2);
  });
});

describe('verified-token cache', () => {
  it('answers a repeated token from the cache, without a JWKS request or a new verification', async () => {
    const v = verifier();
    const token = await issuer.sign();
    const first = await v.verify(token);
    const requests = issuer.requests;
    const second = await v.verify(token);
    // The very same object: a second verification would have built a new principal.
    expect(second).toBe(first);
    expect(issuer.requests).toBe(requests);
  });

  it('verifies every time when the cache is disabled', async () => {
    const v = verifier({ cacheSize: 0 });
    const token = await issuer.sign();
    expect(await v.verify(token)).not.toBe(await v.verify(token));
  });

  it('shares one verification between concurrent calls for the same token', async () => {
    const v = verifier({ cacheSize: 0 });
    const token = await issuer.sign();
    const start = issuer.requests;
    const [a, b, c] = await Promise.all([v.verify(token), v.verify(token), v.verify(token)]);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(issuer.requests - start).toBe(1);
  });

  it('stops answering a cached token at its exp', async () => {
    // On a whole second, so that the clock reaches the very millisecond of exp: one past it
    // would not tell `<` from `<=`.
    clock = createManualClock(Math.floor(Date.now() / 1000) * 1000);
    const v = verifier({ clockSkewSeconds: 0 });
    const token = await issuer.sign({ claims: { exp: clock.seconds() + 60 } });
    const first = await v.verify(token);
    clock.advanceSeconds(59);
    expect(await v.verify(token)).toBe(first);
    clock.advanceSeconds(1);
    await expectInvalidToken(v.verify(token), token, 'expired');
  });

  it('re-verifies, and does not cache, a token accepted only within the clock skew', async () => {
    const v = verifier();
    const token = await issuer.sign({ claims: { exp: clock.seconds() + 60 } });
    const first = await v.verify(token);
    clock.advanceSeconds(60 + 10);
    const late = await v.verify(token);
    expect(late).not.toBe(first);
    expect(await v.verify(token)).not.toBe(late);
    clock.advanceSeconds(SKEW_SECONDS);
    await expectInvalidToken(v.verify(token), token, 'expired');
  });

  it('does not let a different token hit the cache', async () => {
    const v = verifier();
    const alice = await v.verify(await issuer.sign({ claims: { sub: 'alice' } }));
    const bob = await v.verify(await issuer.sign({ claims: { sub: 'bob' } }));
    expect(alice.subject).toBe('alice');
    expect(bob.subject).toBe('bob');
  });
});

describe('algorithm allowlist with a local key set', () => {
  async function localSet(alg: 'EdDSA' | 'ES384' | 'PS256', kid: string) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const keys: JSONWebKeySet = { keys: [{ ...(await exportJWK(publicKey)), kid, alg }] };
    const now = clock.seconds();
    const token = await new SignJWT({ sub: 'carol' })
      .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
      .setIssuer(issuer.issuer)
      .setAudience(issuer.audience)
      .setExpirationTime(now + 600)
      .sign(privateKey);
    return { keys, token };
  }

  it.each(['EdDSA', 'PS256'] as const)('accepts %s', async (alg) => {
    const { keys, token } = await localSet(alg, 'local-1');
    await expect(verifier({ jwks: { keys } }).verify(token)).resolves.toMatchObject({ subject: 'carol' });
  });

  it('refuses an asymmetric algorithm outside the allowlist (ES384)', async () => {
    const { keys, token } = await localSet('ES384', 'local-2');
    await expectInvalidToken(verifier({ jwks: { keys } }).verify(token), token, 'alg');
  });
});

describe('with a real OpenID provider', () => {
  let op: OidcProvider;

  beforeAll(async () => {
    op = await startOidcProvider({ audience: 'https://pixgate.test' });
  });

  afterAll(async () => {
    await op.close();
  });

  const opVerifier = () =>
    createTokenVerifier({
      issuer: op.issuer,
      audience: op.audience,
      jwks: { url: op.jwksUrl, cooldownSeconds: COOLDOWN_SECONDS },
      requireAtJwt: true,
      clockSkewSeconds: SKEW_SECONDS,
      cacheSize: 100,
      // oidc-provider stamps tokens with the real time.
      clock: systemClock,
      onFailure: (reason) => failures.push(reason),
    });

  it('accepts its client-credentials JWT access tokens', async () => {
    const v = opVerifier();
    const token = await op.clientCredentialsToken({ scope: 'images:read images:write' });
    const principal = await v.verify(token);
    expect(principal.subject).toBe('app');
    expect([...principal.scopes]).toEqual(['images:read', 'images:write']);
    expect(principal.expiresAt).toBeGreaterThan(Date.now() / 1000);

    const unscoped = await v.verify(await op.clientCredentialsToken({ clientId: 'other-app' }));
    expect(unscoped.subject).toBe('other-app');
    expect([...unscoped.scopes]).toEqual(['images:read']);
  });

  it('issues opaque tokens for the opaque resource, which the JWT verifier refuses as malformed', async () => {
    const opaque = await op.clientCredentialsToken({ format: 'opaque', scope: 'images:read' });
    expect(isJwtShaped(opaque)).toBe(false);
    expect(opaque).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    await expectInvalidToken(opVerifier().verify(opaque), opaque, 'malformed');
  });
});
