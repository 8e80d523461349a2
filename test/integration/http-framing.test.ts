import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth } from '../helpers/images.js';
import { parseResponses, rawExchange } from '../helpers/net.js';
import { startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';
import { expectError } from '../helpers/response-shape.js';

/**
 * Message framing and codings (RFC 9112 §3.2, §6.1; RFC 9110 §8.4): what Node's parser lets
 * through but pixgate cannot honour is refused, in the error contract, rather than misread.
 */

let server: TestServer;
let alice: string;
let photo: Buffer;
let imageId: string;

beforeAll(async () => {
  server = await startTestServer({ dev: true });
  alice = await server.token('alice');
  photo = (await synth('jpeg', 64, 48)).body;
  imageId = (await uploadImage(server, alice, photo, { type: 'image/jpeg' })).id;
});
afterAll(() => server.destroy());

const auth = (extra: Record<string, string> = {}) => ({ authorization: `Bearer ${alice}`, ...extra });

async function imageCount(): Promise<number> {
  const list = await fetch(`${server.url}/v1/images?limit=100`, { headers: auth() });
  return ((await list.json()) as { items: unknown[] }).items.length;
}

describe('a request body in a content coding (RFC 9110 §8.4)', () => {
  // Regression: the header was ignored. A gzipped JPEG was a 415 "Not an image", a plain one
  // labelled gzip was stored as if the label were not there, a gzipped JSON body a 400.
  it('is a 415 with Accept-Encoding: identity on an upload, and nothing is stored', async () => {
    const before = await imageCount();
    for (const body of [gzipSync(photo), photo]) {
      const response = await fetch(`${server.url}/v1/images`, {
        method: 'POST',
        headers: auth({ 'content-type': 'image/jpeg', 'content-encoding': 'gzip' }),
        body,
      });
      expect(response.headers.get('accept-encoding')).toBe('identity');
      await expectError(response, 415, 'unsupported_media_type');
    }
    expect(await imageCount()).toBe(before);
  });

  it('is a 415 on a JSON body too, not an invalid JSON one', async () => {
    const response = await fetch(`${server.url}/v1/images/${imageId}`, {
      method: 'PATCH',
      headers: auth({ 'content-type': 'application/json', 'content-encoding': 'gzip' }),
      body: gzipSync(JSON.stringify({ visibility: 'public' })),
    });
    expect(response.headers.get('accept-encoding')).toBe('identity');
    await expectError(response, 415, 'unsupported_media_type');
  });

  it('takes Content-Encoding: identity, and ignores the header on a request without a body', async () => {
    const upload = await fetch(`${server.url}/v1/images`, {
      method: 'POST',
      headers: auth({ 'content-type': 'image/jpeg', 'content-encoding': 'identity' }),
      body: photo,
    });
    expect(upload.status).toBe(201);
    const get = await fetch(`${server.url}/v1/images/${imageId}?w=50`, {
      headers: auth({ 'content-encoding': 'gzip' }),
    });
    expect(get.status).toBe(200);
  });
});

describe('Transfer-Encoding', () => {
  // Node decodes chunked and hands the rest on undecoded: the body was read as if never gzipped.
  it('other than chunked alone is a 501, and the connection closes (RFC 9112 §6.1)', async () => {
    const { text, closed } = await rawExchange(
      server.url,
      [
        'POST /v1/images HTTP/1.1',
        'Host: localhost',
        `Authorization: Bearer ${alice}`,
        'Content-Type: image/jpeg',
        'Transfer-Encoding: gzip, chunked',
        '',
        '',
      ].join('\r\n'),
    );
    const found = parseResponses(text);
    expect(found.map((answer) => answer.status)).toEqual([501]);
    expect(found[0]?.headers.connection).toBe('close');
    expect(JSON.parse(found[0]?.body ?? '')).toEqual({
      error: { code: 'not_implemented', message: 'Only the chunked transfer coding is supported' },
    });
    expect(closed).toBe(true);
  });

  // An HTTP/1.0 recipient does not know chunked: a proxy before pixgate may have framed this body
  // otherwise, and the "next request" be part of it (request smuggling).
  it('in an HTTP/1.0 request is a 400 and the connection closes, whatever follows', async () => {
    const { text, closed } = await rawExchange(
      server.url,
      [
        'POST /v1/images/x/links HTTP/1.0',
        'Host: localhost',
        'Connection: keep-alive',
        'Content-Type: application/json',
        'Transfer-Encoding: chunked',
        '',
        '2',
        '{}',
        '0',
        '',
        'GET /healthz HTTP/1.0',
        'Host: localhost',
        '',
        '',
      ].join('\r\n'),
    );
    const found = parseResponses(text);
    expect(found.map((answer) => answer.status)).toEqual([400]);
    expect(JSON.parse(found[0]?.body ?? '')).toEqual({
      error: { code: 'invalid_request', message: 'Transfer-Encoding is not allowed in an HTTP/1.0 request' },
    });
    expect(closed).toBe(true);
  });
});

describe('the Host header (RFC 9112 §3.2)', () => {
  it.each([
    ['two Host lines', ['Host: localhost', 'Host: localhost']],
    ['a Host with a space in it', ['Host: local host']],
    ['a Host with a path in it', ['Host: localhost/x']],
    ['a Host with user info', ['Host: user@localhost']],
  ])('%s: 400, and the connection closes', async (_name, hostLines) => {
    const { text, closed } = await rawExchange(
      server.url,
      ['GET /healthz HTTP/1.1', ...hostLines, 'Connection: keep-alive', '', ''].join('\r\n'),
    );
    const [answer] = parseResponses(text);
    expect(answer?.status).toBe(400);
    expect(answer?.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(answer?.body ?? '')).toEqual({
      error: { code: 'invalid_request', message: 'The request needs exactly one valid Host header' },
    });
    expect(closed).toBe(true);
  });

  it('takes an IPv6 literal, a name with a port, an IPv4 address', async () => {
    for (const host of ['[::1]:8080', 'localhost:18800', '127.0.0.1', 'LocalHost']) {
      const { text } = await rawExchange(
        server.url,
        `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      );
      expect(parseResponses(text)[0]?.status, host).toBe(200);
    }
  });
});

describe('a request head Node refuses as too large', () => {
  it('is a 414 when the request line alone is over the limit (RFC 9112 §3), with Date', async () => {
    const { text, closed } = await rawExchange(
      server.url,
      `GET /v1/images/${imageId}?w=${'1'.repeat(20_000)} HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    );
    const [answer] = parseResponses(text);
    expect(answer?.status).toBe(414);
    expect(answer?.headers).toMatchObject({
      'cache-control': 'no-store',
      date: expect.stringMatching(/ GMT$/),
    });
    expect(JSON.parse(answer?.body ?? '')).toEqual({
      error: { code: 'uri_too_long', message: 'The request URL is too long' },
    });
    expect(closed).toBe(true);
  });

  it('stays a 431 when a header field is, now with Date (RFC 9110 §6.6.1)', async () => {
    const { text } = await rawExchange(
      server.url,
      `GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    const [answer] = parseResponses(text);
    expect(answer?.status).toBe(431);
    expect(answer?.headers.date).toMatch(/ GMT$/);
  });
});
