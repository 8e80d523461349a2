import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the application a browser test's page belongs to, on its own loopback port.
 * `/__test/*` are the test's pages (and `/__test/echo`, which records the Referer it was sent);
 * with `proxyTo`, every other path is passed through to pixgate, keeping the Host header, so the
 * app and pixgate share one origin as they would behind one reverse proxy.
 */
export interface AppServer {
  readonly url: string;
  /** The Referer of every request to /__test/echo, in order ("" when none was sent). */
  readonly referers: string[];
  close(): Promise<void>;
}

export interface AppServerOptions {
  /** Path under /__test/ → [content type, body]; a function is called per request. */
  readonly pages: Record<string, readonly [string, string] | ((appUrl: string) => readonly [string, string])>;
  readonly proxyTo?: string;
  /** Sent as X-Forwarded-Proto to pixgate: a TLS-terminating proxy in front of it. */
  readonly forwardedProto?: 'https';
}

export async function startAppServer(options: AppServerOptions): Promise<AppServer> {
  const referers: string[] = [];
  let appUrl = '';

  function proxy(request: IncomingMessage, response: ServerResponse, target: URL): void {
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: request.method,
        path: request.url,
        headers: options.forwardedProto
          ? { ...request.headers, 'x-forwarded-proto': options.forwardedProto }
          : request.headers,
      },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on('error', () => {
      response.writeHead(502).end();
    });
    request.pipe(upstream);
  }

  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    if (path === '/__test/echo') {
      referers.push(request.headers.referer ?? '');
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<p>echo</p>');
      return;
    }
    if (path.startsWith('/__test/')) {
      const page = options.pages[path.slice('/__test/'.length)];
      if (!page) {
        response.writeHead(404).end();
        return;
      }
      const [type, body] = typeof page === 'function' ? page(appUrl) : page;
      response.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
      return;
    }
    if (options.proxyTo) {
      proxy(request, response, new URL(options.proxyTo));
      return;
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  appUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: appUrl,
    referers,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A page that loads the client module from `clientOrigin` and offers small helpers to tests. */
export function testPage(clientOrigin = ''): readonly [string, string] {
  return [
    'text/html; charset=utf-8',
    `<!doctype html><meta charset="utf-8"><title>pixgate test</title><body>
<script type="module">
import * as pixgate from '${clientOrigin}/pixgate-client.js';
window.pixgate = pixgate;
window.token = null;
window.asked = 0;
window.getToken = () => { window.asked += 1; return window.token; };
// Resolves to naturalWidth (0 when the image failed): a plain <img>, no script involved.
window.loadImg = (src) => new Promise((resolve) => {
  const img = new Image();
  img.onload = () => resolve(img.naturalWidth);
  img.onerror = () => resolve(0);
  img.src = src;
  document.body.append(img);
});
window.ready = true;
</script>
<a id="next" href="/__test/echo">next</a>
</body>`,
  ];
}
