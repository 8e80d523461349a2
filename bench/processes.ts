import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Servers under test run as their own processes: the load generator must not share their event
 * loop, and their RSS must be their own. Their output goes to a file, never to a pipe this
 * process would have to drain while it waits on a load generator (a full pipe stalls the server).
 */

export interface ServerProcess {
  readonly pid: number;
  readonly url: string;
  readonly logFile: string;
  /** Stops with SIGTERM (pixgate drains), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export interface StartOptions {
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly port: number;
  readonly logFile: string;
  /** Answers 200 once the server is ready. */
  readonly readyPath: string;
  readonly cwd: string;
}

export async function startServer(options: StartOptions): Promise<ServerProcess> {
  const log = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...options.args], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', log, log],
    });
  } finally {
    // The child holds its own copy of the descriptor.
    closeSync(log);
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  const url = `http://127.0.0.1:${options.port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`server exited with ${exitCode}:\n${tail(options.logFile)}`);
    }
    try {
      const response = await fetch(`${url}${options.readyPath}`);
      await response.arrayBuffer();
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready after 30 s:\n${tail(options.logFile)}`);
    }
    await sleep(100);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('no pid');
  return {
    pid,
    url,
    logFile: options.logFile,
    async stop() {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface MemoryReading {
  /** Largest VmRSS seen by sampling. */
  readonly peakRssBytes: number;
  /** The kernel's own high-water mark (VmHWM) at the end: catches peaks between samples. */
  readonly hwmBytes: number;
  readonly samples: number;
}

async function readStatus(pid: number): Promise<{ rss: number; hwm: number } | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return { rss: kib('VmRSS') * 1024, hwm: kib('VmHWM') * 1024 };
  } catch {
    return undefined;
  }
}

/** Samples /proc/<pid>/status every `intervalMs` until stopped. Linux only. */
export function sampleMemory(pid: number, intervalMs = 50): { stop(): Promise<MemoryReading> } {
  let peak = 0;
  let samples = 0;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void readStatus(pid)
      .then((reading) => {
        if (reading) {
          peak = Math.max(peak, reading.rss);
          samples++;
        }
      })
      .finally(() => {
        busy = false;
      });
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      const last = await readStatus(pid);
      return {
        peakRssBytes: Math.max(peak, last?.rss ?? 0),
        hwmBytes: last?.hwm ?? 0,
        samples,
      };
    },
  };
}

/** CPU time (user + system, all threads) a process has used so far, in seconds. Linux only. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may contain spaces, end with ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
