import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { synth } from '../helpers/images.js';
import { logText } from '../helpers/logs.js';
import { rawRequest } from '../helpers/net.js';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';

/**
 * PIXGATE_LOG_LEVEL=trace is an accepted level, and at trace our dependencies log whole header
 * sets (@fastify/multipart: the options it hands busboy) and raw request bytes (fastify's client
 * error handler: `err.rawPacket`). Not a credential may reach the log all the same (SPEC §3.2).
 */

let server: TestServer;
let alice: string;

beforeAll(async () => {
  server = await startTestServer({ dev: true, logLevel: 'trace' });
  alice = await server.token('alice');
});
afterAll(() => server.destroy());

const COOKIE = 'pixgate_session=CookieSecretValue0123456789abcdef';

describe('at trace level, no credential reaches the log', () => {
  it('on a multipart upload (Authorization and Cookie)', async () => {
    const from = server.logs.length;
    const form = new FormData();
    form.append('file', new Blob([(await synth('png', 20, 10)).body], { type: 'image/png' }), 'a.png');
    const response = await fetch(`${server.url}/v1/images`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, cookie: COOKIE },
      body: form,
    });
    expect(response.status).toBe(201);
    await vi.waitFor(() =>
      expect(server.logs.slice(from).some((line) => line.includes('"msg":"request"'))).toBe(true),
    );
    // The line that used to carry them is still written: the test would miss nothing.
    expect(server.logs.slice(from).some((line) => line.includes('busboy'))).toBe(true);
    const text = logText(server.logs.slice(from));
    expect(text).not.toContain(alice.split('.')[2]);
    expect(text).not.toContain('CookieSecretValue');
  });

  it('on a request the HTTP parser refuses (its raw bytes)', async () => {
    const token = await server.token('alice');
    const from = server.logs.length;
    const answer = await rawRequest(server.url, [
      `GET /v1/images?access_token=${token} HTTP/1.1`,
      `Authorization: Bearer ${alice}`,
      `Cookie: ${COOKIE}`,
      // A header line without a colon: every Node's parser refuses the request (a client error);
      // Node 20.9's still took a space in a header name.
      'No-Colon-In-This-Line',
    ]);
    expect(answer.status).toBe(400);
    await vi.waitFor(() => expect(server.logs.length).toBeGreaterThan(from));
    const text = logText(server.logs.slice(from));
    expect(text).not.toContain(token.split('.')[2]);
    expect(text).not.toContain(alice.split('.')[2]);
    expect(text).not.toContain('CookieSecretValue');
  });
});
