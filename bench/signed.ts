import { CACHED_CONNECTIONS, type CachedRun, measure } from './cached.js';
import { type BenchContext, order, sum, WIDTH } from './context.js';
import { metric, transformCount } from './pixgate-process.js';

/**
 * (d) The signed-URL path (issue 4): the same cached w=360 variant as the cached phase, asked
 * for through a signed URL (no token: HMAC check against the cached image row) and through the
 * ES256 bearer token, alternating on one pixgate process, both with wrk at 64 connections. The
 * figure is the ratio signed ÷ bearer. Checked: no failed or non-2xx response, no transform.
 */
export interface SignedResult {
  readonly signedPerSecond: number;
  readonly bearerPerSecond: number;
  readonly ratio: number;
  readonly signedCpuUsEach: number;
  readonly bearerCpuUsEach: number;
  readonly transforms: number;
  readonly rounds: readonly { signed: CachedRun; bearer: CachedRun }[];
  readonly warnings: readonly string[];
}

export const SIGNING_KEY = `bench:${Buffer.alloc(32, 7).toString('base64')}`;

export async function runSignedPhase(ctx: BenchContext): Promise<SignedResult> {
  const pixgate = await ctx.startPixgate('signed', { PIXGATE_SIGNING_KEYS: SIGNING_KEY });
  try {
    const id = ctx.ids[0];
    const bearerPath = `/v1/images/${id}?w=${WIDTH}`;
    const made = await fetch(`${pixgate.url}/v1/images/${id}/signed-urls`, {
      method: 'POST',
      headers: { ...pixgate.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ transform: { w: WIDTH }, ttlSeconds: 86_400 }),
    });
    if (made.status !== 200) throw new Error(`signing failed: ${made.status} ${await made.text()}`);
    const { url: signedPath } = (await made.json()) as { url: string };
    // Both paths name the same variant: one render fills the cache for both.
    for (const [path, headers] of [
      [bearerPath, pixgate.headers],
      [signedPath, {}],
    ] as const) {
      const response = await fetch(`${pixgate.url}${path}`, { headers });
      await response.arrayBuffer();
      if (response.status !== 200)
        throw new Error(`warming ${path.split('?')[0]} failed: ${response.status}`);
    }
    const transformsBefore = await transformCount(pixgate);
    const rounds: { signed: CachedRun; bearer: CachedRun }[] = [];
    for (let round = 0; round < ctx.rounds; round++) {
      const runs: Partial<Record<'signed' | 'bearer', CachedRun>> = {};
      for (const which of order(round, 'bearer' as const, 'signed' as const)) {
        const run =
          which === 'signed'
            ? await measure(ctx, pixgate, `${pixgate.url}${signedPath}`, {})
            : await measure(ctx, pixgate, `${pixgate.url}${bearerPath}`, pixgate.headers);
        runs[which] = run;
        ctx.progress(
          `signed round ${round + 1}: ${which} ${run.perSecond.toFixed(0)}/s, ${run.cpuUsEach.toFixed(0)} µs CPU each`,
        );
      }
      if (!runs.signed || !runs.bearer) throw new Error('unreachable');
      rounds.push({ signed: runs.signed, bearer: runs.bearer });
    }
    const transforms = (await transformCount(pixgate)) - transformsBefore;
    const refused = await metric(pixgate, 'pixgate_http_requests_total', { status: '403' });

    const warnings: string[] = [];
    const failures = sum(rounds.flatMap((r) => [r.signed.failures, r.bearer.failures]));
    if (failures > 0) warnings.push(`signed: ${failures} failed or non-2xx responses`);
    if (refused > 0) warnings.push(`signed: ${refused} responses were 403`);
    if (transforms > 0) warnings.push(`signed: ${transforms} transforms during the runs`);
    const perSecond = (runs: readonly CachedRun[]) =>
      sum(runs.map((r) => r.requests)) / sum(runs.map((r) => r.seconds));
    const cpuEach = (runs: readonly CachedRun[]) =>
      sum(runs.map((r) => r.cpuUsEach * r.requests)) / sum(runs.map((r) => r.requests));
    const signedPerSecond = perSecond(rounds.map((r) => r.signed));
    const bearerPerSecond = perSecond(rounds.map((r) => r.bearer));
    return {
      signedPerSecond,
      bearerPerSecond,
      ratio: signedPerSecond / bearerPerSecond,
      signedCpuUsEach: cpuEach(rounds.map((r) => r.signed)),
      bearerCpuUsEach: cpuEach(rounds.map((r) => r.bearer)),
      transforms,
      rounds,
      warnings,
    };
  } finally {
    await pixgate.stop();
  }
}

export const SIGNED_CONNECTIONS = CACHED_CONNECTIONS;
