import { type BenchContext, order, QUALITY, sum, WIDTH } from './context.js';
import { runAutocannon } from './load.js';
import { type Pixgate, transformCount, waitForIdleQueue } from './pixgate-process.js';
import { cpuSeconds } from './processes.js';
import { runRawSharp } from './raw-sharp.js';

/**
 * (a) The cold path: w=360 JPEG of the 4000×3000 photo at 8 connections with no variant cache
 * (PIXGATE_CACHE=none), against raw sharp doing the same work in this process with 2 jobs in
 * flight. Each connection asks for its own copy of the image, always the same URL, so
 * single-flight never merges two requests and every response is a real transform: checked
 * with pixgate's own transform count and with the URLs autocannon actually used.
 */
export const COLD_CONNECTIONS = 8;

export interface ColdRound {
  readonly rawSharp: { operations: number; seconds: number; cpuMsEach: number };
  readonly pixgate: {
    ok: number;
    seconds: number;
    non200: number;
    transforms: number;
    distinctUrls: number;
    cpuMsEach: number;
  };
}

export interface ColdResult {
  readonly pixgatePerSecond: number;
  readonly rawSharpPerSecond: number;
  readonly ratio: number;
  /** CPU time per image, all threads: what pixgate spends around sharp shows here. */
  readonly pixgateCpuMsEach: number;
  readonly rawSharpCpuMsEach: number;
  readonly rounds: readonly ColdRound[];
  readonly warnings: readonly string[];
}

async function measureRawSharp(ctx: BenchContext): Promise<ColdRound['rawSharp']> {
  const options = { inFlight: 2, width: WIDTH, quality: QUALITY };
  await runRawSharp(ctx.photo, { ...options, seconds: ctx.warmupSeconds });
  const before = process.cpuUsage();
  const run = await runRawSharp(ctx.photo, { ...options, seconds: ctx.seconds });
  const used = process.cpuUsage(before);
  return {
    operations: run.operations,
    seconds: run.seconds,
    cpuMsEach: (used.user + used.system) / 1000 / run.operations,
  };
}

export async function measurePixgate(
  ctx: BenchContext,
  pixgate: Pixgate,
  urls: readonly string[],
): Promise<ColdRound['pixgate']> {
  const load = (seconds: number) =>
    runAutocannon({ urls, connections: COLD_CONNECTIONS, seconds, headers: pixgate.headers });
  await load(ctx.warmupSeconds);
  await waitForIdleQueue(pixgate);
  const transformsBefore = await transformCount(pixgate);
  const cpuBefore = await cpuSeconds(pixgate.pid);
  const run = await load(ctx.seconds);
  await waitForIdleQueue(pixgate);
  const cpu = (await cpuSeconds(pixgate.pid)) - cpuBefore;
  const transforms = (await transformCount(pixgate)) - transformsBefore;
  const ok = run.byStatus.get(200)?.count ?? 0;
  const all = sum([...run.byStatus.values()].map((s) => s.count));
  return {
    ok,
    seconds: run.seconds,
    non200: all - ok + run.errors + run.timeouts,
    transforms,
    distinctUrls: run.byPath.size,
    // The transforms include the few that finished after autocannon stopped: so does the CPU.
    cpuMsEach: (cpu * 1000) / Math.max(1, transforms),
  };
}

export async function runColdPhase(ctx: BenchContext): Promise<ColdResult> {
  const pixgate = await ctx.startPixgate('cold', { PIXGATE_CACHE: 'none' });
  const urls = ctx.ids.map((id) => `${pixgate.url}/v1/images/${id}?w=${WIDTH}`);
  const rounds: ColdRound[] = [];
  for (let round = 0; round < ctx.rounds; round++) {
    let rawSharp: ColdRound['rawSharp'] | undefined;
    let measured: ColdRound['pixgate'] | undefined;
    for (const which of order(round, 'raw sharp', 'pixgate')) {
      if (which === 'raw sharp') {
        rawSharp = await measureRawSharp(ctx);
        ctx.progress(
          `cold round ${round + 1}: raw sharp ${(rawSharp.operations / rawSharp.seconds).toFixed(1)}/s`,
        );
      } else {
        measured = await measurePixgate(ctx, pixgate, urls);
        ctx.progress(`cold round ${round + 1}: pixgate ${(measured.ok / measured.seconds).toFixed(1)}/s`);
      }
    }
    if (!rawSharp || !measured) throw new Error('unreachable');
    rounds.push({ rawSharp, pixgate: measured });
  }
  await pixgate.stop();

  const warnings: string[] = [];
  for (const [i, { pixgate: r }] of rounds.entries()) {
    if (r.distinctUrls !== COLD_CONNECTIONS) {
      warnings.push(`cold round ${i + 1}: ${r.distinctUrls} distinct URLs, expected ${COLD_CONNECTIONS}`);
    }
    if (r.transforms < r.ok)
      warnings.push(`cold round ${i + 1}: ${r.transforms} transforms for ${r.ok} responses`);
    if (r.non200 > 0) warnings.push(`cold round ${i + 1}: ${r.non200} responses were not 200`);
  }
  const pixgatePerSecond = sum(rounds.map((r) => r.pixgate.ok)) / sum(rounds.map((r) => r.pixgate.seconds));
  const rawSharpPerSecond =
    sum(rounds.map((r) => r.rawSharp.operations)) / sum(rounds.map((r) => r.rawSharp.seconds));
  return {
    pixgatePerSecond,
    rawSharpPerSecond,
    ratio: pixgatePerSecond / rawSharpPerSecond,
    pixgateCpuMsEach: sum(rounds.map((r) => r.pixgate.cpuMsEach)) / rounds.length,
    rawSharpCpuMsEach: sum(rounds.map((r) => r.rawSharp.cpuMsEach)) / rounds.length,
    rounds,
    warnings,
  };
}
