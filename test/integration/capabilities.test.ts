import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadKey } from '../../src/images/ingest.js';
import { synth } from '../helpers/images.js';
import { startJwksServer } from '../helpers/jwks-server.js';
import { rawRequest } from '../helpers/net.js';
import { startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';

/** Signed URLs, revocation and share links over real HTTP (SPEC §5, issue 4). */

let server: TestServer;
let alice: string;
let bob: string;
let admin: string;
let readOnlyAlice: string;
let photo: Buffer;
// The server's clock: tests move it instead of sleeping.
let now = Date.UTC(2026, 0, 1, 12, 0, 0);
const clock = { now: () => now };

const auth = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${token}`,
  ...extra,
});

const upload = async (token: string, visibility = 'private') =>
  (await uploadImage(server, token, photo, { visibility })).id;

async function post(path: string, token: string | undefined, body: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { ...(token ? auth(token) : {}), 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { response, json: (await response.json().catch(() => null)) as Record<string, unknown> | null };
}

async function sign(id: string, transform: Record<string, unknown>, ttlSeconds = 3600, token = alice) {
  const { response, json } = await post(`/v1/images/${id}/signed-urls`, token, { transform, ttlSeconds });
  expect(response.status, JSON.stringify(json)).toBe(200);
  return json as { url: string; expiresAt: string };
}

async function get(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const response = await fetch(`${server.url}${path}`, { headers, method });
  return { response, body: Buffer.from(await response.arrayBuffer()) };
}

async function expectRefusedSignature(path: string) {
  const { response, body } = await get(path);
  expect(response.status, path).toBe(403);
  expect(JSON.parse(body.toString())).toEqual({
    error: { code: 'invalid_signature', message: 'The signed URL is invalid or expired' },
  });
  expect(response.headers.get('cache-control')).toBe('no-store');
}

beforeAll(async () => {
  server = await startTestServer({ dev: true, signedUrlBucket: 3600 }, { clock });
  alice = await server.token('alice', 'images:read images:write');
  bob = await server.token('bob', 'images:read images:write');
  admin = await server.token('root', 'images:admin');
  readOnlyAlice = await server.token('alice', 'images:read');
  photo = (await synth('png', 800, 600)).body;
});
afterAll(() => server.destroy());

describe('signed URLs', () => {
  it('serve exactly the signed variant without a token, publicly cacheable until exp', async () => {
    const id = await upload(alice);
    const { url, expiresAt } = await sign(id, { w: 360, format: 'webp' }, 600);
    expect(url).toMatch(
      new RegExp(`^/v1/images/${id}\\?format=webp&w=360&exp=\\d+&kid=[\\w-]+&sig=[\\w-]{43}$`),
    );
    const exp = Number(new URL(url, server.url).searchParams.get('exp'));
    expect(new Date(expiresAt).getTime()).toBe(exp * 1000);
    // Rounded up to the bucket: at most ttl + one bucket away.
    expect(exp % 3600).toBe(0);
    expect(exp * 1000).toBeGreaterThanOrEqual(now + 600_000);
    expect(exp * 1000).toBeLessThan(now + 600_000 + 3600_000);

    const { response, body } = await get(url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/webp');
    const meta = await sharp(body).metadata();
    expect([meta.width, meta.height]).toEqual([360, 270]);
    const maxAge = Number(/^public, max-age=(\d+)$/.exec(response.headers.get('cache-control') ?? '')?.[1]);
    expect(maxAge).toBeGreaterThan(0);
    expect(maxAge).toBeLessThanOrEqual(exp - now / 1000);
    const head = await get(url, {}, 'HEAD');
    expect(head.response.status).toBe(200);
    expect(head.body).toHaveLength(0);
    expect(head.response.headers.get('etag')).toBe(response.headers.get('etag'));
    // An ETag and 304 as for any variant.
    const etag = response.headers.get('etag') as string;
    expect((await get(url, { 'if-none-match': etag })).response.status).toBe(304);
  });

  it('are signed in dev mode with a key made in the data dir, readable by its owner only', async () => {
    const file = await stat(join(server.dataDir, 'signing-key.txt'));
    expect(file.mode & 0o777).toBe(0o600);
  });

  it('hand out the same URL within a bucket', async () => {
    const id = await upload(alice);
    const first = await sign(id, { w: 200 }, 60);
    now += 30_000;
    const second = await sign(id, { w: 200 }, 60);
    expect(second).toEqual(first);
    // dpr and presets normalize: the same variant asked another way signs to the same URL.
    expect((await sign(id, { w: 100, dpr: 2 }, 60)).url).toBe(first.url);
  });

  it('max-age never outlives exp', async () => {
    const id = await upload(alice);
    const { url } = await sign(id, { w: 120 }, 1);
    const exp = Number(new URL(url, server.url).searchParams.get('exp'));
    const { response } = await get(url);
    expect(response.headers.get('cache-control')).toBe(
      `public, max-age=${Math.min(3600, Math.floor(exp - now / 1000))}`,
    );
  });

  it('refuse every tampering with the same 403', async () => {
    const id = await upload(alice);
    const other = await upload(alice);
    const { url } = await sign(id, { w: 360, format: 'webp' });
    const parsed = new URL(url, server.url);
    const variant = (change: (params: URLSearchParams) => void, path = parsed.pathname) => {
      const params = new URLSearchParams(parsed.searchParams);
      change(params);
      return `${path}?${params.toString()}`;
    };
    const cases = [
      variant((p) => p.set('w', '361')), // changed
      variant((p) => p.set('format', 'png')), // changed
      variant((p) => p.set('h', '100')), // added
      variant((p) => p.set('q', '90')), // added
      variant((p) => p.delete('format')), // removed
      variant((p) => p.delete('w')), // removed
      variant(() => {}, `/v1/images/${other}`), // another path
      variant((p) => p.set('exp', String(Number(p.get('exp')) + 3600))), // exp
      variant((p) => p.set('kid', 'nope')), // unknown kid
      variant((p) => p.delete('kid')),
      variant((p) => p.delete('sig')),
      // sig: its last character changed to another one that carries different bits (a 32-byte
      // sig ends in one of A, E, I, …, w): always 'A' was the same sig for one URL in 16.
      variant((p) => {
        const sig = p.get('sig') as string;
        p.set('sig', `${sig.slice(0, 42)}${sig.endsWith('A') ? 'E' : 'A'}`);
      }),
      variant((p) => p.set('sig', 'short')), // a short sig must not be a 500
      variant((p) => p.set('sig', '')),
      variant((p) => p.append('sig', p.get('sig') as string)), // repeated
      variant(() => {}, '/v1/images/AAAAAAAAAAAAAAAAAAAAAA'), // no such image
    ];
    for (const path of cases) await expectRefusedSignature(path);
    expect((await get(url)).response.status).toBe(200);
  });

  it('refuse a signed URL with a token as well (more than one credential)', async () => {
    const id = await upload(alice);
    const { url } = await sign(id, { w: 100 });
    expect((await get(url, auth(alice))).response.status).toBe(400);
  });

  it('expire at exp', async () => {
    const id = await upload(alice);
    const { url } = await sign(id, { w: 90 }, 10);
    expect((await get(url)).response.status).toBe(200);
    const exp = Number(new URL(url, server.url).searchParams.get('exp'));
    const saved = now;
    now = exp * 1000;
    try {
      await expectRefusedSignature(url);
    } finally {
      now = saved;
    }
  });

  it('stop working when the image is deleted', async () => {
    const id = await upload(alice);
    const { url } = await sign(id, { w: 80 });
    expect((await get(url)).response.status).toBe(200);
    expect(
      (await fetch(`${server.url}/v1/images/${id}`, { method: 'DELETE', headers: auth(alice) })).status,
    ).toBe(204);
    await expectRefusedSignature(url);
  });

  it('are made by the owner or an admin only; anyone else gets 404', async () => {
    const id = await upload(alice, 'public');
    expect((await post(`/v1/images/${id}/signed-urls`, bob, { transform: { w: 10 } })).response.status).toBe(
      404,
    );
    expect(
      (await post(`/v1/images/${id}/signed-urls`, undefined, { transform: { w: 10 } })).response.status,
    ).toBe(401);
    expect((await post(`/v1/images/${id}/signed-urls`, readOnlyAlice, {})).response.status).toBe(403);
    expect(
      (await post(`/v1/images/${id}/signed-urls`, admin, { transform: { w: 10 } })).response.status,
    ).toBe(200);
    expect(
      (await post(`/v1/images/AAAAAAAAAAAAAAAAAAAAAA/signed-urls`, alice, { transform: { w: 10 } })).response
        .status,
    ).toBe(404);
  });

  it('validate the transform and ttl like any request', async () => {
    const id = await upload(alice);
    const bad = await post(`/v1/images/${id}/signed-urls`, alice, { transform: { w: 0 } });
    expect(bad.response.status).toBe(400);
    expect((bad.json as { error: { code: string } }).error.code).toBe('invalid_transform');
    const ttl = await post(`/v1/images/${id}/signed-urls`, alice, { transform: { w: 10 }, ttlSeconds: 0 });
    expect(ttl.response.status).toBe(400);
    const junk = await post(`/v1/images/${id}/signed-urls`, alice, { transform: { w: 10 }, extra: 1 });
    expect(junk.response.status).toBe(400);
  });

  it('keep working with an older key still configured (rotation)', async () => {
    const rotated = await startTestServer({
      dev: true,
      signingKeys: `new:${Buffer.alloc(32, 2).toString('base64')},old:${Buffer.alloc(32, 1).toString('base64')}`,
    });
    const original = await startTestServer(
      { dev: true, signingKeys: `old:${Buffer.alloc(32, 1).toString('base64')}` },
      { dataDir: rotated.dataDir },
    );
    try {
      const token = await original.token('alice', 'images:write');
      const response = await fetch(`${original.url}/v1/images`, {
        method: 'POST',
        headers: auth(token, { 'content-type': 'image/png' }),
        body: photo,
      });
      const { id } = (await response.json()) as { id: string };
      const signed = await fetch(`${original.url}/v1/images/${id}/signed-urls`, {
        method: 'POST',
        headers: auth(token, { 'content-type': 'application/json' }),
        body: JSON.stringify({ transform: { w: 50 } }),
      });
      const { url } = (await signed.json()) as { url: string };
      expect(url).toContain('kid=old');
      // The rotated server shares the database and still accepts the old key's URL.
      expect((await fetch(`${rotated.url}${url}`)).status).toBe(200);
      const fresh = await fetch(`${rotated.url}/v1/images/${id}/signed-urls`, {
        method: 'POST',
        headers: auth(token, { 'content-type': 'application/json' }),
        body: JSON.stringify({ transform: { w: 50 } }),
      });
      expect(((await fresh.json()) as { url: string }).url).toContain('kid=new');
    } finally {
      await original.close();
      await rotated.destroy();
    }
  });

  it('answer a clear error when no key is configured', async () => {
    // Not dev mode, which makes a key of its own: a real issuer (JWKS over HTTP) and no
    // PIXGATE_SIGNING_KEYS, so an authorized owner reaches the signing step and is told why not.
    const issuer = await startJwksServer();
    const plain = await startTestServer({
      issuer: issuer.issuer,
      audience: issuer.audience,
      jwksUrl: issuer.jwksUrl,
    });
    try {
      const token = await issuer.sign({ claims: { sub: 'alice', scope: 'images:read images:write' } });
      const { id } = await uploadImage(plain, token, photo);
      const response = await fetch(`${plain.url}/v1/images/${id}/signed-urls`, {
        method: 'POST',
        headers: auth(token, { 'content-type': 'application/json' }),
        body: JSON.stringify({ transform: { w: 50 } }),
      });
      expect(response.status).toBe(501);
      expect(response.headers.get('cache-control')).toBe('no-store');
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('not_configured');
      expect(error.message).toContain('PIXGATE_SIGNING_KEYS');
    } finally {
      await plain.destroy();
      await issuer.close();
    }
  });
});

describe('revocation', () => {
  it('ends every signed URL and share link of the image at once; new ones work', async () => {
    const id = await upload(alice);
    const { url } = await sign(id, { w: 100 });
    const link = await post(`/v1/images/${id}/links`, alice, { ttlSeconds: 3600 });
    const linkUrl = (link.json as { url: string }).url;
    expect((await get(url)).response.status).toBe(200);
    expect((await get(linkUrl)).response.status).toBe(200);

    const revoked = await post(`/v1/images/${id}/revoke`, alice, {});
    expect(revoked.response.status).toBe(204);
    await expectRefusedSignature(url);
    expect((await get(linkUrl)).response.status).toBe(404);

    const fresh = await sign(id, { w: 100 });
    expect(fresh.url).not.toBe(url);
    expect((await get(fresh.url)).response.status).toBe(200);
    const newLink = await post(`/v1/images/${id}/links`, alice, { ttlSeconds: 3600 });
    expect((await get((newLink.json as { url: string }).url)).response.status).toBe(200);
    // The owner's own bearer access is untouched.
    expect((await get(`/v1/images/${id}?w=100`, auth(alice))).response.status).toBe(200);
  });

  it('is for the owner or an admin only', async () => {
    const id = await upload(alice, 'public');
    expect((await post(`/v1/images/${id}/revoke`, bob, {})).response.status).toBe(404);
    expect((await post(`/v1/images/${id}/revoke`, admin, {})).response.status).toBe(204);
  });
});

describe('share links', () => {
  async function createLink(id: string, body: Record<string, unknown>, token = alice) {
    const { response, json } = await post(`/v1/images/${id}/links`, token, body);
    expect(response.status, JSON.stringify(json)).toBe(201);
    return json as { id: string; url: string; expiresAt: string };
  }

  it('are 256-bit tokens answered private, no-store, counting views; the view after the budget is 404', async () => {
    const id = await upload(alice);
    const link = await createLink(id, { ttlSeconds: 600, maxViews: 2 });
    expect(link.url).toMatch(/^\/s\/[A-Za-z0-9_-]{43}$/);
    expect(new Date(link.expiresAt).getTime()).toBe(now + 600_000);

    // HEAD and 304 do not count.
    const head = await get(link.url, {}, 'HEAD');
    expect(head.response.status).toBe(200);
    const first = await get(link.url);
    expect(first.response.status).toBe(200);
    expect(first.response.headers.get('cache-control')).toBe('private, no-store');
    const etag = first.response.headers.get('etag') as string;
    expect((await get(link.url, { 'if-none-match': etag })).response.status).toBe(304);
    expect((await get(link.url, { 'if-none-match': etag })).response.status).toBe(304);
    expect((await get(link.url)).response.status).toBe(200);
    const over = await get(link.url);
    expect(over.response.status).toBe(404);
    expect(JSON.parse(over.body.toString())).toEqual({
      error: { code: 'not_found', message: 'No such link' },
    });
  });

  it('count concurrent views atomically', async () => {
    const id = await upload(alice);
    const link = await createLink(id, { ttlSeconds: 600, maxViews: 3 });
    const statuses = await Promise.all(
      Array.from({ length: 8 }, async () => (await get(link.url)).response.status),
    );
    expect(statuses.filter((status) => status === 200)).toHaveLength(3);
    expect(statuses.filter((status) => status === 404)).toHaveLength(5);
  });

  it('clamp to maxWidth, accepting the transform parameters', async () => {
    const id = await upload(alice);
    const link = await createLink(id, { ttlSeconds: 600, maxWidth: 200 });
    const full = await get(link.url);
    expect((await sharp(full.body).metadata()).width).toBe(200);
    expect(full.response.headers.get('pixgate-clamped')).toBe('1');
    const small = await get(`${link.url}?w=100&format=webp`);
    expect(small.response.headers.get('content-type')).toBe('image/webp');
    expect((await sharp(small.body).metadata()).width).toBe(100);
    expect(small.response.headers.get('pixgate-clamped')).toBeNull();
    const box = await get(`${link.url}?w=400&h=400&fit=cover`);
    const meta = await sharp(box.body).metadata();
    expect([meta.width, meta.height]).toEqual([200, 200]);
    expect((await get(`${link.url}?w=abc`)).response.status).toBe(400);
  });

  it('expire', async () => {
    const id = await upload(alice);
    const link = await createLink(id, { ttlSeconds: 60 });
    expect((await get(link.url)).response.status).toBe(200);
    now += 60_000;
    expect((await get(link.url)).response.status).toBe(404);
  });

  it('once spent, expired or revoked are 404 for HEAD and revalidation too, not only for GET', async () => {
    const id = await upload(alice);
    const spent = await createLink(id, { ttlSeconds: 600, maxViews: 1 });
    const first = await get(spent.url);
    expect(first.response.status).toBe(200);
    const etag = first.response.headers.get('etag') as string;
    expect((await get(spent.url, {}, 'HEAD')).response.status).toBe(404);
    expect((await get(spent.url, { 'if-none-match': etag })).response.status).toBe(404);

    const expiring = await createLink(id, { ttlSeconds: 60 });
    expect((await get(expiring.url, {}, 'HEAD')).response.status).toBe(200);
    const revoked = await createLink(id, { ttlSeconds: 3600 });
    expect((await get(revoked.url, {}, 'HEAD')).response.status).toBe(200);
    // At expiresAt itself the link is over.
    now += 60_000;
    expect((await get(expiring.url, {}, 'HEAD')).response.status).toBe(404);
    expect((await post(`/v1/images/${id}/revoke`, alice, {})).response.status).toBe(204);
    expect((await get(revoked.url, {}, 'HEAD')).response.status).toBe(404);
  });

  it('are listed for the owner and revoked one by one', async () => {
    const id = await upload(alice);
    const a = await createLink(id, { ttlSeconds: 600, maxViews: 5, maxWidth: 300 });
    const b = await createLink(id, { ttlSeconds: 600 });
    const list = await get(`/v1/images/${id}/links`, auth(alice));
    expect(list.response.status).toBe(200);
    const items = (JSON.parse(list.body.toString()) as { items: Record<string, unknown>[] }).items;
    expect(items.map((item) => item.id).sort()).toEqual([a.id, b.id].sort());
    expect(items.find((item) => item.id === a.id)).toMatchObject({ maxViews: 5, maxWidth: 300, views: 0 });
    expect(JSON.stringify(items)).not.toContain(a.url.slice(3));
    expect((await get(`/v1/images/${id}/links`, auth(bob))).response.status).toBe(404);

    expect(
      (await fetch(`${server.url}/v1/links/${a.id}`, { method: 'DELETE', headers: auth(bob) })).status,
    ).toBe(404);
    expect(
      (await fetch(`${server.url}/v1/links/${a.id}`, { method: 'DELETE', headers: auth(alice) })).status,
    ).toBe(204);
    expect((await get(a.url)).response.status).toBe(404);
    expect((await get(b.url)).response.status).toBe(200);
    expect(
      (await fetch(`${server.url}/v1/links/${a.id}`, { method: 'DELETE', headers: auth(alice) })).status,
    ).toBe(404);
  });

  it('refuse a guessed or malformed token with the same 404', async () => {
    const id = await upload(alice);
    const link = await createLink(id, { ttlSeconds: 600 });
    const token = link.url.slice(3);
    const nearMiss = `${token.slice(0, 42)}${token.endsWith('A') ? 'B' : 'A'}`;
    for (const path of [`/s/${nearMiss}`, '/s/short', `/s/${'A'.repeat(43)}`, `/s/${token}x`]) {
      const { response, body } = await get(path);
      expect(response.status, path).toBe(404);
      expect(JSON.parse(body.toString())).toEqual({ error: { code: 'not_found', message: 'No such link' } });
    }
  });

  it('are made by the owner only and validated', async () => {
    const id = await upload(alice, 'public');
    expect((await post(`/v1/images/${id}/links`, bob, { ttlSeconds: 60 })).response.status).toBe(404);
    expect((await post(`/v1/images/${id}/links`, alice, {})).response.status).toBe(400);
    expect(
      (await post(`/v1/images/${id}/links`, alice, { ttlSeconds: 60, maxViews: 0 })).response.status,
    ).toBe(400);
  });

  it('go with their image', async () => {
    const id = await upload(alice);
    const link = await createLink(id, { ttlSeconds: 600 });
    expect(
      (await fetch(`${server.url}/v1/images/${id}`, { method: 'DELETE', headers: auth(alice) })).status,
    ).toBe(204);
    expect((await get(link.url)).response.status).toBe(404);
  });

  it('store only the SHA-256 of the token, and are found by it (security review)', async () => {
    const id = await upload(alice);
    const link = await createLink(id, { ttlSeconds: 600 });
    const token = link.url.slice(3);
    const db = new BetterSqlite3(join(server.dataDir, 'pixgate.db'), { readonly: true });
    try {
      const rows = db.prepare('select * from links where id = ?').all(link.id) as Record<string, unknown>[];
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain(token);
      expect(rows[0]?.token_hash).toBe(createHash('sha256').update(token).digest('base64url'));
    } finally {
      db.close();
    }
  });

  it('count no view for a render that failed (security review)', async () => {
    const id = await upload(alice);
    const link = await createLink(id, { ttlSeconds: 600, maxViews: 1 });
    const original = join(server.dataDir, 'originals', uploadKey(id));
    const bytes = await readFile(original);
    await writeFile(original, Buffer.from('no longer an image'));
    try {
      expect((await get(`${link.url}?w=50`)).response.status).toBe(502);
    } finally {
      await writeFile(original, bytes);
    }
    // The one view is still there to spend, and then spent.
    expect((await get(`${link.url}?w=50`)).response.status).toBe(200);
    expect((await get(`${link.url}?w=50`)).response.status).toBe(404);
  });

  it('never log the token', async () => {
    const id = await upload(alice);
    const link = await createLink(id, { ttlSeconds: 600 });
    await get(link.url);
    const token = link.url.slice(3);
    // Other spellings of the same target, which fastify routes to the link too.
    const { host } = new URL(server.url);
    for (const target of [`http://${host}/s/${token}?w=20`, `/%73/${token}`]) {
      expect((await rawRequest(server.url, [`GET ${target} HTTP/1.1`])).status).toBe(200);
    }
    expect(server.logs.join('\n')).not.toContain(token);
  });
});
