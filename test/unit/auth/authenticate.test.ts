import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../../src/auth/authenticate.js';
import { createTokenVerifier } from '../../../src/auth/jwt.js';
import type { TokenVerifier } from '../../../src/auth/token-verifier.js';

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'https://pixgate.test';
const NOW = Date.UTC(2030, 0, 1);
const OPAQUE = 'v9qE8wv0ixFU5oZql383FkciEokzbhg7zlp-VM3-OaG';

let jwt: TokenVerifier;
let token: string;

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  jwt = createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] } },
    requireAtJwt: false,
    clockSkewSeconds: 0,
    cacheSize: 10,
    clock: { now: () => NOW },
  });
  token = await new SignJWT({ sub: 'alice' })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setExpirationTime(NOW / 1000 + 600)
    .sign(privateKey);
});

// With introspection configured, which tokens go where is tested over HTTP against a real
// introspection endpoint: test/integration/auth/introspection.test.ts.
describe('createAuthenticator', () => {
  it('answers null (anonymous) for no credential', async () => {
    await expect(createAuthenticator({ jwt })({ kind: 'none' })).resolves.toBeNull();
  });

  it('verifies a bearer JWT from the header or the query', async () => {
    const auth = createAuthenticator({ jwt });
    for (const source of ['header', 'query'] as const) {
      await expect(auth({ kind: 'bearer', token, source })).resolves.toMatchObject({
        subject: 'alice',
      });
    }
  });

  it('refuses an opaque token with a 401 while introspection is not configured', async () => {
    const auth = createAuthenticator({ jwt });
    await expect(auth({ kind: 'bearer', token: OPAQUE, source: 'header' })).rejects.toMatchObject({
      code: 'invalid_token',
      status: 401,
      message: expect.stringContaining('(malformed: '),
    });
  });
});
