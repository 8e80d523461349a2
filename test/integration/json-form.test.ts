import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth } from '../helpers/images.js';
import { restartWithoutVariants, startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';

/** The JSON (data URI) form over real HTTP (SPEC §3.4): shape, negotiation, ETags, the cap. */

let server: TestServer;
let alice: string;
let id: string;

interface JsonForm {
  mimeType: string;
  base64Content: string;
  width: number;
  height: number;
}

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${alice}`, ...headers } });

beforeAll(async () => {
  // A cap that a 400×300 noise PNG original passes and a small JPEG variant does not.
  server = await startTestServer({ dev: true, jsonMaxBytes: 20_000 });
  alice = await server.token('alice');
  const noise = await sharp({
    create: {
      width: 400,
      height: 300,
      channels: 3,
      background: '#000',
      noise: { type: 'gaussian', mean: 128, sigma: 60 },
    },
  })
    .png()
    .toBuffer();
  const response = await fetch(`${server.url}/v1/images`, {
    method: 'POST',
    headers: { authorization: `Bearer ${alice}`, 'content-type': 'image/png' },
    body: noise,
  });
  expect(response.status).toBe(201);
  id = ((await response.json()) as { id: string }).id;
});
afterAll(() => server.destroy());

describe('Accept: application/json', () => {
  it('answers mimeType, base64Content, width and height of the variant', async () => {
    const response = await get(`/v1/images/${id}?w=100&format=jpeg`, { accept: 'application/json' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.headers.get('vary')).toBe('Accept, Authorization');
    const form = (await response.json()) as JsonForm;
    expect(form).toMatchObject({ mimeType: 'image/jpeg', width: 100, height: 75 });
    const meta = await sharp(Buffer.from(form.base64Content, 'base64')).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 100, height: 75 });
  });

  it('negotiates format=auto from the same Accept', async () => {
    const response = await get(`/v1/images/${id}?w=50`, { accept: 'application/json, image/webp' });
    const form = (await response.json()) as JsonForm;
    expect(form.mimeType).toBe('image/webp');
    expect((await sharp(Buffer.from(form.base64Content, 'base64')).metadata()).format).toBe('webp');
  });

  it('answers bytes without it (also for */*), for a blob URL', async () => {
    for (const accept of [undefined, '*/*', 'image/*,*/*;q=0.8']) {
      const response = await get(`/v1/images/${id}?w=60&format=png`, accept ? { accept } : {});
      expect(response.headers.get('content-type')).toBe('image/png');
      expect((await sharp(Buffer.from(await response.arrayBuffer())).metadata()).width).toBe(60);
    }
  });

  // Regression: any explicit application/json with q > 0 won, even when the client ranked the
  // image above it (RFC 9110 §12.4.2: q is the client's preference).
  it.each([
    ['image/webp, application/json;q=0.1', 'image/webp'],
    ['*/*, application/json;q=0.5', 'image/jpeg'],
    ['image/*;q=0.9, application/json;q=0.8', 'image/jpeg'],
    ['application/json, image/avif, image/webp', 'application/json; charset=utf-8'],
    ['application/json, */*', 'application/json; charset=utf-8'],
    ['application/json;q=0.9, image/*;q=0.8', 'application/json; charset=utf-8'],
    ['application/json;q=0.5, image/webp;q=0', 'application/json; charset=utf-8'],
  ])('weighs it against the image types by q: %s answers %s', async (accept, type) => {
    const response = await get(`/v1/images/${id}?w=40`, { accept });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(type);
    expect(response.headers.get('etag')?.endsWith('.json"')).toBe(type.startsWith('application/json'));
  });

  it('has its own ETag, revalidated on its own', async () => {
    const path = `/v1/images/${id}?w=70&format=png`;
    const bytes = await get(path);
    const json = await get(path, { accept: 'application/json' });
    const bytesEtag = bytes.headers.get('etag') as string;
    const jsonEtag = json.headers.get('etag') as string;
    expect(jsonEtag).toMatch(/^"[^"]+"$/);
    expect(jsonEtag).not.toBe(bytesEtag);
    expect((await get(path, { accept: 'application/json', 'if-none-match': jsonEtag })).status).toBe(304);
    // The bytes' ETag does not validate the JSON form, nor the reverse.
    expect((await get(path, { accept: 'application/json', 'if-none-match': bytesEtag })).status).toBe(200);
    expect((await get(path, { 'if-none-match': jsonEtag })).status).toBe(200);
    expect((await get(path, { 'if-none-match': bytesEtag })).status).toBe(304);
  });

  it('is revalidated before any processing, like the bytes: 304 for a form nothing can make any more', async () => {
    let own = await startTestServer({ dev: true });
    try {
      const token = await own.token('alice');
      const { id: ownId } = await uploadImage(own, token, (await synth('png', 80, 60)).body);
      const path = `/v1/images/${ownId}?w=40&format=png`;
      const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
      const etag = (await fetch(`${own.url}${path}`, { headers })).headers.get('etag') as string;
      expect(etag).toMatch(/^"[^"]+"$/);
      // No original, no cached variant, no process memory: only the ETag can answer now.
      own = await restartWithoutVariants(own, ownId);
      const revalidated = await fetch(`${own.url}${path}`, {
        headers: { ...headers, 'if-none-match': etag },
      });
      expect(revalidated.status).toBe(304);
      expect(revalidated.headers.get('etag')).toBe(etag);
      // The control: asked for the form itself, the server has nothing to make it from.
      expect((await fetch(`${own.url}${path}`, { headers })).status).toBe(404);
    } finally {
      await own.destroy();
    }
  });

  it('is a 422 output_too_large over PIXGATE_JSON_MAX_BYTES, for a variant and the original', async () => {
    for (const path of [`/v1/images/${id}?w=400&format=png`, `/v1/images/${id}`]) {
      const response = await get(path, { accept: 'application/json' });
      expect(response.status, path).toBe(422);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.headers.get('etag')).toBeNull();
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('output_too_large');
      expect(body.error.message).toMatch(/20000/);
      // The same URL as bytes still works.
      expect((await get(path)).status).toBe(200);
    }
  });
});

it('the original of a small image, for its owner', async () => {
  const small = await synth('png', 20, 10);
  const response = await fetch(`${server.url}/v1/images`, {
    method: 'POST',
    headers: { authorization: `Bearer ${alice}`, 'content-type': 'image/png' },
    body: small.body,
  });
  const smallId = ((await response.json()) as { id: string }).id;
  const form = (await (
    await get(`/v1/images/${smallId}`, { accept: 'application/json' })
  ).json()) as JsonForm;
  expect(form).toMatchObject({ mimeType: 'image/png', width: 20, height: 10 });
  expect(Buffer.from(form.base64Content, 'base64').equals(small.body)).toBe(true);
});
