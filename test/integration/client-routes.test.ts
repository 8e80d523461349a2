import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';

/** The browser code as pixgate serves it (SPEC §3.5), in `serve` mode as well as `dev`. */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({
    issuer: 'https://issuer.example',
    audience: 'pixgate',
    jwksUrl: 'http://127.0.0.1:9/jwks',
  });
});
afterAll(() => server.destroy());

describe('served client files', () => {
  it('/pixgate-sw.js: Service-Worker-Allowed: /, no-cache, a CSP that lets it fetch and import', async () => {
    const response = await fetch(`${server.url}/pixgate-sw.js?prefix=%2Fv1%2Fimages%2F`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(response.headers.get('service-worker-allowed')).toBe('/');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(response.headers.get('content-security-policy')).toMatch(/connect-src 'self'/);
    const text = await response.text();
    expect(text).toContain("from '../pixgate-image-auth.js'");
    expect(text).toContain('clients.claim()');
  });

  it('/pixgate-client.js is an ES module exporting every method', async () => {
    const response = await fetch(`${server.url}/pixgate-client.js`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-cache');
    const text = await response.text();
    for (const name of ['registerImageAuth', 'loadAsBlob', 'loadAsDataUri', 'startSession', 'endSession']) {
      expect(text).toMatch(new RegExp(`export (async )?function ${name}\\b`));
    }
    expect(text).toContain('createImageAuthHandler');
    const handler = await fetch(`${server.url}/pixgate-image-auth.js`);
    expect(await handler.text()).toMatch(/export function createImageAuthHandler\b/);
  });

  it('no demo page outside dev mode', async () => {
    expect((await fetch(`${server.url}/`)).status).toBe(404);
    expect((await fetch(`${server.url}/dev/token`, { method: 'POST' })).status).toBe(404);
  });
});
