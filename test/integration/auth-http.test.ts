/**
 * Authentication over real HTTP (SPEC §3, §4 "Status codes, decided once"): the real server on
 * port 0, real token issuers (a jose-signed JWKS server for the edge cases, oidc-provider for the
 * real thing), and `fetch`. Every refusal is checked for its status, its exact JSON body,
 * `Cache-Control: no-store` and its exact `WWW-Authenticate` challenge.
 */
import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { messages } from '../../src/errors.js';
import { type JwksServer, type SignOptions, startJwksServer } from '../helpers/jwks-server.js';
import { rawRequest, uploadWithBodyHeld } from '../helpers/net.js';
import { type OidcProvider, startOidcProvider } from '../helpers/oidc-provider.js';
import { type Settings, startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';
import { type ResponseShape, shape } from '../helpers/response-shape.js';

const METRICS_TOKEN = 'metrics-secret-0123456789';
const READ_WRITE = 'images:read images:write';

const NO_CREDENTIAL_CHALLENGE = 'Bearer realm="pixgate"';
const INVALID_TOKEN_CHALLENGE = `Bearer realm="pixgate", error="invalid_token", error_description="${messages.invalidToken}"`;
const INVALID_TOKEN_BODY = JSON.stringify({
  error: { code: 'invalid_token', message: messages.invalidToken },
});
const MALFORMED_HEADER = 'The Authorization header must be: Bearer followed by one token';
const TOO_MANY = 'The request carries more than one explicit credential';
const QUERY_NOT_ALLOWED = 'The access_token parameter is accepted only on GET and HEAD of image URLs';
const UNAVAILABLE = 'Access tokens cannot be verified right now';

const insufficientScope = (scope: string) => ({
  message: `The access token needs the scope ${scope}`,
  challenge: `Bearer realm="pixgate", error="insufficient_scope", error_description="The access token needs the scope ${scope}", scope="${scope}"`,
});

const seconds = () => Math.floor(Date.now() / 1000);

let jpeg: Buffer;

beforeAll(async () => {
  jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a7' } })
    .jpeg()
    .toBuffer();
});

afterEach(() => {
  vi.useRealTimers();
});

/** A token from `issuer`, unique (jti) so that no test hits another test's cached verification. */
function sign(issuer: JwksServer, options: SignOptions = {}): Promise<string> {
  return issuer.sign({ ...options, claims: { jti: randomUUID(), ...options.claims } });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

interface Meta {
  id: string;
  owner?: string;
  visibility: string;
}

async function upload(server: TestServer, token: string, visibility = 'private'): Promise<Response> {
  return fetch(`${server.url}/v1/images?visibility=${visibility}`, {
    method: 'POST',
    headers: { ...bearer(token), 'content-type': 'image/jpeg' },
    body: jpeg,
  });
}

const uploaded = async (server: TestServer, token: string, visibility = 'private') =>
  (await uploadImage(server, token, jpeg, { visibility, type: 'image/jpeg' })) as unknown as Meta;

/**
 * The error contract: status, the exact JSON body, `no-store`, and the exact challenge (`null`:
 * none). Returns the raw body text, so callers can compare bodies byte for byte.
 */
async function expectError(
  response: Response,
  expected: { status: number; code: string; message: string; challenge?: string | null },
): Promise<string> {
  const text = await response.text();
  expect({ status: response.status, body: text }).toEqual({
    status: expected.status,
    body: JSON.stringify({ error: { code: expected.code, message: expected.message } }),
  });
  expect(response.headers.get('cache-control')).toBe('no-store');
  expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
  if (expected.challenge !== undefined) {
    expect(response.headers.get('www-authenticate')).toBe(expected.challenge);
  }
  return text;
}

const expectInvalidToken = (response: Response) =>
  expectError(response, {
    status: 401,
    code: 'invalid_token',
    message: messages.invalidToken,
    challenge: INVALID_TOKEN_CHALLENGE,
  });

/** One counter value from the Prometheus text (0 when the series does not exist yet). */
function counter(metrics: string, series: string): number {
  const line = metrics.split('\n').find((each) => each.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('authentication over HTTP', () => {
  let issuer: JwksServer;
  let server: TestServer;
  let alice: string;
  let privateImage: Meta;
  let publicImage: Meta;
  let imageUrl: string;

  beforeAll(async () => {
    issuer = await startJwksServer({ now: () => Date.now() });
    server = await startTestServer({
      issuer: issuer.issuer,
      audience: issuer.audience,
      jwksUrl: issuer.jwksUrl,
      metricsToken: METRICS_TOKEN,
    });
    alice = await sign(issuer, { claims: { sub: 'alice', scope: READ_WRITE } });
    privateImage = await uploaded(server, alice);
    publicImage = await uploaded(
      server,
      await sign(issuer, { claims: { sub: 'bob', scope: READ_WRITE } }),
      'public',
    );
    imageUrl = `${server.url}/v1/images/${privateImage.id}`;
  });

  afterAll(async () => {
    await server?.destroy();
    await issuer?.close();
  });

  describe('no credential', () => {
    it.each([
      ['GET', '/v1/images/PRIVATE'],
      ['GET', '/v1/images/PRIVATE/meta'],
      ['HEAD', '/v1/images/PRIVATE'],
      ['GET', '/v1/images'],
      ['POST', '/v1/images'],
      ['DELETE', '/v1/images/PRIVATE'],
    ])('%s %s is a 401 with a challenge without an error attribute (RFC 6750 §3.1)', async (method, path) => {
      const response = await fetch(`${server.url}${path.replace('PRIVATE', privateImage.id)}`, { method });
      if (method === 'HEAD') {
        expect(response.status).toBe(401);
        expect(response.headers.get('www-authenticate')).toBe(NO_CREDENTIAL_CHALLENGE);
        expect(response.headers.get('cache-control')).toBe('no-store');
        return;
      }
      await expectError(response, {
        status: 401,
        code: 'unauthenticated',
        message: messages.unauthenticated,
        challenge: NO_CREDENTIAL_CHALLENGE,
      });
    });

    it('is not needed for a public image', async () => {
      const response = await fetch(`${server.url}/v1/images/${publicImage.id}?w=16`);
      expect(response.status).toBe(200);
      expect(response.headers.get('www-authenticate')).toBeNull();
    });
  });

  describe('malformed credentials (400 invalid_request)', () => {
    const malformed = {
      status: 400,
      code: 'invalid_request',
      message: MALFORMED_HEADER,
      challenge: `Bearer realm="pixgate", error="invalid_request", error_description="${MALFORMED_HEADER}"`,
    };

    it.each([
      ['another scheme', () => 'Basic YWxpY2U6cGFzc3dvcmQ='],
      ['another scheme with a JWT', (token: string) => `Token ${token}`],
      ['Bearer alone', () => 'Bearer'],
      ['an empty header', () => ''],
      ['two tokens', (token: string) => `Bearer ${token} ${token}`],
      ['two Bearer credentials in one header', (token: string) => `Bearer ${token}, Bearer ${token}`],
      ['a comma in the token', (token: string) => `Bearer ${token},x`],
      ['a quoted token', (token: string) => `Bearer "${token}"`],
      ['a non-ASCII character', () => 'Bearer abc\u00e9def'],
      ['the scheme without a space', (token: string) => `Bearer${token}`],
    ])('%s', async (_name, header) => {
      const response = await fetch(imageUrl, { headers: { authorization: header(alice) } });
      const body = await expectError(response, malformed);
      expect(body).not.toContain(alice);
    });

    it('takes the scheme case-insensitively (RFC 9110 §11.1)', async () => {
      const response = await fetch(imageUrl, { headers: { authorization: `bEARER ${alice}` } });
      expect(response.status).toBe(200);
    });

    it('refuses two Authorization header lines, even with one valid token', async () => {
      // Node keeps only the first of repeated Authorization lines; a proxy in front may keep the
      // last, and the two would disagree on who is asking.
      const path = `/v1/images/${privateImage.id}`;
      const twice = await rawRequest(server.url, [
        `GET ${path} HTTP/1.1`,
        `Authorization: Bearer ${alice}`,
        'Authorization: Bearer not-alice',
      ]);
      expect(twice).toMatchObject({
        status: 400,
        body: JSON.stringify({ error: { code: 'invalid_request', message: TOO_MANY } }),
      });
      const once = await rawRequest(server.url, [`GET ${path} HTTP/1.1`, `Authorization: Bearer ${alice}`]);
      expect(once.status).toBe(200);
    });

    const tooMany = {
      status: 400,
      code: 'invalid_request',
      message: TOO_MANY,
      challenge: `Bearer realm="pixgate", error="invalid_request", error_description="${TOO_MANY}"`,
    };

    it('refuses the header and the access_token parameter at once, equal', async () => {
      const response = await fetch(`${imageUrl}?access_token=${alice}`, { headers: bearer(alice) });
      await expectError(response, tooMany);
    });

    it('refuses the header and the access_token parameter at once, different', async () => {
      const other = await sign(issuer, { claims: { sub: 'mallory' } });
      const response = await fetch(`${imageUrl}?access_token=${other}`, { headers: bearer(alice) });
      await expectError(response, tooMany);
    });

    it('refuses access_token twice, equal or not', async () => {
      await expectError(await fetch(`${imageUrl}?access_token=${alice}&access_token=${alice}`), tooMany);
      await expectError(await fetch(`${imageUrl}?access_token=${alice}&access_token=x`), tooMany);
    });

    it('refuses an empty access_token', async () => {
      const message = 'The access_token parameter is empty';
      await expectError(await fetch(`${imageUrl}?access_token=`), {
        status: 400,
        code: 'invalid_request',
        message,
        challenge: `Bearer realm="pixgate", error="invalid_request", error_description="${message}"`,
      });
    });

    it.each([
      ['GET', '/v1/images/PRIVATE/meta'],
      ['GET', '/v1/images'],
      ['POST', '/v1/images'],
      ['PATCH', '/v1/images/PRIVATE'],
      ['DELETE', '/v1/images/PRIVATE'],
    ])('refuses access_token on %s %s (images only, SPEC §3.2)', async (method, path) => {
      const url = `${server.url}${path.replace('PRIVATE', privateImage.id)}?access_token=${alice}`;
      const response = await fetch(url, { method });
      const body = await expectError(response, {
        status: 400,
        code: 'invalid_request',
        message: QUERY_NOT_ALLOWED,
        challenge: `Bearer realm="pixgate", error="invalid_request", error_description="${QUERY_NOT_ALLOWED}"`,
      });
      expect(body).not.toContain(alice);
    });
  });

  describe('bad tokens (401 invalid_token, one answer for every reason)', () => {
    const now = seconds;
    const cases: Array<[string, string, () => Promise<string>]> = [
      ['expired', 'expired', () => sign(issuer, { claims: { exp: now() - 3600 } })],
      ['another audience', 'audience', () => sign(issuer, { claims: { aud: 'https://other.test' } })],
      ['another issuer', 'issuer', () => sign(issuer, { claims: { iss: 'https://evil.test' } })],
      ['nbf in the future', 'not_before', () => sign(issuer, { claims: { nbf: now() + 3600 } })],
      ['an unknown kid', 'unknown_kid', () => sign(issuer, { key: 'next' })],
      ['a rogue key under a known kid', 'signature', () => sign(issuer, { key: 'rogue' })],
      ['a rogue RSA key under a known kid', 'signature', () => sign(issuer, { alg: 'RS256', key: 'rogue' })],
      ['alg none', 'alg', async () => issuer.unsigned({ sub: 'alice' })],
      ['HS256 signed with the public key', 'alg', () => issuer.hs256WithPublicKey({ sub: 'alice' })],
      ['garbage in three parts', 'malformed', async () => 'abc.def.ghi'],
      ['an opaque token', 'malformed', async () => 'f7c3bc1d808e04732adf679965ccc34ca7ae3441'],
      ['a typ that is not an access token', 'typ', () => sign(issuer, { header: { typ: 'dpop+jwt' } })],
      ['neither sub nor client_id', 'no_subject', () => sign(issuer, { claims: { sub: undefined } })],
    ];

    // Every refusal must look exactly like this one, down to the headers.
    let reference: ResponseShape;

    beforeAll(async () => {
      reference = await shape(await fetch(imageUrl, { headers: bearer('not-a-jwt') }));
    });

    it('answers the one body and challenge', () => {
      expect(reference.status).toBe(401);
      expect(reference.body).toBe(INVALID_TOKEN_BODY);
      expect(Object.fromEntries(reference.headers)).toMatchObject({
        'cache-control': 'no-store',
        'content-type': 'application/json; charset=utf-8',
        'www-authenticate': INVALID_TOKEN_CHALLENGE,
      });
    });

    it.each(cases)('%s: byte-identical 401, counted as %s', async (_name, reason, makeToken) => {
      const token = await makeToken();
      const series = `pixgate_auth_failures_total{reason="${reason}"}`;
      const before = counter(await metricsText(), series);

      const response = await fetch(imageUrl, { headers: bearer(token) });
      expect(await shape(response)).toEqual(reference);

      // The reason is told to the operator only (SPEC §4: one message for all).
      expect(counter(await metricsText(), series)).toBe(before + 1);
    });

    it.each(cases)('%s in the access_token parameter: the same 401', async (_name, _reason, makeToken) => {
      const token = await makeToken();
      const response = await fetch(`${imageUrl}?access_token=${encodeURIComponent(token)}`);
      await expectInvalidToken(response);
    });

    it('is not a 404 for an image that does not exist (the token is judged first)', async () => {
      const token = await sign(issuer, { claims: { exp: seconds() - 3600 } });
      await expectInvalidToken(
        await fetch(`${server.url}/v1/images/AAAAAAAAAAAAAAAAAAAAAA`, { headers: bearer(token) }),
      );
    });

    it('refuses a bad token on upload before reading the body', async () => {
      const token = await sign(issuer, { key: 'rogue', claims: { scope: READ_WRITE } });
      await expectInvalidToken(await upload(server, token));
      // Half the announced body is sent and the rest held back: the refusal comes anyway.
      const answer = await uploadWithBodyHeld(
        server.url,
        token,
        jpeg.length,
        jpeg.subarray(0, jpeg.length >> 1),
      );
      expect(answer.status).toBe(401);
      expect(answer.body).toBe(INVALID_TOKEN_BODY);
      expect(answer.headers['www-authenticate']).toBe(INVALID_TOKEN_CHALLENGE);
      expect(answer.headers.connection).toBe('close');
    });
  });

  describe('good tokens', () => {
    it.each(['RS256', 'ES256'] as const)('%s: 200 with the original bytes for the owner', async (alg) => {
      const token = await sign(issuer, { alg, claims: { sub: 'alice' } });
      const response = await fetch(imageUrl, { headers: bearer(token) });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/jpeg');
      expect(Buffer.from(await response.arrayBuffer()).equals(jpeg)).toBe(true);
    });

    it.each([
      ['at+jwt', 'at+jwt'],
      ['application/at+jwt', 'application/at+jwt'],
      ['plain JWT', 'JWT'],
      ['no typ', undefined],
    ])('typ %s is accepted while requireAtJwt is off', async (_name, typ) => {
      const token = await sign(issuer, { claims: { sub: 'alice' }, header: { typ } });
      expect((await fetch(imageUrl, { headers: bearer(token) })).status).toBe(200);
    });
  });

  describe('scopes', () => {
    it('images:read cannot upload: 403 insufficient_scope naming images:write', async () => {
      const token = await sign(issuer, { claims: { sub: 'alice', scope: 'images:read' } });
      await expectError(await upload(server, token), {
        status: 403,
        code: 'insufficient_scope',
        ...insufficientScope('images:write'),
      });
    });

    it('images:read cannot change an image either', async () => {
      const token = await sign(issuer, { claims: { sub: 'alice', scope: 'images:read' } });
      const response = await fetch(imageUrl, { method: 'DELETE', headers: bearer(token) });
      await expectError(response, {
        status: 403,
        code: 'insufficient_scope',
        ...insufficientScope('images:write'),
      });
    });

    it.each([
      ['its own private image', () => imageUrl],
      ['a public image', () => `${server.url}/v1/images/${publicImage.id}`],
      ['its own meta', () => `${imageUrl}/meta`],
      ['its list', () => `${server.url}/v1/images`],
    ])('scope "openid profile" cannot view %s: 403 naming images:read', async (_name, url) => {
      const token = await sign(issuer, { claims: { sub: 'alice', scope: 'openid profile' } });
      await expectError(await fetch(url(), { headers: bearer(token) }), {
        status: 403,
        code: 'insufficient_scope',
        ...insufficientScope('images:read'),
      });
    });

    it('no scope claim at all: images:read, so it views public images and its own, and cannot upload', async () => {
      const token = await sign(issuer, { claims: { sub: 'alice' } });
      expect((await fetch(imageUrl, { headers: bearer(token) })).status).toBe(200);
      const meta = await fetch(`${imageUrl}/meta`, { headers: bearer(token) });
      expect(meta.status).toBe(200);
      expect(await meta.json()).toMatchObject({ id: privateImage.id, owner: 'alice' });
      const other = await fetch(`${server.url}/v1/images/${publicImage.id}?w=16`, { headers: bearer(token) });
      expect(other.status).toBe(200);
      await expectError(await upload(server, token), {
        status: 403,
        code: 'insufficient_scope',
        ...insufficientScope('images:write'),
      });
    });

    it('scp as an array grants what it lists', async () => {
      const token = await sign(issuer, { claims: { sub: 'carol', scp: ['images:read', 'images:write'] } });
      const meta = await uploaded(server, token);
      expect(meta.owner).toBe('carol');
      const readOnly = await sign(issuer, { claims: { sub: 'carol', scp: ['images:read'] } });
      expect((await fetch(`${server.url}/v1/images/${meta.id}`, { headers: bearer(readOnly) })).status).toBe(
        200,
      );
      expect((await upload(server, readOnly)).status).toBe(403);
    });

    it('scp as a space-separated string works too', async () => {
      const token = await sign(issuer, { claims: { sub: 'carol', scp: READ_WRITE } });
      expect((await upload(server, token)).status).toBe(201);
    });

    it('client_id without sub becomes the owner (client credentials)', async () => {
      const token = await sign(issuer, {
        claims: { sub: undefined, client_id: 'svc-backup', scope: READ_WRITE },
      });
      const meta = await uploaded(server, token);
      expect(meta.owner).toBe('svc-backup');
      const list = await fetch(`${server.url}/v1/images?owner=me`, { headers: bearer(token) });
      expect(((await list.json()) as { items: Meta[] }).items.map((item) => item.id)).toEqual([meta.id]);
    });

    it('another user with a good token gets 404 for a private image, not 401 or 403', async () => {
      const token = await sign(issuer, { claims: { sub: 'mallory', scope: READ_WRITE } });
      await expectError(await fetch(imageUrl, { headers: bearer(token) }), {
        status: 404,
        code: 'not_found',
        message: messages.notFound,
        challenge: null,
      });
    });
  });

  describe('the access_token query parameter (RFC 6750 §2.3)', () => {
    it('works on GET of the image, answered private, no-store, with no Referer', async () => {
      const response = await fetch(`${imageUrl}?access_token=${alice}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('private, no-store');
      expect(response.headers.get('referrer-policy')).toBe('no-referrer');
      expect(Buffer.from(await response.arrayBuffer()).equals(jpeg)).toBe(true);
    });

    it('works with transform parameters and on HEAD', async () => {
      for (const method of ['GET', 'HEAD']) {
        const response = await fetch(`${imageUrl}?w=32&access_token=${alice}&format=png`, { method });
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toBe('image/png');
        expect(response.headers.get('cache-control')).toBe('private, no-store');
        expect(response.headers.get('referrer-policy')).toBe('no-referrer');
        if (method === 'GET') {
          expect(await sharp(Buffer.from(await response.arrayBuffer())).metadata()).toMatchObject({
            width: 32,
          });
        }
      }
    });

    it('keeps even a public image out of every cache', async () => {
      const url = `${server.url}/v1/images/${publicImage.id}?w=16`;
      expect((await fetch(url, { headers: bearer(alice) })).headers.get('cache-control')).toMatch(
        /^public, /,
      );
      expect((await fetch(`${url}&access_token=${alice}`)).headers.get('cache-control')).toBe(
        'private, no-store',
      );
    });

    it('is not mistaken for a transform parameter', async () => {
      const response = await fetch(`${imageUrl}?access_token=${alice}&w=16`);
      expect(response.status).toBe(200);
    });
  });

  describe('logs', () => {
    it('never hold a token, redact access_token, and have one request line per request', async () => {
      const from = server.logs.length;
      const bad = await sign(issuer, { claims: { sub: 'alice', exp: seconds() - 3600 } });
      const cookieToken = await sign(issuer, { claims: { sub: 'alice' } });
      const encodedName = await sign(issuer, { claims: { sub: 'alice' } });
      const tokens = [alice, bad, cookieToken, encodedName];

      const requests: Array<[string, RequestInit, number]> = [
        [imageUrl, { headers: bearer(alice) }, 200],
        [`${imageUrl}?access_token=${alice}`, {}, 200],
        [`${imageUrl}?w=16&access_token=${alice}`, { method: 'HEAD' }, 200],
        [imageUrl, { headers: bearer(bad) }, 401],
        [`${imageUrl}?access_token=${bad}`, {}, 401],
        [`${imageUrl}?access_token=${alice}`, { headers: bearer(bad) }, 400],
        // Cookies are no credential here (no session exists): anonymous, and never logged.
        [imageUrl, { headers: { cookie: `session=${cookieToken}; access_token=${cookieToken}` } }, 401],
        // The same parameter name, percent-encoded: URLSearchParams decodes it to access_token.
        [`${imageUrl}?access%5Ftoken=${encodedName}`, {}, 200],
        [`${imageUrl}/meta?access_token=${alice}`, {}, 400],
        // URLSearchParams drops one leading `?`: this is an access_token too.
        [`${imageUrl}??access_token=${alice}`, {}, 200],
      ];
      for (const [url, init, status] of requests) {
        const response = await fetch(url, init);
        await response.arrayBuffer();
        expect(response.status, url).toBe(status);
      }

      const lines = () => server.logs.slice(from).map((line) => JSON.parse(line) as Record<string, unknown>);
      const requestLines = () => lines().filter((line) => line.msg === 'request');
      // The line is written once the response has finished, which may be after fetch resolved.
      await vi.waitFor(() => expect(requestLines()).toHaveLength(requests.length));

      const text = server.logs.slice(from).join('\n');
      for (const token of tokens) {
        // Each part on its own too: payload and signature are what would let someone replay it.
        for (const part of [token, ...token.split('.').slice(1)]) expect(text).not.toContain(part);
      }

      const reqIds = requestLines().map((line) => line.reqId);
      expect(new Set(reqIds).size).toBe(requests.length);
      const urls = requestLines().map((line) => line.url);
      expect(urls).toEqual([
        `/v1/images/${privateImage.id}`,
        `/v1/images/${privateImage.id}?access_token=[redacted]`,
        `/v1/images/${privateImage.id}?w=16&access_token=[redacted]`,
        `/v1/images/${privateImage.id}`,
        `/v1/images/${privateImage.id}?access_token=[redacted]`,
        `/v1/images/${privateImage.id}?access_token=[redacted]`,
        `/v1/images/${privateImage.id}`,
        `/v1/images/${privateImage.id}?access%5Ftoken=[redacted]`,
        `/v1/images/${privateImage.id}/meta?access_token=[redacted]`,
        `/v1/images/${privateImage.id}??access_token=[redacted]`,
      ]);
      expect(requestLines().map((line) => line.status)).toEqual(requests.map(([, , status]) => status));
      // The reason for a refusal is for the operator, in the log line.
      expect(requestLines()[3]).toMatchObject({
        code: 'invalid_token',
        detail: expect.stringContaining('expired'),
      });
    });
  });

  describe('URLs the router cannot take, with a token in them (regression)', () => {
    // Fastify answered these itself, before any hook: its own JSON shape, no no-store, no log
    // line, and the whole URL echoed in the body, access_token and all.
    it.each([
      ['a bad percent-encoding', '/v1/images/%E0%A4%A', 400, 'invalid_request', 'The URL is malformed'],
      [
        'a path segment longer than any id',
        `/v1/images/${'a'.repeat(150)}`,
        404,
        'not_found',
        'No such route',
      ],
    ])(
      '%s: our JSON error, without the token, and one redacted log line',
      async (_name, path, status, code, message) => {
        const token = await sign(issuer, { claims: { sub: 'alice' } });
        const from = server.logs.length;
        const response = await fetch(`${server.url}${path}?access_token=${token}`);
        expect(response.headers.get('referrer-policy')).toBe('no-referrer');
        const body = await expectError(response, { status, code, message });
        expect(body).not.toContain(token);

        const requestLines = () => server.logs.slice(from).filter((line) => line.includes('"msg":"request"'));
        await vi.waitFor(() => expect(requestLines()).toHaveLength(1));
        expect(JSON.parse(requestLines()[0] as string)).toMatchObject({
          url: `${path}?access_token=[redacted]`,
          status,
          code,
        });
        expect(server.logs.slice(from).join('\n')).not.toContain(token.split('.')[2]);
      },
    );
  });

  describe('metrics', () => {
    it('needs the metrics token when one is set', async () => {
      const unauthenticated = {
        status: 401,
        code: 'unauthenticated',
        message: 'The metrics token is required',
        challenge: 'Bearer realm="pixgate-metrics"',
      };
      await expectError(await fetch(`${server.url}/metrics`), unauthenticated);
      await expectError(await fetch(`${server.url}/metrics`, { headers: bearer('wrong') }), unauthenticated);
      await expectError(await fetch(`${server.url}/metrics`, { headers: bearer(alice) }), unauthenticated);
      await expectError(await fetch(`${server.url}/metrics?access_token=${METRICS_TOKEN}`), unauthenticated);
      const response = await fetch(`${server.url}/metrics`, { headers: bearer(METRICS_TOKEN) });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    });

    it('count failures by reason, with no token or id in any label', async () => {
      const text = await metricsText();
      for (const reason of [
        'expired',
        'audience',
        'issuer',
        'not_before',
        'unknown_kid',
        'signature',
        'alg',
        'malformed',
        'typ',
      ]) {
        expect(counter(text, `pixgate_auth_failures_total{reason="${reason}"}`), reason).toBeGreaterThan(0);
      }
      expect(text).not.toContain(alice);
      expect(text).not.toContain(privateImage.id);
      expect(text).toContain('route="/v1/images/:id"');
    });
  });

  async function metricsText(): Promise<string> {
    const response = await fetch(`${server.url}/metrics`, { headers: bearer(METRICS_TOKEN) });
    expect(response.status).toBe(200);
    return response.text();
  }
});

describe('requireAtJwt: true', () => {
  let issuer: JwksServer;
  let server: TestServer;

  beforeAll(async () => {
    issuer = await startJwksServer({ now: () => Date.now() });
    server = await startTestServer({
      issuer: issuer.issuer,
      audience: issuer.audience,
      jwksUrl: issuer.jwksUrl,
      requireAtJwt: true,
    });
  });

  afterAll(async () => {
    await server?.destroy();
    await issuer?.close();
  });

  it.each(['at+jwt', 'application/at+jwt', 'AT+JWT'])('accepts typ %s', async (typ) => {
    const token = await sign(issuer, { header: { typ } });
    expect((await fetch(`${server.url}/v1/images`, { headers: bearer(token) })).status).toBe(200);
  });

  it.each([
    ['JWT', 'JWT'],
    ['application/jwt', 'application/jwt'],
    ['absent', undefined],
  ])('refuses typ %s with the one 401', async (_name, typ) => {
    const token = await sign(issuer, { header: { typ } });
    await expectInvalidToken(await fetch(`${server.url}/v1/images`, { headers: bearer(token) }));
  });

  it('leaves /metrics open without a metrics token, counting typ failures', async () => {
    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(200);
    expect(counter(await response.text(), 'pixgate_auth_failures_total{reason="typ"}')).toBe(3);
  });
});

describe('verified-token cache', () => {
  let issuer: JwksServer;
  let server: TestServer;

  beforeAll(async () => {
    issuer = await startJwksServer({ now: () => Date.now() });
    server = await startTestServer({
      issuer: issuer.issuer,
      audience: issuer.audience,
      jwksUrl: issuer.jwksUrl,
    });
  });

  afterAll(async () => {
    await server?.destroy();
    await issuer?.close();
  });

  it('answers a repeated token without a JWKS request, where a new token needs one', async () => {
    // Only Date is faked: jose's JWKS max age (10 min) and the server's clock read it.
    vi.useFakeTimers({ toFake: ['Date'] });
    const list = (token: string) => fetch(`${server.url}/v1/images`, { headers: bearer(token) });
    const token = await sign(issuer, { claims: { exp: seconds() + 86_400 } });
    expect((await list(token)).status).toBe(200);
    const fetched = issuer.requests;
    expect(fetched).toBeGreaterThan(0);

    // Past the JWKS max age: any verification now refetches the key set, so only a cache hit
    // can answer without a JWKS request.
    vi.setSystemTime(Date.now() + 11 * 60 * 1000);
    expect((await list(token)).status).toBe(200);
    expect(issuer.requests).toBe(fetched);

    const fresh = await sign(issuer, { claims: { exp: seconds() + 86_400 } });
    expect((await list(fresh)).status).toBe(200);
    expect(issuer.requests).toBe(fetched + 1);
  });
});

describe('JWKS outage (fail closed)', () => {
  // PIXGATE_JWKS_COOLDOWN_SECONDS's default.
  const COOLDOWN_SECONDS = 30;
  // The server's Date (jose's JWKS timing reads it), moved forward only, across these tests.
  let shiftMs = 0;
  const later = (seconds: number) => {
    shiftMs += seconds * 1000;
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(vi.getRealSystemTime() + shiftMs);
  };
  let issuer: JwksServer;
  let server: TestServer;
  const list = (token: string) => fetch(`${server.url}/v1/images`, { headers: bearer(token) });

  beforeAll(async () => {
    issuer = await startJwksServer({ now: () => Date.now() });
    issuer.setFailing('status');
    server = await startTestServer({
      issuer: issuer.issuer,
      audience: issuer.audience,
      jwksUrl: issuer.jwksUrl,
    });
  });

  afterAll(async () => {
    await server?.destroy();
    await issuer?.close();
  });

  it.each(['status', 'close', 'invalid_json'] as const)(
    'answers 503 unavailable, never 200, while no key was ever fetched (%s)',
    async (mode) => {
      // Past the cooldown that follows the previous case's failed fetch.
      later(COOLDOWN_SECONDS + 1);
      issuer.setFailing(mode);
      const before = issuer.requests;
      for (const alg of ['ES256', 'RS256'] as const) {
        const response = await list(await sign(issuer, { alg }));
        await expectError(response, { status: 503, code: 'unavailable', message: UNAVAILABLE });
      }
      // One JWKS request: a failed fetch is not tried again within the cooldown.
      expect(issuer.requests - before).toBe(1);
    },
  );

  it('recovers once the JWKS answers, and keeps known kids working through a later outage', async () => {
    later(0);
    issuer.setFailing(false);
    const token = await sign(issuer, { claims: { exp: seconds() + 86_400 } });
    // Within the cooldown after the last failed fetch the issuer is not asked again...
    await expectError(await list(token), { status: 503, code: 'unavailable', message: UNAVAILABLE });
    // ...after it, the token refused during the outage is not remembered as bad.
    later(COOLDOWN_SECONDS + 1);
    expect((await list(token)).status).toBe(200);

    issuer.setFailing('status');
    // Past jose's JWKS max age and the cooldown: the next verification tries to refetch, once;
    // the last good key set decides meanwhile.
    later(11 * 60);
    const before = issuer.requests;
    for (const alg of ['ES256', 'RS256'] as const) {
      const known = await sign(issuer, { alg, claims: { exp: seconds() + 3600 } });
      expect((await list(known)).status).toBe(200);
    }
    expect(issuer.requests - before).toBe(1);
    // A rogue key under a known kid is still a bad signature, not a 503...
    await expectInvalidToken(await list(await sign(issuer, { key: 'rogue' })));
    // ...but a kid the last good set lacks may be in the set we cannot read: 503, not 401.
    const unknown = await sign(issuer, { key: 'next' });
    await expectError(await list(unknown), { status: 503, code: 'unavailable', message: UNAVAILABLE });
  });

  it('counts the outage in the metrics', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(counter(text, 'pixgate_auth_failures_total{reason="jwks_unavailable"}')).toBeGreaterThanOrEqual(7);
  });
});

describe('with a real OpenID provider (oidc-provider)', () => {
  let provider: OidcProvider;
  let server: TestServer;

  beforeAll(async () => {
    provider = await startOidcProvider();
    const settings: Settings = {
      issuer: provider.issuer,
      audience: provider.audience,
      jwksUrl: provider.jwksUrl,
      requireAtJwt: true,
    };
    server = await startTestServer(settings);
  });

  afterAll(async () => {
    await server?.destroy();
    await provider?.close();
  });

  it('a client-credentials JWT access token uploads and reads an image, owned by the client', async () => {
    const token = await provider.clientCredentialsToken({ scope: READ_WRITE });
    const meta = await uploaded(server, token);
    expect(meta.owner).toBe('app');

    const image = await fetch(`${server.url}/v1/images/${meta.id}`, { headers: bearer(token) });
    expect(image.status).toBe(200);
    expect(Buffer.from(await image.arrayBuffer()).equals(jpeg)).toBe(true);

    // Another client of the same provider is another principal.
    const other = await provider.clientCredentialsToken({ clientId: 'other-app', scope: 'images:read' });
    expect((await fetch(`${server.url}/v1/images/${meta.id}`, { headers: bearer(other) })).status).toBe(404);
  });

  it("a token for the provider's other resource (opaque, no introspection configured) is a 401", async () => {
    const token = await provider.clientCredentialsToken({ format: 'opaque' });
    await expectInvalidToken(await fetch(`${server.url}/v1/images`, { headers: bearer(token) }));
  });
});
