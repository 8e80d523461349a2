import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BenchContext, sum, WIDTH } from './context.js';
import { type LatencySummary, runAutocannon, summarize } from './load.js';
import { type Pixgate, waitForIdleQueue } from './pixgate-process.js';
import { sampleMemory } from './processes.js';

/**
 * (c) Memory: a fresh pixgate (so its high-water mark is this workload's) with no variant cache,
 * default concurrency (cores) and queue (64), under the cold workload at 64 connections, each on
 * its own variant (image i % 8 at widths 360..353) so single-flight merges nothing. RSS is
 * sampled from /proc every 50 ms and checked against the kernel's VmHWM. Then an overflow
 * phase: the same load plus bursts of requests the queue has no room for, which must be
 * refused at once with 503.
 */
export const MEMORY_CONNECTIONS = 64;
/** Extra requests per burst in the overflow phase, every 500 ms. */
export const PROBE_BURST = 8;
export const OVERFLOW_SECONDS = 4;

export interface ProbeResult {
  readonly sent: number;
  readonly refused: LatencySummary;
  readonly queued: LatencySummary;
  readonly other: number;
}

export interface MemoryResult {
  /** The larger of the sampled VmRSS peak and the kernel's VmHWM. */
  readonly peakRssBytes: number;
  readonly sampledPeakRssBytes: number;
  readonly hwmBytes: number;
  readonly rssSamples: number;
  readonly requests: number;
  readonly okPerSecond: number;
  readonly refused: number;
  readonly other: number;
  readonly ok: LatencySummary;
  readonly refusals: LatencySummary;
  readonly probe: ProbeResult;
  /** The 64 connections' own 503s during the overflow phase (see there). */
  readonly overflowRunRefused: number;
  readonly overflowRunRequests: number;
  /** pixgate's own timing of every 503 it sent (the `ms` of its request log lines). */
  readonly serverRefusals: LatencySummary;
  readonly warnings: readonly string[];
}

/**
 * Bursts of requests for variants nobody else asks for (widths 350..343, so single-flight cannot
 * merge them into waiting ones). A burst leaves every 500 ms whether the previous one is
 * answered or not: the few that find room wait seconds, the others must be refused at once.
 */
async function probeOverflow(pixgate: Pixgate, ids: readonly string[], stop: () => boolean) {
  const refused: number[] = [];
  const queued: number[] = [];
  let other = 0;
  const requests: Promise<void>[] = [];
  const probe = async (i: number) => {
    const started = performance.now();
    const response = await fetch(`${pixgate.url}/v1/images/${ids[i % ids.length]}?w=${WIDTH - 10 - i}`, {
      headers: pixgate.headers,
    });
    await response.arrayBuffer();
    const elapsed = performance.now() - started;
    if (response.status === 503 && response.headers.get('retry-after')) refused.push(elapsed);
    else if (response.status === 200) queued.push(elapsed);
    else other++;
  };
  while (!stop()) {
    for (let i = 0; i < PROBE_BURST; i++) requests.push(probe(i));
    await sleep(500);
  }
  await Promise.all(requests);
  return { sent: requests.length, refused: summarize(refused), queued: summarize(queued), other };
}

async function serverRefusalTimes(logFile: string): Promise<LatencySummary> {
  const times: number[] = [];
  for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
    if (!line.includes('"status":503')) continue;
    try {
      const entry = JSON.parse(line) as { status?: number; ms?: number };
      if (entry.status === 503 && typeof entry.ms === 'number') times.push(entry.ms);
    } catch {
      // Not a log line of ours.
    }
  }
  return summarize(times);
}

export async function runMemoryPhase(ctx: BenchContext): Promise<MemoryResult> {
  const pixgate = await ctx.startPixgate('memory', { PIXGATE_CACHE: 'none' });
  const urls = Array.from(
    { length: MEMORY_CONNECTIONS },
    (_, i) =>
      `${pixgate.url}/v1/images/${ctx.ids[i % ctx.ids.length]}?w=${WIDTH - Math.floor(i / ctx.ids.length)}`,
  );
  const load = (seconds: number) =>
    runAutocannon({ urls, connections: MEMORY_CONNECTIONS, seconds, headers: pixgate.headers });
  const memory = sampleMemory(pixgate.pid, 50);
  await load(ctx.warmupSeconds);
  await waitForIdleQueue(pixgate);
  const run = await load(ctx.seconds);
  await waitForIdleQueue(pixgate);
  ctx.progress(
    `memory: ${(run.okPerSecond).toFixed(1)}/s at ${MEMORY_CONNECTIONS} connections; overflow probe`,
  );
  // Apart from the run above: the probe takes the queue's last places, so a connection whose
  // next request comes a moment later is refused too and, refused in a millisecond, retries in a
  // tight loop, which would muddle that run's figures.
  let stopped = false;
  const probe = probeOverflow(pixgate, ctx.ids, () => stopped);
  const overflow = await load(OVERFLOW_SECONDS);
  stopped = true;
  const probed = await probe;
  await waitForIdleQueue(pixgate);
  const reading = await memory.stop();
  await pixgate.stop();

  const count = (status: number) => run.byStatus.get(status)?.count ?? 0;
  const total = sum([...run.byStatus.values()].map((s) => s.count));
  const other = total - count(200) - count(503) + run.errors + run.timeouts;
  const warnings: string[] = [];
  if (other > 0) warnings.push(`memory: ${other} responses neither 200 nor 503`);
  if (probed.other > 0) warnings.push(`memory: ${probed.other} probe responses neither 200 nor 503`);
  return {
    peakRssBytes: Math.max(reading.peakRssBytes, reading.hwmBytes),
    sampledPeakRssBytes: reading.peakRssBytes,
    hwmBytes: reading.hwmBytes,
    rssSamples: reading.samples,
    requests: total,
    okPerSecond: run.okPerSecond,
    refused: count(503),
    other,
    ok: run.byStatus.get(200) ?? summarize([]),
    refusals: run.byStatus.get(503) ?? summarize([]),
    probe: probed,
    overflowRunRefused: overflow.byStatus.get(503)?.count ?? 0,
    overflowRunRequests: sum([...overflow.byStatus.values()].map((s) => s.count)),
    serverRefusals: await serverRefusalTimes(pixgate.logFile),
    warnings,
  };
}
