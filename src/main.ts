import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createAuthenticator } from './auth/authenticate.js';
import { loadDevIssuer } from './auth/dev-issuer.js';
import { createIntrospectionVerifier } from './auth/introspection.js';
import { createTokenVerifier } from './auth/jwt.js';
import { createSessions } from './auth/sessions.js';
import { createSignedUrls, loadDevSigningKey } from './auth/signed-url.js';
import { withDeleteFence } from './cache/delete-fence.js';
import { createDiskCache } from './cache/disk.js';
import { createMemoryCache } from './cache/memory.js';
import { createNoCache } from './cache/no-cache.js';
import { createTieredCache } from './cache/tiered.js';
import type { VariantCache } from './cache/variant-cache.js';
import { type Clock, systemClock } from './clock.js';
import type { Config } from './config/schema.js';
import { registerDemoRoutes } from './http/routes/demo.js';
import { registerDevRoutes } from './http/routes/dev.js';
import { buildServer, cutConnections } from './http/server.js';
import { createIngest, type Ingest } from './images/ingest.js';
import { createPipeline } from './images/pipeline.js';
import { createVariantService } from './images/variants.js';
import { createWorkQueue } from './images/work-queue.js';
import { createMemoryLimiter } from './limits/limiter.js';
import { createLimits } from './limits/limits.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { createBufferPool } from './origins/buffer-pool.js';
import { parseS3Url } from './origins/location.js';
import { openOrigin, s3ClientFor } from './origins/open.js';
import type { Origin } from './origins/origin.js';
import { withImageCache } from './store/cached-store.js';
import { openSqliteSessionStore } from './store/kysely-session-store.js';
import { openSqliteStore } from './store/sqlite.js';
import type { Store } from './store/store.js';

/**
 * The composition root: settings → parts → server. Every part that has an embedded and a
 * scaled-out form is chosen here, and nowhere else knows which one runs.
 */

/**
 * How long a shutdown waits for requests in flight: under `docker stop`'s 10 s before SIGKILL,
 * and longer than a transform takes. An upload still arriving after it is refused, and keeps
 * nothing; its client sends it again to the next instance.
 */
const SHUTDOWN_GRACE_MS = 5000;

/**
 * How often a running server sweeps what crashes left in the temp dir (ingest.ts), besides at
 * start: a server restarted at once after a crash finds its leftovers less than an hour old, too
 * fresh to touch, and would otherwise keep them until some start an hour later.
 */
const SWEEP_INTERVAL_MS = 10 * 60 * 1000;

export interface StartOptions {
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Tests only: how often the temp dir is swept while the server runs. */
  readonly sweepIntervalMs?: number;
}

export interface Pixgate {
  readonly url: string;
  readonly server: FastifyInstance;
  close(): Promise<void>;
}

/** What a request never needs but tools (`import`) do: the store, the origin and ingest. */
export interface Storage {
  readonly store: Store;
  readonly origin: Origin;
  readonly ingest: Ingest;
  close(): Promise<void>;
}

/** The SQLite file in the data dir: images, links and sessions. */
export const databaseFile = (dataDir: string) => join(dataDir, 'pixgate.db');

export async function openStorage(config: Config, clock: Clock = systemClock): Promise<Storage> {
  await mkdir(config.dataDir, { recursive: true });
  const store = withImageCache(await openSqliteStore(databaseFile(config.dataDir)), {
    maxEntries: config.imageCacheSize,
    ttlMs: config.imageCacheTtlSeconds * 1000,
  });
  // Idle read buffers kept for reuse: about one original per processing slot.
  const pool = createBufferPool(Math.max(64 * 1024 * 1024, 2 * config.concurrency * 8 * 1024 * 1024));
  const origin = await openOrigin(config, pool);
  const ingest = createIngest({
    store,
    origin,
    tempDir: join(config.dataDir, 'tmp'),
    maxUploadBytes: config.maxUploadBytes,
    maxInputPixels: config.maxInputPixels,
    maxFrames: config.maxFrames,
    now: () => clock.now(),
  });
  return { store, origin, ingest, close: () => store.close() };
}

async function openCache(config: Config, logger: Logger, onLookup: (layer: string, hit: boolean) => void) {
  if (config.cache === 'none') return createNoCache();
  const memory = createMemoryCache({ maxBytes: config.memoryCacheBytes, onLookup });
  const s3 = parseS3Url(config.cache);
  if (s3) {
    // Shared by every instance; PIXGATE_DISK_CACHE_BYTES bounds what each one keeps track of.
    // Loaded only when used, like the S3 origin (origins/open.ts).
    const { createS3Cache } = await import('./cache/s3.js');
    const shared = await createS3Cache({
      client: await s3ClientFor(config),
      location: s3,
      maxBytes: config.diskCacheBytes,
      logger,
      onLookup,
    });
    return createTieredCache(memory, shared);
  }
  const disk = await createDiskCache({
    dir: config.cache.slice('file:'.length),
    maxBytes: config.diskCacheBytes,
    logger,
    onLookup,
  });
  return createTieredCache(memory, disk);
}

export async function startPixgate(config: Config, options: StartOptions = {}): Promise<Pixgate> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const clock = options.clock ?? systemClock;
  const metrics = createMetrics();

  if (config.dev) {
    logger.warn(
      'DEV MODE: tokens are issued to anyone who asks on this machine, with a key kept in the data dir. Never expose this server.',
    );
  }

  const storage = await openStorage(config, clock);
  // At server start (and every SWEEP_INTERVAL_MS), not in openStorage: every tool opens storage,
  // often while a server runs, and exits soon after.
  await storage.ingest.sweepTempFiles();
  // Around every layer at once: a render finishing after its image's DELETE stores nothing.
  const cache: VariantCache = withDeleteFence(
    await openCache(config, logger, (layer, hit) =>
      metrics.cacheLookups.inc({ layer, result: hit ? 'hit' : 'miss' }),
    ),
  );

  const devIssuer = config.dev
    ? await loadDevIssuer(config.dataDir, config.issuer as string, config.audience as string, clock)
    : undefined;
  const verifier = createTokenVerifier({
    issuer: config.issuer as string,
    audience: config.audience as string,
    jwks: devIssuer
      ? { keys: devIssuer.jwks }
      : { url: config.jwksUrl as string, cooldownSeconds: config.jwksCooldownSeconds },
    requireAtJwt: config.requireAtJwt,
    clockSkewSeconds: config.clockSkewSeconds,
    cacheSize: config.tokenCacheSize,
    clock,
    onFailure: (reason) => metrics.authFailures.inc({ reason }),
  });
  // Issue 4: opaque tokens go to RFC 7662 introspection when it is configured.
  const opaque = config.introspectionUrl
    ? createIntrospectionVerifier({
        url: config.introspectionUrl,
        clientId: config.introspectionClientId as string,
        clientSecret: config.introspectionClientSecret as string,
        audience: config.audience as string,
        issuer: config.issuer,
        clock,
        cacheSize: config.tokenCacheSize,
        onFailure: (reason) => metrics.authFailures.inc({ reason }),
      })
    : undefined;
  const authenticate = createAuthenticator({ jwt: verifier, ...(opaque ? { opaque } : {}) });

  // Issue 4: signed URLs (dev mode makes its own key), and the in-process limits.
  const signingKeys =
    config.signingKeys.length === 0 && config.dev
      ? [await loadDevSigningKey(config.dataDir)]
      : config.signingKeys;
  const signedUrls = createSignedUrls(signingKeys, config.signedUrlBucket);
  const limits = createLimits({
    rateLimit: config.rateLimit,
    scrapeLimit: config.scrapeLimit,
    uploadLimit: config.uploadLimit,
    createLimiter: (name, points, windowSeconds) => createMemoryLimiter({ name, points, windowSeconds }),
    onLimited: (limit) => metrics.limited.inc({ limit }),
  });

  const queue = createWorkQueue({
    concurrency: config.concurrency,
    queueSize: config.queueSize,
    onChange: (waiting, running) => {
      metrics.queueWaiting.set(waiting);
      metrics.queueRunning.set(running);
    },
  });
  const variants = createVariantService({
    cache,
    origin: storage.origin,
    pipeline: createPipeline(config),
    queue,
    maxOriginBytes: config.maxUploadBytes,
    onRendered: (format, seconds) => metrics.transformDuration.observe({ format }, seconds),
  });

  // After openStorage: the store's open has migrated the database the sessions live in.
  const sessionStore = await openSqliteSessionStore(databaseFile(config.dataDir));
  const sessions = createSessions({ store: sessionStore, clock, maxSeconds: config.sessionMaxSeconds });

  const server = await buildServer({
    config,
    logger,
    metrics,
    store: storage.store,
    cache,
    origin: storage.origin,
    variants,
    ingest: storage.ingest,
    authenticate,
    sessions,
    signedUrls,
    limits,
    clock,
  });
  if (devIssuer) {
    registerDevRoutes(server, { devIssuer });
    registerDemoRoutes(server, { devIssuer });
  }

  let sweeping: Promise<void> | undefined;
  const sweeper = setInterval(() => {
    sweeping ??= storage.ingest.sweepTempFiles().finally(() => {
      sweeping = undefined;
    });
  }, options.sweepIntervalMs ?? SWEEP_INTERVAL_MS);
  sweeper.unref();

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    clearInterval(sweeper);
    // Requests in flight get a grace period to finish; then their connections are cut. A client
    // that stalls (an upload that never ends) would otherwise hold the shutdown until the process
    // manager's SIGKILL, leaving its temp file behind; cut off, it is an upload broken off,
    // refused and removed like any other (SPEC §6: stored completely or not at all).
    const cut = setTimeout(() => cutConnections(server), SHUTDOWN_GRACE_MS);
    try {
      await server.close();
    } finally {
      clearTimeout(cut);
    }
    await variants.drain();
    await sweeping;
    await cache.close();
    await sessionStore.close();
    await storage.close();
    logger.flush();
  };

  try {
    await server.listen({ host: config.host, port: config.port });
  } catch (error) {
    await close();
    throw error;
  }
  const address = server.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { url: `http://${host}:${address.port}`, server, close };
}
