import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchIssuer } from './issuer.js';
import { freePort, type ServerProcess, startServer } from './processes.js';

/**
 * One user hammering one image: the abuse limits (issue 4) would answer 429. They stay on, set
 * out of reach, so their cost is part of every figure (and of every profile).
 */
export const LIMITS_OUT_OF_REACH = {
  PIXGATE_RATE_LIMIT: '10000000',
  PIXGATE_SCRAPE_LIMIT: '10000000',
  PIXGATE_UPLOAD_LIMIT: '10000000',
} as const;

/** pixgate as a separate process (`dist/cli/main.js serve`), configured by env only. */
export interface Pixgate extends ServerProcess {
  /** The bearer token of the benchmark's user, as a header. */
  readonly headers: Record<string, string>;
}

export interface PixgateOptions {
  readonly cli: string;
  readonly cwd: string;
  readonly dataDir: string;
  readonly issuer: BenchIssuer;
  readonly token: string;
  readonly logFile: string;
  /** More PIXGATE_* settings. */
  readonly env?: Record<string, string>;
  /** Options for node itself, e.g. `--cpu-prof` (not allowed in NODE_OPTIONS). */
  readonly nodeArgs?: readonly string[];
}

export async function startPixgate(options: PixgateOptions): Promise<Pixgate> {
  const port = await freePort();
  // pixgate refuses unknown PIXGATE_* variables: start from an environment without any.
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('PIXGATE_')),
  );
  Object.assign(env, {
    PIXGATE_PORT: String(port),
    PIXGATE_DATA_DIR: options.dataDir,
    PIXGATE_ISSUER: options.issuer.issuer,
    PIXGATE_AUDIENCE: options.issuer.audience,
    PIXGATE_JWKS_URL: options.issuer.jwksUrl,
    ...options.env,
  });
  const server = await startServer({
    args: [...(options.nodeArgs ?? []), options.cli, 'serve'],
    env,
    port,
    logFile: options.logFile,
    readyPath: '/healthz',
    cwd: options.cwd,
  });
  return { ...server, headers: { authorization: `Bearer ${options.token}` } };
}

/** Sum of a Prometheus metric's samples whose labels include `labels`. */
export async function metric(
  pixgate: Pixgate,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${pixgate.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const labelText = match[2] ?? '';
    if (Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`))) {
      sum += Number(match[3]);
    }
  }
  return sum;
}

/** Variants pixgate has rendered so far (its transform histogram's count). */
export const transformCount = (pixgate: Pixgate) =>
  metric(pixgate, 'pixgate_transform_duration_seconds_count');

/**
 * autocannon drops its connections when it stops, but pixgate still finishes (and queues) what
 * they asked for: the next measurement must not start behind those orphans.
 */
export async function waitForIdleQueue(pixgate: Pixgate): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const busy =
      (await metric(pixgate, 'pixgate_queue_depth')) + (await metric(pixgate, 'pixgate_queue_running'));
    if (busy === 0) return;
    await sleep(100);
  }
  throw new Error('the processing queue did not drain within 60 s');
}

export async function upload(pixgate: Pixgate, body: Buffer): Promise<string> {
  const response = await fetch(`${pixgate.url}/v1/images?visibility=private`, {
    method: 'POST',
    headers: { ...pixgate.headers, 'content-type': 'image/jpeg' },
    body,
  });
  const json = (await response.json()) as { id?: string };
  if (response.status !== 201 || json.id === undefined) {
    throw new Error(`upload failed: ${response.status} ${JSON.stringify(json)}`);
  }
  return json.id;
}
