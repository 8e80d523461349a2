import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';

/**
 * Preview refinements over real HTTP (issue 4): blur and watermark on clamped previews, presets,
 * strictSizes. Pixels are compared with sharp's own statistics of the real output.
 */

let server: TestServer;
let alice: string;
let bob: string;
let id: string;

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

async function fetchImage(path: string, token: string) {
  const response = await fetch(`${server.url}${path}`, { headers: auth(token) });
  const body = Buffer.from(await response.arrayBuffer());
  return { response, body };
}

/** Mean standard deviation of the channels above the watermark band: detail the blur takes away. */
async function detail(body: Buffer): Promise<number> {
  const { width, height } = await sharp(body).metadata();
  // Pixels first (raw): a watermarked PNG carries an opaque alpha channel, which stats() of the
  // encoded file would weigh in.
  const { data } = await sharp(body).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const top = data.subarray(0, width * Math.round(height * 0.7) * 3);
  const stats = await sharp(top, { raw: { width, height: Math.round(height * 0.7), channels: 3 } }).stats();
  return stats.channels.slice(0, 3).reduce((sum, channel) => sum + channel.stdev, 0) / 3;
}

/** Mean brightness of the bottom fifth, where the watermark band lies. */
async function bottomMean(body: Buffer): Promise<number> {
  const { width, height } = await sharp(body).metadata();
  const band = Math.round(height / 5);
  const { data } = await sharp(body).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const bottom = data.subarray(width * (height - band) * 3);
  const stats = await sharp(bottom, { raw: { width, height: band, channels: 3 } }).stats();
  return stats.channels.slice(0, 3).reduce((sum, channel) => sum + channel.mean, 0) / 3;
}

const settings = {
  dev: true,
  previewMax: 200,
  previewBlur: 4,
  previewWatermark: 'preview',
  sizes: [100, 200, 400],
  strictSizes: true,
  presets: { thumb: { w: 100, h: 100, fit: 'cover' } },
};

beforeAll(async () => {
  server = await startTestServer(settings);
  alice = await server.token('alice', 'images:write');
  bob = await server.token('bob');
  // A light checkerboard of 32 px squares (8 px in a 200 px preview): sharp edges for the blur
  // to smear, light enough for the band to darken.
  const pixels = Buffer.alloc(800 * 600 * 3);
  for (let y = 0; y < 600; y++) {
    for (let x = 0; x < 800; x++)
      pixels.fill(((x >> 5) + (y >> 5)) % 2 ? 255 : 150, (y * 800 + x) * 3, (y * 800 + x) * 3 + 3);
  }
  const photo = await sharp(pixels, { raw: { width: 800, height: 600, channels: 3 } })
    .png()
    .toBuffer();
  const response = await fetch(`${server.url}/v1/images?visibility=preview`, {
    method: 'POST',
    headers: { ...auth(alice), 'content-type': 'image/png' },
    body: photo,
  });
  id = ((await response.json()) as { id: string }).id;
});
afterAll(() => server.destroy());

describe('preview refinements', () => {
  it('blurs and watermarks a clamped preview, not the owner’s variant of the same size', async () => {
    const preview = await fetchImage(`/v1/images/${id}?w=400&format=png`, bob);
    expect(preview.response.status).toBe(200);
    expect(preview.response.headers.get('pixgate-clamped')).toBe('1');
    const own = await fetchImage(`/v1/images/${id}?w=200&format=png`, alice);
    expect(own.response.headers.get('pixgate-clamped')).toBeNull();
    expect((await sharp(preview.body).metadata()).width).toBe(200);
    expect((await sharp(own.body).metadata()).width).toBe(200);

    // Blurred with sigma 4, exactly as the owner asking for blur=4 gets it.
    const blurred = await fetchImage(`/v1/images/${id}?w=200&blur=4&format=png`, alice);
    expect(await detail(preview.body)).toBeLessThan((await detail(own.body)) * 0.8);
    expect(await detail(preview.body)).toBeCloseTo(await detail(blurred.body), 0);
    expect(await bottomMean(preview.body)).toBeLessThan((await bottomMean(own.body)) - 40);
    expect(preview.response.headers.get('etag')).not.toBe(own.response.headers.get('etag'));
  });

  it('marks a preview that needs no clamping too: asking for a width within previewMax does not unmark it', async () => {
    for (const w of [200, 100]) {
      const small = await fetchImage(`/v1/images/${id}?w=${w}&format=png`, bob);
      const own = await fetchImage(`/v1/images/${id}?w=${w}&format=png`, alice);
      // Not scaled down from what was asked, but a preview all the same.
      expect(small.response.headers.get('pixgate-clamped')).toBeNull();
      expect((await sharp(small.body).metadata()).width).toBe(w);
      expect(small.response.headers.get('etag')).not.toBe(own.response.headers.get('etag'));
      expect(await detail(small.body)).toBeLessThan((await detail(own.body)) * 0.8);
      expect(await bottomMean(small.body)).toBeLessThan((await bottomMean(own.body)) - 40);
    }
  });

  it('leaves a share link clamped to its maxWidth as granted: the owner’s variant, unmarked', async () => {
    const made = await fetch(`${server.url}/v1/images/${id}/links`, {
      method: 'POST',
      headers: { ...auth(alice), 'content-type': 'application/json' },
      body: JSON.stringify({ ttlSeconds: 600, maxWidth: 200 }),
    });
    expect(made.status).toBe(201);
    const { url } = (await made.json()) as { url: string };
    const shared = await fetch(`${server.url}${url}?w=400&format=png`);
    expect(shared.status).toBe(200);
    expect(shared.headers.get('pixgate-clamped')).toBe('1');
    const body = Buffer.from(await shared.arrayBuffer());
    const own = await fetchImage(`/v1/images/${id}?w=200&format=png`, alice);
    // The same variant: the owner granted 200 px, not a sniff to blur or watermark.
    expect(shared.headers.get('etag')).toBe(own.response.headers.get('etag'));
    expect(body.equals(own.body)).toBe(true);
  });

  it('expands presets from the settings, explicit parameters overriding them', async () => {
    const thumb = await fetchImage(`/v1/images/${id}?preset=thumb`, alice);
    expect(thumb.response.status).toBe(200);
    const meta = await sharp(thumb.body).metadata();
    expect([meta.width, meta.height]).toEqual([100, 100]);
    // thumb is w=100 h=100 fit=cover on the 800 × 600 original: an explicit w widens the box
    // (200 × 100, cropped), an explicit fit=inside keeps the 4:3 shape within it (100 × 75).
    for (const [query, size] of [
      ['preset=thumb&w=200', [200, 100]],
      ['w=200&preset=thumb', [200, 100]],
      ['preset=thumb&fit=inside', [100, 75]],
    ] as const) {
      const overridden = await fetchImage(`/v1/images/${id}?${query}`, alice);
      expect(overridden.response.status, query).toBe(200);
      const { width, height } = await sharp(overridden.body).metadata();
      expect([width, height], query).toEqual(size);
    }
    const unknown = await fetchImage(`/v1/images/${id}?preset=huge`, alice);
    expect(unknown.response.status).toBe(400);
    expect(JSON.parse(unknown.body.toString())).toEqual({
      error: { code: 'invalid_transform', message: 'Unknown preset "huge"' },
    });
  });

  it('with strictSizes, refuses a width outside the sizes list', async () => {
    expect((await fetchImage(`/v1/images/${id}?w=400`, alice)).response.status).toBe(200);
    const refused = await fetchImage(`/v1/images/${id}?w=300`, alice);
    expect(refused.response.status).toBe(400);
    expect(JSON.parse(refused.body.toString())).toEqual({
      error: { code: 'invalid_transform', message: 'Expected one of 100, 200, 400 for w but received 300' },
    });
  });
});

describe('settings the render depends on', () => {
  it('a new watermark text is drawn after a restart, not served from the disk cache', async () => {
    const before = await fetchImage(`/v1/images/${id}?w=400&format=png`, bob);
    expect(before.response.status).toBe(200);
    await server.close();
    server = await startTestServer(
      { ...settings, previewWatermark: 'another text' },
      { dataDir: server.dataDir },
    );
    const after = await fetchImage(`/v1/images/${id}?w=400&format=png`, bob);
    expect(after.response.status).toBe(200);
    expect(after.response.headers.get('etag')).not.toBe(before.response.headers.get('etag'));
    expect(after.body.equals(before.body)).toBe(false);
    // The owner's unmarked variant does not depend on the text, but its key names every setting.
    expect((await fetchImage(`/v1/images/${id}?w=200&format=png`, alice)).response.status).toBe(200);
  });
});
