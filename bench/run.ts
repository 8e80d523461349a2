/**
 * `npm run bench`: the three figures of issue 2, item 11, from one run, each against a baseline
 * measured in the same run (the machine is shared and noisy: ratios hold, absolute numbers do
 * not). See cold.ts, cached.ts and memory.ts for what each measures and checks.
 *
 *   cold    pixgate req/s ÷ raw sharp (w=360 JPEG of a 4000×3000 photo, 8 connections)
 *   cached  pixgate req/s ÷ bare fastify (the same variant and headers, ES256 bearer, 64 conn, wrk),
 *           and the floor: bare fastify plus the log line and metrics every request must have
 *   memory  pixgate's peak RSS under the cold workload at 64 connections; its 503s
 *   origins the cold path from an S3 origin (s3rver) and an HTTP origin ÷ the file origin
 *   signed  the cached variant through a signed URL ÷ through the bearer token (signed.ts)
 *
 * pixgate runs as its own process (`dist/cli/main.js serve`, configured by env, a temp data
 * dir, output to a log file), as production does, with a real JWKS issuer (issuer.ts).
 * Settings (env): BENCH_SECONDS (8), BENCH_WARMUP_SECONDS (3), BENCH_ROUNDS (2),
 * BENCH_WRK_THREADS (2), BENCH_ONLY (cold,cached,memory,origins,signed: a subset), BENCH_KEEP=1 keeps the temp
 * dir with the server logs, BENCH_DIST=<folder> runs another build than dist/ (a patched copy,
 * to try an idea against the same baselines), BENCH_NODE_ARGS adds node options to every pixgate
 * process (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": one profile per phase).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { CACHED_CONNECTIONS, type CachedResult, runCachedPhase } from './cached.js';
import { COLD_CONNECTIONS, type ColdResult, runColdPhase } from './cold.js';
import { type BenchContext, sum, WIDTH } from './context.js';
import { startIssuer } from './issuer.js';
import {
  MEMORY_CONNECTIONS,
  type MemoryResult,
  OVERFLOW_SECONDS,
  PROBE_BURST,
  runMemoryPhase,
} from './memory.js';
import { originsLines, runOriginsPhase } from './origins.js';
import { synthesizePhoto } from './photo.js';
import { LIMITS_OUT_OF_REACH, type Pixgate, startPixgate, upload } from './pixgate-process.js';
import { runSignedPhase, SIGNED_CONNECTIONS, type SignedResult } from './signed.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(process.env.BENCH_DIST ?? join(ROOT, 'dist'), 'cli', 'main.js');

function setting(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${name}: expected a positive integer`);
  return parsed;
}

const PHASES = ['cold', 'cached', 'memory', 'origins', 'signed'] as const;
type Phase = (typeof PHASES)[number];

function selectedPhases(): Set<Phase> {
  const text = process.env.BENCH_ONLY;
  if (text === undefined || text.trim() === '') return new Set(PHASES);
  const chosen = text.split(',').map((part) => part.trim());
  const unknown = chosen.filter((part) => !(PHASES as readonly string[]).includes(part));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: expected some of ${PHASES.join(', ')}`);
  return new Set(chosen as Phase[]);
}

/** Refusals slower than this at the client do not count as "refused fast". */
const TARGETS = { cold: 0.9, cached: 0.8, peakRssBytes: 300e6, refusalP99Ms: 100 } as const;

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
const ms = (value: number) => (value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`);
const rate = (value: number) => (value >= 1000 ? value.toFixed(0) : value.toFixed(1));
const mark = (ok: boolean) => (ok ? 'ok' : 'MISSED');

function ensureWrk(): void {
  const result = spawnSync('sh', [join(ROOT, 'bench', 'ensure-wrk.sh')], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error('wrk is required for the cached path (bench/ensure-wrk.sh)');
}

/** Share of the machine's CPU busy over `ms`, from /proc/stat: other work makes figures noisy. */
async function machineBusy(ms: number): Promise<number> {
  const read = async () => {
    const fields = ((await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '')
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    return { idle: (fields[3] ?? 0) + (fields[4] ?? 0), total: sum(fields) };
  };
  const before = await read();
  await sleep(ms);
  const after = await read();
  const total = after.total - before.total;
  return total > 0 ? 1 - (after.idle - before.idle) / total : 0;
}

function coldLines(cold: ColdResult): string[] {
  return [
    `cold    w=${WIDTH} jpeg, ${COLD_CONNECTIONS} conn     pixgate ${rate(cold.pixgatePerSecond)} req/s   raw sharp ${rate(cold.rawSharpPerSecond)} req/s   ratio ${cold.ratio.toFixed(2)}  (target >= ${TARGETS.cold.toFixed(2)}) ${mark(cold.ratio >= TARGETS.cold)}`,
    `        CPU per image (all threads): pixgate ${cold.pixgateCpuMsEach.toFixed(1)} ms, raw sharp ${cold.rawSharpCpuMsEach.toFixed(1)} ms`,
  ];
}

function cachedLines(cached: CachedResult): string[] {
  const average = (values: number[]) => sum(values) / values.length;
  const pixgate = cached.rounds.map((r) => r.pixgate);
  const bare = cached.rounds.map((r) => r.bare);
  const kb = (runs: typeof pixgate) =>
    `${(average(runs.map((r) => r.bytesPerResponse)) / 1000).toFixed(1)} kB`;
  return [
    `cached  ES256 bearer, ${CACHED_CONNECTIONS} conn  pixgate ${rate(cached.pixgatePerSecond)} req/s   bare fastify ${rate(cached.barePerSecond)} req/s   ratio ${cached.ratio.toFixed(2)}  (target >= ${TARGETS.cached.toFixed(2)}) ${mark(cached.ratio >= TARGETS.cached)}`,
    `        server CPU per request: pixgate ${cached.pixgateCpuUsEach.toFixed(0)} µs, bare ${cached.bareCpuUsEach.toFixed(0)} µs; p50/p99 pixgate ${ms(average(pixgate.map((r) => r.p50Ms)))}/${ms(average(pixgate.map((r) => r.p99Ms)))}, bare ${ms(average(bare.map((r) => r.p50Ms)))}/${ms(average(bare.map((r) => r.p99Ms)))}; response ${kb(pixgate)} vs ${kb(bare)} with headers`,
    `        floor, bare fastify + one log line + request metrics (no auth, no policy, no cache): ${rate(cached.floorPerSecond)} req/s, ${cached.floorCpuUsEach.toFixed(0)} µs CPU, ratio ${cached.floorRatio.toFixed(2)}`,
  ];
}

function memoryPass(memory: MemoryResult) {
  return {
    peakRss: memory.peakRssBytes <= TARGETS.peakRssBytes,
    refusalsFast: memory.probe.refused.count > 0 && memory.probe.refused.p99Ms <= TARGETS.refusalP99Ms,
  };
}

function memoryLines(memory: MemoryResult): string[] {
  const pass = memoryPass(memory);
  const { probe, serverRefusals: server } = memory;
  return [
    `memory  ${MEMORY_CONNECTIONS} conn cold           peak RSS ${mb(memory.peakRssBytes)} (target <= ${mb(TARGETS.peakRssBytes)}) ${mark(pass.peakRss)}; ${rate(memory.okPerSecond)} req/s; 503s: ${memory.refused} of ${memory.requests}; p50 ${ms(memory.ok.p50Ms)} p99 ${ms(memory.ok.p99Ms)}`,
    `        beyond the queue (+${PROBE_BURST} every 0.5 s for ${OVERFLOW_SECONDS} s): ${probe.refused.count} of ${probe.sent} refused with 503 in p50 ${ms(probe.refused.p50Ms)} p99 ${ms(probe.refused.p99Ms)} max ${ms(probe.refused.maxMs)} at the client (fast: p99 <= ${TARGETS.refusalP99Ms} ms) ${mark(pass.refusalsFast)}`,
    `        pixgate's own time for all its ${server.count} 503s: p50 ${ms(server.p50Ms)} p99 ${ms(server.p99Ms)} max ${ms(server.maxMs)}; the ${probe.queued.count} probes that found room waited ${ms(probe.queued.p50Ms)} (p50)`,
  ];
}

function signedLines(signed: SignedResult): string[] {
  return [
    `signed  cached variant, ${SIGNED_CONNECTIONS} conn   signed URL ${rate(signed.signedPerSecond)} req/s   ES256 bearer ${rate(signed.bearerPerSecond)} req/s   ratio ${signed.ratio.toFixed(2)}`,
    `        server CPU per request: signed ${signed.signedCpuUsEach.toFixed(0)} µs, bearer ${signed.bearerCpuUsEach.toFixed(0)} µs`,
  ];
}

async function main(): Promise<void> {
  const phases = selectedPhases();
  ensureWrk();
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run \`npm run build\` first (npm run bench does)`);
  const busyBefore = await machineBusy(2000);
  const cores = availableParallelism();
  const heading = `pixgate bench (${cores} cores, node ${process.version}, sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips})`;
  process.stderr.write(`${heading}\n`);
  const progress = (message: string) => process.stderr.write(`  · ${message}\n`);

  const tmp = await mkdtemp(join(tmpdir(), 'pixgate-bench-'));
  const issuer = await startIssuer();
  const running = new Set<Pixgate>();
  try {
    const token = await issuer.token('bench', 'images:read images:write');
    const start = async (name: string, env: Record<string, string> = {}) => {
      const pixgate = await startPixgate({
        cli: CLI,
        cwd: ROOT,
        dataDir: join(tmp, 'data'),
        issuer,
        token,
        logFile: join(tmp, `${name}.log`),
        env: { ...LIMITS_OUT_OF_REACH, ...env },
        nodeArgs: (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== ''),
      });
      running.add(pixgate);
      return pixgate;
    };

    progress('synthesizing a 4000×3000 photo-like JPEG');
    const photo = await synthesizePhoto();
    const uploader = await start('upload', { PIXGATE_CACHE: 'none' });
    const ids: string[] = [];
    for (let i = 0; i < COLD_CONNECTIONS; i++) ids.push(await upload(uploader, photo));
    await uploader.stop();
    progress(`uploaded ${ids.length} copies of the photo (${(photo.length / 1e6).toFixed(2)} MB)`);

    const ctx: BenchContext = {
      root: ROOT,
      tmp,
      issuer,
      photo,
      ids,
      seconds: setting('BENCH_SECONDS', 8),
      warmupSeconds: setting('BENCH_WARMUP_SECONDS', 3),
      rounds: setting('BENCH_ROUNDS', 2),
      wrkThreads: setting('BENCH_WRK_THREADS', 2),
      startPixgate: start,
      progress,
    };
    const cold = phases.has('cold') ? await runColdPhase(ctx) : undefined;
    const cached = phases.has('cached') ? await runCachedPhase(ctx) : undefined;
    const memory = phases.has('memory') ? await runMemoryPhase(ctx) : undefined;
    const origins = phases.has('origins') ? await runOriginsPhase(ctx) : undefined;
    const signed = phases.has('signed') ? await runSignedPhase(ctx) : undefined;

    const warnings = [
      ...(cold?.warnings ?? []),
      ...(cached?.warnings ?? []),
      ...(memory?.warnings ?? []),
      ...(origins?.warnings ?? []),
      ...(signed?.warnings ?? []),
    ];
    if (busyBefore > 0.1) {
      warnings.push(
        `the machine was ${(busyBefore * 100).toFixed(0)}% busy before the bench started (other work): figures are noisier than usual`,
      );
    }
    const lines = [
      heading,
      ...(cold ? coldLines(cold) : []),
      ...(cached ? cachedLines(cached) : []),
      ...(memory ? memoryLines(memory) : []),
      ...(origins ? originsLines(origins) : []),
      ...(signed ? signedLines(signed) : []),
      `(${ctx.rounds} alternating rounds of ${ctx.seconds} s after ${ctx.warmupSeconds} s warm-up; pixgate concurrency ${cores}, queue 64; wrk -t${ctx.wrkThreads})`,
      ...warnings.map((warning) => `WARNING: ${warning}`),
    ];
    process.stdout.write(`\n${lines.join('\n')}\n`);

    const results = {
      date: new Date().toISOString(),
      machine: { cores, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, sharp: sharp.versions },
      machineBusyBefore: busyBefore,
      settings: {
        cli: CLI,
        seconds: ctx.seconds,
        warmupSeconds: ctx.warmupSeconds,
        rounds: ctx.rounds,
        wrkThreads: ctx.wrkThreads,
        photoBytes: photo.length,
      },
      targets: TARGETS,
      pass: {
        ...(cold ? { cold: cold.ratio >= TARGETS.cold } : {}),
        ...(cached ? { cached: cached.ratio >= TARGETS.cached } : {}),
        ...(memory ? memoryPass(memory) : {}),
      },
      cold,
      cached,
      memory,
      origins,
      signed,
      warnings,
    };
    const resultsDir = join(ROOT, 'bench', 'results');
    await mkdir(resultsDir, { recursive: true });
    await writeFile(join(resultsDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
    process.stderr.write(
      `results: bench/results/latest.json${process.env.BENCH_KEEP === '1' ? `; logs in ${tmp}` : ''}\n`,
    );
  } finally {
    await Promise.all([...running].map((pixgate) => pixgate.stop()));
    await issuer.close();
    if (process.env.BENCH_KEEP !== '1') await rm(tmp, { recursive: true, force: true });
  }
}

await main();
