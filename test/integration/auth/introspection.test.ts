import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { synth } from '../../helpers/images.js';
import { type OidcProvider, startOidcProvider } from '../../helpers/oidc-provider.js';
import { startTestServer, type TestServer } from '../../helpers/pixgate.js';

/**
 * Opaque access tokens through RFC 7662 introspection, against oidc-provider's real endpoint.
 * Between pixgate and the provider sits a tiny pass-through proxy that counts introspection
 * requests and can play "down" (answer 503, or not at all): the provider itself cannot be asked
 * to fail on cue while its JWKS stays up, which the "JWTs keep working" case needs.
 */

let op: OidcProvider;
let proxy: Server;
let proxyUrl: string;
let server: TestServer;
let introspections = 0;
let mode: 'up' | 'error' | 'garbage' = 'up';
let photo: Buffer;

beforeAll(async () => {
  op = await startOidcProvider({ audience: 'https://pixgate.test' });
  proxy = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      introspections++;
      if (mode === 'error') {
        response.writeHead(503).end('down');
        return;
      }
      if (mode === 'garbage') {
        response.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>');
        return;
      }
      fetch(op.introspectionUrl, {
        method: 'POST',
        headers: {
          authorization: request.headers.authorization ?? '',
          'content-type': request.headers['content-type'] ?? '',
        },
        body: Buffer.concat(chunks),
      })
        .then(async (upstream) => {
          response.writeHead(upstream.status, { 'content-type': 'application/json' });
          response.end(Buffer.from(await upstream.arrayBuffer()));
        })
        .catch(() => response.writeHead(502).end());
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/introspect`;
  server = await startTestServer({
    issuer: op.issuer,
    audience: op.audience,
    jwksUrl: op.jwksUrl,
    introspectionUrl: proxyUrl,
    introspectionClientId: op.resourceServer.clientId,
    introspectionClientSecret: op.resourceServer.clientSecret,
  });
  photo = (await synth('png', 40, 30)).body;
});

afterAll(async () => {
  await server?.destroy();
  proxy?.closeAllConnections();
  await new Promise<void>((resolve) => proxy.close(() => resolve()));
  await op?.close();
});

beforeEach(() => {
  mode = 'up';
});

const upload = (token: string) =>
  fetch(`${server.url}/v1/images?visibility=private`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'image/png' },
    body: photo,
  });

const list = (token: string) =>
  fetch(`${server.url}/v1/images`, { headers: { authorization: `Bearer ${token}` } });

describe('opaque tokens (RFC 7662)', () => {
  it('are introspected: the principal is the client id, scopes from the answer; cached until exp', async () => {
    const token = await op.clientCredentialsToken({ format: 'opaque', scope: 'images:read images:write' });
    const before = introspections;
    const created = await upload(token);
    expect(created.status, await created.clone().text()).toBe(201);
    expect(((await created.json()) as { owner: string }).owner).toBe('app');
    expect((await list(token)).status).toBe(200);
    expect((await list(token)).status).toBe(200);
    expect(introspections - before).toBe(1);
  });

  it('refuse scopes the token lacks', async () => {
    const token = await op.clientCredentialsToken({ format: 'opaque', scope: 'images:read' });
    const refused = await upload(token);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('insufficient_scope');
  });

  it('answer 401 for an inactive (revoked or made-up) token, remembered briefly', async () => {
    const token = await op.clientCredentialsToken({ format: 'opaque', clientId: 'other-app' });
    await op.revoke(token, 'other-app');
    const before = introspections;
    for (let i = 0; i < 3; i++) {
      const response = await list(token);
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({
        error: { code: 'invalid_token', message: 'The access token is invalid or expired' },
      });
    }
    const garbage = 'not-a-real-token-at-all-0123456789';
    for (let i = 0; i < 3; i++) expect((await list(garbage)).status).toBe(401);
    // One question per token: the inactive answers were remembered.
    expect(introspections - before).toBe(2);
  });

  it('answer 503 while introspection is down, and JWTs keep working', async () => {
    const jwt = await op.clientCredentialsToken({ scope: 'images:read' });
    // Only opaque tokens are introspected: a JWT never reaches the endpoint, up or down.
    const before = introspections;
    expect((await list(jwt)).status).toBe(200);
    expect(introspections).toBe(before);
    for (const failure of ['error', 'garbage'] as const) {
      mode = failure;
      const opaque = await op.clientCredentialsToken({ format: 'opaque', scope: 'images:read' });
      const response = await list(opaque);
      expect(response.status, failure).toBe(503);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('unavailable');
      expect((await list(jwt)).status).toBe(200);
      // Not remembered: once introspection is back, the same token works.
      mode = 'up';
      expect((await list(opaque)).status).toBe(200);
    }
    expect(server.logs.join('\n')).not.toContain(op.resourceServer.clientSecret);
  });

  it('refuse an answer for another audience', async () => {
    const other = await startOidcProvider({ audience: 'https://elsewhere.test' });
    const elsewhere = await startTestServer({
      issuer: other.issuer,
      audience: 'https://pixgate.test',
      jwksUrl: other.jwksUrl,
      introspectionUrl: other.introspectionUrl,
      introspectionClientId: other.resourceServer.clientId,
      introspectionClientSecret: other.resourceServer.clientSecret,
    });
    try {
      const token = await other.clientCredentialsToken({ format: 'opaque', scope: 'images:read' });
      const response = await fetch(`${elsewhere.url}/v1/images`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(401);
    } finally {
      await elsewhere.destroy();
      await other.close();
    }
  });
});
