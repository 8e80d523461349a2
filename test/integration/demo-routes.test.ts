import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';

/** The dev-only demo page and its token endpoint (`pixgate dev`, SPEC §8). */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ dev: true });
});
afterAll(() => server.destroy());

const askToken = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${server.url}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

describe('POST /dev/token', () => {
  it('hands a dev user a token that pixgate accepts', async () => {
    const response = await askToken({ sub: 'alice' }, { origin: server.url });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const { token } = (await response.json()) as { token: string };
    const list = await fetch(`${server.url}/v1/images`, { headers: { authorization: `Bearer ${token}` } });
    expect(list.status).toBe(200);
    const warning = server.logs.find((line) => line.includes('DEV MODE: issued a dev token'));
    // Logged through request.log: bound to the request, like its request line.
    const reqId = (JSON.parse(warning ?? '{}') as { reqId?: string }).reqId;
    expect(reqId).toMatch(/^[\w-]+$/);
    expect(
      server.logs.some((line) => line.includes('"msg":"request"') && line.includes(`"reqId":"${reqId}"`)),
    ).toBe(true);
  });

  it('refuses other users, other origins and other Host names', async () => {
    expect((await askToken({ sub: 'mallory' })).status).toBe(400);
    expect((await askToken({ sub: 'alice', scope: 'images:admin' })).status).toBe(400);
    expect((await askToken({ sub: 'alice' }, { origin: 'http://localhost:9999' })).status).toBe(403);
    // fetch() would not send our Host header: DNS rebinding, by hand.
    const rebound = await new Promise<number>((resolve, reject) => {
      const url = new URL(server.url);
      const outgoing = request(
        {
          host: url.hostname,
          port: url.port,
          method: 'POST',
          path: '/dev/token',
          headers: { host: 'evil.example', 'content-type': 'application/json' },
        },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      outgoing.on('error', reject);
      outgoing.end(JSON.stringify({ sub: 'alice' }));
    });
    expect(rebound).toBe(403);
  });
});

describe('the page', () => {
  it('is served at / with a CSP allowing its own scripts and blob:/data: images', async () => {
    const response = await fetch(`${server.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("img-src 'self' blob: data:");
    expect(await response.text()).toContain('/demo.js');
    for (const path of ['/demo.js', '/demo.css', '/demo-sw-frame.js', '/demo/sw/']) {
      expect((await fetch(`${server.url}${path}`)).status, path).toBe(200);
    }
  });
});
