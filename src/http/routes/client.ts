import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/**
 * The browser code (src/client/, built to dist/client/ by `npm run build`): `/pixgate-client.js`,
 * the module it imports, and the service worker `/pixgate-sw.js`. Served by `serve` and `dev`.
 */

/** dist/client next to this module once built; from src/ (tests, tsx) the built copy in dist/. */
export function clientDir(): string {
  const candidates = [
    new URL('../../client/', import.meta.url),
    new URL('../../../dist/client/', import.meta.url),
  ];
  for (const candidate of candidates) {
    const dir = fileURLToPath(candidate);
    if (existsSync(`${dir}pixgate-client.js`)) return dir;
  }
  throw new Error('The browser client is not built: run `npm run build` (dist/client/pixgate-client.js)');
}

const JS = 'text/javascript; charset=utf-8';

export function registerClientRoutes(app: FastifyInstance): void {
  const dir = clientDir();
  // Read once: a few KiB that never change while the server runs.
  const files = {
    client: readFileSync(`${dir}pixgate-client.js`),
    handler: readFileSync(`${dir}pixgate-image-auth.js`),
    worker: readFileSync(`${dir}sw/pixgate-sw.js`),
  };

  // no-cache: a page must pick up a new version at once (they are revalidated, not refetched).
  app.get('/pixgate-client.js', async (_request, reply) =>
    reply.type(JS).header('cache-control', 'no-cache').send(files.client),
  );
  app.get('/pixgate-image-auth.js', async (_request, reply) =>
    reply.type(JS).header('cache-control', 'no-cache').send(files.handler),
  );
  app.get('/pixgate-sw.js', async (_request, reply) =>
    reply
      .type(JS)
      .header('cache-control', 'no-cache')
      // The worker is registered with scope `/` (it must contain the pages, not the images).
      .header('service-worker-allowed', '/')
      // A worker script's CSP governs the worker itself: the default `default-src 'none'` would
      // forbid its own fetch() of images and its import of the handler module.
      .header('content-security-policy', "default-src 'none'; script-src 'self'; connect-src 'self'")
      .send(files.worker),
  );
}
