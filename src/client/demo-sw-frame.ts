/**
 * The demo's service-worker panel (`/demo/sw/`), in its own frame: the worker is registered with
 * scope `/demo/sw/`, so it controls this frame only and the demo page's other panels (query
 * parameter, cookie) go without it. Reports the result to the parent page.
 */
import { registerImageAuth } from './pixgate-client.js';

const parentDemo = (parent as unknown as { pixgateDemo?: { token(): string | null } }).pixgateDemo;
const params = new URLSearchParams(location.search);
const id = params.get('id') ?? '';
params.delete('id');

function report(ok: boolean, detail: string): void {
  parent.postMessage({ type: 'pixgate-demo:sw', ok, detail }, location.origin);
}

try {
  // registerImageAuth drops whatever token the worker held for the user signed in before.
  await registerImageAuth({ getToken: () => parentDemo?.token() ?? null, scope: '/demo/sw/' });
  const img = document.getElementById('image') as HTMLImageElement;
  img.addEventListener('load', () => report(true, `${img.naturalWidth}×${img.naturalHeight}`), {
    once: true,
  });
  img.addEventListener('error', () => report(false, 'refused'), { once: true });
  // A plain <img src>: the worker adds Authorization.
  img.src = `/v1/images/${encodeURIComponent(id)}?${params.toString()}`;
  img.hidden = false;
} catch (error) {
  report(false, error instanceof Error ? error.message : 'service worker unavailable');
}
