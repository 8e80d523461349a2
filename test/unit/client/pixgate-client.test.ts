import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

/**
 * The session helpers of the browser library (src/client/pixgate-client.ts) in Node, with a
 * stubbed fetch, location and localStorage: the failures a browser test cannot cause cheaply.
 * Loaded from the built module, as pixgate-image-auth.test.ts explains.
 */

interface ClientModule {
  startSession(token: string): Promise<{ csrfToken: string }>;
  endSession(): Promise<void>;
  sessionFetch(input: string, init?: RequestInit): Promise<Response>;
}

const APP = 'https://app.example';
let client: ClientModule;
/** Every call to fetch: its absolute URL, method and headers. */
const calls: { url: string; method: string; headers: Headers }[] = [];
/** The status DELETE /v1/sessions/current answers next. */
let deleteStatuses: number[] = [];

beforeAll(async () => {
  const path = new URL('../../../dist/client/pixgate-client.js', import.meta.url).href;
  client = (await import(path)) as ClientModule;
});

beforeEach(() => {
  const storage = new Map<string, string>();
  vi.stubGlobal('location', new URL(`${APP}/gallery`));
  vi.stubGlobal('localStorage', {
    getItem: (key: string) => storage.get(key) ?? null,
    setItem: (key: string, value: string) => storage.set(key, value),
    removeItem: (key: string) => storage.delete(key),
  });
  vi.stubGlobal('fetch', async (input: string, init: RequestInit = {}) => {
    const url = new URL(input, `${APP}/gallery`).href;
    const method = init.method ?? 'GET';
    calls.push({ url, method, headers: new Headers(init.headers) });
    if (method === 'POST' && url === `${APP}/v1/sessions`) {
      return Response.json({ expiresAt: '2030-01-01T00:00:00.000Z', csrfToken: 'csrf-1' }, { status: 201 });
    }
    if (method === 'DELETE' && url === `${APP}/v1/sessions/current`) {
      const status = deleteStatuses.shift() ?? 204;
      return status === 204
        ? new Response(null, { status })
        : Response.json({ error: { code: 'unavailable', message: 'down' } }, { status });
    }
    return new Response(null, { status: 200 });
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
  calls.length = 0;
  deleteStatuses = [];
});

describe('session helpers', () => {
  it('endSession() that failed keeps the CSRF token, so signing out can be retried (regression)', async () => {
    await client.startSession('token');
    deleteStatuses = [503];
    await expect(client.endSession()).rejects.toMatchObject({ name: 'ImageLoadError', status: 503 });
    // The session is still alive server-side: without the token the retry would be a 403.
    await client.endSession();
    const deletes = calls.filter((call) => call.method === 'DELETE');
    expect(deletes.map((call) => call.headers.get('x-csrf-token'))).toEqual(['csrf-1', 'csrf-1']);
    // Ended: the token goes with it.
    await client.sessionFetch('/v1/images/a', { method: 'PATCH' });
    expect(calls.at(-1)?.headers.has('x-csrf-token')).toBe(false);
  });

  it('sessionFetch() sends the CSRF token to the page origin only (regression)', async () => {
    await client.startSession('token');
    await client.sessionFetch('/v1/images/a', { method: 'PATCH' });
    expect(calls.at(-1)?.headers.get('x-csrf-token')).toBe('csrf-1');
    await client.sessionFetch(`${APP}/v1/links/l`, { method: 'DELETE' });
    expect(calls.at(-1)?.headers.get('x-csrf-token')).toBe('csrf-1');
    // Another origin gets no cookie (credentials: 'same-origin'), and not the CSRF token either.
    await client.sessionFetch('https://api.other.example/items', { method: 'POST' });
    expect(calls.at(-1)?.headers.has('x-csrf-token')).toBe(false);
    await client.sessionFetch('//cdn.example/x', { method: 'POST' });
    expect(calls.at(-1)?.headers.has('x-csrf-token')).toBe(false);
    await client.sessionFetch('/v1/images/a');
    expect(calls.at(-1)?.headers.has('x-csrf-token')).toBe(false);
  });
});
