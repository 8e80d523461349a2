import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadDevIssuer } from '../../src/auth/dev-issuer.js';
import type { Clock } from '../../src/clock.js';
import { loadConfig, settingNames } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { uploadKey } from '../../src/images/ingest.js';
import { createLogger } from '../../src/logger.js';
import { type Pixgate, startPixgate } from '../../src/main.js';

/**
 * The real server on port 0 with a temp data dir, configured through the real settings loader
 * (values are passed as PIXGATE_* strings, as an operator would), its log lines captured.
 */
export interface TestServer {
  readonly url: string;
  readonly config: Config;
  readonly dataDir: string;
  /** Every log line so far, raw JSON text. */
  readonly logs: string[];
  close(): Promise<void>;
  /** Stops and starts again on the same data dir (persistence tests). */
  restart(): Promise<TestServer>;
  /** Stops and removes the data dir. */
  destroy(): Promise<void>;
  /** Dev-mode servers only: a real ES256 access token from the dev issuer. */
  token(sub: string, scope?: string): Promise<string>;
}

export type Settings = Record<
  string,
  string | number | boolean | readonly number[] | Record<string, unknown>
>;

function toEnv(settings: Settings): Record<string, string> {
  const envOf = new Map(settingNames.map((s) => [s.key, s.env]));
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(settings)) {
    const name = envOf.get(key);
    if (!name) throw new Error(`test helper: unknown setting ${key}`);
    env[name] = Array.isArray(value)
      ? value.join(',')
      : typeof value === 'object'
        ? JSON.stringify(value)
        : String(value);
  }
  return env;
}

export async function startTestServer(
  settings: Settings,
  options: { clock?: Clock; dataDir?: string; sweepIntervalMs?: number } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'pixgate-test-')));
  const config = loadConfig({
    env: toEnv({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'info', ...settings }),
    purpose: settings.dev === true ? 'dev' : 'serve',
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const pixgate: Pixgate = await startPixgate(config, {
    logger: createLogger(config.logLevel, sink),
    clock: options.clock,
    sweepIntervalMs: options.sweepIntervalMs,
  });
  const server: TestServer = {
    url: pixgate.url,
    config,
    dataDir,
    logs,
    close: () => pixgate.close(),
    async restart() {
      await pixgate.close();
      return startTestServer(settings, { ...options, dataDir });
    },
    async destroy() {
      await pixgate.close();
      await rm(dataDir, { recursive: true, force: true });
    },
    async token(sub, scope) {
      if (!config.dev) throw new Error('test helper: token() needs a dev-mode server');
      const issuer = await loadDevIssuer(
        dataDir,
        config.issuer as string,
        config.audience as string,
        options.clock,
      );
      return issuer.issue({ sub, scope });
    },
  };
  return server;
}

/**
 * Uploads `body` as `token`'s image and answers its meta JSON; anything but a 201 throws with
 * the answer, so a test fails where the upload did.
 */
export async function uploadImage(
  server: Pick<TestServer, 'url'>,
  token: string,
  body: Buffer,
  options: { visibility?: string; type?: string } = {},
): Promise<{ id: string } & Record<string, unknown>> {
  const response = await fetch(`${server.url}/v1/images?visibility=${options.visibility ?? 'private'}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': options.type ?? 'image/png' },
    body,
  });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`upload answered ${response.status}: ${text}`);
  return JSON.parse(text) as { id: string } & Record<string, unknown>;
}

/**
 * Stops `server`, deletes the uploaded original of image `id` and the whole variant cache directory
 * (the memory layer goes with the process), and starts again on the same data dir: from then on no
 * variant of `id` can be found or made, so only an answer decided before any processing (a 304)
 * can still succeed. File origin and disk cache only.
 */
export async function restartWithoutVariants(server: TestServer, id: string): Promise<TestServer> {
  const { storage, cache } = server.config;
  if (!storage.startsWith('file:') || !cache.startsWith('file:')) {
    throw new Error('test helper: restartWithoutVariants needs a file origin and a disk cache');
  }
  await server.close();
  await rm(join(storage.slice('file:'.length), uploadKey(id)));
  await rm(cache.slice('file:'.length), { recursive: true });
  return server.restart();
}

/** The files under a folder of the server's data dir (`originals`, `tmp`), at any depth. */
export async function dataFiles(server: TestServer, dir: string): Promise<string[]> {
  const entries = await readdir(join(server.dataDir, dir), { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
}
