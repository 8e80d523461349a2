import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BenchContext, sum, WIDTH } from './context.js';
import { runWrk, type WrkRun } from './load.js';
import { metric, transformCount } from './pixgate-process.js';
import { cpuSeconds, freePort, type ServerProcess, startServer } from './processes.js';

/**
 * (b) The cached path: the w=360 variant, already in pixgate's memory cache (normal set-up:
 * memory LRU in front of disk), requested with an ES256 bearer token at 64 connections by wrk,
 * against bench/bare-server.ts (bare fastify) sending the same bytes and headers from memory,
 * measured by wrk with the same settings (the token is sent to both). Checked: no failed or
 * non-2xx response, no transform, a memory-cache hit for every request.
 * Also measured, to show how much of the gap the issue's own requirements take: the floor, the
 * bare server plus one log line and the request metrics per request (BENCH_FLOOR in bare-server.ts).
 */
export const CACHED_CONNECTIONS = 64;

export interface CachedRun extends WrkRun {
  /** Server CPU time per request, all threads: less noisy than the rate on a shared machine. */
  readonly cpuUsEach: number;
}

const SERVERS = ['bare', 'floor', 'pixgate'] as const;
type Round = Record<(typeof SERVERS)[number], CachedRun>;

export interface CachedResult {
  readonly pixgatePerSecond: number;
  readonly barePerSecond: number;
  readonly ratio: number;
  readonly pixgateCpuUsEach: number;
  readonly bareCpuUsEach: number;
  /** Bare fastify plus the log line and metrics every request must have (bare-server.ts). */
  readonly floorPerSecond: number;
  readonly floorRatio: number;
  readonly floorCpuUsEach: number;
  readonly variantBytes: number;
  /** What the bare server sends along with the bytes (pixgate's own response headers). */
  readonly headers: Record<string, string>;
  readonly memoryHits: number;
  readonly transforms: number;
  readonly rounds: readonly Round[];
  readonly warnings: readonly string[];
}

/** pixgate's headers minus those every server adds per connection. */
function replayedHeaders(response: Response): Record<string, string> {
  const skip = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);
  return Object.fromEntries([...response.headers].filter(([name]) => !skip.has(name)));
}

export async function measure(
  ctx: BenchContext,
  server: ServerProcess,
  url: string,
  headers: Record<string, string>,
): Promise<CachedRun> {
  const options = { url, connections: CACHED_CONNECTIONS, threads: ctx.wrkThreads, headers };
  await runWrk({ ...options, seconds: Math.min(ctx.warmupSeconds, 3) });
  const before = await cpuSeconds(server.pid);
  const run = await runWrk({ ...options, seconds: ctx.seconds });
  const cpu = (await cpuSeconds(server.pid)) - before;
  return { ...run, cpuUsEach: (cpu * 1e6) / Math.max(1, run.requests) };
}

export async function runCachedPhase(ctx: BenchContext): Promise<CachedResult> {
  const pixgate = await ctx.startPixgate('cached');
  const path = `/v1/images/${ctx.ids[0]}?w=${WIDTH}`;
  const first = await fetch(`${pixgate.url}${path}`, { headers: pixgate.headers });
  const variant = Buffer.from(await first.arrayBuffer());
  if (first.status !== 200) throw new Error(`the variant request failed: ${first.status}`);
  const headers = replayedHeaders(first);
  const bodyFile = join(ctx.tmp, 'variant.jpg');
  await writeFile(bodyFile, variant);
  const startBare = async (name: string, env: Record<string, string>) => {
    const port = await freePort();
    return startServer({
      args: ['--import', 'tsx', join(ctx.root, 'bench', 'bare-server.ts')],
      env: {
        ...process.env,
        BENCH_PORT: String(port),
        BENCH_BODY_FILE: bodyFile,
        BENCH_HEADERS: JSON.stringify(headers),
        ...env,
      },
      port,
      logFile: join(ctx.tmp, `${name}.log`),
      readyPath: '/healthz',
      cwd: ctx.root,
    });
  };
  const bare = await startBare('bare', {});
  const floor = await startBare('floor', { BENCH_FLOOR: '1' });
  try {
    const hits = () => metric(pixgate, 'pixgate_cache_lookups_total', { layer: 'memory', result: 'hit' });
    const hitsBefore = await hits();
    const transformsBefore = await transformCount(pixgate);
    const rounds: Round[] = [];
    const servers = { bare, floor, pixgate };
    for (let round = 0; round < ctx.rounds; round++) {
      const runs: Partial<Round> = {};
      // Each round starts with the next server: drift on a shared machine spreads over all three.
      const turn = [...SERVERS.slice(round % 3), ...SERVERS.slice(0, round % 3)];
      for (const which of turn) {
        const server = servers[which];
        const run = await measure(ctx, server, `${server.url}${path}`, pixgate.headers);
        runs[which] = run;
        ctx.progress(
          `cached round ${round + 1}: ${which} ${run.perSecond.toFixed(0)}/s, ${run.cpuUsEach.toFixed(0)} µs CPU each`,
        );
      }
      if (!runs.bare || !runs.floor || !runs.pixgate) throw new Error('unreachable');
      rounds.push({ bare: runs.bare, floor: runs.floor, pixgate: runs.pixgate });
    }
    const memoryHits = (await hits()) - hitsBefore;
    const transforms = (await transformCount(pixgate)) - transformsBefore;

    const warnings: string[] = [];
    const failures = sum(rounds.flatMap((r) => SERVERS.map((which) => r[which].failures)));
    if (failures > 0) warnings.push(`cached: ${failures} failed or non-2xx responses`);
    if (transforms > 0) warnings.push(`cached: ${transforms} transforms during the cached runs`);
    // The warm-ups count too: at least as many memory hits as measured requests.
    const requests = sum(rounds.map((r) => r.pixgate.requests));
    if (memoryHits < requests)
      warnings.push(`cached: ${memoryHits} memory-cache hits for ${requests} requests`);

    const perSecond = (runs: readonly WrkRun[]) =>
      sum(runs.map((r) => r.requests)) / sum(runs.map((r) => r.seconds));
    const cpuEach = (runs: readonly CachedRun[]) =>
      sum(runs.map((r) => r.cpuUsEach * r.requests)) / sum(runs.map((r) => r.requests));
    const pixgatePerSecond = perSecond(rounds.map((r) => r.pixgate));
    const barePerSecond = perSecond(rounds.map((r) => r.bare));
    const floorPerSecond = perSecond(rounds.map((r) => r.floor));
    return {
      pixgatePerSecond,
      barePerSecond,
      ratio: pixgatePerSecond / barePerSecond,
      pixgateCpuUsEach: cpuEach(rounds.map((r) => r.pixgate)),
      bareCpuUsEach: cpuEach(rounds.map((r) => r.bare)),
      floorPerSecond,
      floorRatio: floorPerSecond / barePerSecond,
      floorCpuUsEach: cpuEach(rounds.map((r) => r.floor)),
      variantBytes: variant.length,
      headers,
      memoryHits,
      transforms,
      rounds,
      warnings,
    };
  } finally {
    await bare.stop();
    await floor.stop();
    await pixgate.stop();
  }
}
