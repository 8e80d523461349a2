/**
 * A small real HTTP origin (node:http) on loopback: objects under `/lib/`, a credential check
 * chosen by the test, an ETag and Last-Modified per object, and per-path handlers for the odd
 * cases (redirects, hangs, huge bodies). Every request it receives is recorded.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
}

export type Handler = (request: IncomingMessage, response: ServerResponse) => void;

export interface TestHttpOrigin {
  /** `http://127.0.0.1:PORT/lib/`: the base pixgate is given. */
  readonly baseUrl: string;
  /** `http://127.0.0.1:PORT`. */
  readonly root: string;
  readonly requests: RecordedRequest[];
  put(key: string, bytes: Buffer, contentType?: string): void;
  /** Whether a request carries the credentials; answering false gives `refusal` (401 by default). */
  authorize(check: (request: IncomingMessage) => boolean | Promise<boolean>, refusal?: 401 | 403): void;
  /** Answers this exact path (with query) with a handler of its own, after the credential check. */
  route(path: string, handler: Handler): void;
  close(): Promise<void>;
}

export async function startHttpOrigin(): Promise<TestHttpOrigin> {
  const objects = new Map<string, { bytes: Buffer; contentType: string; modified: Date }>();
  const routes = new Map<string, Handler>();
  const requests: RecordedRequest[] = [];
  let check: (request: IncomingMessage) => boolean | Promise<boolean> = () => true;
  let refusal: 401 | 403 = 401;

  const server = createServer((request, response) => {
    requests.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers });
    void (async () => {
      if (!(await check(request))) {
        response.writeHead(refusal, { 'www-authenticate': 'Bearer' }).end('refused');
        return;
      }
      const url = request.url ?? '/';
      const handler = routes.get(url);
      if (handler) return handler(request, response);
      if (url === '/lib/' && request.method === 'HEAD') return response.writeHead(200).end();
      const key = url.startsWith('/lib/') ? decodeURIComponent(url.slice('/lib/'.length)) : undefined;
      const object = key === undefined ? undefined : objects.get(key);
      if (!object) return response.writeHead(404, { 'content-type': 'text/plain' }).end('no such object');
      response.writeHead(200, {
        'content-type': object.contentType,
        'content-length': object.bytes.length,
        etag: `"${createHash('sha256').update(object.bytes).digest('hex').slice(0, 32)}"`,
        'last-modified': object.modified.toUTCString(),
      });
      response.end(request.method === 'HEAD' ? undefined : object.bytes);
    })().catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const root = `http://127.0.0.1:${port}`;

  return {
    baseUrl: `${root}/lib/`,
    root,
    requests,
    put(key, bytes, contentType = 'application/octet-stream') {
      objects.set(key, { bytes, contentType, modified: new Date() });
    },
    authorize(next, status = 401) {
      check = next;
      refusal = status;
    },
    route(path, handler) {
      routes.set(path, handler);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
