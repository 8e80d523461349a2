import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth } from '../helpers/images.js';
import { parseResponses, rawExchange, rawRequest } from '../helpers/net.js';
import { startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';
import { expectError } from '../helpers/response-shape.js';

/**
 * A method a known path does not take (RFC 9110 §9.1, §15.5.6): 405 with `Allow`, in the error
 * contract. It was a 404 "No such route", which told a client the path did not exist at all;
 * CONNECT got no answer, its connection dropped.
 */

let server: TestServer;
let alice: string;
let imageId: string;

beforeAll(async () => {
  server = await startTestServer({ dev: true });
  alice = await server.token('alice');
  const photo = (await synth('jpeg', 64, 48)).body;
  imageId = (await uploadImage(server, alice, photo, { type: 'image/jpeg' })).id;
});
afterAll(() => server.destroy());

describe('a method the path does not take', () => {
  it.each([
    ['PUT', () => `/v1/images/${imageId}`, 'GET, HEAD, PATCH, DELETE'],
    ['POST', () => `/v1/images/${imageId}`, 'GET, HEAD, PATCH, DELETE'],
    ['OPTIONS', () => `/v1/images/${imageId}`, 'GET, HEAD, PATCH, DELETE'],
    // The same for an id that does not exist: the answer is about the path, never the image.
    ['PUT', () => '/v1/images/AAAAAAAAAAAAAAAAAAAAAA', 'GET, HEAD, PATCH, DELETE'],
    ['DELETE', () => '/v1/images', 'GET, HEAD, POST'],
    ['PATCH', () => `/v1/images/${imageId}/meta`, 'GET, HEAD'],
    ['GET', () => `/v1/images/${imageId}/revoke`, 'POST'],
    ['POST', () => '/healthz', 'GET, HEAD'],
  ])('%s %s is a 405 with Allow, in our JSON, no-store', async (method, path, allow) => {
    const response = await fetch(`${server.url}${path()}`, {
      method,
      headers: { authorization: `Bearer ${alice}` },
    });
    expect(response.headers.get('allow')).toBe(allow);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    await expectError(response, 405, 'method_not_allowed');
  });

  it('answers TRACE 405 too, echoing nothing', async () => {
    const { text } = await rawExchange(
      server.url,
      `TRACE /v1/images/${imageId} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${alice}\r\nConnection: close\r\n\r\n`,
    );
    const [answer] = parseResponses(text);
    expect(answer?.status).toBe(405);
    expect(answer?.headers.allow).toBe('GET, HEAD, PATCH, DELETE');
    expect(text).not.toContain(alice);
  });

  // The router matches the path decoded and without an absolute-form target's scheme and host,
  // where GET of these reached /meta; the 405 looked at the raw target and called them 404.
  it('is decided on the path the router matches: percent-encoded, or in an absolute-form target', async () => {
    const { host } = new URL(server.url);
    for (const target of [`/v1/imag%65s/${imageId}/meta`, `http://${host}/v1/images/${imageId}/meta`]) {
      const get = await rawRequest(server.url, [`GET ${target} HTTP/1.1`, `Authorization: Bearer ${alice}`]);
      expect(get.status, target).toBe(200);
      const put = await rawRequest(server.url, [`PUT ${target} HTTP/1.1`, `Authorization: Bearer ${alice}`]);
      expect(put.status, target).toBe(405);
      expect(put.headers.allow, target).toBe('GET, HEAD');
      expect(JSON.parse(put.body), target).toMatchObject({ error: { code: 'method_not_allowed' } });
    }
  });

  it('keeps 404 for a path nothing is routed to', async () => {
    await expectError(await fetch(`${server.url}/v1/nothing`, { method: 'PUT' }), 404, 'not_found');
    await expectError(await fetch(`${server.url}/v1/images/${imageId}/`), 404, 'not_found');
  });
});

describe('CONNECT', () => {
  // Node drops a CONNECT's connection unanswered when nothing listens for it.
  it('is a 501 in our JSON, with Date, and the connection closes', async () => {
    const { text, closed } = await rawExchange(
      server.url,
      'CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n',
    );
    const [answer] = parseResponses(text);
    expect(answer?.status).toBe(501);
    expect(answer?.headers).toMatchObject({
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'close',
      date: expect.stringMatching(/ GMT$/),
    });
    expect(JSON.parse(answer?.body ?? '')).toEqual({
      error: { code: 'not_implemented', message: 'CONNECT is not supported: pixgate is not a proxy' },
    });
    expect(closed).toBe(true);
  });
});
