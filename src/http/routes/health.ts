import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { VariantCache } from '../../cache/variant-cache.js';
import type { Config } from '../../config/schema.js';
import { AppError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import type { Origin } from '../../origins/origin.js';
import type { Store } from '../../store/store.js';

export interface HealthRoutesOptions {
  readonly config: Config;
  readonly store: Store;
  readonly cache: VariantCache;
  readonly origin: Origin;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

const READY_TIMEOUT_MS = 2000;

const digest = (value: string) => createHash('sha256').update(value).digest();

export function registerHealthRoutes(app: FastifyInstance, options: HealthRoutesOptions): void {
  const { config, store, cache, origin, metrics, logger } = options;

  app.get('/healthz', async (_request, reply) =>
    reply.header('cache-control', 'no-store').send({ status: 'ok' }),
  );

  // Ready when every part a request needs answers: the store, the variant cache, the origin.
  app.get('/readyz', async (_request, reply) => {
    const parts = { store, cache, origin };
    const failing: string[] = [];
    await Promise.all(
      Object.entries(parts).map(async ([name, part]) => {
        try {
          await withTimeout(part.check(), READY_TIMEOUT_MS);
        } catch (error) {
          failing.push(name);
          logger.warn({ err: error, part: name }, 'readiness check failed');
        }
      }),
    );
    if (failing.length > 0) {
      throw new AppError('unavailable', `Not ready: ${failing.sort().join(', ')}`);
    }
    return reply.header('cache-control', 'no-store').send({ status: 'ok' });
  });

  app.get('/metrics', async (request, reply) => {
    if (config.metricsToken !== undefined) {
      const given = /^Bearer (\S+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? '';
      // Compared as digests: equal lengths for timingSafeEqual, no timing hint about the token.
      if (!timingSafeEqual(digest(given), digest(config.metricsToken))) {
        throw new AppError('unauthenticated', 'The metrics token is required', {
          headers: { 'WWW-Authenticate': 'Bearer realm="pixgate-metrics"' },
        });
      }
    }
    return reply
      .header('cache-control', 'no-store')
      .type(metrics.registry.contentType)
      .send(await metrics.registry.metrics());
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
