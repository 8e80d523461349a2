// autocannon ships no type declarations and @types/autocannon is not installed; this is the little
// of its API that bench/load.ts uses.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  export interface Options {
    /** Several URLs: connection i uses url[i % url.length]. */
    url: string | string[];
    connections?: number;
    /** Seconds. */
    duration?: number;
    /** Seconds before a request counts as timed out. */
    timeout?: number;
    headers?: Record<string, string>;
    pipelining?: number;
  }

  export interface Client {
    readonly opts: { readonly path: string };
  }

  export interface Result {
    readonly errors: number;
    readonly timeouts: number;
    readonly duration: number;
  }

  export interface Instance extends EventEmitter {
    on(
      event: 'response',
      listener: (client: Client, statusCode: number, bytes: number, ms: number) => void,
    ): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
    stop(): void;
  }

  export default function autocannon(
    options: Options,
    callback: (error: Error | null, result: Result) => void,
  ): Instance;
}
