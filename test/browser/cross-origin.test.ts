import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppServer, startAppServer, testPage } from '../helpers/app-server.js';
import { type Browser, hasChromium, launchChromium } from '../helpers/browser.js';
import { synth } from '../helpers/images.js';
import { startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';

/**
 * An app on another origin (another loopback port) with its own service worker built on
 * createImageAuthHandler, imported from pixgate; pixgate answers CORS for that origin only.
 */

const run = hasChromium();

let server: TestServer;
let app: AppServer;
let browser: Browser;
let alice: string;
let id: string;

function appWorker(pixgate: string): readonly [string, string] {
  return [
    'text/javascript; charset=utf-8',
    `import { createImageAuthHandler } from '${pixgate}/pixgate-image-auth.js';
const handler = createImageAuthHandler({ clients: self.clients, origins: ['${pixgate}'] });
self.addEventListener('install', (event) => event.waitUntil(self.skipWaiting()));
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => handler.handleFetch(event));
self.addEventListener('message', (event) => handler.handleMessage(event));
`,
  ];
}

beforeAll(async () => {
  if (!run) return;
  // The app's origin is only known once it listens: pixgate is told through a late start.
  app = await startAppServer({
    pages: {
      'page.html': () => testPage(server.url),
      'app-sw.js': () => appWorker(server.url),
    },
  });
  server = await startTestServer({ dev: true, corsOrigins: app.url });
  alice = await server.token('alice');
  ({ id } = await uploadImage(server, alice, (await synth('png', 120, 90)).body));
  browser = await launchChromium();
});

afterAll(async () => {
  if (!run) return;
  await browser.close();
  await app.close();
  await server.destroy();
});

describe.skipIf(!run)('a page on another origin', () => {
  it('shows pixgate images with plain <img> through its own worker', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${app.url}/__test/page.html`);
    await page.waitForFunction('window.ready === true');
    const src = (w: number) => `${server.url}/v1/images/${id}?w=${w}`;

    // Before the worker: no credential, no image.
    expect(await page.evaluate(`window.loadImg('${src(60)}')`)).toBe(0);

    await page.evaluate(`window.token = '${alice}'`);
    await page.evaluate(`window.pixgate.registerImageAuth({
      getToken: window.getToken, scope: '/__test/', scriptUrl: '/__test/app-sw.js'
    }).then((auth) => { window.auth = auth; })`);
    expect(await page.evaluate(`window.loadImg('${src(61)}')`)).toBe(61);

    // A bad token after a refresh: refused.
    await page.evaluate(`window.token = 'x.y.z'`);
    await page.evaluate('window.auth.refresh()');
    expect(await page.evaluate(`window.loadImg('${src(62)}')`)).toBe(0);
    await page.close();
  });

  // Regression: the preflight did not allow If-Match, so Chromium refused a guarded change
  // ("Failed to fetch") before sending it.
  it('changes an image with a PATCH guarded by If-Match', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${app.url}/__test/page.html`);
    await page.waitForFunction('window.ready === true');
    const url = `${server.url}/v1/images/${id}`;
    const answer = await page.evaluate(`(async () => {
      const auth = { authorization: 'Bearer ${alice}' };
      const etag = (await fetch('${url}', { method: 'HEAD', headers: auth })).headers.get('etag');
      const patched = await fetch('${url}', {
        method: 'PATCH',
        headers: { ...auth, 'content-type': 'application/json', 'if-match': etag },
        body: JSON.stringify({ visibility: 'private' }),
      });
      return [etag !== null, patched.status];
    })().catch((error) => String(error))`);
    expect(answer).toEqual([true, 200]);
    await page.close();
  });

  it('is refused by pixgate when its origin is not configured', async () => {
    const other = await startTestServer({ dev: true });
    try {
      const response = await fetch(`${other.url}/v1/images/${id}`, {
        method: 'OPTIONS',
        headers: { origin: app.url, 'access-control-request-method': 'GET' },
      });
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await other.destroy();
    }
  });
});
