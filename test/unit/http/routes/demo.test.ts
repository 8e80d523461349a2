import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import type { DevIssuer } from '../../../../src/auth/dev-issuer.js';
import { sendError } from '../../../../src/http/reply.js';
import { registerDemoRoutes } from '../../../../src/http/routes/demo.js';
import { injectOverHttp } from '../../../helpers/inject-over-http.js';

/** `POST /dev/token` from a peer address of our choosing, which no real loopback socket has. */
async function app() {
  const issued: string[] = [];
  const devIssuer = {
    jwks: { keys: [] },
    issue: async ({ sub }: { sub: string }) => {
      issued.push(sub);
      return `token-for-${sub}`;
    },
  } as unknown as DevIssuer;
  const server = Fastify();
  server.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  registerDemoRoutes(server, { devIssuer });
  return { server, inject: await injectOverHttp(server), issued };
}

describe('POST /dev/token', () => {
  it('hands out tokens to loopback peers only (security review)', async () => {
    const { server, inject, issued } = await app();
    try {
      const ask = (remoteAddress: string) =>
        inject({
          method: 'POST',
          url: '/dev/token',
          remoteAddress,
          headers: { 'content-type': 'application/json' },
          payload: { sub: 'alice' },
        });
      for (const peer of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
        expect((await ask(peer)).statusCode, peer).toBe(200);
      }
      for (const peer of ['10.0.0.1', '192.168.1.2', '::ffff:10.0.0.1', 'fe80::1', '128.0.0.1']) {
        const refused = await ask(peer);
        expect(refused.statusCode, peer).toBe(403);
        expect(refused.json()).toEqual({
          error: { code: 'host_not_allowed', message: 'Dev tokens are handed out to this machine only' },
        });
      }
      expect(issued).toHaveLength(4);
    } finally {
      await server.close();
    }
  });
});
