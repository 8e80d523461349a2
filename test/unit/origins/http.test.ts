import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors.js';
import { createBufferPool } from '../../../src/origins/buffer-pool.js';
import { createHttpOrigin, type OriginAuth } from '../../../src/origins/http.js';
import { createTokenSource } from '../../../src/origins/origin-token.js';
import { startHttpOrigin } from '../../helpers/http-origin.js';
import { closedPort, startSilentServer } from '../../helpers/net.js';
import { startOidcProvider } from '../../helpers/oidc-provider.js';
import { describeOriginConformance } from './origin-conformance.js';

const BEARER = 'origin-bearer-secret-123';
const origin = await startHttpOrigin();
const elsewhere = await startHttpOrigin();
const silent = await startSilentServer();
const provider = await startOidcProvider({ ttlSeconds: 600 });
const temp = await mkdtemp(join(tmpdir(), 'pixgate-http-origin-'));
afterAll(async () => {
  await Promise.all([origin.close(), elsewhere.close(), silent.close(), provider.close()]);
  await rm(temp, { recursive: true, force: true });
});

const bearerAuth: OriginAuth = { kind: 'bearer', token: BEARER };
const hasBearer = (token: string) => (request: IncomingMessage) =>
  request.headers.authorization === `Bearer ${token}`;

function open(
  auth: OriginAuth = bearerAuth,
  extra: { timeoutMs?: number; baseUrl?: string; now?: () => number } = {},
) {
  return createHttpOrigin({
    baseUrl: extra.baseUrl ?? origin.baseUrl,
    auth,
    timeoutMs: extra.timeoutMs ?? 3000,
    pool: createBufferPool(8 * 1024 * 1024),
    now: extra.now,
  });
}

async function failure(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

const MAX = { maxBytes: 1024 * 1024 };

describeOriginConformance('http (node:http test origin, Bearer)', () => ({
  async open(timeoutMs) {
    origin.authorize(hasBearer(BEARER));
    return { origin: open(bearerAuth, { timeoutMs }), put: async (key, bytes) => origin.put(key, bytes) };
  },
  async slow(timeoutMs) {
    return open(bearerAuth, { timeoutMs, baseUrl: `${silent.url}/lib/` });
  },
  async down() {
    return open(bearerAuth, { baseUrl: `http://127.0.0.1:${await closedPort()}/lib/` });
  },
  async refusing() {
    origin.authorize(hasBearer(BEARER), 403);
    const wrong = 'wrong-bearer-token-456';
    return { origin: open({ kind: 'bearer', token: wrong }), secrets: [wrong, BEARER] };
  },
}));

describe('HTTP origin authentication', () => {
  const bytes = randomBytes(2000);
  origin.put('auth/photo.jpg', bytes, 'image/jpeg');

  const modes: {
    name: string;
    auth: OriginAuth;
    wrong: OriginAuth;
    check: (request: IncomingMessage) => boolean;
  }[] = [
    {
      name: 'static Bearer',
      auth: { kind: 'bearer', token: 'tok-1' },
      wrong: { kind: 'bearer', token: 'tok-2' },
      check: hasBearer('tok-1'),
    },
    {
      name: 'HTTP Basic',
      auth: { kind: 'basic', user: 'pixgate', password: 'p:ss wörd' },
      wrong: { kind: 'basic', user: 'pixgate', password: 'nope' },
      check: (request) =>
        request.headers.authorization === `Basic ${Buffer.from('pixgate:p:ss wörd').toString('base64')}`,
    },
    {
      name: 'a custom header',
      auth: { kind: 'header', name: 'X-Origin-Key', value: 'k-123' },
      wrong: { kind: 'header', name: 'X-Origin-Key', value: 'k-999' },
      check: (request) => request.headers['x-origin-key'] === 'k-123',
    },
  ];
  for (const mode of modes) {
    it(`sends ${mode.name} and reads; wrong credentials are a 502 that names no secret`, async () => {
      origin.authorize(mode.check);
      const read = await open(mode.auth).read('auth/photo.jpg', MAX);
      expect(read.body.equals(bytes)).toBe(true);
      const error = await failure(open(mode.wrong).read('auth/photo.jpg', MAX));
      expect(error.code).toBe('origin_error');
      expect(error.message).toContain("refused pixgate's credentials (401)");
      for (const secret of ['tok-', 'p:ss', 'k-123', 'k-999', 'nope'])
        expect(error.message).not.toContain(secret);
    });
  }

  describe('OAuth 2.0 client credentials (real oidc-provider)', () => {
    const jwks = createRemoteJWKSet(new URL(provider.jwksUrl));
    const [client] = provider.clients;
    const settings = {
      kind: 'client-credentials' as const,
      tokenUrl: provider.tokenUrl,
      clientId: client?.clientId ?? '',
      clientSecret: client?.clientSecret ?? '',
      scope: 'images:read',
    };
    const verifies = async (request: IncomingMessage) => {
      const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
      if (!token) return false;
      try {
        await jwtVerify(token, jwks, { issuer: provider.issuer, audience: provider.audience });
        return true;
      } catch {
        return false;
      }
    };
    const tokensSeen = (from: number) =>
      origin.requests
        .slice(from)
        .map((request) => request.headers.authorization ?? '')
        .filter((value) => value.startsWith('Bearer '));

    it('fetches a token once, reuses it, and fetches a new one shortly before it expires', async () => {
      origin.authorize(verifies);
      let now = Date.now();
      const reader = open(settings, { now: () => now });
      const from = origin.requests.length;
      await reader.read('auth/photo.jpg', MAX);
      await reader.read('auth/photo.jpg', MAX);
      const [first, second] = tokensSeen(from);
      expect(first).toBe(second);
      expect(decodeJwt((first ?? '').slice(7))).toMatchObject({
        client_id: settings.clientId,
        scope: 'images:read',
      });
      // 600 s tokens: still reused at 500 s, replaced within the last 30 s.
      now += 500_000;
      await reader.read('auth/photo.jpg', MAX);
      now += 80_000;
      await reader.read('auth/photo.jpg', MAX);
      const seen = tokensSeen(from);
      expect(seen[2]).toBe(first);
      expect(seen[3]).not.toBe(first);
    });

    it('on a 401 fetches a fresh token and tries once more', async () => {
      const reader = open(settings);
      await reader.read('auth/photo.jpg', MAX);
      // The origin stops accepting the token pixgate holds (revoked, rotated early).
      const revoked = new Set(tokensSeen(0));
      origin.authorize(
        async (request) => !revoked.has(request.headers.authorization ?? '') && (await verifies(request)),
      );
      const from = origin.requests.length;
      expect((await reader.read('auth/photo.jpg', MAX)).body.equals(bytes)).toBe(true);
      const seen = tokensSeen(from);
      expect(seen).toHaveLength(2);
      expect(revoked.has(seen[0] ?? '')).toBe(true);
      expect(revoked.has(seen[1] ?? '')).toBe(false);
    });

    it('gives up after that one retry when the origin keeps refusing', async () => {
      origin.authorize(() => false);
      const from = origin.requests.length;
      const error = await failure(open(settings).read('auth/photo.jpg', MAX));
      expect(error.code).toBe('origin_error');
      expect(error.message).toContain("refused pixgate's credentials (401)");
      expect(origin.requests.length - from).toBe(2);
    });

    it('a read giving up does not fail the others waiting on the same token fetch', async () => {
      // The real provider behind a proxy that holds every token request for 300 ms.
      const slowTokens = createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          void (async () => {
            await sleep(300);
            const answer = await fetch(provider.tokenUrl, {
              method: 'POST',
              headers: {
                authorization: request.headers.authorization ?? '',
                'content-type': request.headers['content-type'] ?? '',
              },
              body: Buffer.concat(chunks),
            });
            response
              .writeHead(answer.status, { 'content-type': 'application/json' })
              .end(await answer.text());
          })();
        });
      });
      await new Promise<void>((resolve) => slowTokens.listen(0, '127.0.0.1', resolve));
      try {
        origin.authorize(verifies);
        const { port } = slowTokens.address() as AddressInfo;
        const reader = open({ ...settings, tokenUrl: `http://127.0.0.1:${port}/token` });
        const impatient = new AbortController();
        const first = reader.read('auth/photo.jpg', { ...MAX, signal: impatient.signal });
        const second = reader.read('auth/photo.jpg', MAX);
        setTimeout(() => impatient.abort(new Error('the client went away')), 50);
        await expect(first).rejects.toThrow();
        expect((await second).body.equals(bytes)).toBe(true);
      } finally {
        await new Promise((resolve) => slowTokens.close(resolve));
      }
    });

    it('a read that gave up before asking starts no token fetch (which would fail unhandled)', async () => {
      const unhandled: unknown[] = [];
      const record = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', record);
      try {
        // The silent server never answers: a fetch would fail at its own 200 ms deadline.
        const source = createTokenSource({ ...settings, tokenUrl: `${silent.url}/token` }, Date.now, 200);
        await expect(source.get(AbortSignal.abort())).rejects.toThrow();
        await sleep(400);
        expect(unhandled).toEqual([]);
      } finally {
        process.off('unhandledRejection', record);
      }
    });

    it('a token endpoint refusing the client is a 502 that names no secret', async () => {
      origin.authorize(verifies);
      const error = await failure(
        open({ ...settings, clientSecret: 'wrong-client-secret' }).read('auth/photo.jpg', MAX),
      );
      expect(error.code).toBe('origin_error');
      expect(error.message).toContain("token endpoint answered 401: it refused pixgate's client credentials");
      expect(error.message).not.toContain('wrong-client-secret');
    });

    /** A token endpoint that counts what it issues: what matters is how often pixgate asks. */
    async function countingTokenEndpoint(tokenOf = (issued: number) => `counted-${issued}`) {
      let issued = 0;
      const endpoint = createServer((request, response) => {
        request.resume();
        request.on('end', () => {
          issued += 1;
          response
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ access_token: tokenOf(issued), expires_in: 3600 }));
        });
      });
      await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
      const { port } = endpoint.address() as AddressInfo;
      return {
        tokenUrl: `http://127.0.0.1:${port}/token`,
        issued: () => issued,
        close: () => new Promise((resolve) => endpoint.close(resolve)),
      };
    }

    it('an origin refusing every token gets one fresh token per 10 s, not one per read', async () => {
      const endpoint = await countingTokenEndpoint();
      try {
        // The origin takes no token at all (wrong audience, revoked grant).
        origin.authorize(() => false);
        let now = Date.now();
        const reader = open({ ...settings, tokenUrl: endpoint.tokenUrl }, { now: () => now });
        const from = origin.requests.length;
        for (let read = 0; read < 5; read++) {
          const error = await failure(reader.read('auth/photo.jpg', MAX));
          expect(error.message).toContain("refused pixgate's credentials (401)");
        }
        // The first refusal is one fresh token and one more try; the next ones within 10 s,
        // neither: a fresh token was just refused too.
        expect(endpoint.issued()).toBe(2);
        expect(origin.requests.length - from).toBe(6);
        now += 10_001;
        await failure(reader.read('auth/photo.jpg', MAX));
        expect(endpoint.issued()).toBe(3);
      } finally {
        await endpoint.close();
      }
    });

    it('an access_token that cannot be sent in a header is refused, not kept for its lifetime', async () => {
      const endpoint = await countingTokenEndpoint(() => 'junk\r\nX-Injected: 1');
      try {
        origin.authorize(() => true);
        const reader = open({ ...settings, tokenUrl: endpoint.tokenUrl });
        for (const expected of [1, 2]) {
          const error = await failure(reader.read('auth/photo.jpg', MAX));
          expect(error.code).toBe('origin_error');
          expect(error.message).toContain('the token endpoint answered an access_token that is not a token');
          expect(error.message).not.toContain('junk');
          // Not cached: the next read asks again (the endpoint may have been fixed since).
          expect(endpoint.issued()).toBe(expected);
        }
      } finally {
        await endpoint.close();
      }
    });

    it('concurrent reads refused with the same token share one fresh token', async () => {
      const endpoint = await countingTokenEndpoint();
      try {
        origin.authorize(() => true);
        const reader = open({ ...settings, tokenUrl: endpoint.tokenUrl });
        await reader.read('auth/photo.jpg', MAX);
        // The token pixgate holds stops working (expired early at the origin) while ten reads run.
        origin.authorize((request) => request.headers.authorization !== 'Bearer counted-1');
        const reads = await Promise.all(Array.from({ length: 10 }, () => reader.read('auth/photo.jpg', MAX)));
        expect(reads.every((read) => read.body.equals(bytes))).toBe(true);
        expect(endpoint.issued()).toBe(2);
      } finally {
        await endpoint.close();
      }
    });
  });
});

describe('HTTP origin: SSRF and hostile answers', () => {
  const bytes = randomBytes(500);
  origin.put('ssrf/real.jpg', bytes);

  const redirectTo = (path: string, location: string, status = 302) =>
    origin.route(path, (_request, response) => response.writeHead(status, { location }).end());

  it('follows a redirect within the same scheme, host and port', async () => {
    origin.authorize(hasBearer(BEARER));
    redirectTo('/lib/ssrf/moved.jpg', '/lib/ssrf/real.jpg', 301);
    expect((await open().read('ssrf/moved.jpg', MAX)).body.equals(bytes)).toBe(true);
  });

  it('never follows a redirect to another host, port or scheme, nor to link-local or loopback addresses', async () => {
    origin.authorize(hasBearer(BEARER));
    elsewhere.put('x.jpg', bytes);
    const port = new URL(origin.root).port;
    const targets = [
      `${elsewhere.root}/lib/x.jpg`, // loopback, another port
      `http://localhost:${port}/lib/ssrf/real.jpg`, // same port, another host name
      `https://127.0.0.1:${port}/lib/ssrf/real.jpg`, // another scheme
      'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
      'http://[::1]/',
      '//evil.test/x.jpg',
      'file:///etc/passwd',
    ];
    for (const [index, target] of targets.entries()) {
      redirectTo(`/lib/ssrf/away-${index}.jpg`, target);
      const error = await failure(open().read(`ssrf/away-${index}.jpg`, MAX));
      expect(error.code, target).toBe('origin_error');
      expect(error.message).toContain('refused a redirect to another host or scheme');
    }
    expect(elsewhere.requests).toHaveLength(0);
  });

  it('never follows a redirect out of the base path, where its credentials would go too', async () => {
    origin.authorize(hasBearer(BEARER));
    const from = origin.requests.length;
    for (const [index, target] of [
      '/admin/secret.jpg',
      '/lib/../admin/x.jpg',
      '/lib/%2e%2e/x.jpg',
      '/lib/..%2Fadmin/x.jpg',
      '/lib/..%5cadmin/x.jpg',
      '/library/x.jpg',
    ].entries()) {
      redirectTo(`/lib/ssrf/out-${index}.jpg`, target);
      const error = await failure(open().read(`ssrf/out-${index}.jpg`, MAX));
      expect(error.code, target).toBe('origin_error');
      expect(error.message).toContain("refused a redirect out of the origin's base path");
    }
    // Only the redirecting requests reached the origin.
    expect(origin.requests.slice(from).map((request) => request.url.replace(/-\d\.jpg$/, ''))).toEqual(
      Array(6).fill('/lib/ssrf/out'),
    );
  });

  it('stops after a bounded number of redirects', async () => {
    origin.authorize(hasBearer(BEARER));
    redirectTo('/lib/ssrf/loop.jpg', '/lib/ssrf/loop.jpg');
    const from = origin.requests.length;
    const error = await failure(open().read('ssrf/loop.jpg', MAX));
    expect(error.message).toContain('more than 3 redirects');
    expect(origin.requests.length - from).toBe(4);
  });

  it('keys only ever name paths under the base', async () => {
    origin.authorize(() => true);
    const from = origin.requests.length;
    for (const key of [
      '../admin',
      '..%2fadmin',
      '%2e%2e/admin',
      '//evil.test/x',
      'http://169.254.169.254/',
      '/etc/passwd',
      'a\\..\\b',
    ]) {
      expect((await failure(open().read(key, MAX))).code, key).toBe('invalid_request');
    }
    expect(origin.requests.length).toBe(from);
    // Characters that mean something in a URL stay inside one path segment.
    origin.put('odd/a?b#c;d.jpg', bytes);
    expect((await open().read('odd/a?b#c;d.jpg', MAX)).body.equals(bytes)).toBe(true);
    expect(origin.requests.at(-1)?.url).toBe('/lib/odd/a%3Fb%23c%3Bd.jpg');
  });

  it('stops reading an endless body at the size limit', async () => {
    origin.authorize(() => true);
    let closed = false;
    origin.route('/lib/ssrf/endless.jpg', (request, response) => {
      response.writeHead(200, { 'content-type': 'image/jpeg' });
      const chunk = randomBytes(64 * 1024);
      const timer = setInterval(() => response.write(chunk), 1);
      request.socket.on('close', () => {
        closed = true;
        clearInterval(timer);
      });
    });
    const error = await failure(open().read('ssrf/endless.jpg', { maxBytes: 256 * 1024 }));
    expect(error.code).toBe('origin_error');
    expect(error.message).toContain('more than the 262144 byte limit');
    await expect.poll(() => closed).toBe(true);
  });

  it('a body that trickles past the deadline is a 504, and the connection is let go', async () => {
    origin.authorize(() => true);
    let closed = false;
    origin.route('/lib/ssrf/trickle.jpg', (request, response) => {
      response.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': 100_000 });
      const timer = setInterval(() => response.write(Buffer.alloc(10)), 50);
      request.socket.on('close', () => {
        closed = true;
        clearInterval(timer);
      });
    });
    const started = Date.now();
    const error = await failure(open(bearerAuth, { timeoutMs: 400 }).read('ssrf/trickle.jpg', MAX));
    expect(error.code).toBe('origin_timeout');
    expect(Date.now() - started).toBeLessThan(1500);
    await expect.poll(() => closed).toBe(true);
  });

  it('refuses a body longer than announced by Content-Length over the limit, before reading it', async () => {
    origin.authorize(() => true);
    origin.put('ssrf/large.jpg', randomBytes(300 * 1024));
    const error = await failure(open().read('ssrf/large.jpg', { maxBytes: 256 * 1024 }));
    expect(error.message).toContain('307200 bytes is over the 262144 byte limit');
  });

  it('reads a gzip-encoded body sent despite Accept-Encoding: identity; the cap counts decoded bytes', async () => {
    // Servers that store objects pre-compressed (Content-Encoding metadata) send them so whatever
    // was asked. fetch decodes them, and their Content-Length is the encoded size (RFC 9110 §8.6).
    origin.authorize(() => true);
    const image = randomBytes(5000);
    const gzipped = (path: string, bytes: Buffer) =>
      origin.route(path, (_request, response) => {
        const encoded = gzipSync(bytes);
        response
          .writeHead(200, { 'content-encoding': 'gzip', 'content-length': encoded.length })
          .end(encoded);
      });
    gzipped('/lib/gzip/photo.jpg', image);
    for (const pool of [undefined, createBufferPool(8 * 1024 * 1024)]) {
      const reader = createHttpOrigin({ baseUrl: origin.baseUrl, auth: bearerAuth, timeoutMs: 3000, pool });
      expect((await reader.read('gzip/photo.jpg', MAX)).body.equals(image)).toBe(true);
    }
    // A few kilobytes that decode to far more than the cap: stopped at the cap.
    gzipped('/lib/gzip/bomb.jpg', Buffer.alloc(4 * 1024 * 1024));
    const error = await failure(open().read('gzip/bomb.jpg', MAX));
    expect(error.code).toBe('origin_error');
    expect(error.message).toContain('more than the 1048576 byte limit');
  });

  it('is read-only: a write is refused with read_only_storage and the temp file goes', async () => {
    const path = join(temp, 'upload');
    await writeFile(path, bytes);
    const error = await failure(open().write('ab/new', path, 'image/jpeg'));
    expect(error.code).toBe('read_only_storage');
    expect(error.status).toBe(403);
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(open().delete('ssrf/real.jpg')).resolves.toBeUndefined();
    expect((await open().read('ssrf/real.jpg', MAX)).body.equals(bytes)).toBe(true);
  });

  it('check() passes with working credentials and fails when refused or down', async () => {
    origin.authorize(hasBearer(BEARER));
    await expect(open().check()).resolves.toBeUndefined();
    await expect(open({ kind: 'bearer', token: 'wrong' }).check()).rejects.toThrow();
    await expect(
      open(bearerAuth, { baseUrl: `http://127.0.0.1:${await closedPort()}/` }).check(),
    ).rejects.toThrow();
  });
});
