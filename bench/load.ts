import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

/** Load generators: autocannon for the slow cold path, wrk for the fast cached one. */

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export function summarize(latenciesMs: readonly number[]): LatencySummary {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
  return { count: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted.at(-1) ?? 0 };
}

export interface AutocannonRun {
  readonly seconds: number;
  /** 200 responses per second. */
  readonly okPerSecond: number;
  /** Latencies by status code (autocannon's own histograms mix them). */
  readonly byStatus: ReadonlyMap<number, LatencySummary>;
  /** Responses by request path: shows that every connection really used its own URL. */
  readonly byPath: ReadonlyMap<string, number>;
  readonly errors: number;
  readonly timeouts: number;
}

export interface AutocannonOptions {
  /** Connection i requests urls[i % urls.length], always the same one. */
  readonly urls: readonly string[];
  readonly connections: number;
  readonly seconds: number;
  readonly headers?: Record<string, string>;
  readonly timeoutSeconds?: number;
}

export function runAutocannon(options: AutocannonOptions): Promise<AutocannonRun> {
  const latencies = new Map<number, number[]>();
  const byPath = new Map<string, number>();
  let first = 0;
  let last = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: [...options.urls],
        connections: options.connections,
        duration: options.seconds,
        timeout: options.timeoutSeconds ?? 30,
        headers: options.headers ?? {},
      },
      (error, result) => {
        if (error) {
          reject(error);
          return;
        }
        const byStatus = new Map([...latencies].map(([status, list]) => [status, summarize(list)]));
        // Between the first and the last response: autocannon's own duration includes its
        // sampling tick, and the rate is what matters.
        const seconds = (last - first) / 1000;
        const ok = latencies.get(200)?.length ?? 0;
        resolve({
          seconds,
          okPerSecond: seconds > 0 ? ok / seconds : 0,
          byStatus,
          byPath,
          errors: result.errors,
          timeouts: result.timeouts,
        });
      },
    );
    instance.on('response', (client, statusCode, _bytes, ms) => {
      const now = performance.now();
      if (first === 0) first = now - ms;
      last = now;
      const list = latencies.get(statusCode) ?? [];
      if (list.length === 0) latencies.set(statusCode, list);
      list.push(ms);
      byPath.set(client.opts.path, (byPath.get(client.opts.path) ?? 0) + 1);
    });
  });
}

export interface WrkRun {
  readonly requests: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** Average bytes per response, headers included: shows both servers sent the same thing. */
  readonly bytesPerResponse: number;
  /** Non-2xx/3xx responses plus socket errors and timeouts: must be 0 for a valid figure. */
  readonly failures: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface WrkOptions {
  readonly url: string;
  readonly connections: number;
  readonly threads: number;
  readonly seconds: number;
  readonly headers?: Record<string, string>;
}

const REPORT_SCRIPT = fileURLToPath(new URL('./wrk-report.lua', import.meta.url));

/** wrk as a child process, awaited asynchronously so this process keeps serving (the JWKS). */
export function runWrk(options: WrkOptions): Promise<WrkRun> {
  const args = [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    '--timeout',
    '10s',
    '-s',
    REPORT_SCRIPT,
    ...Object.entries(options.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
    options.url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = /^WRK_JSON (.+)$/m.exec(stdout)?.[1];
      if (code !== 0 || line === undefined) {
        reject(new Error(`wrk failed (exit ${code}): ${stderr || stdout}`));
        return;
      }
      const r = JSON.parse(line) as Record<string, number>;
      const n = (name: string) => r[name] ?? 0;
      const seconds = n('durationUs') / 1e6;
      resolve({
        requests: n('requests'),
        seconds,
        perSecond: n('requests') / seconds,
        bytesPerResponse: n('requests') > 0 ? n('bytes') / n('requests') : 0,
        failures: n('connectErrors') + n('readErrors') + n('writeErrors') + n('statusErrors') + n('timeouts'),
        p50Ms: n('p50Us') / 1000,
        p99Ms: n('p99Us') / 1000,
      });
    });
  });
}
