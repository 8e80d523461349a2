import { request } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

export interface Injected {
  readonly method?: string;
  readonly url: string;
  readonly headers?: Record<string, string>;
  /** Sent as it is when a string, as JSON otherwise. */
  readonly payload?: unknown;
  /** The peer address the app sees, as with inject(): loopback otherwise. */
  readonly remoteAddress?: string;
}

export interface InjectedAnswer {
  readonly statusCode: number;
  readonly body: string;
  json(): unknown;
}

/**
 * `app.inject()`, over a real loopback connection: inject needs Node 20.19 (light-my-request
 * require()s cookie@2, an ES module), and the suite runs on Node 20.9 too
 * (scripts/oldest-node.mjs). A `remoteAddress` replaces the connection's own, since no real
 * socket here comes from 10.0.0.1. One request at a time; close the app when done.
 */
export async function injectOverHttp(
  app: FastifyInstance,
): Promise<(asked: Injected) => Promise<InjectedAnswer>> {
  let peer: string | undefined;
  app.server.on('connection', (socket: Socket) => {
    if (peer !== undefined) Object.defineProperty(socket, 'remoteAddress', { value: peer });
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return (asked) => {
    peer = asked.remoteAddress;
    const { payload } = asked;
    const body = payload === undefined || typeof payload === 'string' ? payload : JSON.stringify(payload);
    return new Promise((resolve, reject) => {
      // agent: false, a connection per request (closed after it), so each has its own peer.
      const options = {
        host: '127.0.0.1',
        port,
        method: asked.method ?? 'GET',
        path: asked.url,
        agent: false,
      };
      const outgoing = request({ ...options, headers: asked.headers }, (incoming) => {
        let text = '';
        incoming.setEncoding('utf8');
        incoming.on('data', (chunk: string) => {
          text += chunk;
        });
        incoming.on('end', () => {
          resolve({ statusCode: incoming.statusCode ?? 0, body: text, json: () => JSON.parse(text) });
        });
      });
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  };
}
