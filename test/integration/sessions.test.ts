import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDevIssuer } from '../../src/auth/dev-issuer.js';
import { synth } from '../helpers/images.js';
import { startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';

/** The session cookie over real HTTP (SPEC §3.3): attributes, scope, CSRF, rotation, expiry, restart. */

let nowMs = Date.UTC(2026, 10, 23, 12, 0, 0);
const clock = { now: () => nowMs };

let server: TestServer;
let alice: string;
let bob: string;
let privateId: string;
let publicId: string;

const upload = async (token: string, visibility: string) =>
  (await uploadImage(server, token, (await synth('png', 64, 48)).body, { visibility })).id;

interface Started {
  cookie: string;
  setCookie: string;
  csrfToken: string;
  expiresAt: string;
}

async function startSession(token: string, headers: Record<string, string> = {}): Promise<Started> {
  const response = await fetch(`${server.url}/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
  expect(response.status, await response.clone().text()).toBe(201);
  expect(response.headers.get('cache-control')).toBe('no-store');
  const setCookie = response.headers.get('set-cookie') ?? '';
  const body = (await response.json()) as { csrfToken: string; expiresAt: string };
  return { cookie: setCookie.split(';')[0] ?? '', setCookie, ...body };
}

const get = (path: string, headers: Record<string, string>) => fetch(`${server.url}${path}`, { headers });

beforeAll(async () => {
  server = await startTestServer({ dev: true, sessionMaxSeconds: 7200 }, { clock });
  alice = await server.token('alice');
  bob = await server.token('bob');
  privateId = await upload(alice, 'private');
  publicId = await upload(alice, 'public');
});
afterAll(() => server.destroy());

describe('POST /v1/sessions', () => {
  it('sets an HttpOnly, SameSite=Strict, Path=/ cookie, without Secure over plain HTTP', async () => {
    const session = await startSession(alice);
    expect(session.cookie).toMatch(/^pixgate-session=[A-Za-z0-9_-]{43}$/);
    const attributes = session.setCookie.split(';').map((part) => part.trim().toLowerCase());
    expect(attributes).toContain('httponly');
    expect(attributes).toContain('samesite=strict');
    expect(attributes).toContain('path=/');
    expect(attributes).not.toContain('secure');
    expect(attributes.some((part) => part.startsWith('domain'))).toBe(false);
    expect(session.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('ends the session at the token exp, as the answer says', async () => {
    const session = await startSession(alice);
    // server.token() tokens live 3600 s; the configured maximum here is 7200 s.
    expect(session.expiresAt).toBe(new Date(nowMs + 3600_000).toISOString());
    expect(session.setCookie).toMatch(/Max-Age=3600/);
  });

  it('ends it earlier at the configured maximum', async () => {
    const issuer = await loadDevIssuer(server.dataDir, 'pixgate-dev', 'pixgate', clock);
    const longToken = await issuer.issue({ sub: 'alice', ttlSeconds: 86400 });
    const session = await startSession(longToken);
    expect(session.expiresAt).toBe(new Date(nowMs + 7200_000).toISOString());
  });

  it('needs a bearer token in the header', async () => {
    const none = await fetch(`${server.url}/v1/sessions`, { method: 'POST' });
    expect(none.status).toBe(401);
    const query = await fetch(`${server.url}/v1/sessions?access_token=${alice}`, { method: 'POST' });
    expect(query.status).toBe(400);
    const bad = await fetch(`${server.url}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: 'Bearer not.a.token' },
    });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('set-cookie')).toBeNull();
  });

  it('stores neither the token nor the session id', async () => {
    const session = await startSession(alice);
    const id = session.cookie.split('=')[1] as string;
    const db = new BetterSqlite3(join(server.dataDir, 'pixgate.db'), { readonly: true });
    try {
      const rows = db.prepare('select * from sessions').all() as Record<string, unknown>[];
      const dump = JSON.stringify(rows);
      expect(rows.length).toBeGreaterThan(0);
      expect(dump).not.toContain(id);
      expect(dump).not.toContain(alice);
      expect(dump).not.toContain(alice.split('.')[2] as string);
    } finally {
      db.close();
    }
  });
});

it('SameSite=Lax when PIXGATE_COOKIE_SAMESITE=Lax', async () => {
  const lax = await startTestServer({ dev: true, cookieSamesite: 'Lax' });
  try {
    const response = await fetch(`${lax.url}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await lax.token('alice')}` },
    });
    expect(response.headers.get('set-cookie')).toMatch(/; SameSite=Lax/);
  } finally {
    await lax.destroy();
  }
});

describe('HTTPS: the __Host- cookie', () => {
  it('is named __Host- and Secure behind a trusted proxy saying https', async () => {
    const proxied = await startTestServer({ dev: true, trustProxy: true });
    try {
      const token = await proxied.token('alice');
      const response = await fetch(`${proxied.url}/v1/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'x-forwarded-proto': 'https' },
      });
      expect(response.status).toBe(201);
      const setCookie = response.headers.get('set-cookie') ?? '';
      expect(setCookie).toMatch(/^__Host-pixgate-session=/);
      expect(setCookie).toMatch(/; Secure/);
      expect(setCookie).toMatch(/; Path=\//);
      const cookie = setCookie.split(';')[0] as string;
      const image = await fetch(`${proxied.url}/v1/images`, {
        headers: { cookie, 'x-forwarded-proto': 'https' },
      });
      expect(image.status).toBe(200);
    } finally {
      await proxied.destroy();
    }
  });

  it('ignores X-Forwarded-Proto from an untrusted peer', async () => {
    const session = await startSession(alice, { 'x-forwarded-proto': 'https' });
    expect(session.setCookie).toMatch(/^pixgate-session=/);
    expect(session.setCookie).not.toMatch(/Secure/);
  });
});

describe('what the cookie authenticates', () => {
  it('GET of an image, its meta and the list, with Vary: Cookie and never public', async () => {
    const { cookie } = await startSession(alice);
    const image = await get(`/v1/images/${privateId}?w=32`, { cookie });
    expect(image.status).toBe(200);
    expect(image.headers.get('vary')).toBe('Accept, Cookie');
    expect(image.headers.get('cache-control')).toMatch(/^private/);

    const publicImage = await get(`/v1/images/${publicId}?w=32`, { cookie });
    expect(publicImage.status).toBe(200);
    expect(publicImage.headers.get('cache-control')).toMatch(/^private/);
    // The same public image without the cookie stays publicly cacheable.
    const anonymous = await get(`/v1/images/${publicId}?w=32`, {});
    expect(anonymous.headers.get('cache-control')).toMatch(/^public/);
    expect(anonymous.headers.get('vary')).toBe('Accept');

    expect((await get(`/v1/images/${privateId}/meta`, { cookie })).status).toBe(200);
    const list = await get('/v1/images', { cookie });
    expect(list.status).toBe(200);
    expect(list.headers.get('vary')).toMatch(/Cookie/);
  });

  it('HEAD too', async () => {
    const { cookie } = await startSession(alice);
    const response = await fetch(`${server.url}/v1/images/${privateId}?w=20`, {
      method: 'HEAD',
      headers: { cookie },
    });
    expect(response.status).toBe(200);
  });

  it('is ignored when an explicit credential is present', async () => {
    const { cookie } = await startSession(alice);
    // Bob's header wins over Alice's cookie: Bob may not know of Alice's private image.
    const asBob = await get(`/v1/images/${privateId}`, { cookie, authorization: `Bearer ${bob}` });
    expect(asBob.status).toBe(404);
    const badHeader = await get(`/v1/images/${privateId}`, { cookie, authorization: 'Bearer x.y.z' });
    expect(badHeader.status).toBe(401);
    const badQuery = await get(`/v1/images/${privateId}?access_token=x.y.z`, { cookie });
    expect(badQuery.status).toBe(401);
  });

  it('does nothing without a session behind it', async () => {
    const forged = await get(`/v1/images/${privateId}`, { cookie: `pixgate-session=${'A'.repeat(43)}` });
    expect(forged.status).toBe(401);
    const junk = await get(`/v1/images/${privateId}`, { cookie: 'pixgate-session=junk; other=1' });
    expect(junk.status).toBe(401);
  });

  it('refuses an unsafe request without the CSRF token or from another origin (403)', async () => {
    const { cookie, csrfToken } = await startSession(alice);
    const image = await synth('png', 16, 16);
    const post = (headers: Record<string, string>) =>
      fetch(`${server.url}/v1/images`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'image/png', ...headers },
        body: image.body,
      });
    const own = new URL(server.url).origin;

    const noCsrf = await post({ origin: own });
    expect(noCsrf.status).toBe(403);
    expect(((await noCsrf.json()) as { error: { code: string } }).error.code).toBe('csrf_failed');
    expect((await post({ origin: 'https://evil.example', 'x-csrf-token': csrfToken })).status).toBe(403);
    expect((await post({ 'x-csrf-token': csrfToken, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await post({ 'x-csrf-token': 'A'.repeat(43), origin: own })).status).toBe(403);
    expect((await post({ 'x-csrf-token': csrfToken })).status).toBe(403);

    const ok = await post({ origin: own, 'x-csrf-token': csrfToken, 'sec-fetch-site': 'same-origin' });
    expect(ok.status).toBe(201);
    const patch = await fetch(`${server.url}/v1/images/${privateId}`, {
      method: 'PATCH',
      headers: { cookie, 'content-type': 'application/json', origin: own, 'x-csrf-token': csrfToken },
      body: JSON.stringify({ visibility: 'private' }),
    });
    expect(patch.status).toBe(200);
  });
});

describe('ending and rotating', () => {
  it('rotates the id when a new token is posted: the old cookie stops working', async () => {
    const first = await startSession(alice);
    const second = await startSession(alice, { cookie: first.cookie });
    expect(second.cookie).not.toBe(first.cookie);
    expect((await get(`/v1/images/${privateId}`, { cookie: first.cookie })).status).toBe(401);
    expect((await get(`/v1/images/${privateId}`, { cookie: second.cookie })).status).toBe(200);
  });

  it('DELETE /v1/sessions/current ends it server-side (needs CSRF)', async () => {
    const { cookie, csrfToken } = await startSession(alice);
    const own = new URL(server.url).origin;
    const refused = await fetch(`${server.url}/v1/sessions/current`, {
      method: 'DELETE',
      headers: { cookie, origin: own },
    });
    expect(refused.status).toBe(403);
    const ended = await fetch(`${server.url}/v1/sessions/current`, {
      method: 'DELETE',
      headers: { cookie, origin: own, 'x-csrf-token': csrfToken },
    });
    expect(ended.status).toBe(204);
    expect(ended.headers.get('set-cookie')).toMatch(/^pixgate-session=;.*Expires=Thu, 01 Jan 1970/);
    // The old value, replayed, is useless.
    expect((await get(`/v1/images/${privateId}`, { cookie })).status).toBe(401);
  });

  it('is not ended by a request that carries an explicit credential besides the cookie, without CSRF', async () => {
    const { cookie } = await startSession(alice);
    const own = new URL(server.url).origin;
    // An explicit credential makes the cookie hook stand aside; the route must still ask for CSRF.
    for (const [path, headers] of [
      ['/v1/sessions/current', { cookie, origin: own, authorization: `Bearer ${bob}` }],
      ['/v1/sessions/current?sig=x', { cookie, origin: own }],
    ] as const) {
      const refused = await fetch(`${server.url}${path}`, { method: 'DELETE', headers });
      expect(refused.status, path).toBe(403);
      expect(refused.headers.get('set-cookie'), path).toBeNull();
    }
    expect((await get(`/v1/images/${privateId}`, { cookie })).status).toBe(200);
  });

  it('meets the same rule on another spelling of the path (the route decides, not the raw URL)', async () => {
    const { cookie, csrfToken } = await startSession(alice);
    const crossSite = { cookie, origin: 'https://evil.example', 'x-csrf-token': csrfToken };
    const encoded = await fetch(`${server.url}/v1/sessions/%63urrent`, {
      method: 'DELETE',
      headers: crossSite,
    });
    expect(encoded.status).toBe(403);
    expect((await get(`/v1/images/${privateId}`, { cookie })).status).toBe(200);
  });

  it('ends a share link made in the same browser (needs CSRF)', async () => {
    const { cookie, csrfToken } = await startSession(alice);
    const own = new URL(server.url).origin;
    const unsafe = { cookie, origin: own, 'x-csrf-token': csrfToken };
    const made = await fetch(`${server.url}/v1/images/${privateId}/links`, {
      method: 'POST',
      headers: { ...unsafe, 'content-type': 'application/json' },
      body: JSON.stringify({ ttlSeconds: 3600 }),
    });
    expect(made.status, await made.clone().text()).toBe(201);
    const { id } = (await made.json()) as { id: string };
    const del = (headers: Record<string, string>) =>
      fetch(`${server.url}/v1/links/${id}`, { method: 'DELETE', headers });
    const noCsrf = await del({ cookie, origin: own });
    expect(noCsrf.status).toBe(403);
    expect(((await noCsrf.json()) as { error: { code: string } }).error.code).toBe('csrf_failed');
    expect((await del({ ...unsafe, origin: 'https://evil.example' })).status).toBe(403);
    expect((await del(unsafe)).status).toBe(204);
    expect((await del(unsafe)).status).toBe(404);
  });

  it('expires with the token', async () => {
    const { cookie } = await startSession(alice);
    expect((await get(`/v1/images/${privateId}?w=10`, { cookie })).status).toBe(200);
    nowMs += 3601_000;
    try {
      expect((await get(`/v1/images/${privateId}?w=10`, { cookie })).status).toBe(401);
    } finally {
      nowMs -= 3601_000;
    }
  });

  it('survives a restart (SQLite store)', async () => {
    const { cookie } = await startSession(alice);
    server = await server.restart();
    expect((await get(`/v1/images/${privateId}?w=12`, { cookie })).status).toBe(200);
  });
});
