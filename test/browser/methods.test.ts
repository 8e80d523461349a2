import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AppServer, startAppServer, testPage } from '../helpers/app-server.js';
import { type Browser, hasChromium, launchChromium } from '../helpers/browser.js';
import { synth } from '../helpers/images.js';
import { startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';

/**
 * Every way a browser carries the credential (SPEC §3), in Debian's Chromium: each loads a
 * protected image (naturalWidth > 0) and fails without a valid credential. The page is served by
 * an "app" that shares pixgate's origin through a reverse proxy.
 */

const run = hasChromium();

let server: TestServer;
let app: AppServer;
let browser: Browser;
let alice: string;
let bob: string;
let id: string;
let page: Page;
// Every image URL is new: Chromium reuses a document's earlier image for the same URL without a request.
let serial = 0;
const imageUrl = (extra = '') => `/v1/images/${id}?w=${100 + (serial++ % 200)}${extra}`;

async function openPage(): Promise<Page> {
  const opened = await browser.context.newPage();
  await opened.goto(`${app.url}/__test/page.html`);
  await opened.waitForFunction('window.ready === true');
  return opened;
}

beforeAll(async () => {
  if (!run) return;
  server = await startTestServer({ dev: true });
  alice = await server.token('alice');
  bob = await server.token('bob');
  ({ id } = await uploadImage(server, alice, (await synth('png', 400, 300)).body));
  app = await startAppServer({ proxyTo: server.url, pages: { 'page.html': testPage() } });
  browser = await launchChromium();
});

afterAll(async () => {
  if (!run) return;
  await browser.close();
  await app.close();
  await server.destroy();
});

describe.skipIf(!run)('in Chromium', () => {
  beforeEach(async () => {
    await browser.context.clearCookies();
    page = await openPage();
    return () => page.close();
  });

  it('header + blob: loads, and a bad token is a 401', async () => {
    const width = await page.evaluate(`(async () => {
      const img = new Image();
      await window.pixgate.loadAsBlob(img, '${imageUrl()}', () => '${alice}');
      return img.naturalWidth;
    })()`);
    expect(width).toBeGreaterThan(0);
    const status = await page.evaluate(`window.pixgate.loadAsBlob(new Image(), '${imageUrl()}', () => 'x.y.z')
      .then(() => 200, (error) => error.status)`);
    expect(status).toBe(401);
    const anonymous = await page.evaluate(`window.pixgate.loadAsBlob(new Image(), '${imageUrl()}', () => null)
      .then(() => 200, (error) => error.status)`);
    expect(anonymous).toBe(401);
  });

  it('data URI: loads, and a bad token is a 401', async () => {
    const result = (await page.evaluate(`(async () => {
      const img = new Image();
      await window.pixgate.loadAsDataUri(img, '${imageUrl()}', () => '${alice}');
      return [img.naturalWidth, img.src.slice(0, 16)];
    })()`)) as [number, string];
    expect(result[0]).toBeGreaterThan(0);
    expect(result[1]).toMatch(/^data:image\//);
    const status =
      await page.evaluate(`window.pixgate.loadAsDataUri(new Image(), '${imageUrl()}', () => '${bob}')
      .then(() => 200, (error) => error.status)`);
    expect(status).toBe(404);
    const invalid =
      await page.evaluate(`window.pixgate.loadAsDataUri(new Image(), '${imageUrl()}', () => 'x.y.z')
      .then(() => 200, (error) => error.status)`);
    expect(invalid).toBe(401);
  });

  it('header + blob, data URI: the latest call on an <img> is what it shows, whichever answer comes last', async () => {
    for (const load of ['loadAsBlob', 'loadAsDataUri']) {
      const width = await page.evaluate(`(async () => {
        const img = new Image();
        // The first call's token (so its answer) arrives after the second call's image loaded.
        const slow = () => new Promise((resolve) => setTimeout(() => resolve('${alice}'), 300));
        const first = window.pixgate.${load}(img, '/v1/images/${id}?w=50', slow);
        await window.pixgate.${load}(img, '/v1/images/${id}?w=70', () => '${alice}');
        await first;
        return img.naturalWidth;
      })()`);
      expect(width, load).toBe(70);
    }
  });

  it('query parameter: a plain <img> loads, a bad token does not', async () => {
    expect(await page.evaluate(`window.loadImg('${imageUrl(`&access_token=${alice}`)}')`)).toBeGreaterThan(0);
    expect(await page.evaluate(`window.loadImg('${imageUrl('&access_token=x.y.z')}')`)).toBe(0);
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);
  });

  it('query parameter: a link followed afterwards sends no Referer holding the token', async () => {
    expect(await page.evaluate(`window.loadImg('${imageUrl(`&access_token=${alice}`)}')`)).toBeGreaterThan(0);
    const before = app.referers.length;
    await Promise.all([page.waitForURL('**/__test/echo'), page.click('#next')]);
    const sent = app.referers.slice(before);
    expect(sent).toHaveLength(1);
    // A Referer is sent (the page's own URL), so the check below is about its content.
    expect(sent[0]).toContain('/__test/page.html');
    expect(sent[0]).not.toContain(alice);
    expect(sent[0]).not.toContain('access_token');
  });

  it('session cookie: a plain <img> loads after startSession, not before, not after endSession', async () => {
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);
    const session = (await page.evaluate(`window.pixgate.startSession('${alice}')`)) as { csrfToken: string };
    expect(session.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);

    // As the browser keeps it: HttpOnly (no script can read it), SameSite=Strict, Path=/.
    const cookies = await browser.context.cookies(app.url);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({
      name: 'pixgate-session',
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      secure: false,
    });
    expect(await page.evaluate('document.cookie')).toBe('');

    // An unsafe call through the cookie works with the kept CSRF token.
    const visibility = await page.evaluate(`window.pixgate.sessionFetch('/v1/images/${id}', {
      method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"visibility":"private"}'
    }).then((r) => r.status)`);
    expect(visibility).toBe(200);

    await page.evaluate('window.pixgate.endSession()');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);
  });

  it('session cookie: endSession() and sessionFetch() work after a reload and from another tab', async () => {
    await page.evaluate(`window.pixgate.startSession('${alice}')`);
    // The cookie outlives the page: so must the means to use and end it.
    await page.reload();
    await page.waitForFunction('window.ready === true');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);
    const visibility = await page.evaluate(`window.pixgate.sessionFetch('/v1/images/${id}', {
      method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"visibility":"private"}'
    }).then((r) => r.status)`);
    expect(visibility).toBe(200);

    const other = await openPage();
    try {
      expect(
        await other.evaluate('window.pixgate.endSession().then(() => 204, (error) => error.status)'),
      ).toBe(204);
    } finally {
      await other.close();
    }
    // Signed out: the session is dead server-side, not just forgotten by one tab.
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);
  });

  it('service worker: plain <img> works, survives a forced restart and Shift+Reload, picks up a refreshed token', async () => {
    await page.evaluate(`window.token = '${alice}'`);
    await page.evaluate(
      `window.pixgate.registerImageAuth({ getToken: window.getToken }).then((auth) => { window.auth = auth; })`,
    );
    expect(await page.evaluate('navigator.serviceWorker.controller !== null')).toBe(true);
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);
    const askedBefore = (await page.evaluate('window.asked')) as number;
    expect(askedBefore).toBeGreaterThan(0);

    // The browser stops idle workers (never under automation): stop it through DevTools. Its
    // memory, the token included, is gone; the next image asks the page again.
    const cdp = await browser.context.newCDPSession(page);
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.stopAllWorkers');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);
    expect(await page.evaluate('window.asked')).toBeGreaterThan(askedBefore);

    // refresh() resolves once the worker dropped its token: the very next image uses Bob's, who
    // may not see Alice's private image.
    await page.evaluate(`window.token = '${bob}'`);
    await page.evaluate('window.auth.refresh()');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);
    await page.evaluate(`window.token = '${alice}'`);
    await page.evaluate('window.auth.refresh()');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);

    // No token to give: the request goes through without a header (401) instead of hanging.
    await page.evaluate('window.token = null');
    await page.evaluate('window.auth.refresh()');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);

    // Shift+Reload bypasses the worker: the reloaded page is not controlled until
    // registerImageAuth asks the running worker to claim it again.
    await cdp.send('Page.reload', { ignoreCache: true });
    await page.waitForLoadState('load');
    await page.waitForFunction('window.ready === true');
    expect(await page.evaluate('navigator.serviceWorker.controller === null')).toBe(true);
    await page.evaluate(`window.token = '${alice}'`);
    await page.evaluate(
      'window.pixgate.registerImageAuth({ getToken: window.getToken }).then((auth) => { window.auth = auth; })',
    );
    expect(await page.evaluate('navigator.serviceWorker.controller !== null')).toBe(true);
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);

    // Unregistered: plain <img> is back to having no credential.
    await page.evaluate('window.auth.unregister()');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);
  });

  it('service worker: a request that states its own Authorization keeps it', async () => {
    await page.evaluate(`window.token = '${alice}'`);
    await page.evaluate(
      'window.pixgate.registerImageAuth({ getToken: window.getToken }).then((auth) => { window.auth = auth; })',
    );
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);
    // Bob's own call (loadAsBlob, a fetch of /meta) is answered as Bob, not as the worker's Alice.
    const status =
      await page.evaluate(`window.pixgate.loadAsBlob(new Image(), '${imageUrl()}', () => '${bob}')
      .then(() => 200, (error) => error.status)`);
    expect(status).toBe(404);
    const meta = await page.evaluate(
      `fetch('/v1/images/${id}/meta', { headers: { authorization: 'Bearer ${bob}' } }).then((r) => r.status)`,
    );
    expect(meta).toBe(404);
    await page.evaluate('window.auth.unregister()');
  });

  it('service worker: a new registration drops the token the worker held for an earlier one (regression)', async () => {
    await page.evaluate(
      `window.pixgate.registerImageAuth({ getToken: () => '${alice}' }).then((auth) => { window.auth = auth; })`,
    );
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);
    // Bob signs in without Alice having signed out (her session expired, the app forgot to
    // unregister, another tab): his registration must not inherit her token from the worker.
    await page.evaluate(
      `window.pixgate.registerImageAuth({ getToken: () => '${bob}' }).then((auth) => { window.auth = auth; })`,
    );
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);
    await page.evaluate('window.auth.unregister()');
  });

  it('service worker: registrations that fail leave the one that works answering the worker', async () => {
    await page.evaluate(
      `window.pixgate.registerImageAuth({ getToken: () => '${alice}' }).then((auth) => { window.auth = auth; })`,
    );
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);
    // Two more, started together, both failing (no worker script there). Registration jobs for
    // one scope run in turn (the Service Workers spec's job queue): the first started fails first.
    const failed = await page.evaluate(`Promise.allSettled([
      window.pixgate.registerImageAuth({ getToken: () => null, scriptUrl: '/__test/missing-1.js' }),
      window.pixgate.registerImageAuth({ getToken: () => null, scriptUrl: '/__test/missing-2.js' }),
    ]).then((results) => results.map((result) => result.status))`);
    expect(failed).toEqual(['rejected', 'rejected']);
    // The worker forgets its token and asks again: the first registration, still in place, answers.
    await page.evaluate('window.auth.refresh()');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);
    await page.evaluate('window.auth.unregister()');
  });

  it('service worker: signing out (unregister) and in again in the same tab uses the new getToken', async () => {
    await page.evaluate(`window.token = '${alice}'`);
    await page.evaluate(
      'window.pixgate.registerImageAuth({ getToken: window.getToken }).then((auth) => { window.auth = auth; })',
    );
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);
    await page.evaluate('window.auth.unregister()');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);

    // A single-page app: the next user signs in without a navigation. The first registration's
    // "no token" answer must not win over the new getToken on the worker's question.
    await page.evaluate(`window.asked2 = 0`);
    await page.evaluate(
      `window.pixgate.registerImageAuth({ getToken: () => { window.asked2 += 1; return '${alice}'; } })
        .then((auth) => { window.auth = auth; })`,
    );
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBeGreaterThan(0);
    const asked2 = (await page.evaluate('window.asked2')) as number;
    expect(asked2).toBeGreaterThan(0);

    // Registered again without signing out (another user): only the latest getToken answers.
    await page.evaluate(
      `window.pixgate.registerImageAuth({ getToken: () => '${bob}' }).then((auth) => { window.auth = auth; })`,
    );
    await page.evaluate('window.auth.refresh()');
    expect(await page.evaluate(`window.loadImg('${imageUrl()}')`)).toBe(0);
    expect(await page.evaluate('window.asked2')).toBe(asked2);
    await page.evaluate('window.auth.unregister()');
  });
});

describe.skipIf(!run)('behind a TLS-terminating proxy', () => {
  it('the browser keeps the __Host- cookie with Secure and sends it back', async () => {
    const proxied = await startTestServer({ dev: true, trustProxy: true });
    const proxyApp = await startAppServer({
      proxyTo: proxied.url,
      forwardedProto: 'https',
      pages: { 'page.html': testPage() },
    });
    const tab = await browser.context.newPage();
    try {
      const token = await proxied.token('carol');
      const body = await sharp({ create: { width: 50, height: 40, channels: 3, background: '#a37' } })
        .png()
        .toBuffer();
      const uploaded = await fetch(`${proxied.url}/v1/images`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'image/png' },
        body,
      });
      const carolId = ((await uploaded.json()) as { id: string }).id;
      await tab.goto(`${proxyApp.url}/__test/page.html`);
      await tab.waitForFunction('window.ready === true');
      await tab.evaluate(`window.pixgate.startSession('${token}')`);
      const cookies = await browser.context.cookies(proxyApp.url);
      expect(cookies.find((cookie) => cookie.name === '__Host-pixgate-session')).toMatchObject({
        secure: true,
        httpOnly: true,
        path: '/',
        sameSite: 'Strict',
      });
      expect(await tab.evaluate(`window.loadImg('/v1/images/${carolId}?w=20')`)).toBe(20);
    } finally {
      await tab.close();
      await proxyApp.close();
      await proxied.destroy();
    }
  });
});
