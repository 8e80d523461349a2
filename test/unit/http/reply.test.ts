import {
  createServer as createHttpServer,
  type RequestListener,
  type Server,
  type ServerOptions,
} from 'node:http';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppError } from '../../../src/errors.js';
import { sendClientError, toClientError } from '../../../src/http/reply.js';
import { eventually } from '../../helpers/eventually.js';

/**
 * Requests Node's parser refuses. The 400 and the 431 are tested on the real server
 * (client-errors.test.ts); here real Node HTTP servers and real sockets on loopback make the
 * cases that need a server of their own: a request timeout within milliseconds, a refused
 * request pipelined behind a response already under way, a socket closed before the answer.
 */

const parserError = (code: string) => Object.assign(new Error(`Parse Error: ${code}`), { code });

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** A real HTTP server whose refused requests are answered by sendClientError, as server.ts does. */
async function httpServer(
  options: ServerOptions,
  handler: RequestListener = () => {},
): Promise<{ port: number; answered: Array<AppError | undefined> }> {
  const answered: Array<AppError | undefined> = [];
  const server: Server = createHttpServer(options, handler);
  server.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
    answered.push(sendClientError(error, socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, answered };
}

/** A client socket collecting everything it receives until the server closes the connection. */
async function client(port: number) {
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  let received = '';
  socket.setEncoding('latin1').on('data', (chunk: string) => {
    received += chunk;
  });
  const closed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not close the connection')), 3000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  // Awaited by every test; this only keeps a test that failed earlier from leaving it unhandled.
  closed.catch(() => {});
  socket.on('error', () => {});
  return { socket, received: () => received, closed };
}

/** A raw server-side socket of a real loopback connection, and its client's end. */
async function socketPair(): Promise<{ server: Socket; client: Awaited<ReturnType<typeof client>> }> {
  let accepted: (socket: Socket) => void = () => {};
  const connected = new Promise<Socket>((resolve) => {
    accepted = resolve;
  });
  const listener = createServer((socket) => accepted(socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => listener.close(() => resolve())));
  const end = await client((listener.address() as AddressInfo).port);
  return { server: await connected, client: end };
}

describe('toClientError', () => {
  it.each([
    ['HPE_HEADER_OVERFLOW', 'headers_too_large', 431],
    ['HPE_CHUNK_EXTENSIONS_OVERFLOW', 'payload_too_large', 413],
    ['ERR_HTTP_REQUEST_TIMEOUT', 'request_timeout', 408],
    ['HPE_INVALID_HEADER_TOKEN', 'invalid_request', 400],
    ['HPE_INVALID_METHOD', 'invalid_request', 400],
  ])('%s is %s (%i)', (code, expected, status) => {
    expect(toClientError(parserError(code))).toMatchObject({ code: expected, status });
  });
});

describe('sendClientError', () => {
  it('answers a request that took too long with a whole 408 on the wire, then closes the connection', async () => {
    // Node's own request timeout, shortened: it is what raises ERR_HTTP_REQUEST_TIMEOUT.
    const { port, answered } = await httpServer({
      headersTimeout: 100,
      requestTimeout: 100,
      connectionsCheckingInterval: 20,
    });
    const end = await client(port);
    end.socket.write('GET /v1/images HTTP/1.1\r\nHost: localhost\r\n'); // the head never ends
    await end.closed;
    expect(answered.map((error) => error?.code)).toEqual(['request_timeout']);

    const written = end.received();
    expect(written).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    const head = written.slice(0, written.indexOf('\r\n\r\n') + 2);
    for (const field of [
      'cache-control: no-store',
      'content-type: application/json; charset=utf-8',
      'x-content-type-options: nosniff',
      "content-security-policy: default-src 'none'",
      'referrer-policy: no-referrer',
      'connection: close',
    ]) {
      expect(head).toContain(`\r\n${field}\r\n`);
    }
    const body = written.slice(written.indexOf('\r\n\r\n') + 4);
    expect(head).toContain(`\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`);
    expect(JSON.parse(body)).toEqual({
      error: { code: 'request_timeout', message: 'The request took too long to arrive' },
    });
  });

  it('writes nothing into a response already under way (a refused request pipelined behind it)', async () => {
    const { port, answered } = await httpServer({}, (_request, response) => {
      // Headers and a first part sent, the rest still to come: the response is under way.
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '20' });
      response.write('first half');
    });
    const end = await client(port);
    end.socket.write('GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await eventually(() => expect(end.received()).toContain('first half'));
    end.socket.write('GET /two HTTP/1.1\r\nHost: localhost\r\nNo-Colon-In-This-Line\r\n\r\n');
    await end.closed;
    expect(answered.map((error) => error?.code)).toEqual(['invalid_request']);
    // Only the response under way, cut short: no second status line inside its body.
    expect(end.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nfirst half$/);
  });

  it('answers a refused request pipelined behind a response that has not started', async () => {
    let respond: () => void = () => {};
    const { port, answered } = await httpServer({}, (_request, response) => {
      respond = () => response.end('late');
    });
    const end = await client(port);
    // One write: the first request is being handled (not answered) when the second is refused.
    end.socket.write(
      'GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nGET /two HTTP/1.1\r\nHost: localhost\r\nNo-Colon-In-This-Line\r\n\r\n',
    );
    await end.closed;
    respond();
    expect(answered.map((error) => error?.code)).toEqual(['invalid_request']);
    expect(end.received()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
  });

  it('writes nothing on a socket that cannot take it any more, and closes it', async () => {
    const { server, client: end } = await socketPair();
    const errors: Error[] = [];
    server.on('error', (error) => errors.push(error));
    server.end(); // our side is finished: not writable
    expect(sendClientError(parserError('HPE_INVALID_METHOD'), server)?.code).toBe('invalid_request');
    await end.closed;
    expect(end.received()).toBe('');
    expect(server.destroyed).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toEqual([]);
  });

  it('does nothing for a client that is gone', async () => {
    const { server, client: end } = await socketPair();
    server.destroy();
    expect(sendClientError(parserError('HPE_INVALID_METHOD'), server)).toBeUndefined();
    await end.closed;
    expect(end.received()).toBe('');
    // A reset connection is gone too, even while its socket object is not destroyed yet.
    const other = await socketPair();
    expect(sendClientError(parserError('ECONNRESET'), other.server)).toBeUndefined();
    other.server.destroy();
    await other.client.closed;
    expect(other.client.received()).toBe('');
  });
});
