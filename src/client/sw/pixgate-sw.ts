/**
 * pixgate's service worker, served at `/pixgate-sw.js` and registered by `registerImageAuth()`.
 *
 * Registered as a module worker (`type: 'module'`) so that it imports the one copy of the logic
 * that apps import too (createImageAuthHandler), with no bundler in the build: Chromium has run
 * module service workers since version 91 and Safari since 15. A browser without them refuses
 * the registration, and registerImageAuth() rejects: the page can fall back to blob or signed
 * URLs instead of showing broken images.
 */
import { createImageAuthHandler, MESSAGES } from '../pixgate-image-auth.js';

declare const self: ServiceWorkerGlobalScope;

// The page passes its settings in the script URL: the worker may be restarted at any time and
// must know them again without asking.
const settings = new URL(self.location.href).searchParams;
const handler = createImageAuthHandler({
  clients: self.clients,
  imagePrefix: settings.get('prefix') ?? '/v1/images/',
});

self.addEventListener('install', (event) => {
  event.waitUntil(self.skipWaiting());
});

// clients.claim(): pages open before the worker existed are controlled at once (the page still
// waits for `controllerchange`: `ready` alone does not mean it is controlled).
self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('fetch', (event) => {
  handler.handleFetch(event);
});

self.addEventListener('message', (event) => {
  if (handler.handleMessage(event)) return;
  const data: unknown = event.data;
  // After Shift+Reload the page is not controlled even though the worker runs: it asks again.
  if (typeof data === 'object' && data !== null && (data as { type?: unknown }).type === MESSAGES.claim) {
    event.waitUntil(self.clients.claim().then(() => event.ports[0]?.postMessage({ type: MESSAGES.claimed })));
  }
});
