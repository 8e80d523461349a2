import { readdir, rm } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { startHttpOrigin } from '../helpers/http-origin.js';
import { photoWithGps, synth } from '../helpers/images.js';
import { startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';

/** The processing queue, the variant cache and the origin, seen from outside (SPEC §4, §6). */

let server: TestServer;
let token: string;
let id: string;

beforeAll(async () => {
  server = await startTestServer({ dev: true, concurrency: 1, queueSize: 1 });
  token = await server.token('erin');
  const response = await fetch(`${server.url}/v1/images`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'image/jpeg' },
    body: await photoWithGps(2400, 2400),
  });
  ({ id } = (await response.json()) as { id: string });
});
afterAll(() => server.destroy());

const get = (query: string) =>
  fetch(`${server.url}/v1/images/${id}?${query}`, { headers: { authorization: `Bearer ${token}` } });

describe('processing queue', () => {
  it('refuses beyond concurrency + queue at once with 503 and Retry-After, and serves the rest', async () => {
    // Six different slow variants at once: one runs, one waits, the others are refused.
    const responses = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => get(`w=${2000 + n}&format=png`)));
    const statuses = responses.map((response) => response.status).sort();
    expect(statuses.filter((status) => status === 200)).toHaveLength(2);
    expect(statuses.filter((status) => status === 503)).toHaveLength(4);
    for (const response of responses.filter((r) => r.status === 503)) {
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('overloaded');
    }
  });
});

describe('variant cache and origin', () => {
  it('serves a cached variant without the origin, and a new variant needs the origin', async () => {
    const first = await get('w=250');
    expect(first.status).toBe(200);
    const bytes = Buffer.from(await first.arrayBuffer());

    // The original disappears from the origin (someone cleaned the bucket).
    await rm(join(server.dataDir, 'originals', id.slice(0, 2), id));
    const cached = await get('w=250');
    expect(cached.status).toBe(200);
    expect(Buffer.from(await cached.arrayBuffer()).equals(bytes)).toBe(true);

    const fresh = await get('w=251');
    expect(fresh.status).toBe(404);
    expect(((await fresh.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  it('keeps cached variants on disk across a restart', async () => {
    const restarted = await server.restart();
    server = restarted;
    const cached = await get('w=250');
    expect(cached.status).toBe(200);
  });
});

describe('a variant still rendering when its image is deleted', () => {
  it('does not come back into the cache after the DELETE', async () => {
    // An HTTP origin, so the render can be held open at its read, and the delete leaves the
    // (registered) original where it is: the held render then finishes normally.
    const origin = await startHttpOrigin();
    const held = await startTestServer({ dev: true, storage: origin.baseUrl });
    try {
      const admin = await held.token('root', 'images:admin');
      const png = (await synth('png', 300, 200)).body;
      origin.put('doomed.png', png, 'image/png');
      const created = await fetch(`${held.url}/v1/images`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: 'doomed.png', owner: 'root' }),
      });
      expect(created.status).toBe(201);
      const { id: doomed } = (await created.json()) as { id: string };

      let reading: () => void = () => {};
      const originAsked = new Promise<void>((resolve) => {
        reading = resolve;
      });
      let answer: ServerResponse | undefined;
      origin.route('/lib/doomed.png', (_request, response) => {
        answer = response;
        reading();
      });
      const rendering = fetch(`${held.url}/v1/images/${doomed}?w=100&format=png`, {
        headers: { authorization: `Bearer ${admin}` },
      });
      await originAsked;

      const deleted = await fetch(`${held.url}/v1/images/${doomed}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${admin}` },
      });
      expect(deleted.status).toBe(204);
      // The render started before the delete: it finishes, and its requester gets it.
      answer?.writeHead(200, { 'content-type': 'image/png' }).end(png);
      const rendered = await rendering;
      expect(rendered.status).toBe(200);
      await rendered.arrayBuffer();
    } finally {
      // Closing waits for the cache writes still under way (variants.drain): after it, whatever
      // the render was going to write is on disk.
      await held.close();
      await origin.close();
    }
    const ids = await readdir(join(held.dataDir, 'cache'));
    await rm(held.dataDir, { recursive: true, force: true });
    expect(ids).toEqual([]);
  });
});

describe('requests whose client went away', () => {
  const METRICS_TOKEN = 'metrics-secret-0123456789';
  let busy: TestServer;
  let busyToken: string;
  let busyId: string;

  beforeAll(async () => {
    busy = await startTestServer({ dev: true, concurrency: 1, queueSize: 4, metricsToken: METRICS_TOKEN });
    busyToken = await busy.token('erin');
    ({ id: busyId } = await uploadImage(busy, busyToken, await photoWithGps(2400, 2400), {
      type: 'image/jpeg',
    }));
  });
  afterAll(() => busy.destroy());

  const variant = (width: number, signal?: AbortSignal) =>
    fetch(`${busy.url}/v1/images/${busyId}?w=${width}&format=png`, {
      headers: { authorization: `Bearer ${busyToken}` },
      signal,
    });
  /** The sum of a metric's samples. */
  async function metric(name: string): Promise<number> {
    const response = await fetch(`${busy.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    const text = await response.text();
    const samples = text
      .split('\n')
      .filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`));
    return samples.reduce((total, line) => total + Number(line.split(' ').at(-1)), 0);
  }
  const transforms = () => metric('pixgate_transform_duration_seconds_count');

  it('leave the queue without a transform, and their log line says 499 client_closed', async () => {
    const kept = variant(2001);
    await eventually(async () => expect(await metric('pixgate_queue_running')).toBe(1));
    const gone = new AbortController();
    const abandoned = [2002, 2003].map((width) => variant(width, gone.signal).catch(() => 'aborted'));
    await eventually(async () => expect(await metric('pixgate_queue_depth')).toBe(2));
    gone.abort();
    expect(await Promise.all(abandoned)).toEqual(['aborted', 'aborted']);
    const keptResponse = await kept;
    expect(keptResponse.status).toBe(200);
    await keptResponse.arrayBuffer();
    await eventually(async () => expect(await metric('pixgate_queue_depth')).toBe(0));
    await eventually(() => {
      const closed = busy.logs
        .map((line) => JSON.parse(line) as { status?: number; code?: string; url?: string })
        .filter((line) => line.status === 499);
      expect(closed).toHaveLength(2);
      for (const line of closed) expect(line.code).toBe('client_closed');
    });
    expect(await transforms()).toBe(1);

    // Nothing of theirs lingers: asked again, the same variant is made and served.
    const again = await variant(2002);
    expect(again.status).toBe(200);
    await again.arrayBuffer();
    expect(await transforms()).toBe(2);
  });
});
