import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth } from '../helpers/images.js';
import { dataFiles, startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';

/** Rate, scrape and upload limits and the storage quota over real HTTP (SPEC §6, issue 4). */

let photo: Buffer;

const auth = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${token}`,
  ...extra,
});

async function upload(server: TestServer, token: string, visibility = 'public') {
  const response = await fetch(`${server.url}/v1/images?visibility=${visibility}`, {
    method: 'POST',
    headers: auth(token, { 'content-type': 'image/png' }),
    body: photo,
  });
  return response;
}

const uploadId = async (server: TestServer, token: string, visibility = 'public') =>
  (await uploadImage(server, token, photo, { visibility })).id;

/** A share link to image `id`, valid ten minutes: its path (`/s/…`). */
async function shareLink(server: TestServer, token: string, id: string): Promise<string> {
  const made = await fetch(`${server.url}/v1/images/${id}/links`, {
    method: 'POST',
    headers: auth(token, { 'content-type': 'application/json' }),
    body: JSON.stringify({ ttlSeconds: 600 }),
  });
  return ((await made.json()) as { url: string }).url;
}

async function expectLimited(response: Response, name: string, quota: number, window: number) {
  expect(response.status).toBe(429);
  const retryAfter = Number(response.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(window);
  expect(response.headers.get('ratelimit-policy')).toBe(`"${name}";q=${quota};w=${window}`);
  expect(response.headers.get('ratelimit')).toBe(`"${name}";r=0;t=${retryAfter}`);
  expect(((await response.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
}

async function limitedCount(server: TestServer, limit: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(new RegExp(`^pixgate_limited_total\\{limit="${limit}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
}

beforeAll(async () => {
  photo = (await synth('png', 64, 48)).body;
});

describe('rate limit', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ dev: true, rateLimit: 5, scrapeLimit: 0 });
  });
  afterAll(() => server.destroy());

  it('answers 429 with Retry-After and RateLimit headers past the budget, per principal', async () => {
    const alice = await server.token('alice', 'images:write');
    const bob = await server.token('bob');
    const id = await uploadId(server, alice);
    for (let i = 0; i < 5; i++) {
      expect((await fetch(`${server.url}/v1/images/${id}?w=10`, { headers: auth(bob) })).status).toBe(200);
    }
    await expectLimited(
      await fetch(`${server.url}/v1/images/${id}?w=10`, { headers: auth(bob) }),
      'rate',
      5,
      60,
    );
    // Another principal has its own budget.
    expect((await fetch(`${server.url}/v1/images/${id}?w=10`, { headers: auth(alice) })).status).toBe(200);
    expect(await limitedCount(server, 'rate')).toBe(1);
  });

  it('counts anonymous callers per client IP, honouring PIXGATE_TRUST_PROXY only when set', async () => {
    const alice = await server.token('alice', 'images:write');
    const id = await uploadId(server, alice);
    // Trust proxy is off: X-Forwarded-For is ignored, so changing it does not buy a new budget.
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const response = await fetch(`${server.url}/v1/images/${id}?w=12`, {
        headers: { 'x-forwarded-for': `10.0.0.${i}` },
      });
      statuses.push(response.status);
    }
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses.slice(5)).toEqual([429, 429]);
  });

  it('counts a share link on its own', async () => {
    const alice = await server.token('carol', 'images:write');
    const id = await uploadId(server, alice, 'private');
    const url = await shareLink(server, alice, id);
    for (let i = 0; i < 5; i++) expect((await fetch(`${server.url}${url}`)).status).toBe(200);
    await expectLimited(await fetch(`${server.url}${url}`), 'rate', 5, 60);
  });
});

describe('share-link guessing', () => {
  it('takes from the client IP for every unknown or malformed token, not for a good one (security review)', async () => {
    const server = await startTestServer({ dev: true, rateLimit: 3, scrapeLimit: 0 });
    try {
      const alice = await server.token('alice', 'images:write');
      const id = await uploadId(server, alice, 'private');
      const url = await shareLink(server, alice, id);
      // A good link counts in the link's own budget, not the IP's.
      for (let i = 0; i < 3; i++) expect((await fetch(`${server.url}${url}`)).status).toBe(200);
      const guesses = [`/s/${'A'.repeat(43)}`, '/s/short', `/s/${'B'.repeat(43)}`];
      for (const guess of guesses) expect((await fetch(`${server.url}${guess}`)).status, guess).toBe(404);
      await expectLimited(await fetch(`${server.url}/s/${'C'.repeat(43)}`), 'rate', 3, 60);
      // The IP's budget is spent: its anonymous image requests are refused too.
      expect((await fetch(`${server.url}/v1/images/${id}?w=10`)).status).toBe(429);
    } finally {
      await server.destroy();
    }
  });
});

describe('rate limit on what shows no original', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ dev: true, rateLimit: 3, scrapeLimit: 0 });
  });
  afterAll(() => server.destroy());

  it("counts /meta and the list in the principal's budget", async () => {
    const alice = await server.token('alice', 'images:write');
    const bob = await server.token('bob');
    const id = await uploadId(server, alice);
    const meta = () => fetch(`${server.url}/v1/images/${id}/meta`, { headers: auth(bob) });
    const list = () => fetch(`${server.url}/v1/images`, { headers: auth(bob) });
    expect((await meta()).status).toBe(200);
    expect((await list()).status).toBe(200);
    expect((await meta()).status).toBe(200);
    await expectLimited(await list(), 'rate', 3, 60);
    await expectLimited(await meta(), 'rate', 3, 60);
    await expectLimited(
      await fetch(`${server.url}/v1/images/${id}?w=10`, { headers: auth(bob) }),
      'rate',
      3,
      60,
    );
  });

  it('counts refused credentials per client IP, apart from its anonymous requests', async () => {
    const fresh = await startTestServer({ dev: true, rateLimit: 3, scrapeLimit: 0 });
    try {
      const alice = await fresh.token('alice', 'images:write');
      const id = await uploadId(fresh, alice);
      const junk = (n: number) =>
        fetch(`${fresh.url}/v1/images/${id}?w=10`, { headers: auth(`${alice.slice(0, -4)}junk${n}`) });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await junk(i)).status);
      expect(statuses).toEqual([401, 401, 401]);
      await expectLimited(await junk(3), 'rate', 3, 60);
      // A malformed header takes from the same budget.
      const malformed = await fetch(`${fresh.url}/v1/images/${id}`, {
        headers: { authorization: 'Bearer a b' },
      });
      expect(malformed.status).toBe(429);
      // Anonymous requests from that IP have a budget of their own (the image is public).
      expect((await fetch(`${fresh.url}/v1/images/${id}?w=10`)).status).toBe(200);
      // A valid token has its own budget.
      expect((await fetch(`${fresh.url}/v1/images/${id}?w=10`, { headers: auth(alice) })).status).toBe(200);
    } finally {
      await fresh.destroy();
    }
  });
});

describe('rate limit behind a trusted proxy', () => {
  it('counts per X-Forwarded-For client', async () => {
    const server = await startTestServer({ dev: true, rateLimit: 2, scrapeLimit: 0, trustProxy: true });
    try {
      const alice = await server.token('alice', 'images:write');
      const id = await uploadId(server, alice);
      const from = (ip: string) =>
        fetch(`${server.url}/v1/images/${id}?w=10`, { headers: { 'x-forwarded-for': ip } });
      expect((await from('192.0.2.1')).status).toBe(200);
      expect((await from('192.0.2.1')).status).toBe(200);
      expect((await from('192.0.2.1')).status).toBe(429);
      expect((await from('192.0.2.2')).status).toBe(200);
      // Forged signed URLs count too: refused with 403, then throttled like anything else.
      const forged = (ip: string) =>
        fetch(`${server.url}/v1/images/${id}?w=10&exp=9999999999&kid=x&sig=${'A'.repeat(43)}`, {
          headers: { 'x-forwarded-for': ip },
        });
      expect((await forged('192.0.2.3')).status).toBe(403);
      expect((await forged('192.0.2.3')).status).toBe(403);
      expect((await forged('192.0.2.3')).status).toBe(429);
      // Guessed share links likewise.
      const guess = (ip: string) =>
        fetch(`${server.url}/s/${'B'.repeat(43)}`, { headers: { 'x-forwarded-for': ip } });
      expect((await guess('192.0.2.4')).status).toBe(404);
      expect((await guess('192.0.2.4')).status).toBe(404);
      expect((await guess('192.0.2.4')).status).toBe(429);
    } finally {
      await server.destroy();
    }
  });

  it('trusts the proxy only: an address the client wrote before the one the proxy added is not its IP', async () => {
    // A proxy that appends (nginx's $proxy_add_x_forwarded_for, AWS ALB) passes on whatever the
    // client sent first: were the leftmost entry the client, any client could pick a fresh one
    // per request and never be limited.
    const server = await startTestServer({ dev: true, rateLimit: 2, scrapeLimit: 0, trustProxy: true });
    try {
      const alice = await server.token('alice', 'images:write');
      const id = await uploadId(server, alice);
      const statuses: number[] = [];
      for (let i = 1; i <= 3; i++) {
        const response = await fetch(`${server.url}/v1/images/${id}?w=10`, {
          headers: { 'x-forwarded-for': `10.9.9.${i}, 198.51.100.8` },
        });
        statuses.push(response.status);
      }
      expect(statuses).toEqual([200, 200, 429]);
    } finally {
      await server.destroy();
    }
  });
});

describe('scrape limit', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ dev: true, rateLimit: 0, scrapeLimit: 3 });
  });
  afterAll(() => server.destroy());

  it('counts distinct originals per hour, not requests; the owner is exempt; others unaffected', async () => {
    const alice = await server.token('alice', 'images:write');
    const bob = await server.token('bob');
    const dave = await server.token('dave');
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await uploadId(server, alice));
    const view = (token: string, id: string, w = 10) =>
      fetch(`${server.url}/v1/images/${id}?w=${w}`, { headers: auth(token) });

    // The same three images, many times and sizes: three originals.
    for (const w of [10, 11, 12]) {
      for (const id of ids.slice(0, 3)) expect((await view(bob, id, w)).status).toBe(200);
    }
    await expectLimited(await view(bob, ids[3] as string), 'scrape', 3, 3600);
    // Refused, so still not seen: refused again, not let through as a repeat.
    expect((await view(bob, ids[3] as string)).status).toBe(429);
    // Images already seen keep working.
    expect((await view(bob, ids[0] as string, 20)).status).toBe(200);
    // The owner's own images never count.
    for (const id of ids) expect((await view(alice, id)).status).toBe(200);
    // Another principal is unaffected.
    for (const id of ids.slice(2)) expect((await view(dave, id)).status).toBe(200);
    expect(await limitedCount(server, 'scrape')).toBe(2);
  });
});

describe('uploads', () => {
  it('have their own hourly limit per owner', async () => {
    const server = await startTestServer({ dev: true, uploadLimit: 2 });
    try {
      const alice = await server.token('alice', 'images:write');
      const bob = await server.token('bob', 'images:write');
      expect((await upload(server, alice)).status).toBe(201);
      expect((await upload(server, alice)).status).toBe(201);
      await expectLimited(await upload(server, alice), 'upload', 2, 3600);
      expect((await upload(server, bob)).status).toBe(201);
    } finally {
      await server.destroy();
    }
  });

  it('stop at the owner storage quota with 403 quota_exceeded, storing nothing', async () => {
    const server = await startTestServer({ dev: true, quotaBytes: photo.length * 2 + 10 });
    try {
      const alice = await server.token('alice', 'images:write');
      const bob = await server.token('bob', 'images:write');
      expect((await upload(server, alice)).status).toBe(201);
      expect((await upload(server, alice)).status).toBe(201);
      const refused = await upload(server, alice);
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('quota_exceeded');
      const list = await fetch(`${server.url}/v1/images`, { headers: auth(alice) });
      expect(((await list.json()) as { items: unknown[] }).items).toHaveLength(2);
      expect((await upload(server, bob)).status).toBe(201);
      // Deleting frees the quota.
      const [first] = (
        (await (await fetch(`${server.url}/v1/images`, { headers: auth(alice) })).json()) as {
          items: { id: string }[];
        }
      ).items;
      await fetch(`${server.url}/v1/images/${first?.id}`, { method: 'DELETE', headers: auth(alice) });
      expect((await upload(server, alice)).status).toBe(201);
    } finally {
      await server.destroy();
    }
  });

  it('lets an upload fill the quota to the byte: exactly at the quota is within it', async () => {
    const server = await startTestServer({ dev: true, quotaBytes: photo.length * 2 });
    try {
      const alice = await server.token('alice', 'images:write');
      expect((await upload(server, alice)).status).toBe(201);
      expect((await upload(server, alice)).status).toBe(201);
      const refused = await upload(server, alice);
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('quota_exceeded');
    } finally {
      await server.destroy();
    }
  });

  it('holds under concurrent uploads: no more than the quota is stored, and no refused original is kept', async () => {
    const server = await startTestServer({ dev: true, quotaBytes: photo.length * 2 + 10 });
    try {
      const alice = await server.token('alice', 'images:write');
      // All in flight at once: each passes the early check before any of them is stored.
      const statuses = (await Promise.all(Array.from({ length: 6 }, () => upload(server, alice)))).map(
        (response) => response.status,
      );
      expect(statuses.sort()).toEqual([201, 201, 403, 403, 403, 403]);
      const list = await fetch(`${server.url}/v1/images`, { headers: auth(alice) });
      expect(((await list.json()) as { items: unknown[] }).items).toHaveLength(2);
      expect(await dataFiles(server, 'originals')).toHaveLength(2);
      expect(await dataFiles(server, 'tmp')).toEqual([]);
    } finally {
      await server.destroy();
    }
  });
});
