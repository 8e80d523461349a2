import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { DevIssuer } from '../../auth/dev-issuer.js';
import { AppError } from '../../errors.js';
import { clientDir } from './client.js';

/**
 * DEV MODE ONLY (`pixgate dev`): the demo page at `/` and `POST /dev/token`, which hands a dev
 * issuer token to whoever asks from this machine. Never registered by `pixgate serve`. Three
 * guards: dev mode answers loopback Host names only (server.ts, against DNS rebinding), the peer
 * must be a loopback address, and a browser request must come from pixgate's own origin.
 */

export const DEV_USERS = ['alice', 'bob', 'carol'] as const;

const tokenRequest = z.object({ sub: z.enum(DEV_USERS) }).strict();

const LOOPBACK_PEER = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/** The demo page may load its own scripts and styles, and show images from blob: and data: URLs. */
const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "frame-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'self'",
].join('; ');

const HTML = 'text/html; charset=utf-8';
const JS = 'text/javascript; charset=utf-8';

export function registerDemoRoutes(app: FastifyInstance, options: { devIssuer: DevIssuer }): void {
  const web = fileURLToPath(new URL('../../../web/', import.meta.url));
  const client = clientDir();
  const files = {
    page: readFileSync(`${web}index.html`),
    frame: readFileSync(`${web}sw-frame.html`),
    css: readFileSync(`${web}demo.css`),
    script: readFileSync(`${client}demo.js`),
    frameScript: readFileSync(`${client}demo-sw-frame.js`),
  };

  const page = (body: Buffer) => async (_request: unknown, reply: import('fastify').FastifyReply) =>
    reply
      .type(HTML)
      .header('cache-control', 'no-cache')
      .header('content-security-policy', PAGE_CSP)
      .send(body);
  app.get('/', page(files.page));
  // The service-worker method lives in its own frame and scope, so that the worker does not take
  // over the main page (where the cookie and query panels must go without it).
  app.get('/demo/sw/', page(files.frame));
  app.get('/demo.css', async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'no-cache').send(files.css),
  );
  app.get('/demo.js', async (_request, reply) =>
    reply.type(JS).header('cache-control', 'no-cache').send(files.script),
  );
  app.get('/demo-sw-frame.js', async (_request, reply) =>
    reply.type(JS).header('cache-control', 'no-cache').send(files.frameScript),
  );

  app.post('/dev/token', async (request, reply) => {
    if (!LOOPBACK_PEER.test(request.socket.remoteAddress ?? '')) {
      throw new AppError('host_not_allowed', 'Dev tokens are handed out to this machine only');
    }
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== `${request.protocol}://${request.host}`) {
      throw new AppError('host_not_allowed', 'Dev tokens are handed out to the demo page only');
    }
    const body = tokenRequest.safeParse(request.body);
    if (!body.success) {
      throw new AppError(
        'invalid_request',
        `Expected { "sub": ${DEV_USERS.map((u) => `"${u}"`).join(' | ')} }`,
      );
    }
    request.log.warn({ sub: body.data.sub }, 'DEV MODE: issued a dev token to the demo page');
    const ttlSeconds = 3600;
    const token = await options.devIssuer.issue({ sub: body.data.sub, ttlSeconds });
    return reply.header('cache-control', 'no-store').send({
      token,
      expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString(),
    });
  });
}
