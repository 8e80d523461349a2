import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth } from '../helpers/images.js';
import { startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';

/**
 * If-Match (RFC 9110 §13.1.1): an origin server must evaluate it before performing the method,
 * with strong comparison, and answer 412 when it is false. It was ignored: a GET with a stale tag
 * was answered the image, and a DELETE guarded by one deleted it.
 */

let server: TestServer;
let alice: string;
let photo: Buffer;
let imageId: string;

beforeAll(async () => {
  server = await startTestServer({ dev: true });
  alice = await server.token('alice');
  photo = (await synth('jpeg', 64, 48)).body;
  imageId = (await uploadImage(server, alice, photo, { type: 'image/jpeg' })).id;
});
afterAll(() => server.destroy());

const auth = (extra: Record<string, string> = {}) => ({ authorization: `Bearer ${alice}`, ...extra });

async function expectPreconditionFailed(response: Response): Promise<void> {
  expect(response.status).toBe(412);
  expect(response.headers.get('cache-control')).toBe('no-store');
  expect(response.headers.get('etag')).toBeNull();
  expect(await response.json()).toEqual({
    error: { code: 'precondition_failed', message: 'If-Match names no current tag of this image' },
  });
}

describe('If-Match on an image', () => {
  it('is a 412 when no listed tag matches strongly, decided before If-None-Match', async () => {
    const path = `${server.url}/v1/images/${imageId}?w=30`;
    const etag = (await fetch(path, { headers: auth() })).headers.get('etag') as string;
    for (const value of ['"nope"', `W/${etag}`, 'garbage', etag.slice(0, -2)]) {
      await expectPreconditionFailed(await fetch(path, { headers: auth({ 'if-match': value }) }));
    }
    const both = await fetch(path, { headers: auth({ 'if-match': '"nope"', 'if-none-match': etag }) });
    await expectPreconditionFailed(both);
  });

  it('answers the image when a listed tag matches, or for *; If-None-Match still decides after it', async () => {
    const path = `${server.url}/v1/images/${imageId}?w=30`;
    const etag = (await fetch(path, { headers: auth() })).headers.get('etag') as string;
    for (const value of [etag, `"x", ${etag}`, `"a,b",${etag}`, '*']) {
      const ok = await fetch(path, { headers: auth({ 'if-match': value }) });
      expect(ok.status, value).toBe(200);
      expect((await ok.arrayBuffer()).byteLength).toBeGreaterThan(0);
    }
    const revalidated = await fetch(path, { headers: auth({ 'if-match': etag, 'if-none-match': etag }) });
    expect(revalidated.status).toBe(304);
  });

  it('applies to the original, its JSON form and HEAD', async () => {
    const path = `${server.url}/v1/images/${imageId}`;
    await expectPreconditionFailed(await fetch(path, { headers: auth({ 'if-match': '"nope"' }) }));
    const head = await fetch(path, { method: 'HEAD', headers: auth({ 'if-match': '"nope"' }) });
    expect(head.status).toBe(412);
    const etag = (await fetch(path, { method: 'HEAD', headers: auth() })).headers.get('etag') as string;
    expect((await fetch(path, { headers: auth({ 'if-match': etag }) })).status).toBe(200);
    // The JSON form is another representation, with its own tag.
    const json = await fetch(path, { headers: auth({ 'if-match': etag, accept: 'application/json' }) });
    await expectPreconditionFailed(json);
  });

  it('guards PATCH and DELETE with the tag the owner reads the image by (its original)', async () => {
    const { id } = await uploadImage(server, alice, photo, { type: 'image/jpeg' });
    const path = `${server.url}/v1/images/${id}`;
    const etag = (await fetch(path, { method: 'HEAD', headers: auth() })).headers.get('etag') as string;
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({ visibility: 'public' });
    const patch = (conditions: Record<string, string>) =>
      fetch(path, { method: 'PATCH', headers: auth({ ...json, ...conditions }), body });

    await expectPreconditionFailed(await patch({ 'if-match': '"old"' }));
    // If-None-Match on a method that changes the image: a match is a 412 too (RFC 9110 §13.1.2).
    const exists = await patch({ 'if-none-match': '*' });
    expect(exists.status).toBe(412);
    expect(((await exists.json()) as { error: { code: string } }).error.code).toBe('precondition_failed');
    const meta = await fetch(`${path}/meta`, { headers: auth() });
    expect(((await meta.json()) as { visibility: string }).visibility).toBe('private');

    expect((await patch({ 'if-match': etag })).status).toBe(200);
    expect((await patch({ 'if-none-match': '"old"' })).status).toBe(200);
    await expectPreconditionFailed(
      await fetch(path, { method: 'DELETE', headers: auth({ 'if-match': '"old"' }) }),
    );
    expect((await fetch(path, { method: 'HEAD', headers: auth() })).status).toBe(200);
    expect((await fetch(path, { method: 'DELETE', headers: auth({ 'if-match': etag }) })).status).toBe(204);
  });

  // Both tags name the same state of the image, its original: the bytes' tag sent with a JSON
  // Accept (axios's default, `application/json, text/plain, */*`) was a 412 on every PATCH.
  it('takes either tag of the original on PATCH and DELETE, whatever the Accept', async () => {
    const { id } = await uploadImage(server, alice, photo, { type: 'image/jpeg' });
    const path = `${server.url}/v1/images/${id}`;
    const bytesTag = (await fetch(path, { method: 'HEAD', headers: auth() })).headers.get('etag') as string;
    const jsonTag = (
      await fetch(path, { method: 'HEAD', headers: auth({ accept: 'application/json' }) })
    ).headers.get('etag') as string;
    expect(jsonTag).not.toBe(bytesTag);
    const axiosAccept = 'application/json, text/plain, */*';
    const patch = (headers: Record<string, string>) =>
      fetch(path, {
        method: 'PATCH',
        headers: auth({ 'content-type': 'application/json', ...headers }),
        body: JSON.stringify({ visibility: 'public' }),
      });
    expect((await patch({ accept: axiosAccept, 'if-match': bytesTag })).status).toBe(200);
    expect((await patch({ 'if-match': jsonTag })).status).toBe(200);
    // A match of either is "the image exists" to If-None-Match.
    for (const refused of [
      await patch({ accept: axiosAccept, 'if-none-match': bytesTag }),
      await patch({ 'if-none-match': jsonTag }),
    ]) {
      expect(refused.status).toBe(412);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('precondition_failed');
    }
    await expectPreconditionFailed(
      await fetch(path, { method: 'DELETE', headers: auth({ 'if-match': '"old"', accept: axiosAccept }) }),
    );
    const deleted = await fetch(path, { method: 'DELETE', headers: auth({ 'if-match': jsonTag }) });
    expect(deleted.status).toBe(204);
  });

  it('comes after the policy: an image the caller may not know of stays a 404', async () => {
    const bob = await server.token('bob');
    const response = await fetch(`${server.url}/v1/images/${imageId}?w=30`, {
      headers: { authorization: `Bearer ${bob}`, 'if-match': '"nope"' },
    });
    expect(response.status).toBe(404);
  });
});

describe('a 304 to HEAD', () => {
  // RFC 9110 §8.6: a 304 may carry Content-Length only when it equals the 200's. fastify's HEAD
  // route wrote `Content-Length: 0` for the empty 304, which a cache (RFC 7234 §4.3.4) takes over
  // into the stored 200: the image it holds would claim to be empty. The GET 304 had none.
  it('carries no Content-Length, as the GET 304 does, for images and share links', async () => {
    const link = await fetch(`${server.url}/v1/images/${imageId}/links`, {
      method: 'POST',
      headers: auth({ 'content-type': 'application/json' }),
      body: JSON.stringify({ ttlSeconds: 600 }),
    });
    const { url } = (await link.json()) as { url: string };
    const cases: [string, Record<string, string>][] = [
      [`/v1/images/${imageId}`, auth()],
      [`/v1/images/${imageId}?w=30`, auth()],
      [`/v1/images/${imageId}?w=30`, auth({ accept: 'application/json' })],
      [url, {}],
    ];
    for (const [path, headers] of cases) {
      const head = await fetch(`${server.url}${path}`, { method: 'HEAD', headers });
      expect(head.status, path).toBe(200);
      const full = await fetch(`${server.url}${path}`, { headers });
      const length = String((await full.arrayBuffer()).byteLength);
      expect(head.headers.get('content-length'), path).toBe(length);
      const etag = head.headers.get('etag') as string;
      const conditional = { ...headers, 'if-none-match': etag };
      for (const method of ['GET', 'HEAD']) {
        const revalidated = await fetch(`${server.url}${path}`, { method, headers: conditional });
        expect(revalidated.status, `${method} ${path}`).toBe(304);
        expect(revalidated.headers.get('etag'), `${method} ${path}`).toBe(etag);
        expect(revalidated.headers.get('content-length'), `${method} ${path}`).toBeNull();
      }
    }
  });
});
