import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { logText } from '../helpers/logs.js';
import { rawRequest } from '../helpers/net.js';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';

/**
 * Requests Node's HTTP parser refuses before fastify sees them (regression): fastify's default
 * client error handler answered them in its own JSON shape, without Cache-Control: no-store or
 * the security headers, and logged the raw request bytes at trace level. They get our error
 * contract (SPEC §4) like any other refusal. Trace level, so that every line that could carry
 * the packet is written.
 */

const METRICS_TOKEN = 'metrics-secret-0123456789';
let server: TestServer;
let alice: string;

beforeAll(async () => {
  server = await startTestServer({ dev: true, logLevel: 'trace', metricsToken: METRICS_TOKEN });
  alice = await server.token('alice');
});
afterAll(() => server.destroy());

describe('a request the HTTP parser refuses', () => {
  it.each([
    [
      'a header block over the size limit',
      (token: string) => [
        `GET /v1/images HTTP/1.1`,
        `Authorization: Bearer ${token}`,
        `X-Pad: ${'a'.repeat(20_000)}`,
      ],
      431,
      'headers_too_large',
      'The request headers are too large',
    ],
    [
      'a malformed header line',
      // No colon: refused by the parser of every Node `engines` allows (20.9's took a space in a
      // header name).
      (token: string) => [
        `GET /v1/images?access_token=${token} HTTP/1.1`,
        `Authorization: Bearer ${alice}`,
        'No-Colon-In-This-Line',
      ],
      400,
      'invalid_request',
      'The request is malformed',
    ],
  ])(
    '%s: our JSON error, no-store, the security headers, and no token in the log',
    async (_name, lines, status, code, message) => {
      const token = await server.token('alice');
      const from = server.logs.length;
      const answer = await rawRequest(server.url, lines(token));
      expect(answer.status).toBe(status);
      expect(answer.headers).toMatchObject({
        'cache-control': 'no-store',
        'content-type': expect.stringMatching(/^application\/json/),
        'referrer-policy': 'no-referrer',
        'x-content-type-options': 'nosniff',
        'content-security-policy': "default-src 'none'",
        connection: 'close',
      });
      expect(JSON.parse(answer.body)).toEqual({ error: { code, message } });
      // The operator sees which refusal it was; the line holds codes only.
      expect(server.logs.slice(from).map((line) => JSON.parse(line) as unknown)).toContainEqual(
        // At info: the default level, like every request's line.
        expect.objectContaining({ msg: 'client error', level: 30, status, code }),
      );
      const metrics = await fetch(`${server.url}/metrics`, {
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      });
      expect(await metrics.text()).toContain(
        `pixgate_http_requests_total{route="unparsed",method="",status="${status}"} 1`,
      );
      const text = logText(server.logs.slice(from));
      expect(text).not.toContain(token.split('.')[2]);
      expect(text).not.toContain(alice.split('.')[2]);
      expect(text).not.toContain('rawPacket');
    },
  );
});

describe('a request whose body the parser refuses midway', () => {
  it('gets our 400 and one log line of its own, not a second one as if the client had left', async () => {
    const token = await server.token('alice');
    const from = server.logs.length;
    const { socket, answer } = await rawConnection();
    socket.write(
      [
        'POST /v1/images HTTP/1.1',
        'Host: localhost',
        `Authorization: Bearer ${token}`,
        'Content-Type: image/png',
        'Transfer-Encoding: chunked',
        '',
        '4',
        'abcd',
        '',
      ].join('\r\n'),
    );
    // The handler has the request by now; then a chunk size that is not hexadecimal.
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.write('zz\r\n');
    expect(await answer).toMatch(/^HTTP\/1\.1 400 /);
    await eventually(() => {
      const lines = server.logs
        .slice(from)
        .map((line) => JSON.parse(line) as { route?: string; status?: number; code?: string; msg: string })
        .filter((line) => line.route === '/v1/images' || line.msg === 'client error');
      expect(lines).toEqual([
        expect.objectContaining({ route: '/v1/images', status: 400, code: 'invalid_request' }),
      ]);
    });
  });
});

/** A fresh connection to the server, and everything read from it until it closes. */
async function rawConnection(): Promise<{ socket: Socket; answer: Promise<string> }> {
  const { port } = new URL(server.url);
  const socket = connect(Number(port), '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  let text = '';
  socket.setEncoding('latin1').on('data', (chunk: string) => {
    text += chunk;
  });
  const answer = new Promise<string>((resolve) => socket.once('close', () => resolve(text)));
  return { socket, answer };
}

/** An answer read off the wire: its head as sent, its header block lower-cased, its body. */
function parseAnswer(answer: string): { head: string; headers: string; body: string } {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  return { head, headers: head.toLowerCase(), body };
}

/** Writes `head` (lines, no Host added) on a fresh connection and answers everything read until it closes. */
async function rawExchange(lines: string[]): Promise<string> {
  const { socket, answer } = await rawConnection();
  // write, not end: a half-closed socket makes Node abort a request still being handled.
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  return answer;
}

describe('an HTTP/1.1 request without a Host header', () => {
  // Regression: Node's server refused it itself (requireHostHeader), before fastify or any hook
  // saw it: a bare `400` with an empty chunked body, no JSON, no no-store, no security headers,
  // and no log line or metric at all.
  it('gets our JSON 400, no-store, the security headers, and its log line', async () => {
    const from = server.logs.length;
    const { head, headers, body } = parseAnswer(
      await rawExchange(['GET /healthz HTTP/1.1', 'Connection: close']),
    );
    expect(head).toMatch(/^HTTP\/1\.1 400 /);
    expect(headers).toContain('\r\ncache-control: no-store');
    expect(headers).toContain('\r\ncontent-type: application/json');
    expect(headers).toContain("\r\ncontent-security-policy: default-src 'none'");
    expect(headers).toContain('\r\nx-content-type-options: nosniff');
    expect(JSON.parse(body)).toEqual({
      error: { code: 'invalid_request', message: 'The request has no Host header' },
    });
    await eventually(() => {
      expect(server.logs.slice(from).map((line) => JSON.parse(line) as unknown)).toContainEqual(
        expect.objectContaining({ msg: 'request', status: 400, code: 'invalid_request' }),
      );
    });
  });
});

describe('an Expect header other than 100-continue', () => {
  // Regression: Node answered it itself (no `checkExpectation` listener): a bare 417 without our
  // JSON, headers, log line or metrics.
  it('gets our JSON 417, no-store, the security headers, and its log line', async () => {
    const from = server.logs.length;
    const { head, headers, body } = parseAnswer(
      await rawExchange(['GET /healthz HTTP/1.1', 'Host: localhost', 'Expect: 200-ok', 'Connection: close']),
    );
    expect(head).toMatch(/^HTTP\/1\.1 417 /);
    expect(headers).toContain('\r\ncache-control: no-store');
    expect(headers).toContain("\r\ncontent-security-policy: default-src 'none'");
    expect(JSON.parse(body)).toEqual({
      error: { code: 'expectation_failed', message: 'Only "Expect: 100-continue" is understood' },
    });
    await eventually(() => {
      expect(server.logs.slice(from).map((line) => JSON.parse(line) as unknown)).toContainEqual(
        expect.objectContaining({
          msg: 'request',
          route: '/healthz',
          status: 417,
          code: 'expectation_failed',
        }),
      );
    });
  });

  it('leaves 100-continue as it is, in any case', async () => {
    const answer = await rawExchange([
      'GET /healthz HTTP/1.1',
      'Host: localhost',
      'Expect: 100-Continue',
      'Connection: close',
    ]);
    expect(answer).toMatch(/^HTTP\/1\.1 (100 Continue\r\n\r\nHTTP\/1\.1 )?200 /);
  });
});
