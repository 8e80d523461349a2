import type { FastifyInstance } from 'fastify';
import type { DevIssuer } from '../../auth/dev-issuer.js';

/** Dev mode only: the dev issuer's public keys, for anyone who wants to verify its tokens. */
export function registerDevRoutes(app: FastifyInstance, options: { devIssuer: DevIssuer }): void {
  app.get('/dev/jwks.json', async (_request, reply) =>
    reply.header('cache-control', 'no-cache').send(options.devIssuer.jwks),
  );
}
