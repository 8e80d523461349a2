import Fastify from 'fastify';
import { describe, expect, it, vi } from 'vitest';
import type { VariantCache } from '../../../../src/cache/variant-cache.js';
import type { Config } from '../../../../src/config/schema.js';
import { sendError } from '../../../../src/http/reply.js';
import { registerHealthRoutes } from '../../../../src/http/routes/health.js';
import { createLogger } from '../../../../src/logger.js';
import { createMetrics } from '../../../../src/metrics.js';
import type { Origin } from '../../../../src/origins/origin.js';
import type { Store } from '../../../../src/store/store.js';
import { injectOverHttp } from '../../../helpers/inject-over-http.js';
import { compared } from '../../../helpers/timing-safe-equal.js';

// Every timingSafeEqual health.ts makes, passed through to the real one.
vi.mock('node:crypto', async (original) =>
  (await import('../../../helpers/timing-safe-equal.js')).recordingTimingSafeEqual(original),
);

const METRICS_TOKEN = 'metrics-token-of-some-length';

async function app() {
  const server = Fastify();
  server.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  const ready = { check: async () => undefined };
  registerHealthRoutes(server, {
    config: { metricsToken: METRICS_TOKEN } as Config,
    store: ready as unknown as Store,
    cache: ready as unknown as VariantCache,
    origin: ready as unknown as Origin,
    metrics: createMetrics(),
    logger: createLogger('silent'),
  });
  return { server, inject: await injectOverHttp(server) };
}

describe('/metrics with PIXGATE_METRICS_TOKEN', () => {
  it('compares the token in constant time, whatever the length sent (security review)', async () => {
    const { server, inject } = await app();
    try {
      const ask = (authorization?: string) =>
        inject({ method: 'GET', url: '/metrics', headers: authorization ? { authorization } : {} });
      compared.length = 0;
      expect((await ask(`Bearer ${METRICS_TOKEN}`)).statusCode).toBe(200);
      const nearMiss = `${METRICS_TOKEN.slice(0, -1)}X`;
      for (const wrong of [nearMiss, 'short', `${METRICS_TOKEN}-and-more`]) {
        const refused = await ask(`Bearer ${wrong}`);
        expect(refused.statusCode, wrong).toBe(401);
        expect(refused.json()).toEqual({
          error: { code: 'unauthenticated', message: 'The metrics token is required' },
        });
      }
      expect((await ask()).statusCode).toBe(401);
      // Every answer went through timingSafeEqual on buffers of one length: a wrong token's
      // length or its first differing byte does not change how long the check takes.
      expect(compared).toHaveLength(5);
      for (const [given, expected] of compared) expect(given.length).toBe(expected.length);
    } finally {
      await server.close();
    }
  });
});
