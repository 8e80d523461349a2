import { MessageChannel } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

/**
 * The service-worker logic (src/client/pixgate-image-auth.ts) in Node, with fake clients and a
 * stubbed fetch: the branches a browser test cannot reach cheaply (concurrent questions, a page
 * that never answers, no page at all). Chromium runs the real thing in test/browser/.
 *
 * Loaded from the built module (test/global-setup.ts builds it): the source is compiled for the
 * DOM/WebWorker libraries, not for the Node typecheck of the tests.
 */

interface Handler {
  handleFetch(event: FakeEvent): boolean;
  handleMessage(event: { data: unknown; ports: readonly { postMessage(message: unknown): void }[] }): boolean;
}
interface HandlerModule {
  createImageAuthHandler(options: Record<string, unknown>): Handler;
}
interface FakeEvent {
  request: Request;
  clientId: string;
  respondWith(response: Promise<Response>): void;
  response?: Promise<Response>;
}

const PIXGATE = 'https://images.example';
let createImageAuthHandler: HandlerModule['createImageAuthHandler'];
const sent: Request[] = [];

beforeAll(async () => {
  const path = new URL('../../../dist/client/pixgate-image-auth.js', import.meta.url).href;
  ({ createImageAuthHandler } = (await import(path)) as HandlerModule);
});

afterEach(() => {
  vi.unstubAllGlobals();
  sent.length = 0;
});

/** pixgate: 200 for the token "good" (and "fresh"), 401 otherwise. */
function stubPixgate(valid = ['good', 'fresh']) {
  vi.stubGlobal('fetch', async (request: Request) => {
    sent.push(request);
    const header = request.headers.get('authorization') ?? '';
    return new Response(null, { status: valid.some((token) => header === `Bearer ${token}`) ? 200 : 401 });
  });
}

/** A page answering token questions with `tokens()` (after `delayMs`), counting questions. */
function page(tokens: () => string | null, delayMs = 0) {
  const state = { asked: 0 };
  const client = {
    id: 'page-1',
    postMessage(_message: unknown, [port]: [{ postMessage(message: unknown): void }]) {
      state.asked += 1;
      setTimeout(() => port.postMessage({ type: 'pixgate:token', token: tokens() }), delayMs);
    },
  };
  return { client, state };
}

function clientsOf(...clients: unknown[]) {
  return {
    get: async (id: string) => clients.find((client) => (client as { id: string }).id === id),
    matchAll: async () => clients,
  };
}

function event(url: string, init: RequestInit = {}): FakeEvent {
  const fake: FakeEvent = {
    request: new Request(url, init),
    clientId: 'page-1',
    respondWith(response) {
      fake.response = response;
    },
  };
  return fake;
}

describe('createImageAuthHandler', () => {
  it('leaves alone everything but GETs under the prefix of the configured origins', async () => {
    stubPixgate();
    const handler = createImageAuthHandler({ clients: clientsOf(), origins: [PIXGATE] });
    expect(handler.handleFetch(event(`${PIXGATE}/app.js`))).toBe(false);
    expect(handler.handleFetch(event(`https://other.example/v1/images/a`))).toBe(false);
    expect(handler.handleFetch(event(`${PIXGATE}/v1/images`, { method: 'POST', body: 'x' }))).toBe(false);
    // An explicit credential already in the URL: a header as well would be a 400.
    expect(handler.handleFetch(event(`${PIXGATE}/v1/images/a?access_token=t`))).toBe(false);
    expect(handler.handleFetch(event(`${PIXGATE}/v1/images/a?exp=1&kid=k&sig=s`))).toBe(false);
    const ours = event(`${PIXGATE}/v1/images/a?w=10`);
    ours.clientId = '';
    expect(handler.handleFetch(ours)).toBe(true);
    expect((await ours.response)?.status).toBe(401);
  });

  it('adds the page token as a fresh cors request; concurrent images share one question', async () => {
    stubPixgate();
    const { client, state } = page(() => 'good', 20);
    const handler = createImageAuthHandler({ clients: clientsOf(client), origins: [PIXGATE] });
    const events = [1, 2, 3].map((n) =>
      event(`${PIXGATE}/v1/images/a?w=${n}`, { headers: { accept: 'image/webp' } }),
    );
    for (const fake of events) handler.handleFetch(fake);
    const responses = await Promise.all(events.map((fake) => fake.response));
    expect(responses.map((response) => response?.status)).toEqual([200, 200, 200]);
    expect(state.asked).toBe(1);
    expect(sent[0]?.mode).toBe('cors');
    expect(sent[0]?.credentials).toBe('omit');
    expect(sent[0]?.headers.get('accept')).toBe('image/webp');
    // Remembered: the next image asks nobody.
    const later = event(`${PIXGATE}/v1/images/a?w=4`);
    handler.handleFetch(later);
    expect((await later.response)?.status).toBe(200);
    expect(state.asked).toBe(1);
  });

  it('after a 401 asks the page again and retries once with the new token', async () => {
    stubPixgate(['fresh']);
    // The page's first answer has expired by the time it is used; its second is fresh.
    const answers = ['stale', 'fresh'];
    const { client, state } = page(() => answers.shift() ?? null);
    const handler = createImageAuthHandler({ clients: clientsOf(client), origins: [PIXGATE] });
    const first = event(`${PIXGATE}/v1/images/a`);
    handler.handleFetch(first);
    expect((await first.response)?.status).toBe(200);
    expect(state.asked).toBe(2);
    expect(sent.map((request) => request.headers.get('authorization'))).toEqual([
      'Bearer stale',
      'Bearer fresh',
    ]);
  });

  it('with no page to ask, or one that never answers, lets the request through without a header', async () => {
    stubPixgate();
    const lonely = createImageAuthHandler({ clients: clientsOf(), origins: [PIXGATE], pageTimeoutMs: 50 });
    const alone = event(`${PIXGATE}/v1/images/a`);
    alone.clientId = '';
    lonely.handleFetch(alone);
    expect((await alone.response)?.status).toBe(401);
    expect(sent[0]?.headers.has('authorization')).toBe(false);

    const silent = { id: 'page-1', postMessage() {} };
    const waiting = createImageAuthHandler({
      clients: clientsOf(silent),
      origins: [PIXGATE],
      pageTimeoutMs: 50,
    });
    const ignored = event(`${PIXGATE}/v1/images/b`);
    waiting.handleFetch(ignored);
    expect((await ignored.response)?.status).toBe(401);
  });

  it('forgets the token on request and acknowledges, so the next image asks again', async () => {
    stubPixgate();
    const { client, state } = page(() => 'good');
    const handler = createImageAuthHandler({ clients: clientsOf(client), origins: [PIXGATE] });
    const first = event(`${PIXGATE}/v1/images/a`);
    handler.handleFetch(first);
    await first.response;
    const channel = new MessageChannel();
    const acknowledged = new Promise((resolve) => channel.port1.once('message', resolve));
    expect(handler.handleMessage({ data: { type: 'pixgate:forget' }, ports: [channel.port2] })).toBe(true);
    expect(await acknowledged).toEqual({ type: 'pixgate:forgotten' });
    channel.port1.close();
    expect(handler.handleMessage({ data: { type: 'something else' }, ports: [] })).toBe(false);
    const second = event(`${PIXGATE}/v1/images/a?w=2`);
    handler.handleFetch(second);
    await second.response;
    expect(state.asked).toBe(2);
  });
});

describe('createImageAuthHandler, a token that cannot go in a header (regression)', () => {
  it('is not used nor kept: the image goes without a header (a 401), and the next one asks again', async () => {
    stubPixgate();
    const answers = ['bad\ntoken', 'good'];
    const { client, state } = page(() => answers.shift() ?? null);
    const handler = createImageAuthHandler({ clients: clientsOf(client), origins: [PIXGATE] });
    const first = event(`${PIXGATE}/v1/images/a`);
    handler.handleFetch(first);
    // Not a network error (a broken image with no status) that every later image repeats.
    expect((await first.response)?.status).toBe(401);
    expect(sent[0]?.headers.has('authorization')).toBe(false);
    const second = event(`${PIXGATE}/v1/images/a?w=2`);
    handler.handleFetch(second);
    expect((await second.response)?.status).toBe(200);
    expect(state.asked).toBe(2);
  });
});
