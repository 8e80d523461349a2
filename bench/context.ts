import type { BenchIssuer } from './issuer.js';
import type { Pixgate, PixgateOptions } from './pixgate-process.js';

/** What every phase of the benchmark shares (bench/run.ts makes it). */
export interface BenchContext {
  /** The checkout (cwd of every server). */
  readonly root: string;
  /** Temp folder of this run: data dir, server logs. */
  readonly tmp: string;
  readonly issuer: BenchIssuer;
  /** The photo every request resizes, and the ids of its uploaded copies. */
  readonly photo: Buffer;
  readonly ids: readonly string[];
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Baseline and pixgate alternate: A B, then B A, and so on. */
  readonly rounds: number;
  readonly wrkThreads: number;
  /** Starts pixgate on the run's data dir, logging to `<tmp>/<name>.log`; stopped at the end. */
  startPixgate(name: string, env?: PixgateOptions['env']): Promise<Pixgate>;
  progress(message: string): void;
}

export const WIDTH = 360;
/** pixgate's default JPEG quality (src/images/pipeline.ts), which the baselines must match. */
export const QUALITY = 80;

/** A, B for even rounds, B, A for odd ones: linear drift on a shared machine cancels out. */
export const order = <T>(round: number, a: T, b: T): [T, T] => (round % 2 === 0 ? [a, b] : [b, a]);

export const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);
