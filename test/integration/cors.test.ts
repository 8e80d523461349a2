import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth } from '../helpers/images.js';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';

/** CORS only for PIXGATE_CORS_ORIGINS (SPEC §3.5): preflight, Authorization, Vary: Origin, no credentials. */

const APP = 'http://app.localhost:5173';
let server: TestServer;
let alice: string;
let id: string;

beforeAll(async () => {
  server = await startTestServer({ dev: true, corsOrigins: `${APP},https://other.example` });
  alice = await server.token('alice');
  const image = await synth('png', 40, 30);
  const response = await fetch(`${server.url}/v1/images`, {
    method: 'POST',
    headers: { authorization: `Bearer ${alice}`, 'content-type': 'image/png' },
    body: image.body,
  });
  id = ((await response.json()) as { id: string }).id;
});
afterAll(() => server.destroy());

const preflight = (origin: string, requestHeaders = 'authorization') =>
  fetch(`${server.url}/v1/images/${id}?w=20`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'GET',
      'access-control-request-headers': requestHeaders,
    },
  });

describe('a configured origin', () => {
  it('passes the preflight with Authorization allowed and no credentials', async () => {
    const response = await preflight(APP);
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe(APP);
    expect(response.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect(response.headers.get('access-control-allow-methods')).toContain('GET');
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    expect(response.headers.get('vary')).toMatch(/Origin/);
  });

  // If-Match guards PATCH and DELETE (README, HTTP details), and is no CORS-safelisted header: a
  // preflight that did not allow it made the browser refuse every guarded change of a page on a
  // configured origin before it was sent.
  it('allows If-Match in the preflight of a change', async () => {
    for (const method of ['PATCH', 'DELETE']) {
      const response = await fetch(`${server.url}/v1/images/${id}`, {
        method: 'OPTIONS',
        headers: {
          origin: APP,
          'access-control-request-method': method,
          'access-control-request-headers': 'authorization,content-type,if-match',
        },
      });
      expect(response.status, method).toBe(204);
      expect(response.headers.get('access-control-allow-methods'), method).toContain(method);
      const allowed = (response.headers.get('access-control-allow-headers') ?? '')
        .toLowerCase()
        .split(/,\s*/);
      for (const name of ['authorization', 'content-type', 'if-match'])
        expect(allowed, method).toContain(name);
    }
  });

  it('gets the security headers on the preflight too (regression)', async () => {
    // The plugin answers a preflight in its own onRequest hook: ours, registered after it, never
    // ran, and the 204 went without Referrer-Policy, nosniff and CSP.
    for (const origin of [APP, 'https://evil.example']) {
      const response = await preflight(origin);
      expect(response.status).toBe(204);
      expect(response.headers.get('referrer-policy')).toBe('no-referrer');
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('content-security-policy')).toBe("default-src 'none'");
    }
  });

  it('reads an image with its bearer token, Vary: Accept, Authorization, Origin', async () => {
    const response = await fetch(`${server.url}/v1/images/${id}?w=20`, {
      headers: { origin: APP, authorization: `Bearer ${alice}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe(APP);
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    expect(response.headers.get('access-control-expose-headers')).toContain('ETag');
    expect(response.headers.get('vary')).toBe('Accept, Authorization, Origin');
  });

  it('reads error answers too (a 401 a page can tell apart)', async () => {
    const response = await fetch(`${server.url}/v1/images/${id}`, { headers: { origin: APP } });
    expect(response.status).toBe(401);
    expect(response.headers.get('access-control-allow-origin')).toBe(APP);
  });
});

describe('any other origin', () => {
  it('gets no CORS headers, preflight or not', async () => {
    const pre = await preflight('https://evil.example');
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const response = await fetch(`${server.url}/v1/images/${id}?w=20`, {
      headers: { origin: 'https://evil.example', authorization: `Bearer ${alice}` },
    });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('vary')).toMatch(/Origin/);
  });
});

it('lists OPTIONS in the Allow of a 405, since every path answers a preflight', async () => {
  const response = await fetch(`${server.url}/v1/images/${id}`, { method: 'PUT', headers: { origin: APP } });
  expect(response.status).toBe(405);
  expect(response.headers.get('allow')).toBe('GET, HEAD, PATCH, DELETE, OPTIONS');
  expect(response.headers.get('access-control-allow-origin')).toBe(APP);
  // A path nothing is routed to stays a 404: the preflight route alone makes no path known.
  expect((await fetch(`${server.url}/v1/nothing`, { method: 'PUT' })).status).toBe(404);
});

it("lets the page read a 429's RateLimit fields, as it reads Retry-After", async () => {
  // A service worker backing off needs the window (SPEC §6), not only the status.
  const limited = await startTestServer({ dev: true, corsOrigins: APP, rateLimit: 1 });
  try {
    const ask = () => fetch(`${limited.url}/v1/images/${id}?w=20`, { headers: { origin: APP } });
    await (await ask()).arrayBuffer();
    const response = await ask();
    expect(response.status).toBe(429);
    const exposed = (response.headers.get('access-control-expose-headers') ?? '').split(/,\s*/);
    for (const name of ['Retry-After', 'RateLimit', 'RateLimit-Policy']) {
      expect(response.headers.get(name), name).not.toBeNull();
      expect(exposed).toContain(name);
    }
  } finally {
    await limited.destroy();
  }
});

it('without PIXGATE_CORS_ORIGINS there is no CORS at all', async () => {
  const plain = await startTestServer({ dev: true });
  try {
    const response = await fetch(`${plain.url}/v1/images/${id}`, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'GET' },
    });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    // OPTIONS is a method the path does not take without CORS (RFC 9110 §15.5.6).
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, HEAD, PATCH, DELETE');
  } finally {
    await plain.destroy();
  }
});
