import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

/**
 * CORS for pages on other origins (SPEC §3.5), only for the configured `corsOrigins`: their
 * service worker (createImageAuthHandler) fetches images with `Authorization`, which needs a
 * preflight. Never `Access-Control-Allow-Credentials`: the cookie is for same-site pages only,
 * and a cross-origin page always states its credential explicitly.
 */
export async function registerCors(app: FastifyInstance, origins: readonly string[]): Promise<void> {
  if (origins.length === 0) return;
  await app.register(cors, {
    origin: [...origins],
    credentials: false,
    methods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
    // If-None-Match revalidates an image, If-Match guards a PATCH or DELETE: neither is
    // CORS-safelisted, so a preflight that left one out made the browser refuse the request.
    allowedHeaders: ['Authorization', 'Content-Type', 'Accept', 'If-None-Match', 'If-Match'],
    // RateLimit and RateLimit-Policy: sent with a 429 (limits.ts), so a worker can back off.
    exposedHeaders: [
      'ETag',
      'Location',
      'Pixgate-Clamped',
      'Retry-After',
      'RateLimit',
      'RateLimit-Policy',
      'WWW-Authenticate',
    ],
    maxAge: 600,
    // Not strict: the plugin would answer a preflight without Access-Control-Request-Method with
    // its own text/plain 400, outside our error format; answered like any preflight instead.
    strictPreflight: false,
  });
  // Routes set their own Vary (images: Accept) after the plugin's onRequest added Origin, which
  // would drop it; a cache must still key every answer on the Origin it was allowed for.
  app.addHook('onSend', (_request, reply, payload, done) => {
    const vary = reply.getHeader('vary');
    const text = vary === undefined ? '' : String(vary);
    if (!/(^|,\s*)origin(\s*,|$)/i.test(text)) reply.header('vary', text ? `${text}, Origin` : 'Origin');
    done(null, payload);
  });
}
