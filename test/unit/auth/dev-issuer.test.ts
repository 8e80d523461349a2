import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEV_ISSUER_KEY_FILE, loadDevIssuer } from '../../../src/auth/dev-issuer.js';
import { createTokenVerifier } from '../../../src/auth/jwt.js';
import type { Clock } from '../../../src/clock.js';

const ISSUER = 'http://127.0.0.1:8080/dev-issuer';
const AUDIENCE = 'http://127.0.0.1:8080';
const START = Date.UTC(2030, 0, 1);

let dataDir: string;
let clock: Clock & { set(ms: number): void };

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'pixgate-dev-issuer-'));
  let now = START;
  clock = { now: () => now, set: (ms) => (now = ms) };
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const verifierFor = (jwks: Awaited<ReturnType<typeof loadDevIssuer>>['jwks']) =>
  createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: jwks },
    requireAtJwt: true,
    clockSkewSeconds: 0,
    cacheSize: 0,
    clock,
  });

describe('loadDevIssuer', () => {
  it('creates an ES256 key file readable by its owner only, leaving no temp file behind', async () => {
    await loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock);
    const path = join(dataDir, DEV_ISSUER_KEY_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const jwk = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(typeof jwk.d).toBe('string');
    expect(await readdir(dataDir)).toEqual([DEV_ISSUER_KEY_FILE]);
  });

  it('creates the data dir when it does not exist yet', async () => {
    const nested = join(dataDir, 'a', 'b');
    await loadDevIssuer(nested, ISSUER, AUDIENCE, clock);
    expect(await readdir(nested)).toEqual([DEV_ISSUER_KEY_FILE]);
  });

  it('publishes the public key only', async () => {
    const { jwks } = await loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock);
    expect(jwks.keys).toHaveLength(1);
    const [key] = jwks.keys;
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(key).not.toHaveProperty('d');
    expect(key?.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('issues RFC 9068 access tokens that the JWT verifier accepts with requireAtJwt', async () => {
    const issuer = await loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock);
    const token = await issuer.issue({ sub: 'alice' });
    expect(decodeProtectedHeader(token)).toEqual({
      alg: 'ES256',
      typ: 'at+jwt',
      kid: issuer.jwks.keys[0]?.kid,
    });
    const claims = decodeJwt(token);
    const now = START / 1000;
    expect(claims).toMatchObject({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'alice',
      scope: 'images:read images:write',
      client_id: 'pixgate-dev',
      iat: now,
      exp: now + 3600,
    });
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(decodeJwt(await issuer.issue({ sub: 'alice' })).jti).not.toBe(claims.jti);

    const principal = await verifierFor(issuer.jwks).verify(token);
    expect(principal.subject).toBe('alice');
    expect([...principal.scopes]).toEqual(['images:read', 'images:write']);
    expect(principal.expiresAt).toBe(now + 3600);
  });

  it('takes scope and ttlSeconds, counted from the injected clock', async () => {
    const issuer = await loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock);
    const token = await issuer.issue({ sub: 'admin', scope: 'images:admin', ttlSeconds: 60 });
    expect(decodeJwt(token)).toMatchObject({ scope: 'images:admin', exp: START / 1000 + 60 });
    const verifier = verifierFor(issuer.jwks);
    clock.set(START + 59_000);
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: 'admin' });
    clock.set(START + 60_000);
    await expect(verifier.verify(token)).rejects.toMatchObject({ code: 'invalid_token' });
  });

  it('reuses the key, so tokens survive a restart', async () => {
    const first = await loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock);
    const token = await first.issue({ sub: 'alice' });
    const second = await loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock);
    expect(second.jwks).toEqual(first.jwks);
    await expect(verifierFor(second.jwks).verify(token)).resolves.toMatchObject({ subject: 'alice' });
  });

  it('makes another key for another data dir', async () => {
    const other = await mkdtemp(join(tmpdir(), 'pixgate-dev-issuer-'));
    try {
      const a = await loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock);
      const b = await loadDevIssuer(other, ISSUER, AUDIENCE, clock);
      expect(b.jwks.keys[0]?.kid).not.toBe(a.jwks.keys[0]?.kid);
      const token = await b.issue({ sub: 'alice' });
      await expect(verifierFor(a.jwks).verify(token)).rejects.toMatchObject({ code: 'invalid_token' });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('ends with one key when several processes start at once', async () => {
    const issuers = await Promise.all(
      Array.from({ length: 6 }, () => loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock)),
    );
    const kids = new Set(issuers.map((issuer) => issuer.jwks.keys[0]?.kid));
    expect(kids.size).toBe(1);
    expect(await readdir(dataDir)).toEqual([DEV_ISSUER_KEY_FILE]);
  });

  it.each([
    ['not JSON', 'nope'],
    ['a public key only', JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'a', y: 'b' })],
    ['an RSA key', JSON.stringify({ kty: 'RSA', n: 'a', e: 'AQAB', d: 'c' })],
  ])('refuses a key file that holds %s, naming the file', async (_name, contents) => {
    const path = join(dataDir, DEV_ISSUER_KEY_FILE);
    await writeFile(path, contents);
    await expect(loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock)).rejects.toThrow(
      `${path} does not hold an ES256 (P-256) private JWK; delete it to create a new key`,
    );
    // The bad file is left for the user to look at, not silently replaced.
    expect(await readFile(path, 'utf8')).toBe(contents);
  });

  it('refuses a bad sub or ttlSeconds as programmer errors', async () => {
    const issuer = await loadDevIssuer(dataDir, ISSUER, AUDIENCE, clock);
    await expect(issuer.issue({ sub: '' })).rejects.toThrow(new TypeError('sub must be a non-empty string'));
    await expect(issuer.issue({ sub: 'a', ttlSeconds: 0 })).rejects.toThrow(
      new TypeError('Expected an integer >= 1 for ttlSeconds but received 0'),
    );
    await expect(issuer.issue({ sub: 'a', ttlSeconds: 1.5 })).rejects.toThrow(TypeError);
  });
});
