import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openStorage } from '../../src/main.js';
import { walk } from '../../src/walk.js';
import { eventually } from '../helpers/eventually.js';
import { heicHeader, photoWithGps, pngBomb, synth } from '../helpers/images.js';
import { requestWithBodyHeld, uploadWithBodyHeld } from '../helpers/net.js';
import { dataFiles, startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';
import { mountReadOnly, mountTinyDisk } from '../helpers/tiny-disk.js';

/**
 * Every refused upload (SPEC §6): a precise status and JSON error, and nothing kept: no original,
 * no temp file, no row.
 */

let server: TestServer;
let token: string;

const MAX_UPLOAD = 200 * 1024;

beforeAll(async () => {
  server = await startTestServer({ dev: true, maxUploadBytes: MAX_UPLOAD, maxInputPixels: 4_000_000 });
  token = await server.token('uploader');
});
afterAll(() => server.destroy());

async function post(body: RequestInit['body'], type?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (type) headers['content-type'] = type;
  const response = await fetch(`${server.url}/v1/images`, { method: 'POST', headers, body });
  return {
    status: response.status,
    headers: response.headers,
    json: (await response.json()) as { error?: { code: string; message: string } },
  };
}

/** Deletes a stored image, so that later tests find nothing kept. */
const remove = (id: string) =>
  fetch(`${server.url}/v1/images/${id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${token}` },
  });

/** Nothing kept: no original file, no temp file, no row. */
async function expectNothingKept(): Promise<void> {
  // Originals sit in a fan-out folder (originals/XX/ID): every file at any depth counts, and the
  // folders an earlier, deleted upload left behind do not.
  const entries = await walk(join(server.dataDir, 'originals')).catch(() => []);
  expect(entries.filter(({ entry }) => !entry.isDirectory()).map(({ path }) => path)).toEqual([]);
  expect(await readdir(join(server.dataDir, 'tmp')).catch(() => [])).toEqual([]);
  const list = await fetch(`${server.url}/v1/images?limit=100`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(((await list.json()) as { items: unknown[] }).items).toEqual([]);
}

describe('refused uploads keep nothing', () => {
  it('413 when Content-Length announces too much, before reading the body', async () => {
    // 1 KB of the announced body is sent and the rest held back: the answer must come anyway.
    const answer = await uploadWithBodyHeld(server.url, token, MAX_UPLOAD + 1, Buffer.alloc(1024, 7));
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({
      error: {
        code: 'payload_too_large',
        message: `The image is larger than the limit of ${MAX_UPLOAD} bytes`,
      },
    });
    expect(answer.headers['cache-control']).toBe('no-store');
    // The unread rest would be parsed as the next request: the connection is closed.
    expect(answer.headers.connection).toBe('close');
    await expectNothingKept();

    // The same over fetch, with the whole body sent: the same refusal.
    const sent = await post(Buffer.alloc(MAX_UPLOAD + 1, 7), 'image/jpeg');
    expect(sent.status).toBe(413);
    expect(sent.json.error?.code).toBe('payload_too_large');
    await expectNothingKept();
  });

  // Also a regression test: it runs on the keep-alive connection of the refusal above, which
  // must have been closed, or this request would be parsed out of that body's leftovers.
  it('413 for a chunked body (no Content-Length) that grows past the cap', async () => {
    const photo = await photoWithGps(1500, 1500);
    expect(photo.length).toBeGreaterThan(MAX_UPLOAD);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < photo.length; at += 16 * 1024)
          controller.enqueue(photo.subarray(at, at + 16 * 1024));
        controller.close();
      },
    });
    const response = await fetch(`${server.url}/v1/images`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'image/jpeg' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(413);
    await expectNothingKept();
  });

  it('413 for a multipart file over the cap', async () => {
    const form = new FormData();
    form.append('file', new Blob([Buffer.alloc(MAX_UPLOAD + 10, 1)]), 'big.jpg');
    const result = await post(form);
    expect(result.status).toBe(413);
    await expectNothingKept();
  });

  it('400 for a multipart form with any part besides its one field "file", wherever it sits', async () => {
    const image = (await synth('jpeg', 40, 30)).body;
    const file = () => new Blob([image], { type: 'image/jpeg' });
    const forms: Record<string, (form: FormData) => void> = {
      'a field before the file': (form) => {
        form.append('visibility', 'public');
        form.append('file', file(), 'a.jpg');
      },
      'a field after the file': (form) => {
        form.append('file', file(), 'a.jpg');
        form.append('visibility', 'public');
      },
      'a second file': (form) => {
        form.append('file', file(), 'a.jpg');
        form.append('file', file(), 'b.jpg');
      },
      'a field only': (form) => form.append('visibility', 'public'),
      'no part at all': () => {},
    };
    for (const [what, fill] of Object.entries(forms)) {
      const form = new FormData();
      fill(form);
      const result = await post(form);
      expect(result.status, what).toBe(400);
      expect(result.json.error, what).toEqual({
        code: 'invalid_request',
        message: 'Expected one multipart field, "file", holding the image (visibility goes in the query)',
      });
      await expectNothingKept();
    }
  });

  it('415 for bytes that are not an image, whatever the Content-Type says', async () => {
    const result = await post(Buffer.from('this is plain text, not a PNG at all'), 'image/png');
    expect(result.status).toBe(415);
    expect(result.json.error?.code).toBe('unsupported_media_type');
    await expectNothingKept();
  });

  it('415 for a HEIC photo, saying so: HEVC cannot be decoded here, so it is no corrupt image', async () => {
    const result = await post(await heicHeader(), 'image/heic');
    expect(result.status).toBe(415);
    expect(result.json.error).toEqual({
      code: 'unsupported_media_type',
      message:
        'HEIC (HEVC) images are not supported; convert to JPEG or AVIF: expected JPEG, PNG, WebP, GIF, AVIF, TIFF or SVG',
    });
    await expectNothingKept();
  });

  it('415 for an empty body and for a body of another type', async () => {
    expect((await post(Buffer.alloc(0), 'image/jpeg')).status).toBe(415);
    expect((await post('hello', 'text/plain')).status).toBe(415);
    expect((await post('<a/>', 'application/xml')).status).toBe(415);
    // JSON is a registration (admins only, SPEC §4): refused for the scope it needs, not as a type.
    expect((await post(JSON.stringify({ a: 1 }), 'application/json')).status).toBe(403);
    await expectNothingKept();
  });

  it('415 for a one-byte body', async () => {
    const result = await post(Buffer.from([0xff]), 'image/jpeg');
    expect(result.status).toBe(415);
    expect(result.json.error?.code).toBe('unsupported_media_type');
    await expectNothingKept();
  });

  it('422 for a truncated PNG', async () => {
    const png = await sharp({
      create: {
        width: 200,
        height: 150,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 40 },
      },
    })
      .png()
      .toBuffer();
    const result = await post(png.subarray(0, png.length >> 1), 'image/png');
    expect(result.status).toBe(422);
    expect(result.json.error).toEqual({
      code: 'unprocessable_image',
      message: 'The image is corrupt or truncated',
    });
    await expectNothingKept();
  });

  it('422 for a GIF whose 2×2 frame sits at (60000, 60000) of a 65535² screen: it decodes that large', async () => {
    const gif = Buffer.from(
      await sharp({ create: { width: 2, height: 2, channels: 3, background: '#f00' } })
        .gif()
        .toBuffer(),
    );
    gif.writeUInt16LE(65535, 6); // logical screen width, height
    gif.writeUInt16LE(65535, 8);
    const descriptor = gif.indexOf(0x2c, 13); // the image descriptor: its left and top follow
    gif.writeUInt16LE(60000, descriptor + 1);
    gif.writeUInt16LE(60000, descriptor + 3);
    const result = await post(gif, 'image/gif');
    expect(result.status).toBe(422);
    expect(result.json.error?.message).toBe(
      'The image has 60002 × 60002 = 3600240004 pixels, more than the 4000000 allowed',
    );
    await expectNothingKept();
  });

  it('422 for a truncated JPEG', async () => {
    const photo = await photoWithGps(400, 300);
    const result = await post(photo.subarray(0, Math.floor(photo.length / 2)), 'image/jpeg');
    expect(result.status).toBe(422);
    expect(result.json.error?.code).toBe('unprocessable_image');
    await expectNothingKept();
  });

  it('422 for a pixel bomb: a small PNG that decodes to 400 megapixels', async () => {
    const bomb = pngBomb(20_000, 20_000);
    expect(bomb.length).toBeLessThan(MAX_UPLOAD);
    const result = await post(bomb, 'image/png');
    expect(result.status).toBe(422);
    expect(result.json.error?.message).toBe(
      'The image has 20000 × 20000 = 400000000 pixels, more than the 4000000 allowed',
    );
    await expectNothingKept();
  });

  it('422 for an SVG declaring a huge canvas', async () => {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="10" height="10"/></svg>';
    const result = await post(svg, 'image/svg+xml');
    expect(result.status).toBe(422);
    await expectNothingKept();
  });

  it('422 for an SVG embedding a pixel bomb: its canvas is small, what it would draw is not', async () => {
    // 40 × 30 holding a 20000² PNG: libvips counts the canvas only; drawn, it took 3.6 GB.
    const png = pngBomb(20000, 20000).toString('base64');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><image href="data:image/png;base64,${png}" width="40" height="30"/></svg>`;
    const result = await post(svg, 'image/svg+xml');
    expect(result.status).toBe(422);
    expect(result.json.error).toEqual({
      code: 'unprocessable_image',
      message: 'SVG images that load other images or documents (data: URLs) are not supported',
    });
    await expectNothingKept();
  });

  it('judges by the bytes: PNG bytes sent as image/jpeg are stored as PNG', async () => {
    const png = await synth('png', 30, 20);
    const result = await post(png.body, 'image/jpeg');
    expect(result.status).toBe(201);
    expect(result.json).toMatchObject({ format: 'png', width: 30, height: 20 });
    const id = (result.json as { id: string }).id;
    const original = await fetch(`${server.url}/v1/images/${id}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(original.headers.get('content-type')).toBe('image/png');
    await fetch(`${server.url}/v1/images/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
  });

  it('an upload cut off by the client keeps nothing', async () => {
    const photo = await photoWithGps(300, 300);
    await new Promise<void>((resolve) => {
      const url = new URL(`${server.url}/v1/images`);
      const req = request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'image/jpeg',
          'content-length': photo.length,
        },
      });
      req.on('error', () => resolve());
      req.write(photo.subarray(0, 1000));
      // Destroyed once the server has started reading, so the abort hits a body in progress.
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    // The server notices the aborted body and removes the temp file.
    await eventually(expectNothingKept);
  });
});

describe('Expect: 100-continue', () => {
  /**
   * A client that sends `Expect: 100-continue` and holds its body back until the server says
   * `100 Continue`, as curl does for a large upload (curl gives up waiting after a second; this
   * one never does, so a `100 Continue` that never comes fails the test by its timeout).
   */
  function holdingBody(
    lines: string[],
    body: Buffer,
    { keepAlive = false } = {},
  ): Promise<{ answer: string; sentBody: boolean }> {
    const { hostname, port } = new URL(server.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => {
        const head = [...lines, `Host: ${hostname}:${port}`, `Content-Length: ${body.length}`];
        if (!keepAlive) head.push('Connection: close');
        socket.write(`${[...head, 'Expect: 100-continue'].join('\r\n')}\r\n\r\n`);
      });
      let answer = '';
      let sentBody = false;
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        answer += chunk;
        if (!sentBody && answer.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
          sentBody = true;
          socket.write(body);
        }
      });
      socket.on('error', reject);
      socket.on('close', () => resolve({ answer, sentBody }));
    });
  }

  /** The id in a 201's JSON body, read off the wire. */
  const storedId = (answer: string) =>
    (JSON.parse(answer.slice(answer.lastIndexOf('\r\n\r\n'))) as { id: string }).id;

  const upload = (headers: string[], body: Buffer) =>
    holdingBody(['POST /v1/images HTTP/1.1', `Authorization: Bearer ${token}`, ...headers], body);

  // Regression: Node said 100 Continue as soon as the headers were in, so these clients sent
  // their whole body only to be refused on what the headers had already said.
  it('an upload announced over the cap gets its 413 before any 100 Continue, and sends nothing', async () => {
    const { answer, sentBody } = await upload(['Content-Type: image/jpeg'], Buffer.alloc(MAX_UPLOAD + 1, 7));
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).not.toContain('100 Continue');
    expect(sentBody).toBe(false);
    expect(answer).toContain('"code":"payload_too_large"');
    await expectNothingKept();
  });

  it('an upload with a token that does not verify gets its 401 before any 100 Continue', async () => {
    const { answer, sentBody } = await holdingBody(
      ['POST /v1/images HTTP/1.1', 'Authorization: Bearer not.a.token', 'Content-Type: image/jpeg'],
      Buffer.alloc(1024, 7),
    );
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(sentBody).toBe(false);
    await expectNothingKept();
  });

  it('a refused upload ends its keep-alive connection: the body held back may still come', async () => {
    // Kept open, the connection would read that body (curl sends it after a second) as the next
    // request, or hold the next request as this one's body. The server closes it (Node's rule
    // for a final answer without 100 Continue); a connection left open fails by the timeout.
    const { answer, sentBody } = await holdingBody(
      ['POST /v1/images HTTP/1.1', 'Authorization: Bearer not.a.token', 'Content-Type: image/jpeg'],
      Buffer.alloc(1024, 7),
      { keepAlive: true },
    );
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer.toLowerCase()).toContain('\r\nconnection: close\r\n');
    expect(sentBody).toBe(false);
  });

  it('a form whose Content-Type names no boundary gets its 400 before any 100 Continue', async () => {
    // It was a 500, after 100 Continue: busboy refuses such a header when the parts are opened.
    const { answer, sentBody } = await upload(['Content-Type: multipart/form-data'], Buffer.alloc(1024, 7));
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(sentBody).toBe(false);
    expect(answer).toContain(
      '{"error":{"code":"invalid_request","message":"Expected a boundary in the multipart/form-data Content-Type"}}',
    );
    await expectNothingKept();
  });

  it('an upload that may go on is told to, raw or as a form, and is stored', async () => {
    const jpeg = (await synth('jpeg', 40, 30)).body;
    const raw = await upload(['Content-Type: image/jpeg'], jpeg);
    expect(raw.sentBody).toBe(true);
    expect(raw.answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
    await remove(storedId(raw.answer));

    const boundary = 'pixgate-continue-test';
    const form = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n` +
          'Content-Type: image/jpeg\r\n\r\n',
      ),
      jpeg,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const multipart = await upload([`Content-Type: multipart/form-data; boundary=${boundary}`], form);
    expect(multipart.sentBody).toBe(true);
    expect(multipart.answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
    await remove(storedId(multipart.answer));
    await expectNothingKept();
  });

  it('a JSON body (read before any route code runs) is told to go on at once', async () => {
    const created = await post((await synth('jpeg', 40, 30)).body, 'image/jpeg');
    const { id } = created.json as unknown as { id: string };
    const { answer, sentBody } = await holdingBody(
      [`PATCH /v1/images/${id} HTTP/1.1`, `Authorization: Bearer ${token}`, 'Content-Type: application/json'],
      Buffer.from(JSON.stringify({ visibility: 'public' })),
    );
    expect(sentBody).toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    expect(answer).toContain('"visibility":"public"');
    await remove(id);

    // On the upload's own path too: a JSON body there registers an original (admins only).
    const registering = await holdingBody(
      ['POST /v1/images HTTP/1.1', `Authorization: Bearer ${token}`, 'Content-Type: application/json'],
      Buffer.from(JSON.stringify({ source: 'a.jpg', owner: 'uploader' })),
    );
    expect(registering.sentBody).toBe(true);
    expect(registering.answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 403 /);
  });
});

describe('odd but valid uploads', () => {
  async function variant(id: string, query: string) {
    const response = await fetch(`${server.url}/v1/images/${id}?${query}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
  }
  it('a JPEG with trailing garbage after its EOI is stored as sent, and renders', async () => {
    const jpeg = await synth('jpeg', 64, 48);
    const body = Buffer.concat([jpeg.body, Buffer.from('trailing garbage '.repeat(50))]);
    const result = await post(body, 'image/jpeg');
    expect(result.status).toBe(201);
    expect(result.json).toMatchObject({ format: 'jpeg', width: 64, height: 48 });
    const id = (result.json as { id: string }).id;
    expect((await variant(id, '')).body.equals(body)).toBe(true);
    const small = await variant(id, 'w=32&format=png');
    expect(small.status).toBe(200);
    expect(await sharp(small.body).metadata()).toMatchObject({ format: 'png', width: 32, height: 24 });
    await remove(id);
  });

  it('a raw body whose image/* or octet-stream type carries parameters, in any case', async () => {
    // The media type decides (README "Uploads"); parameters were a 415 "Unsupported Content-Type".
    const jpeg = (await synth('jpeg', 40, 30)).body;
    for (const type of [
      'image/jpeg; charset=binary',
      'application/octet-stream;name="a.jpg"',
      'Image/JPEG',
    ]) {
      const result = await post(jpeg, type);
      expect(result.status, type).toBe(201);
      await remove((result.json as { id: string }).id);
    }
    expect((await post(jpeg, 'text/plain; x=image/jpeg')).status).toBe(415);
    await expectNothingKept();
  });

  it('a GIF declaring a 65535² screen around a 2×2 frame at (0, 0) is its frame: libvips decodes 2×2', async () => {
    const gif = Buffer.from(
      await sharp({ create: { width: 2, height: 2, channels: 3, background: '#f00' } })
        .gif()
        .toBuffer(),
    );
    gif.writeUInt16LE(65535, 6);
    gif.writeUInt16LE(65535, 8);
    const result = await post(gif, 'image/gif');
    expect(result.status).toBe(201);
    expect(result.json).toMatchObject({ format: 'gif', width: 2, height: 2 });
    const id = (result.json as { id: string }).id;
    const rendered = await variant(id, 'format=jpeg');
    expect(rendered.status).toBe(200);
    expect(await sharp(rendered.body).metadata()).toMatchObject({ format: 'jpeg', width: 2, height: 2 });
    await remove(id);
  });
});

describe('a body that stops arriving', () => {
  // PIXGATE_REQUEST_TIMEOUT_SECONDS, shortened: a client that sends part of a body and then
  // nothing (a dead link, or a slowloris holding sockets and temp files) is cut off.
  let slow: TestServer;
  beforeAll(async () => {
    slow = await startTestServer({ dev: true, requestTimeoutSeconds: 1 });
  });
  afterAll(() => slow.destroy());

  it('is answered 408 once the request timeout has passed, and the upload keeps nothing', async () => {
    const writer = await slow.token('uploader', 'images:write');
    const started = Date.now();
    const answer = await uploadWithBodyHeld(slow.url, writer, 200_000, Buffer.alloc(50_000, 7), 6000);
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toEqual({
      error: { code: 'request_timeout', message: 'The request took too long to arrive' },
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    await eventually(async () => {
      expect(await dataFiles(slow, 'tmp').catch(() => [])).toEqual([]);
      expect(await dataFiles(slow, 'originals').catch(() => [])).toEqual([]);
    });
    // Its own log line says what happened to it.
    await eventually(() => {
      const lines = slow.logs.map((line) => JSON.parse(line) as { route?: string; status?: number });
      expect(lines).toContainEqual(expect.objectContaining({ route: '/v1/images', status: 408 }));
    });
  });

  it('holds for a JSON body too, before any credential is checked', async () => {
    const answer = await requestWithBodyHeld(
      slow.url,
      ['POST /v1/sessions HTTP/1.1', 'Content-Type: application/json', 'Content-Length: 1000'],
      Buffer.from('{"tok'),
      6000,
    );
    expect(answer.status).toBe(408);
  });
});

describe('temp files', () => {
  // Regression: every tool that opened the data dir (`pixgate sign`, `import`, `register`) swept
  // tmp/, deleting the temp file of an upload the running server was still receiving (a 500).
  it('an upload in progress survives a tool opening the same data dir meanwhile', async () => {
    const photo = await photoWithGps(300, 300);
    let sender!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        sender = controller;
      },
    });
    const answer = fetch(`${server.url}/v1/images`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'image/jpeg' },
      body,
      duplex: 'half',
    } as RequestInit);
    sender.enqueue(photo.subarray(0, 1000));
    await eventually(async () => {
      expect((await readdir(join(server.dataDir, 'tmp'))).some((name) => name.startsWith('upload-'))).toBe(
        true,
      );
    });

    const tool = await openStorage(server.config);
    await tool.close();

    sender.enqueue(photo.subarray(1000));
    sender.close();
    const response = await answer;
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    await fetch(`${server.url}/v1/images/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
  });

  it('server start removes only temp files a crash left: untouched for over an hour', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'pixgate-test-'));
    const tmp = join(dataDir, 'tmp');
    await mkdir(tmp);
    for (const name of ['upload-stale', 'upload-fresh', 'upload-recent']) {
      await writeFile(join(tmp, name), 'partial upload');
    }
    const ago = (seconds: number) => new Date(Date.now() - seconds * 1000);
    await utimes(join(tmp, 'upload-stale'), ago(61 * 60), ago(61 * 60));
    await utimes(join(tmp, 'upload-recent'), ago(59 * 60), ago(59 * 60));
    const started = await startTestServer({ dev: true }, { dataDir });
    try {
      expect((await readdir(tmp)).sort()).toEqual(['upload-fresh', 'upload-recent']);
    } finally {
      await started.destroy();
    }
  });
});

describe('temp files of a crash, while the server runs', () => {
  // Regression: only a start swept. A server restarted at once after a crash found what the crash
  // left less than an hour old, and kept it until some later start, weeks away maybe: temp files
  // of uploads cut off, and originals no row names (their pending marks).
  it('are removed by the running server too, once an hour old; fresh ones stay', async () => {
    const running = await startTestServer({ dev: true }, { sweepIntervalMs: 100 });
    try {
      const tmp = join(running.dataDir, 'tmp');
      const id = 'AbCdEfGhIjKlMnOpQrStUv';
      const orphan = join(running.dataDir, 'originals', 'Ab', id);
      await mkdir(join(running.dataDir, 'originals', 'Ab'), { recursive: true });
      await mkdir(tmp, { recursive: true });
      await writeFile(orphan, (await synth('png', 8, 8)).body);
      await writeFile(join(tmp, `pending-${id}`), `Ab/${id}\n`);
      await writeFile(join(tmp, 'upload-stale'), 'partial upload');
      await writeFile(join(tmp, 'upload-fresh'), 'partial upload');
      const ago = new Date(Date.now() - 2 * 60 * 60 * 1000);
      for (const name of [`pending-${id}`, 'upload-stale']) await utimes(join(tmp, name), ago, ago);
      await eventually(async () => {
        expect(await readdir(tmp)).toEqual(['upload-fresh']);
      });
      expect(await readdir(join(running.dataDir, 'originals', 'Ab'))).toEqual([]);
    } finally {
      await running.destroy();
    }
  });

  // Regression: with the originals on another filesystem than the data dir, an upload is copied
  // next to its key under a random name, then renamed: a crash during the copy left that file for
  // ever, where `register --prefix` would even list it.
  it('on another filesystem, the copy a crash cut short goes with its original', async () => {
    const disk = await mountTinyDisk(16 * 1024 * 1024);
    let running: TestServer | undefined;
    try {
      running = await startTestServer({ dev: true, storage: `file:${disk.dir}` }, { sweepIntervalMs: 100 });
      const owner = await running.token('alice');
      const stored = await fetch(`${running.url}/v1/images`, {
        method: 'POST',
        headers: { authorization: `Bearer ${owner}`, 'content-type': 'image/png' },
        body: (await synth('png', 40, 30)).body,
      });
      expect(stored.status).toBe(201);
      const { id: kept } = (await stored.json()) as { id: string };
      expect(await readdir(join(disk.dir, kept.slice(0, 2)))).toEqual([kept]);

      // What a crash during the copy leaves: the mark, and part of the copy beside the key.
      const id = 'AbCdEfGhIjKlMnOpQrStUv';
      await mkdir(join(disk.dir, 'Ab'), { recursive: true });
      await writeFile(join(disk.dir, 'Ab', `${id}.partial`), 'the first bytes');
      const tmp = join(running.dataDir, 'tmp');
      await writeFile(join(tmp, `pending-${id}`), `Ab/${id}\n`);
      const ago = new Date(Date.now() - 2 * 60 * 60 * 1000);
      await utimes(join(tmp, `pending-${id}`), ago, ago);
      await eventually(async () => {
        expect(await readdir(tmp)).toEqual([]);
      });
      expect(await readdir(join(disk.dir, 'Ab'))).toEqual([]);
    } finally {
      await running?.destroy();
      await disk.unmount();
    }
  });

  // Age is told by the wall clock (mtimes are wall-clock times): after it jumps ahead (a VM
  // resumed, NTP stepping a clock that was far behind), every file looks old. A server never
  // sweeps its own uploads in progress, whatever the clock says.
  it('never removes the temp file of its own upload still arriving, even after the clock jumps ahead', async () => {
    const running = await startTestServer({ dev: true }, { sweepIntervalMs: 50 });
    try {
      const photo = await photoWithGps(300, 300);
      let sender!: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          sender = controller;
        },
      });
      const answer = fetch(`${running.url}/v1/images`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await running.token('alice')}`, 'content-type': 'image/jpeg' },
        body,
        duplex: 'half',
      } as RequestInit);
      sender.enqueue(photo.subarray(0, 1000));
      const tmp = join(running.dataDir, 'tmp');
      await eventually(async () => {
        expect((await readdir(tmp).catch(() => [])).some((name) => name.startsWith('upload-'))).toBe(true);
      });
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 2 * 60 * 60 * 1000);
        await new Promise((resolve) => setTimeout(resolve, 300));
      } finally {
        vi.useRealTimers();
      }
      sender.enqueue(photo.subarray(1000));
      sender.close();
      expect((await answer).status).toBe(201);
    } finally {
      await running.destroy();
    }
  });
});

describe('disk full', () => {
  it('507 for an upload, keeps nothing, and still serves fresh variants without caching them', async () => {
    const disk = await mountTinyDisk(4 * 1024 * 1024);
    let full: TestServer | undefined;
    try {
      full = await startTestServer({ dev: true }, { dataDir: disk.dir });
      const owner = await full.token('dana');
      const headers = { authorization: `Bearer ${owner}` };
      const photo = await photoWithGps(600, 400);
      const stored = await fetch(`${full.url}/v1/images`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'image/jpeg' },
        body: photo,
      });
      expect(stored.status).toBe(201);
      const { id } = (await stored.json()) as { id: string };

      await disk.fill();
      const refused = await fetch(`${full.url}/v1/images`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'image/jpeg' },
        body: photo,
      });
      expect(refused.status).toBe(507);
      expect(await refused.json()).toEqual({
        error: { code: 'insufficient_storage', message: 'No space left to store the image' },
      });
      expect(await readdir(join(disk.dir, 'tmp'))).toEqual([]);

      const variant = await fetch(`${full.url}/v1/images/${id}?w=100`, { headers });
      expect(variant.status).toBe(200);
      expect((await sharp(Buffer.from(await variant.arrayBuffer())).metadata()).width).toBe(100);
      const list = await fetch(`${full.url}/v1/images`, { headers });
      expect(((await list.json()) as { items: unknown[] }).items).toHaveLength(1);
    } finally {
      await full?.close();
      await disk.unmount();
    }
  });
});

describe('a DELETE with the data dir full', () => {
  // The originals on another filesystem: deleting one frees nothing where the database is.
  // Regression: the commit failed for want of space, SQLite rolled the transaction back itself,
  // and kysely's own rollback then failed ("no transaction is active"), an error that took the
  // place of SQLITE_FULL: a 500 where the store's full disk is a 507.
  // Regression too: the original had gone already (the origin's delete runs before the commit),
  // and the delete's mark was removed as for one that changed nothing: the image stayed listed
  // without its original, and nothing would ever finish its delete.
  it('is a 507 when the store cannot record it, and a sweep finishes it once there is room', async () => {
    const disk = await mountTinyDisk(4 * 1024 * 1024);
    const originals = await mkdtemp(join(tmpdir(), 'pixgate-originals-'));
    let full: TestServer | undefined;
    try {
      full = await startTestServer(
        { dev: true, storage: `file:${originals}` },
        { dataDir: disk.dir, sweepIntervalMs: 100 },
      );
      const headers = { authorization: `Bearer ${await full.token('dana')}` };
      const { id } = await uploadImage(
        full,
        headers.authorization.slice(7),
        (await synth('png', 40, 30)).body,
      );
      await disk.fill();
      const refused = await fetch(`${full.url}/v1/images/${id}`, { method: 'DELETE', headers });
      expect(refused.status).toBe(507);
      expect(await refused.json()).toEqual({
        error: { code: 'insufficient_storage', message: 'No space left in the metadata store' },
      });
      const tmp = join(disk.dir, 'tmp');
      expect(await readdir(tmp)).toEqual([`deleting-${id}`]);

      // Room again, and the mark an hour old: the next sweep deletes the row as asked.
      await rm(join(disk.dir, 'filler'));
      const ago = new Date(Date.now() - 2 * 60 * 60 * 1000);
      await utimes(join(tmp, `deleting-${id}`), ago, ago);
      await eventually(async () => {
        expect(await readdir(tmp)).toEqual([]);
      });
      const gone = await fetch(`${full.url}/v1/images/${id}/meta`, { headers });
      expect(gone.status).toBe(404);
    } finally {
      await full?.close();
      await disk.unmount();
      await rm(originals, { recursive: true, force: true });
    }
  });
});

describe('temp dir not writable', () => {
  // Regression: any failure but ENOSPC/EDQUOT while writing OUR temp file was answered as the
  // client's fault, 400 "The upload was interrupted".
  it('500 internal for a raw or multipart upload, with the cause in the log, and nothing kept', async () => {
    const broken = await startTestServer({ dev: true });
    const tmp = join(broken.dataDir, 'tmp');
    await mkdir(tmp, { recursive: true });
    const readOnly = await mountReadOnly(tmp);
    try {
      const owner = await broken.token('erin');
      const photo = (await synth('png', 40, 30)).body;
      const form = new FormData();
      form.append('file', new Blob([photo]), 'photo.png');
      for (const [body, type] of [
        [photo, 'image/png'],
        [form, undefined],
      ] as const) {
        const response = await fetch(`${broken.url}/v1/images`, {
          method: 'POST',
          headers: { authorization: `Bearer ${owner}`, ...(type ? { 'content-type': type } : {}) },
          body,
        });
        expect(response.status).toBe(500);
        expect(response.headers.get('cache-control')).toBe('no-store');
        expect(await response.json()).toEqual({
          error: { code: 'internal', message: 'The image could not be stored' },
        });
      }
      const failures = broken.logs.filter((line) => line.includes('"msg":"request failed"'));
      expect(failures).toHaveLength(2);
      for (const line of failures) expect(line).toContain('temp file: EROFS');

      expect(await readdir(tmp)).toEqual([]);
      expect(await readdir(join(broken.dataDir, 'originals')).catch(() => [])).toEqual([]);
      const list = await fetch(`${broken.url}/v1/images`, { headers: { authorization: `Bearer ${owner}` } });
      expect(((await list.json()) as { items: unknown[] }).items).toEqual([]);
    } finally {
      await readOnly.unmount();
      await broken.destroy();
    }
  });
});
