import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadKey } from '../../src/images/ingest.js';
import {
  animatedGif,
  iptcApp13,
  photoWithGps,
  synth,
  withJpegSegment,
  xmpWithGps,
} from '../helpers/images.js';
import { restartWithoutVariants, startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';
import { shape } from '../helpers/response-shape.js';

/** The image API over real HTTP: uploads, the SPEC §2 table, variants, caching headers, lifecycle. */

let server: TestServer;
let alice: string;
let bob: string;
let photo: Buffer;

const auth = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${token}`,
  ...extra,
});

const upload = (token: string, body: Buffer, visibility = 'private', type = 'image/jpeg') =>
  uploadImage(server, token, body, { visibility, type });

async function get(path: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.url}${path}`, { headers });
  return { response, body: Buffer.from(await response.arrayBuffer()) };
}

/** Variants made by `of`'s process so far. */
async function transformCount(of: Pick<TestServer, 'url'> = server): Promise<number> {
  const text = await (await fetch(`${of.url}/metrics`)).text();
  return [...text.matchAll(/^pixgate_transform_duration_seconds_count\{[^}]*\} (\d+)/gm)].reduce(
    (sum, match) => sum + Number(match[1]),
    0,
  );
}

beforeAll(async () => {
  server = await startTestServer({ dev: true });
  alice = await server.token('alice');
  bob = await server.token('bob');
  photo = await photoWithGps(1200, 900);
});
afterAll(() => server.destroy());

describe('upload and the original', () => {
  it('answers 201 with the meta JSON and Location', async () => {
    const response = await fetch(`${server.url}/v1/images`, {
      method: 'POST',
      headers: auth(alice, { 'content-type': 'image/jpeg' }),
      body: photo,
    });
    expect(response.status).toBe(201);
    const meta = (await response.json()) as Record<string, unknown>;
    expect(meta).toMatchObject({
      owner: 'alice',
      visibility: 'private',
      width: 1200,
      height: 900,
      format: 'jpeg',
    });
    expect(meta.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(meta.bytes).toBe(photo.length);
    expect(new Date(meta.createdAt as string).toISOString()).toBe(meta.createdAt);
    expect(Buffer.from(meta.placeholder as string, 'base64').length).toBeGreaterThan(5);
    expect(response.headers.get('location')).toBe(`/v1/images/${meta.id}`);
  });

  it('accepts multipart/form-data with the field "file", and only that field', async () => {
    const form = new FormData();
    form.append('file', new Blob([photo], { type: 'image/jpeg' }), 'photo.jpg');
    const ok = await fetch(`${server.url}/v1/images?visibility=public`, {
      method: 'POST',
      headers: auth(alice),
      body: form,
    });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toMatchObject({ visibility: 'public', width: 1200 });

    const wrong = new FormData();
    wrong.append('image', new Blob([photo], { type: 'image/jpeg' }), 'photo.jpg');
    const refused = await fetch(`${server.url}/v1/images`, {
      method: 'POST',
      headers: auth(alice),
      body: wrong,
    });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({
      error: {
        code: 'invalid_request',
        message: 'Expected one multipart field, "file", holding the image (visibility goes in the query)',
      },
    });
  });

  it('gives the owner the original bytes as stored, metadata included', async () => {
    const { id } = await upload(alice, photo);
    const { response, body } = await get(`/v1/images/${id}`, auth(alice));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/jpeg');
    expect(body.equals(photo)).toBe(true);
    expect(response.headers.get('cache-control')).toBe('private, max-age=3600');
    const etag = response.headers.get('etag') as string;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    // SPEC §4: Vary: Accept on every image response, the original too (its JSON form depends on
    // Accept), for HEAD and for a 304 alike; and Authorization, which authenticated it.
    expect(response.headers.get('vary')).toBe('Accept, Authorization');
    const head = await fetch(`${server.url}/v1/images/${id}`, { method: 'HEAD', headers: auth(alice) });
    expect(head.status).toBe(200);
    expect(head.headers.get('vary')).toBe('Accept, Authorization');
    expect(head.headers.get('etag')).toBe(etag);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    const again = await get(`/v1/images/${id}`, auth(alice, { 'if-none-match': etag }));
    expect(again.response.status).toBe(304);
    expect(again.response.headers.get('vary')).toBe('Accept, Authorization');
  });

  it("keeps the owner's original of a public image out of shared caches: it carries the metadata", async () => {
    const { id } = await upload(alice, photo, 'public');
    const original = await get(`/v1/images/${id}`, auth(alice));
    expect(original.body.equals(photo)).toBe(true);
    expect(original.response.headers.get('cache-control')).toBe('private, max-age=3600');
    const head = await fetch(`${server.url}/v1/images/${id}`, { method: 'HEAD', headers: auth(alice) });
    expect(head.headers.get('cache-control')).toBe('private, max-age=3600');
    // Its variants, stripped of the metadata, may be shared.
    const variant = await get(`/v1/images/${id}?w=100`, auth(alice));
    expect(variant.response.headers.get('cache-control')).toBe('public, max-age=3600');
  });

  it('reads the orientation: a sideways-stored JPEG is described and served upright', async () => {
    const rotated = await synth('jpeg-rotated', 300, 200);
    const meta = await upload(alice, rotated.body);
    expect(meta).toMatchObject({ width: 300, height: 200 });
    const { body } = await get(`/v1/images/${meta.id}?w=150`, auth(alice));
    expect(await sharp(body).metadata()).toMatchObject({ width: 150, height: 100 });
  });
});

describe('variants', () => {
  let id: string;
  beforeAll(async () => {
    ({ id } = await upload(alice, photo, 'public'));
  });

  it('resizes, strips EXIF and GPS, and sends the security headers', async () => {
    const { response, body } = await get(`/v1/images/${id}?w=360`, auth(alice));
    expect(response.status).toBe(200);
    const meta = await sharp(body).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 360, height: 270 });
    expect(meta.exif).toBeUndefined();
    expect(body.includes('PixgateTestCam')).toBe(false);
    expect(response.headers.get('vary')).toBe('Accept, Authorization');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'");
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(response.headers.get('cache-control')).toBe('public, max-age=3600');
  });

  it('never gives a non-owner the stored bytes, even of a public image at full size', async () => {
    const { response, body } = await get(`/v1/images/${id}`, auth(bob));
    expect(response.status).toBe(200);
    expect(body.equals(photo)).toBe(false);
    const meta = await sharp(body).metadata();
    expect(meta).toMatchObject({ width: 1200, height: 900 });
    expect(meta.exif).toBeUndefined();
  });

  it('never enlarges', async () => {
    const { body } = await get(`/v1/images/${id}?w=3000`, auth(alice));
    expect(await sharp(body).metadata()).toMatchObject({ width: 1200, height: 900 });
  });

  it.each([
    ['image/avif,image/webp,image/*,*/*;q=0.8', 'image/avif', 'heif'],
    ['image/webp,image/*,*/*;q=0.8', 'image/webp', 'webp'],
    ['image/*,*/*;q=0.8', 'image/jpeg', 'jpeg'],
    ['image/avif;q=0,image/webp', 'image/webp', 'webp'],
  ])('format=auto with Accept %s → %s', async (accept, type, format) => {
    const { response, body } = await get(`/v1/images/${id}?w=200`, auth(alice, { accept }));
    expect(response.headers.get('content-type')).toBe(type);
    expect((await sharp(body).metadata()).format).toBe(format);
  });

  it('keeps alpha as PNG for auto without modern formats', async () => {
    const transparent = await synth('png-alpha', 300, 300);
    const meta = await upload(alice, transparent.body, 'private', 'image/png');
    const { response, body } = await get(`/v1/images/${meta.id}?w=100`, auth(alice, { accept: 'image/*' }));
    expect(response.headers.get('content-type')).toBe('image/png');
    expect((await sharp(body).metadata()).hasAlpha).toBe(true);
  });

  it('answers If-None-Match with 304 without transforming again', async () => {
    const first = await get(`/v1/images/${id}?w=123`, auth(alice));
    const etag = first.response.headers.get('etag') as string;
    const before = await transformCount();
    const again = await get(`/v1/images/${id}?w=123`, auth(alice, { 'if-none-match': etag }));
    expect(again.response.status).toBe(304);
    expect(again.body.length).toBe(0);
    expect(again.response.headers.get('etag')).toBe(etag);
    expect(again.response.headers.get('vary')).toBe('Accept, Authorization');
    expect(await transformCount()).toBe(before);
  });

  it('gives equivalent requests one ETag (normalized transforms share a cache entry)', async () => {
    const a = await get(`/v1/images/${id}?w=200&dpr=2`, auth(alice, { accept: 'image/jpeg' }));
    const b = await get(`/v1/images/${id}?w=400&fit=inside`, auth(alice, { accept: 'image/jpeg' }));
    expect(a.response.headers.get('etag')).toBe(b.response.headers.get('etag'));
  });

  it('answers HEAD with the headers of GET and no body', async () => {
    const head = await fetch(`${server.url}/v1/images/${id}?w=300`, { method: 'HEAD', headers: auth(alice) });
    const full = await get(`/v1/images/${id}?w=300`, auth(alice));
    expect(head.status).toBe(200);
    expect(head.headers.get('etag')).toBe(full.response.headers.get('etag'));
    expect(head.headers.get('content-type')).toBe('image/jpeg');
    expect(Number(head.headers.get('content-length'))).toBe(full.body.length);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
  });

  it('computes identical concurrent requests once', async () => {
    const before = await transformCount();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => get(`/v1/images/${id}?w=333&format=webp`, auth(alice))),
    );
    for (const { response, body } of results) {
      expect(response.status).toBe(200);
      expect(body.equals(results[0]?.body as Buffer)).toBe(true);
    }
    expect(await transformCount()).toBe(before + 1);
  });

  it.each([
    ['w=0', 'Expected integer 1..4096 for w but received 0'],
    ['w=100&w=200', 'Repeated parameter "w"'],
    ['width=100', 'Unknown parameter "width"'],
    ['fit=big&w=1&h=1', 'Expected one of cover, contain, fill, inside, outside for fit but received "big"'],
    ['w=2048&dpr=3', 'Expected integer 1..4096 for w × dpr but received 6144'],
  ])('refuses ?%s with 400 invalid_transform', async (query, message) => {
    const { response, body } = await get(`/v1/images/${id}?${query}`, auth(alice));
    expect(response.status).toBe(400);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const error = JSON.parse(body.toString()) as { error: { code: string; message: string } };
    expect(error.error.code).toBe('invalid_transform');
    expect(error.error.message).toBe(message);
  });

  it('rasterizes SVG, even for its owner', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60"><rect width="120" height="60" fill="#c33"/></svg>',
    );
    const meta = await upload(alice, svg, 'private', 'image/svg+xml');
    expect(meta).toMatchObject({ format: 'svg', width: 120, height: 60 });
    const { response, body } = await get(`/v1/images/${meta.id}`, auth(alice, { accept: 'image/*' }));
    expect(response.headers.get('content-type')).toBe('image/png');
    expect(await sharp(body).metadata()).toMatchObject({ format: 'png', width: 120, height: 60 });
  });
});

describe('unusual inputs through the server', () => {
  const secret = 'SecretOwnerThroughHttp';
  const everyFormat = [
    ['format=jpeg', undefined, 'image/jpeg'],
    ['format=png', undefined, 'image/png'],
    ['format=webp', undefined, 'image/webp'],
    ['format=avif', undefined, 'image/avif'],
    ['format=auto', 'image/avif,image/webp,*/*', 'image/avif'],
    ['format=auto', 'image/webp,*/*', 'image/webp'],
    ['format=auto', 'image/*', 'image/jpeg'],
  ] as const;

  it("strips XMP with GPS, IPTC and comments from every variant, the owner's too; only the original keeps them", async () => {
    const tagged = withJpegSegment(
      withJpegSegment(
        await sharp(photo)
          .withExif({ IFD0: { Make: secret } })
          .withXmp(xmpWithGps(secret))
          .toBuffer(),
        0xed,
        iptcApp13(secret),
      ),
      0xfe,
      Buffer.from(`by ${secret}`),
    );
    const { id } = await upload(alice, tagged, 'public');
    for (const token of [alice, bob]) {
      for (const [query, accept, type] of everyFormat) {
        for (const size of ['&w=600', '&w=100&h=100&fit=cover']) {
          const { response, body } = await get(
            `/v1/images/${id}?${query}${size}`,
            auth(token, accept ? { accept } : {}),
          );
          const where = `${token === alice ? 'owner' : 'other'} ${query}${size} ${accept}`;
          expect(response.status, where).toBe(200);
          expect(response.headers.get('content-type'), where).toBe(type);
          const meta = await sharp(body).metadata();
          expect([meta.width, meta.height], where).toStrictEqual(size === '&w=600' ? [600, 450] : [100, 100]);
          for (const field of ['exif', 'xmp', 'iptc', 'icc', 'comments'] as const) {
            expect(meta[field], `${where} ${field}`).toBeUndefined();
          }
          expect(body.includes(secret), where).toBe(false);
        }
      }
    }
    const original = await get(`/v1/images/${id}`, auth(alice));
    expect(original.body.equals(tagged)).toBe(true);
  });

  it('keeps an animated GIF animated only in WebP: auto picks WebP over AVIF for it, others get the first frame', async () => {
    // Frame i has red = 40 × i.
    const { id } = await upload(alice, await animatedGif(30, 20, 5), 'public', 'image/gif');
    for (const token of [alice, bob]) {
      for (const [query, accept, type, pages] of [
        ['format=auto&w=15', 'image/avif,image/webp,*/*', 'image/webp', 5],
        ['format=auto&w=15', 'image/webp', 'image/webp', 5],
        ['format=webp&w=15', undefined, 'image/webp', 5],
        ['format=auto&w=15', 'image/*', 'image/png', 1], // a GIF has alpha
        ['format=jpeg&w=15', undefined, 'image/jpeg', 1],
        ['format=avif&w=15', undefined, 'image/avif', 1],
      ] as const) {
        const { response, body } = await get(
          `/v1/images/${id}?${query}`,
          auth(token, accept ? { accept } : {}),
        );
        const where = `${query} ${accept}`;
        expect(response.headers.get('content-type'), where).toBe(type);
        const meta = await sharp(body).metadata();
        expect([meta.width, meta.height, meta.pages ?? 1], where).toStrictEqual([15, 10, pages]);
        // The first frame (red 0), whatever is kept.
        const first = await sharp(body).removeAlpha().raw().toBuffer();
        expect(first[0] as number, where).toBeLessThan(16);
        expect(first[1] as number, where).toBeGreaterThan(180);
      }
    }
  });

  it('rasterizes an SVG with CSS, text, and a size in percent', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="100%" height="100%" viewBox="0 0 40 30">' +
        '<style>rect { fill: #00ff00 } .m { fill: #ff00ff }</style><rect width="40" height="30"/>' +
        '<rect class="m" x="0" y="0" width="10" height="10"/>' +
        `<text x="12" y="25" font-size="6">${secret}</text></svg>`,
    );
    // Percentages of no viewport: the viewBox gives the size.
    const meta = await upload(alice, svg, 'public', 'image/svg+xml');
    expect(meta).toMatchObject({ format: 'svg', width: 40, height: 30 });
    for (const token of [alice, bob]) {
      const { response, body } = await get(`/v1/images/${meta.id}?w=20`, auth(token, { accept: 'image/*' }));
      expect(response.headers.get('content-type')).toBe('image/png');
      const out = await sharp(body).metadata();
      expect([out.format, out.width, out.height]).toStrictEqual(['png', 20, 15]);
      const { data, info } = await sharp(body).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const at = (x: number, y: number) => [
        ...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3),
      ];
      expect(at(2, 2)).toStrictEqual([255, 0, 255]); // the CSS class
      expect(at(17, 3)).toStrictEqual([0, 255, 0]); // the CSS element rule
      expect(body.includes(secret)).toBe(false); // text is pixels now
    }
  });
});

describe('who may see what (SPEC §2)', () => {
  const ids: Record<string, string> = {};
  const missing = 'AAAAAAAAAAAAAAAAAAAAAA';
  beforeAll(async () => {
    for (const visibility of ['private', 'preview', 'public'])
      ids[visibility] = (await upload(alice, photo, visibility)).id;
  });

  // SPEC §4: "same body and headers either way". Whole answers are compared (all but Date), so
  // no header set only when the image exists can tell an existing image from a missing one.
  const answersFor = (idsAsked: string[], query: string, headers: Record<string, string> = {}) =>
    Promise.all(
      idsAsked.map(async (id) => shape(await fetch(`${server.url}/v1/images/${id}${query}`, { headers }))),
    );

  it('another user gets 404 for a private image, exactly like a missing or malformed id', async () => {
    const [first, ...others] = await answersFor(
      [ids.private as string, missing, 'not-an-id', '..%2F..%2Fetc'],
      '?w=100',
      auth(bob),
    );
    expect(first?.status).toBe(404);
    expect(JSON.parse(first?.body as string)).toEqual({
      error: { code: 'not_found', message: 'No such image' },
    });
    expect(new Map(first?.headers).get('cache-control')).toBe('no-store');
    for (const other of others) expect(other).toEqual(first);
  });

  it('another user gets a preview clamped to previewMax, and says so', async () => {
    for (const query of ['', '?w=1000', '?w=2000&h=2000&fit=cover', '?h=900']) {
      const { response, body } = await get(`/v1/images/${ids.preview}${query}`, auth(bob));
      expect(response.status).toBe(200);
      expect(response.headers.get('pixgate-clamped')).toBe('1');
      const meta = await sharp(body).metadata();
      expect(Math.max(meta.width ?? 0, meta.height ?? 0)).toBeLessThanOrEqual(360);
      expect(meta.exif).toBeUndefined();
    }
    const small = await get(`/v1/images/${ids.preview}?w=200`, auth(bob));
    expect(small.response.headers.get('pixgate-clamped')).toBeNull();
    expect((await sharp(small.body).metadata()).width).toBe(200);
    expect(small.response.headers.get('cache-control')).toBe('private, max-age=3600');
  });

  it('another user gets any variant of a public image', async () => {
    const { response, body } = await get(`/v1/images/${ids.public}?w=1000`, auth(bob));
    expect(response.status).toBe(200);
    expect((await sharp(body).metadata()).width).toBe(1000);
  });

  it('the anonymous get 401 for private, preview, missing and malformed alike, and public images', async () => {
    const [first, ...others] = await answersFor(
      [ids.private as string, ids.preview as string, missing, 'not-an-id'],
      '',
    );
    expect(first?.status).toBe(401);
    expect(new Map(first?.headers).get('www-authenticate')).toBe('Bearer realm="pixgate"');
    expect(new Map(first?.headers).get('cache-control')).toBe('no-store');
    for (const other of others) expect(other).toEqual(first);
    const pub = await get(`/v1/images/${ids.public}?w=100`);
    expect(pub.response.status).toBe(200);
  });

  it('/meta names the owner only to the owner', async () => {
    const own = await get(`/v1/images/${ids.public}/meta`, auth(alice));
    expect(JSON.parse(own.body.toString())).toMatchObject({
      id: ids.public,
      owner: 'alice',
      visibility: 'public',
    });
    const other = await get(`/v1/images/${ids.public}/meta`, auth(bob));
    const otherMeta = JSON.parse(other.body.toString()) as Record<string, unknown>;
    expect(otherMeta.owner).toBeUndefined();
    expect(otherMeta).toMatchObject({ id: ids.public, width: 1200, height: 900 });
    expect((await get(`/v1/images/${ids.private}/meta`, auth(bob))).response.status).toBe(404);
  });

  it('a bad parameter answers 400 alike for an id that exists and one that does not (no probing)', async () => {
    const [first, ...others] = await answersFor(
      [ids.private as string, missing, 'not-an-id'],
      '?w=0',
      auth(bob),
    );
    expect(first?.status).toBe(400);
    for (const other of others) expect(other).toEqual(first);
  });

  it('previews for the anonymous when previewAnonymous is on', async () => {
    const open = await startTestServer({ dev: true, previewAnonymous: true });
    try {
      const owner = await open.token('alice');
      const response = await fetch(`${open.url}/v1/images?visibility=preview`, {
        method: 'POST',
        headers: auth(owner, { 'content-type': 'image/jpeg' }),
        body: photo,
      });
      const { id } = (await response.json()) as { id: string };
      const preview = await fetch(`${open.url}/v1/images/${id}?w=800`);
      expect(preview.status).toBe(200);
      expect(preview.headers.get('pixgate-clamped')).toBe('1');
      expect((await sharp(Buffer.from(await preview.arrayBuffer())).metadata()).width).toBe(360);
    } finally {
      await open.destroy();
    }
  });
});

describe('caching by credential', () => {
  // Security regression: an answer authenticated by the Authorization header sat in the
  // browser's (private) HTTP cache keyed by URL and Accept only, so on a shared browser another
  // token, or no token at all, was handed the owner's private image from that cache instead of
  // its 404 or 401 (seen in Chromium). A cache must key such an answer on the header too.
  it('varies an answer authenticated by the Authorization header on it, 304 and HEAD too', async () => {
    const { id } = await upload(alice, photo, 'private');
    for (const path of [`/v1/images/${id}`, `/v1/images/${id}?w=100`]) {
      const { response } = await get(path, auth(alice));
      expect(response.status, path).toBe(200);
      expect(response.headers.get('vary'), path).toBe('Accept, Authorization');
      const head = await fetch(`${server.url}${path}`, { method: 'HEAD', headers: auth(alice) });
      expect(head.headers.get('vary'), path).toBe('Accept, Authorization');
      const etag = response.headers.get('etag') as string;
      const again = await get(path, auth(alice, { 'if-none-match': etag }));
      expect(again.response.status, path).toBe(304);
      expect(again.response.headers.get('vary'), path).toBe('Accept, Authorization');
    }
    // The same URL asked for by another user, or anonymously, is theirs to be refused.
    expect((await get(`/v1/images/${id}?w=100`, auth(bob))).response.status).toBe(404);
    expect((await get(`/v1/images/${id}?w=100`)).response.status).toBe(401);
  });

  it('does not vary an anonymous answer on Authorization', async () => {
    const { id } = await upload(alice, photo, 'public');
    const { response } = await get(`/v1/images/${id}?w=100`);
    expect(response.status).toBe(200);
    expect(response.headers.get('vary')).toBe('Accept');
  });

  // Regression: the anonymous preview went out `Vary: Accept` alone, so the browser that showed it
  // answered the same URL from its own cache with it once its user signed in (the owner, asking
  // with a token or the session cookie, got the clamped preview for an hour instead of the image).
  it('varies an anonymous preview on Authorization and Cookie, 304 and HEAD too', async () => {
    const open = await startTestServer({ dev: true, previewAnonymous: true });
    try {
      const owner = await open.token('alice');
      const { id } = await uploadImage(open, owner, photo, { visibility: 'preview', type: 'image/jpeg' });
      const path = `${open.url}/v1/images/${id}?w=800`;
      const anonymous = await fetch(path);
      expect(anonymous.status).toBe(200);
      expect(anonymous.headers.get('pixgate-clamped')).toBe('1');
      expect(anonymous.headers.get('cache-control')).toMatch(/^private/);
      expect(anonymous.headers.get('vary')).toBe('Accept, Authorization, Cookie');
      const head = await fetch(path, { method: 'HEAD' });
      expect(head.headers.get('vary')).toBe('Accept, Authorization, Cookie');
      const etag = anonymous.headers.get('etag') as string;
      const again = await fetch(path, { headers: { 'if-none-match': etag } });
      expect(again.status).toBe(304);
      expect(again.headers.get('vary')).toBe('Accept, Authorization, Cookie');
      // What the owner's request is answered instead, once the cache asks.
      const full = await fetch(path, { headers: auth(owner) });
      expect(full.headers.get('pixgate-clamped')).toBeNull();
      expect(full.headers.get('etag')).not.toBe(etag);
    } finally {
      await open.destroy();
    }
  });
});

describe('listing, changing and deleting', () => {
  let carol: string;
  const mine: string[] = [];
  beforeAll(async () => {
    carol = await server.token('carol');
    const small = (await synth('png', 40, 30)).body;
    for (let i = 0; i < 5; i++) mine.push((await upload(carol, small, 'private', 'image/png')).id);
  });

  it('lists newest first across pages', async () => {
    const seen: string[] = [];
    let cursor = '';
    for (let page = 0; page < 5; page++) {
      const { response, body } = await get(`/v1/images?owner=me&limit=2&cursor=${cursor}`, auth(carol));
      expect(response.status).toBe(200);
      const json = JSON.parse(body.toString()) as {
        items: Array<{ id: string; owner: string }>;
        nextCursor: string | null;
      };
      seen.push(...json.items.map((item) => item.id));
      expect(json.items.every((item) => item.owner === 'carol')).toBe(true);
      if (json.nextCursor === null) break;
      cursor = encodeURIComponent(json.nextCursor);
    }
    expect(seen).toEqual([...mine].reverse());
  });

  it('takes the route as SPEC §4 writes it, empty values meaning the defaults', async () => {
    const { response, body } = await get('/v1/images?owner=&cursor=&limit=', auth(carol));
    expect(response.status).toBe(200);
    const json = JSON.parse(body.toString()) as { items: Array<{ id: string }>; nextCursor: string | null };
    expect(json.items.map((item) => item.id)).toEqual([...mine].reverse());
    expect(json.nextCursor).toBeNull();
  });

  it.each([
    ['limit=0', 'Expected integer 1..100 for limit but received "0"'],
    ['limit=101', 'Expected integer 1..100 for limit but received "101"'],
    ['cursor=garbage', 'Invalid cursor'],
    ['sort=name', 'Unknown parameter "sort"'],
  ])('refuses ?%s with 400 invalid_request', async (query, message) => {
    const { response, body } = await get(`/v1/images?${query}`, auth(carol));
    expect(response.status).toBe(400);
    expect(JSON.parse(body.toString())).toEqual({ error: { code: 'invalid_request', message } });
  });

  it("refuses another owner's list to a non-admin, and lets an admin see it", async () => {
    expect((await get('/v1/images?owner=carol', auth(bob))).response.status).toBe(403);
    const admin = await server.token('root', 'images:admin');
    const { body } = await get('/v1/images?owner=carol&limit=100', auth(admin));
    expect((JSON.parse(body.toString()) as { items: unknown[] }).items).toHaveLength(5);
  });

  it('changes visibility: the owner may, others get 404, and the change takes effect', async () => {
    const id = mine[0] as string;
    const patch = (token: string, body: unknown) =>
      fetch(`${server.url}/v1/images/${id}`, {
        method: 'PATCH',
        headers: auth(token, { 'content-type': 'application/json' }),
        body: JSON.stringify(body),
      });
    expect((await get(`/v1/images/${id}?w=20`, auth(bob))).response.status).toBe(404);
    expect((await patch(bob, { visibility: 'public' })).status).toBe(404);
    const bad = await patch(carol, { visibility: 'everyone' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
    expect((await patch(carol, { visibility: 'public', extra: 1 })).status).toBe(400);
    const ok = await patch(carol, { visibility: 'public' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ id, visibility: 'public', owner: 'carol' });
    expect((await get(`/v1/images/${id}?w=20`, auth(bob))).response.status).toBe(200);
  });

  it('answers a JSON body sent as text/plain (fetch without a content-type) 415, like any other type', async () => {
    const id = mine[0] as string;
    for (const type of ['text/plain;charset=UTF-8', 'application/xml']) {
      const response = await fetch(`${server.url}/v1/images/${id}`, {
        method: 'PATCH',
        headers: auth(carol, { 'content-type': type }),
        body: JSON.stringify({ visibility: 'public' }),
      });
      expect(response.status).toBe(415);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
        'unsupported_media_type',
      );
    }
  });

  it('reads multipart bodies on the upload route only: elsewhere a form is a 415 in our format', async () => {
    const id = mine[0] as string;
    const meta = async () => JSON.parse((await get(`/v1/images/${id}/meta`, auth(carol))).body.toString());
    const before = await meta();
    const form = new FormData();
    form.set('visibility', 'public');
    for (const [method, path] of [
      ['PATCH', `/v1/images/${id}`],
      ['POST', `/v1/images/${id}/signed-urls`],
      ['POST', '/v1/sessions'],
    ] as const) {
      const response = await fetch(`${server.url}${path}`, { method, headers: auth(carol), body: form });
      expect(response.status, `${method} ${path}`).toBe(415);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
        'unsupported_media_type',
      );
    }
    expect(await meta()).toEqual(before);
  });

  it('deletes the image, its variants and its original', async () => {
    const id = mine[1] as string;
    await get(`/v1/images/${id}?w=20`, auth(carol));
    const originalPath = join(server.dataDir, 'originals', id.slice(0, 2), id);
    expect((await stat(originalPath)).isFile()).toBe(true);
    expect(await readdir(join(server.dataDir, 'cache'))).toContain(id);

    const del = (token: string) =>
      fetch(`${server.url}/v1/images/${id}`, { method: 'DELETE', headers: auth(token) });
    expect((await del(bob)).status).toBe(404);
    expect((await del(carol)).status).toBe(204);
    expect((await get(`/v1/images/${id}?w=20`, auth(carol))).response.status).toBe(404);
    await expect(stat(originalPath)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(join(server.dataDir, 'cache'))).not.toContain(id);
    expect((await del(carol)).status).toBe(404);
  });
});

describe('revalidation is decided before any processing (SPEC §4, DESIGN: a 304 costs nothing)', () => {
  it('answers 304 for a variant the server can no longer find nor make', async () => {
    let own = await startTestServer({ dev: true });
    try {
      const token = await own.token('erin');
      const { id } = await uploadImage(own, token, photo, { type: 'image/jpeg' });
      const path = `/v1/images/${id}?w=222`;
      const made = await fetch(`${own.url}${path}`, { headers: auth(token) });
      expect(made.status).toBe(200);
      const etag = made.headers.get('etag') as string;
      expect(etag).toMatch(/^"[^"]+"$/);

      // No original, no cached variant, no process memory: only the ETag can answer now.
      own = await restartWithoutVariants(own, id);
      const from = own.logs.length;
      const revalidated = await fetch(`${own.url}${path}`, {
        headers: auth(token, { 'if-none-match': etag }),
      });
      expect(revalidated.status).toBe(304);
      expect(revalidated.headers.get('etag')).toBe(etag);
      expect((await revalidated.arrayBuffer()).byteLength).toBe(0);
      expect(await transformCount(own)).toBe(0);
      // No origin read was tried: nothing worse than info, and the request's one line says 304.
      const lines = own.logs
        .slice(from)
        .map((line) => JSON.parse(line) as { level: number; route?: string; status?: number });
      expect(lines.filter((line) => line.level >= 40)).toEqual([]);
      expect(lines.filter((line) => line.route === '/v1/images/:id').map((line) => line.status)).toEqual([
        304,
      ]);

      // The control: asked for the bytes, the server indeed has nothing to make them from.
      expect((await fetch(`${own.url}${path}`, { headers: auth(token) })).status).toBe(404);
    } finally {
      await own.destroy();
    }
  });
});

describe('restart', () => {
  it('keeps images, metadata and variants on the same data dir', async () => {
    const first = await startTestServer({ dev: true });
    let second: TestServer | undefined;
    try {
      const token = await first.token('dora');
      const response = await fetch(`${first.url}/v1/images?visibility=preview`, {
        method: 'POST',
        headers: auth(token, { 'content-type': 'image/jpeg' }),
        body: photo,
      });
      const { id } = (await response.json()) as { id: string };
      const before = Buffer.from(
        await (await fetch(`${first.url}/v1/images/${id}?w=64`, { headers: auth(token) })).arrayBuffer(),
      );

      second = await first.restart();
      const again = await fetch(`${second.url}/v1/images/${id}?w=64`, { headers: auth(token) });
      expect(again.status).toBe(200);
      expect(Buffer.from(await again.arrayBuffer()).equals(before)).toBe(true);
      const original = await fetch(`${second.url}/v1/images/${id}`, { headers: auth(token) });
      expect(Buffer.from(await original.arrayBuffer()).equals(photo)).toBe(true);
      const meta = await (await fetch(`${second.url}/v1/images/${id}/meta`, { headers: auth(token) })).json();
      expect(meta).toMatchObject({ id, owner: 'dora', visibility: 'preview' });
    } finally {
      await first.close();
      await (second ?? first).destroy();
    }
  });
});

describe('an original that changed behind pixgate (disk damage, or a registered original replaced at its origin)', () => {
  const originalPath = (id: string) => {
    const { storage } = server.config;
    if (!storage.startsWith('file:')) throw new Error('expected a file origin');
    return join(storage.slice('file:'.length), uploadKey(id));
  };

  it('is a 502 origin_error, not a 422 as if the request were wrong', async () => {
    const { id } = await upload(alice, (await synth('png', 120, 90)).body, 'private', 'image/png');
    await writeFile(originalPath(id), Buffer.from('no longer an image'));
    const { response, body } = await get(`/v1/images/${id}?w=50`, auth(alice));
    expect(response.status).toBe(502);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(JSON.parse(body.toString())).toEqual({
      error: { code: 'origin_error', message: 'The original could not be read as an image' },
    });
  });

  it('of another size is refused, never rendered to a preview beyond previewMax', async () => {
    // Small enough that the policy needs no box for it: only its recorded size bounds it.
    const { id } = await upload(alice, (await synth('png', 200, 150)).body, 'preview', 'image/png');
    await writeFile(originalPath(id), (await synth('png', 1600, 1200)).body);
    const { response, body } = await get(`/v1/images/${id}`, auth(bob));
    expect(response.status).toBe(502);
    expect(JSON.parse(body.toString())).toEqual({
      error: { code: 'origin_error', message: 'The original at the origin is not the image registered' },
    });
    const line = server.logs
      .map((text) => JSON.parse(text) as { url?: string; detail?: string })
      .find((entry) => entry.url === `/v1/images/${id}`);
    expect(line?.detail).toContain('(recorded 200 × 150, found 1600 × 1200: register or upload it again)');
  });

  it('asked for as the original bytes is a 502 too, never other bytes under the recorded type and ETag', async () => {
    const { id } = await upload(alice, (await synth('jpeg', 200, 150)).body, 'private');
    const before = await get(`/v1/images/${id}`, auth(alice));
    expect(before.response.status).toBe(200);
    // The same length, one byte changed: only the digest tells.
    const changed = Buffer.from(before.body);
    changed[changed.length - 3] = (changed[changed.length - 3] ?? 0) ^ 0xff;
    await writeFile(originalPath(id), changed);
    for (const accept of ['image/*', 'application/json']) {
      const { response, body } = await get(`/v1/images/${id}`, auth(alice, { accept }));
      expect(response.status).toBe(502);
      expect(response.headers.get('etag')).toBeNull();
      expect(JSON.parse(body.toString())).toEqual({
        error: { code: 'origin_error', message: 'The original at the origin is not the image registered' },
      });
    }
    // Another image of the same size in pixels, another format: its length already tells.
    await writeFile(originalPath(id), (await synth('png', 200, 150)).body);
    expect((await get(`/v1/images/${id}`, auth(alice))).response.status).toBe(502);
  });

  it('an SVG replaced by one embedding an image is refused at its next variant, though it passed before', async () => {
    // The SVG guard is paid once per original; but a render does not hash what the origin gave,
    // so "once" has to follow the bytes, not the recorded id and identity.
    const drawing = (inside: string) =>
      Buffer.from(
        `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30" fill="#0c0"/>${inside}</svg>`,
      );
    const { id } = await upload(alice, drawing(''), 'private', 'image/svg+xml');
    expect((await get(`/v1/images/${id}?w=20&format=png`, auth(alice))).response.status).toBe(200);
    const png = (await synth('png', 40, 30)).body.toString('base64');
    await writeFile(
      originalPath(id),
      drawing(`<image href="data:image/png;base64,${png}" width="40" height="30"/>`),
    );
    const { response, body } = await get(`/v1/images/${id}?w=21&format=png`, auth(alice));
    expect(response.status).toBe(422);
    expect(JSON.parse(body.toString())).toEqual({
      error: {
        code: 'unprocessable_image',
        message: 'SVG images that load other images or documents (data: URLs) are not supported',
      },
    });
  });
});

describe('an original stored before PIXGATE_MAX_INPUT_PIXELS was lowered', () => {
  it('is still a 422 over the limit, naming it: the origin gave the image recorded, nothing failed there', async () => {
    const first = await startTestServer({ dev: true });
    let second: TestServer | undefined;
    try {
      const token = await first.token('erin');
      const { id } = await uploadImage(first, token, (await synth('png', 120, 90)).body);
      await first.close();
      second = await startTestServer({ dev: true, maxInputPixels: 5000 }, { dataDir: first.dataDir });
      const response = await fetch(`${second.url}/v1/images/${id}?w=50`, { headers: auth(token) });
      expect(response.status).toBe(422);
      expect(await response.json()).toEqual({
        error: {
          code: 'unprocessable_image',
          message: 'The image has 120 × 90 = 10800 pixels, more than the 5000 allowed',
        },
      });
    } finally {
      await (second ?? first).destroy();
    }
  });
});
