import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';

/** A loopback port nobody listens on (bound, then released): an origin that is down. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A real HTTP server that accepts every request and never answers: a hung origin. */
export async function startSilentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A request written by hand, for what fetch cannot send (two Authorization header lines, which fetch
 * would join into one; an absolute-form target; a request Node's parser refuses). Answers the
 * status code, the headers (names lower-cased, a repeated one joined with ", ") and the body.
 */
export function rawRequest(
  url: string,
  lines: string[],
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      // write, not end: a half-closed socket makes Node abort a request still being handled.
      socket.write(`${[...lines, `Host: ${hostname}:${port}`, 'Connection: close'].join('\r\n')}\r\n\r\n`);
    });
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const end = answer.indexOf('\r\n\r\n');
      const [statusLine = '', ...fields] = answer.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const field of fields) {
        const colon = field.indexOf(':');
        const name = field.slice(0, colon).trim().toLowerCase();
        const value = field.slice(colon + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? Number.NaN);
      resolve({ status, headers, body: answer.slice(end + 4) });
    });
  });
}

/** A JPEG upload whose `Content-Length` announces `declared` bytes, of which only `firstBytes` are sent. */
export function uploadWithBodyHeld(
  url: string,
  token: string,
  declared: number,
  firstBytes: Buffer,
  waitMs?: number,
) {
  return requestWithBodyHeld(
    url,
    [
      'POST /v1/images HTTP/1.1',
      `Authorization: Bearer ${token}`,
      'Content-Type: image/jpeg',
      `Content-Length: ${declared}`,
    ],
    firstBytes,
    waitMs,
  );
}

/**
 * A request whose head announces a body (Content-Length among `lines`) of which only `firstBytes`
 * are sent; the rest never is. Answers the response that arrives meanwhile (status, headers as
 * rawRequest's, body), or fails after `waitMs` without one: a server that reads the body before
 * refusing the request waits for the rest forever. For "refused before reading the body".
 */
export function requestWithBodyHeld(
  url: string,
  lines: string[],
  firstBytes: Buffer,
  waitMs = 3000,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`${[...lines, `Host: ${hostname}:${port}`].join('\r\n')}\r\n\r\n`);
      socket.write(firstBytes);
    });
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new Error(`no answer within ${waitMs} ms while the rest of the body was held back`)),
      waitMs,
    );
    let answer = '';
    /** Resolves once the head and the whole announced body are in (`ended`: whatever is in). */
    const settle = (ended: boolean) => {
      const end = answer.indexOf('\r\n\r\n');
      if (end === -1) {
        if (ended) fail(new Error(`connection closed without an answer: ${JSON.stringify(answer)}`));
        return;
      }
      const [statusLine = '', ...fields] = answer.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const field of fields) {
        const colon = field.indexOf(':');
        headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim();
      }
      const body = answer.slice(end + 4);
      if (!ended && body.length < Number(headers['content-length'] ?? Number.POSITIVE_INFINITY)) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? Number.NaN), headers, body });
    };
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      answer += chunk;
      settle(false);
    });
    socket.on('end', () => settle(true));
    socket.on('error', fail);
  });
}

/**
 * A TCP proxy on a loopback port in front of `targetPort` that can be taken down and brought up
 * again: a service (S3) that goes away for a while and comes back at the same address. Down, it
 * cuts the connections it carries and refuses new ones.
 */
export async function startSwitchableProxy(targetPort: number): Promise<{
  readonly port: number;
  setDown(down: boolean): void;
  close(): Promise<void>;
}> {
  let down = false;
  const open = new Set<Socket>();
  const proxy = createNetServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        open.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    port: (proxy.address() as AddressInfo).port,
    setDown(value) {
      down = value;
      if (down) for (const socket of open) socket.destroy();
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}

/**
 * Writes `text` as is (no Host or Connection added) on a fresh connection to `url`'s server and
 * answers everything read until the server closes it, or what was read after `waitMs` with the
 * connection still open. For framing only raw bytes can express: pipelining, CONNECT, TRACE,
 * HTTP/1.0, repeated Host lines.
 */
export function rawExchange(
  url: string,
  text: string | Buffer,
  waitMs = 2000,
): Promise<{ text: string; closed: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    let answer = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', reject);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text: answer, closed: false });
    }, waitMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text: answer, closed: true });
    });
  });
}

export interface RawResponse {
  readonly status: number;
  /** Names lower-cased; a repeated one keeps its last value. */
  readonly headers: Record<string, string>;
  readonly body: string;
}

/**
 * The responses one after another in `text`, bodies by Content-Length (pixgate sends no chunked
 * ones); not for answers to HEAD, whose Content-Length announces a body that is not there.
 */
export function parseResponses(text: string): RawResponse[] {
  const found: RawResponse[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    const [statusLine = '', ...fields] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const field of fields) {
      const colon = field.indexOf(':');
      headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    found.push({
      status: Number(statusLine.split(' ')[1]),
      headers,
      body: rest.slice(end + 4, end + 4 + length),
    });
    rest = rest.slice(end + 4 + length);
  }
  return found;
}
