import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startHttpOrigin, type TestHttpOrigin } from '../helpers/http-origin.js';
import { synth } from '../helpers/images.js';
import { closedPort, startSwitchableProxy, uploadWithBodyHeld } from '../helpers/net.js';
import { type OidcProvider, startOidcProvider } from '../helpers/oidc-provider.js';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3 } from '../helpers/s3rver.js';

/**
 * pixgate over real HTTP with its originals in a real S3 server (s3rver) and behind a real
 * authenticated HTTP origin whose OAuth tokens come from a real oidc-provider: uploads,
 * registering, SSRF attempts, failures as the caller sees them, and the log lines they leave.
 */

const auth = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${token}`,
  ...extra,
});

async function call(server: TestServer, path: string, init: RequestInit = {}) {
  const response = await fetch(`${server.url}${path}`, init);
  const body = Buffer.from(await response.arrayBuffer());
  const json = (response.headers.get('content-type') ?? '').includes('json')
    ? (JSON.parse(body.toString()) as Record<string, unknown> & { error?: { code: string; message: string } })
    : undefined;
  return { status: response.status, headers: response.headers, body, json };
}

function register(server: TestServer, token: string, payload: unknown) {
  return call(server, '/v1/images', {
    method: 'POST',
    headers: auth(token, { 'content-type': 'application/json' }),
    body: JSON.stringify(payload),
  });
}

const HOSTILE_KEYS = [
  '../secret.jpg',
  'lib/../../secret.jpg',
  '%2e%2e/secret.jpg',
  '..%2fsecret.jpg',
  '/etc/passwd',
  '//evil.test/x.jpg',
  'http://169.254.169.254/latest/meta-data/',
  'file:///etc/passwd',
  'photos\\..\\secret.jpg',
  '',
];

describe('S3 origin', () => {
  let s3: TestS3;
  let server: TestServer;
  let admin: string;
  let alice: string;
  let jpeg: Buffer;

  beforeAll(async () => {
    s3 = await startS3rver(['library']);
    vi.stubEnv('AWS_ACCESS_KEY_ID', S3RVER_CREDENTIALS.accessKeyId);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', S3RVER_CREDENTIALS.secretAccessKey);
    server = await startTestServer({
      dev: true,
      storage: 's3://library/pixgate',
      cache: 's3://library/variants',
      s3Endpoint: s3.endpoint,
      s3Region: s3.region,
      s3ForcePathStyle: true,
    });
    admin = await server.token('root', 'images:admin');
    alice = await server.token('alice', 'images:write');
    jpeg = (await synth('jpeg', 640, 480)).body;
  });
  afterAll(async () => {
    await server?.destroy();
    await s3?.close();
    vi.unstubAllEnvs();
  });

  it('stores an upload in the bucket byte for byte and serves variants from it', async () => {
    const created = await call(server, '/v1/images', {
      method: 'POST',
      headers: auth(alice, { 'content-type': 'image/jpeg' }),
      body: jpeg,
    });
    expect(created.status).toBe(201);
    const id = created.json?.id as string;
    const stored = await s3.client.send(
      new GetObjectCommand({ Bucket: 'library', Key: `pixgate/${id.slice(0, 2)}/${id}` }),
    );
    const bytes = Buffer.from(
      await (stored.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    expect(bytes.equals(jpeg)).toBe(true);

    const variant = await call(server, `/v1/images/${id}?w=100&format=webp`, { headers: auth(alice) });
    expect(variant.status).toBe(200);
    expect((await sharp(variant.body).metadata()).width).toBe(100);
    const original = await call(server, `/v1/images/${id}`, { headers: auth(alice) });
    expect(original.body.equals(jpeg)).toBe(true);
  });

  it('registers an object already in the bucket, for an owner, without copying it', async () => {
    await s3.client.send(
      new PutObjectCommand({ Bucket: 'library', Key: 'pixgate/2019/beach.jpg', Body: jpeg }),
    );
    const created = await register(server, admin, {
      source: '2019/beach.jpg',
      owner: 'alice',
      visibility: 'private',
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({
      owner: 'alice',
      source: '2019/beach.jpg',
      width: 640,
      height: 480,
      format: 'jpeg',
    });
    const id = created.json?.id as string;
    expect(created.headers.get('location')).toBe(`/v1/images/${id}`);

    // The owner sees the image by its id, never the key.
    const meta = await call(server, `/v1/images/${id}/meta`, { headers: auth(alice) });
    expect(meta.status).toBe(200);
    expect(JSON.stringify(meta.json)).not.toContain('beach');
    const list = await call(server, '/v1/images', { headers: auth(alice) });
    expect(list.body.toString()).not.toContain('beach');
    const variant = await call(server, `/v1/images/${id}?w=64`, { headers: auth(alice) });
    expect(variant.status).toBe(200);
  });

  it('refuses registering from non-admins, and hostile or missing keys', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: 'library', Key: 'pixgate/ok.jpg', Body: jpeg }));
    // Not an admin: the scope registering needs is named (SPEC §4: token fine, scope missing).
    const notAdmin = await register(server, alice, { source: 'ok.jpg', owner: 'alice' });
    expect(notAdmin.status).toBe(403);
    expect(notAdmin.json?.error?.code).toBe('insufficient_scope');
    expect(notAdmin.headers.get('www-authenticate')).toContain('scope="images:admin"');
    for (const source of HOSTILE_KEYS) {
      const refused = await register(server, admin, { source, owner: 'alice' });
      expect(refused.status, source).toBe(400);
      expect(refused.json?.error?.code).toBe('invalid_request');
      expect(refused.body.toString()).not.toContain('169.254');
    }
    const missing = await register(server, admin, { source: 'no/such.jpg', owner: 'alice' });
    expect(missing.status).toBe(404);
    // Said of the original the admin named, not of an image id.
    expect(missing.json?.error).toEqual({ code: 'not_found', message: 'No such original in the origin' });
    for (const payload of [
      { owner: 'alice' },
      { source: 'ok.jpg' },
      { source: 'ok.jpg', owner: 'alice', extra: 1 },
    ]) {
      expect((await register(server, admin, payload)).status).toBe(400);
    }
    // Not an image: the bytes decide, as for uploads.
    await s3.client.send(
      new PutObjectCommand({ Bucket: 'library', Key: 'pixgate/notes.jpg', Body: 'plain text' }),
    );
    expect((await register(server, admin, { source: 'notes.jpg', owner: 'alice' })).status).toBe(415);
  });

  it('deleting a registered image leaves the object in the library; an uploaded one goes', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: 'library', Key: 'pixgate/shared.jpg', Body: jpeg }));
    const first = (await register(server, admin, { source: 'shared.jpg', owner: 'alice' })).json
      ?.id as string;
    const second = (await register(server, admin, { source: 'shared.jpg', owner: 'alice' })).json
      ?.id as string;
    const removed = await call(server, `/v1/images/${first}`, { method: 'DELETE', headers: auth(alice) });
    expect(removed.status).toBe(204);
    expect((await call(server, `/v1/images/${second}?w=30`, { headers: auth(alice) })).status).toBe(200);
    const head = await s3.client.send(new GetObjectCommand({ Bucket: 'library', Key: 'pixgate/shared.jpg' }));
    expect(head.ContentLength).toBe(jpeg.length);

    const uploaded = await call(server, '/v1/images', {
      method: 'POST',
      headers: auth(alice, { 'content-type': 'image/jpeg' }),
      body: jpeg,
    });
    const id = uploaded.json?.id as string;
    expect((await call(server, `/v1/images/${id}`, { method: 'DELETE', headers: auth(alice) })).status).toBe(
      204,
    );
    await expect(
      s3.client.send(new GetObjectCommand({ Bucket: 'library', Key: `pixgate/${id.slice(0, 2)}/${id}` })),
    ).rejects.toMatchObject({ name: 'NoSuchKey' });
  });

  it('answers 404 for a registered original that has gone from the bucket', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: 'library', Key: 'pixgate/gone.jpg', Body: jpeg }));
    const id = (await register(server, admin, { source: 'gone.jpg', owner: 'alice' })).json?.id as string;
    await s3.client.send(new DeleteObjectCommand({ Bucket: 'library', Key: 'pixgate/gone.jpg' }));
    const answer = await call(server, `/v1/images/${id}?w=50`, { headers: auth(alice) });
    expect(answer.status).toBe(404);
    expect(answer.json?.error?.code).toBe('not_found');
  });

  it('keeps variants in the bucket: after a restart one is served without the original', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: 'library', Key: 'pixgate/kept.jpg', Body: jpeg }));
    const id = (await register(server, admin, { source: 'kept.jpg', owner: 'alice' })).json?.id as string;
    const first = await call(server, `/v1/images/${id}?w=90&format=webp`, { headers: auth(alice) });
    expect(first.status).toBe(200);
    // The set runs after the answer went out.
    await expect
      .poll(async () => {
        const listed = await s3.client.send(
          new ListObjectsV2Command({ Bucket: 'library', Prefix: `variants/${id}/` }),
        );
        return listed.Contents?.length ?? 0;
      })
      .toBe(1);
    server = await server.restart();
    await s3.client.send(new DeleteObjectCommand({ Bucket: 'library', Key: 'pixgate/kept.jpg' }));
    const again = await call(server, `/v1/images/${id}?w=90&format=webp`, { headers: auth(alice) });
    expect(again.status).toBe(200);
    expect(again.body.equals(first.body)).toBe(true);
    // Not cached, so read from the origin, which no longer has it.
    expect((await call(server, `/v1/images/${id}?w=91`, { headers: auth(alice) })).status).toBe(404);
  });

  it('is ready while the bucket answers', async () => {
    expect((await call(server, '/readyz')).status).toBe(200);
  });
});

describe('deleting while the S3 origin is down', () => {
  let s3: TestS3;
  let proxy: Awaited<ReturnType<typeof startSwitchableProxy>>;
  let server: TestServer;

  beforeAll(async () => {
    s3 = await startS3rver(['library']);
    proxy = await startSwitchableProxy(Number(new URL(s3.endpoint).port));
    vi.stubEnv('AWS_ACCESS_KEY_ID', S3RVER_CREDENTIALS.accessKeyId);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', S3RVER_CREDENTIALS.secretAccessKey);
    server = await startTestServer({
      dev: true,
      storage: 's3://library/pixgate',
      s3Endpoint: `http://127.0.0.1:${proxy.port}`,
      s3Region: s3.region,
      s3ForcePathStyle: true,
      originTimeoutSeconds: 2,
    });
  });
  afterAll(async () => {
    await server?.destroy();
    await proxy?.close();
    await s3?.close();
    vi.unstubAllEnvs();
  });

  it('is a 502 (or 504) that changes nothing, so the owner can delete again, and then the object goes', async () => {
    const alice = await server.token('alice', 'images:write');
    const uploaded = await call(server, '/v1/images', {
      method: 'POST',
      headers: auth(alice, { 'content-type': 'image/png' }),
      body: (await synth('png', 64, 48)).body,
    });
    const id = uploaded.json?.id as string;
    const objectKey = `pixgate/${id.slice(0, 2)}/${id}`;

    proxy.setDown(true);
    const refused = await call(server, `/v1/images/${id}`, { method: 'DELETE', headers: auth(alice) });
    // The SDK retries a refused connection: the origin's deadline may pass first (504).
    expect([
      [502, 'origin_error'],
      [504, 'origin_timeout'],
    ]).toContainEqual([refused.status, refused.json?.error?.code]);
    proxy.setDown(false);
    // Nothing was deleted: the image is still there, and so is its object.
    expect((await call(server, `/v1/images/${id}/meta`, { headers: auth(alice) })).status).toBe(200);
    expect(
      (await s3.client.send(new GetObjectCommand({ Bucket: 'library', Key: objectKey }))).ContentLength,
    ).toBe(uploaded.json?.bytes);

    expect((await call(server, `/v1/images/${id}`, { method: 'DELETE', headers: auth(alice) })).status).toBe(
      204,
    );
    await expect(
      s3.client.send(new GetObjectCommand({ Bucket: 'library', Key: objectKey })),
    ).rejects.toMatchObject({
      name: 'NoSuchKey',
    });
    expect((await call(server, `/v1/images/${id}/meta`, { headers: auth(alice) })).status).toBe(404);
  });
});

describe('authenticated HTTP origin (OAuth client credentials)', () => {
  let provider: OidcProvider;
  let origin: TestHttpOrigin;
  let server: TestServer;
  let admin: string;
  let alice: string;
  let jpeg: Buffer;
  const verified = new Set<string>();

  beforeAll(async () => {
    provider = await startOidcProvider();
    origin = await startHttpOrigin();
    const client = provider.clients[0] as { clientId: string; clientSecret: string };
    // The origin takes the tokens the provider issued to pixgate's client, and nothing else.
    const { createRemoteJWKSet, jwtVerify } = await import('jose');
    const jwks = createRemoteJWKSet(new URL(provider.jwksUrl));
    origin.authorize(async (request) => {
      const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
      if (!token) return false;
      try {
        const { payload } = await jwtVerify(token, jwks, {
          issuer: provider.issuer,
          audience: provider.audience,
        });
        verified.add(String(payload.client_id));
        return true;
      } catch {
        return false;
      }
    });
    server = await startTestServer({
      dev: true,
      storage: origin.baseUrl,
      originTokenUrl: provider.tokenUrl,
      originClientId: client.clientId,
      originClientSecret: client.clientSecret,
      originScope: 'images:read',
      originTimeoutSeconds: 1,
    });
    admin = await server.token('root', 'images:admin');
    alice = await server.token('alice', 'images:write');
    jpeg = (await synth('jpeg', 400, 300)).body;
    // Served as text/html: the bytes decide what it is, not the origin's Content-Type.
    origin.put('albums/cat.jpg', jpeg, 'text/html');
  });
  afterAll(async () => {
    await server?.destroy();
    await origin?.close();
    await provider?.close();
  });

  const logLines = () => server.logs.map((line) => JSON.parse(line) as Record<string, unknown>);

  it('registers and serves originals with tokens from the token endpoint', async () => {
    const created = await register(server, admin, { source: 'albums/cat.jpg', owner: 'alice' });
    expect(created.status, created.body.toString()).toBe(201);
    expect(created.json).toMatchObject({ format: 'jpeg', width: 400, height: 300 });
    expect([...verified]).toEqual([provider.clients[0]?.clientId]);
    const id = created.json?.id as string;
    const variant = await call(server, `/v1/images/${id}?w=80&format=png`, { headers: auth(alice) });
    expect(variant.status).toBe(200);
    expect(variant.headers.get('content-type')).toBe('image/png');
    expect((await call(server, '/readyz')).status).toBe(200);
  });

  it('refuses uploads with 403 read_only_storage before reading them', async () => {
    const answer = await call(server, '/v1/images', {
      method: 'POST',
      headers: auth(alice, { 'content-type': 'image/jpeg' }),
      body: jpeg,
    });
    expect(answer.status).toBe(403);
    expect(answer.json?.error?.code).toBe('read_only_storage');
    // Half the announced body is sent and the rest held back: the refusal comes anyway.
    const held = await uploadWithBodyHeld(server.url, alice, jpeg.length, jpeg.subarray(0, jpeg.length >> 1));
    expect(held.status).toBe(403);
    expect(JSON.parse(held.body)).toEqual(answer.json);
    expect(held.headers.connection).toBe('close');
    // Still 401 first for a caller without a token.
    const anonymous = await call(server, '/v1/images', {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg' },
      body: jpeg,
    });
    expect(anonymous.status).toBe(401);
  });

  it('SSRF: hostile keys never reach the origin; a redirect to loopback or link-local is refused', async () => {
    const before = origin.requests.length;
    for (const source of HOSTILE_KEYS) {
      expect((await register(server, admin, { source, owner: 'alice' })).status, source).toBe(400);
    }
    expect(origin.requests.length).toBe(before);

    const port = new URL(origin.root).port;
    for (const [index, target] of [
      'http://169.254.169.254/latest/meta-data/',
      `http://localhost:${port}/lib/albums/cat.jpg`,
      `http://127.0.0.2:${port}/lib/albums/cat.jpg`,
      'http://[::1]:9/',
    ].entries()) {
      origin.route(`/lib/redirect/${index}.jpg`, (_request, response) =>
        response.writeHead(302, { location: target }).end(),
      );
      const refused = await register(server, admin, { source: `redirect/${index}.jpg`, owner: 'alice' });
      expect(refused.status, target).toBe(502);
      expect(refused.json?.error?.code).toBe('origin_error');
      expect(refused.body.toString()).not.toContain('169.254');
    }
  });

  it('serves a cached variant without asking the origin; a new variant reads it again', async () => {
    const id = (await register(server, admin, { source: 'albums/cat.jpg', owner: 'alice' })).json
      ?.id as string;
    const first = await call(server, `/v1/images/${id}?w=120`, { headers: auth(alice) });
    expect(first.status).toBe(200);
    const before = origin.requests.length;
    const again = await call(server, `/v1/images/${id}?w=120`, { headers: auth(alice) });
    expect(again.status).toBe(200);
    expect(again.body.equals(first.body)).toBe(true);
    expect(origin.requests.length).toBe(before);
    // Originals are not cached: another size goes to the origin.
    expect((await call(server, `/v1/images/${id}?w=121`, { headers: auth(alice) })).status).toBe(200);
    expect(origin.requests.length).toBeGreaterThan(before);
  });

  it('an origin refusing the credentials is a 502 with a log line that says so, without any credential', async () => {
    // This path answers 403 whatever pixgate sends, as an origin with a revoked grant would.
    origin.route('/lib/albums/refused.jpg', (_request, response) => response.writeHead(403).end('no'));
    const tokensSent = new Set(origin.requests.map((request) => request.headers.authorization ?? ''));
    const denied = await register(server, admin, { source: 'albums/refused.jpg', owner: 'alice' });
    expect(denied.status).toBe(502);
    expect(denied.json?.error).toEqual({ code: 'origin_error', message: 'The original could not be read' });
    const line = logLines().find((entry) =>
      String(entry.detail ?? '').includes("refused pixgate's credentials (403)"),
    );
    expect(line).toMatchObject({ status: 502, code: 'origin_error' });
    const logText = server.logs.join('\n');
    for (const secret of [
      provider.clients[0]?.clientSecret ?? 'x',
      ...[...tokensSent].filter(Boolean).map((t) => t.slice(7)),
    ]) {
      expect(logText).not.toContain(secret);
    }
  });

  it('a slow origin is a 504 after the timeout, never a hang', async () => {
    const id = (await register(server, admin, { source: 'albums/cat.jpg', owner: 'alice' })).json
      ?.id as string;
    origin.route('/lib/albums/cat.jpg', () => {});
    try {
      const started = Date.now();
      const answer = await call(server, `/v1/images/${id}?w=130`, { headers: auth(alice) });
      expect(answer.status).toBe(504);
      expect(answer.json?.error?.code).toBe('origin_timeout');
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      origin.route('/lib/albums/cat.jpg', (_request, response) => response.writeHead(200).end(jpeg));
    }
  });
});

describe('an HTTP origin that is down', () => {
  it('answers 502 origin_error, not a hang or a 500, and is not ready', async () => {
    const server = await startTestServer({
      dev: true,
      storage: `http://127.0.0.1:${await closedPort()}/lib/`,
      originBearer: 'static-secret-token',
    });
    try {
      const admin = await server.token('root', 'images:admin');
      const answer = await register(server, admin, { source: 'a.jpg', owner: 'alice' });
      expect(answer.status).toBe(502);
      expect(answer.json?.error?.code).toBe('origin_error');
      expect((await call(server, '/readyz')).status).toBe(503);
      expect(server.logs.join('\n')).not.toContain('static-secret-token');
    } finally {
      await server.destroy();
    }
  });
});
