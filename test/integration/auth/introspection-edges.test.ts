import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createIntrospectionVerifier } from '../../../src/auth/introspection.js';
import { AppError } from '../../../src/errors.js';
import { startTestServer } from '../../helpers/pixgate.js';

/**
 * Edge cases of RFC 7662 answers that a real authorization server will not produce on demand:
 * a local HTTP server answers whatever each test sets (the happy path, revocation and outages
 * against oidc-provider are in introspection.test.ts). Time is an injected clock.
 */

let server: Server;
let url: string;
let answer: { status: number; body: string; delayMs?: number };
let requests: { authorization: string | undefined; body: string }[];
let now = Date.UTC(2026, 0, 1, 12, 0, 0);
const nowSeconds = () => Math.floor(now / 1000);

beforeAll(async () => {
  server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    request.on('end', () => {
      requests.push({ authorization: request.headers.authorization, body });
      const send = () =>
        response.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(() => {
  requests = [];
  now = Date.UTC(2026, 0, 1, 12, 0, 0);
});

const active = (claims: Record<string, unknown> = {}) => {
  answer = {
    status: 200,
    body: JSON.stringify({
      active: true,
      sub: 'alice',
      scope: 'images:read',
      aud: 'https://pixgate.test',
      iss: 'https://login.test',
      exp: nowSeconds() + 3600,
      ...claims,
    }),
  };
};

const verifier = (options: { timeoutMs?: number } = {}) =>
  createIntrospectionVerifier({
    url,
    clientId: 'pix gate:rs',
    clientSecret: 's3cr&t',
    audience: 'https://pixgate.test',
    issuer: 'https://login.test',
    clock: { now: () => now },
    ...options,
  });

async function refusal(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

describe('introspection answers', () => {
  it('asks with HTTP Basic (form-encoded id and secret) and the token in the form body', async () => {
    active();
    const principal = await verifier().verify('opaque+token/1');
    expect(principal).toMatchObject({ subject: 'alice', expiresAt: nowSeconds() + 3600 });
    expect(requests[0]?.authorization).toBe(
      `Basic ${Buffer.from('pix+gate%3Ars:s3cr%26t').toString('base64')}`,
    );
    expect(new URLSearchParams(requests[0]?.body)).toEqual(
      new URLSearchParams({ token: 'opaque+token/1', token_type_hint: 'access_token' }),
    );
  });

  it.each([
    ['another audience', { aud: 'https://elsewhere.test' }],
    ['another issuer', { iss: 'https://evil.test' }],
    ['a refresh token', { token_type: 'refresh_token' }],
    ['not valid yet', { nbf: Math.floor(Date.UTC(2026, 0, 1, 13) / 1000) }],
    ['expired', { exp: Math.floor(Date.UTC(2026, 0, 1, 11) / 1000) }],
    ['no subject', { sub: undefined, client_id: undefined }],
    // RFC 7662 §2.2: `active` is a boolean; only true is active.
    ['active missing', { active: undefined }],
    ['active as the string "true"', { active: 'true' }],
    ['active as 1', { active: 1 }],
  ])('refuses %s with the one 401', async (_name, claims) => {
    active(claims);
    const error = await refusal(verifier().verify('t'));
    expect(error.status).toBe(401);
    expect(error.code).toBe('invalid_token');
  });

  it('accepts an audience list naming us, and no aud at all', async () => {
    active({ aud: ['other', 'https://pixgate.test'] });
    await expect(verifier().verify('t')).resolves.toMatchObject({ subject: 'alice' });
    active({ aud: undefined, token_type: 'Bearer' });
    await expect(verifier().verify('t')).resolves.toMatchObject({ subject: 'alice' });
  });

  it('remembers an active answer until exp, at most 5 minutes', async () => {
    const v = verifier();
    active({ exp: nowSeconds() + 120 });
    await v.verify('short');
    now += 119_000;
    await v.verify('short');
    expect(requests).toHaveLength(1);
    now += 1000;
    active({ active: false });
    expect((await refusal(v.verify('short'))).status).toBe(401);
    expect(requests).toHaveLength(2);

    active({ exp: nowSeconds() + 86_400 });
    await v.verify('long');
    now += 299_000;
    await v.verify('long');
    expect(requests).toHaveLength(3);
    now += 1000;
    await v.verify('long');
    expect(requests).toHaveLength(4);
  });

  it('gives a token without exp the life of the cached answer', async () => {
    active({ exp: undefined });
    expect((await verifier().verify('t')).expiresAt).toBe(nowSeconds() + 300);
  });

  it('remembers an inactive answer for 10 seconds', async () => {
    const v = verifier();
    answer = { status: 200, body: '{"active":false}' };
    await refusal(v.verify('junk'));
    now += 9_999;
    await refusal(v.verify('junk'));
    expect(requests).toHaveLength(1);
    now += 1;
    await refusal(v.verify('junk'));
    expect(requests).toHaveLength(2);
  });

  it('asks once for concurrent verifications of one token', async () => {
    active();
    answer.delayMs = 50;
    const v = verifier();
    await Promise.all([v.verify('same'), v.verify('same'), v.verify('same')]);
    expect(requests).toHaveLength(1);
  });

  it.each([
    ['an error status', { status: 500, body: '{}' }],
    ['HTML', { status: 200, body: '<html></html>' }],
    ['a JSON array', { status: 200, body: '[]' }],
    ['no answer in time', { status: 200, body: '{"active":true}', delayMs: 500 }],
  ])('answers 503 for %s, and does not remember it', async (_name, failure) => {
    answer = failure;
    const v = verifier({ timeoutMs: 100 });
    const error = await refusal(v.verify('t'));
    expect(error.status).toBe(503);
    expect(error.code).toBe('unavailable');
    expect(error.publicMessage).not.toContain('s3cr');
    active();
    await expect(v.verify('t')).resolves.toMatchObject({ subject: 'alice' });
  });
});

describe('PIXGATE_TOKEN_CACHE_SIZE=0, documented as no token cache (regression)', () => {
  // main.ts passed the 0 on as the size of the introspection answers' LRU, which refuses a max
  // of 0: the server did not start at all once introspection was configured.
  it('starts with introspection configured, and asks about the token on every request', async () => {
    const pixgate = await startTestServer(
      {
        issuer: 'https://login.test',
        audience: 'https://pixgate.test',
        // Never fetched: an opaque token goes to introspection only.
        jwksUrl: url.replace('/introspect', '/jwks'),
        introspectionUrl: url,
        introspectionClientId: 'pixgate',
        introspectionClientSecret: 'secret',
        tokenCacheSize: 0,
      },
      { clock: { now: () => now } },
    );
    try {
      active();
      for (let i = 0; i < 3; i++) {
        const response = await fetch(`${pixgate.url}/v1/images`, {
          headers: { authorization: 'Bearer opaque-token-0123456789' },
        });
        expect(response.status, await response.text()).toBe(200);
      }
      expect(requests).toHaveLength(3);
    } finally {
      await pixgate.destroy();
    }
  });
});
