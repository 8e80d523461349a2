import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth } from '../helpers/images.js';
import { dataFiles, startTestServer, type TestServer, uploadImage } from '../helpers/pixgate.js';

/**
 * SPEC §4: when something a security decision needs is down (here the metadata store, which
 * holds share links and their view budgets), the answer is 503, fail closed: never 200, never
 * a 500 as if it were a bug. The store is made to fail for real: another connection holds
 * SQLite's write lock, as a long transaction of another process on the same file would, so the
 * server's writes fail with SQLITE_BUSY once its busy timeout (5 s) has passed.
 */

let server: TestServer;
let alice: string;
let photo: Buffer;

beforeAll(async () => {
  server = await startTestServer({ dev: true });
  alice = await server.token('alice', 'images:read images:write');
  photo = (await synth('png', 300, 200)).body;
});
afterAll(() => server.destroy());

/** Holds the database's write lock from another connection until `release`. */
function holdWriteLock(): { release(): void } {
  const holder = new BetterSqlite3(join(server.dataDir, 'pixgate.db'));
  holder.exec('BEGIN IMMEDIATE');
  return {
    release() {
      holder.exec('ROLLBACK');
      holder.close();
    },
  };
}

const unavailable = { error: { code: 'unavailable', message: 'The metadata store is unavailable' } };

describe('metadata store down', () => {
  it('a share link whose view cannot be counted is a 503, then works once the store is back', async () => {
    const auth = { authorization: `Bearer ${alice}` };
    const { id } = await uploadImage(server, alice, photo);
    const made = await fetch(`${server.url}/v1/images/${id}/links`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ ttlSeconds: 3600, maxViews: 1 }),
    });
    expect(made.status).toBe(201);
    const { url } = (await made.json()) as { url: string };

    const lock = holdWriteLock();
    let refused: Response;
    try {
      refused = await fetch(`${server.url}${url}?w=50`);
    } finally {
      lock.release();
    }
    expect(refused.status).toBe(503);
    expect(refused.headers.get('cache-control')).toBe('no-store');
    expect(await refused.json()).toEqual(unavailable);
    // The operator learns why; the line is a refusal, not a bug with a stack.
    const line = server.logs.find((text) => text.includes('"code":"unavailable"') && text.includes('/s/'));
    expect(line).toContain('SQLITE_BUSY');
    expect(line).not.toContain('"stack"');

    // The refused request took nothing from the budget of one view.
    const served = await fetch(`${server.url}${url}?w=50`);
    expect(served.status).toBe(200);
    expect((await fetch(`${server.url}${url}?w=50`)).status).toBe(404);
  });

  it('an upload that cannot be recorded is a 503 and keeps nothing', async () => {
    const before = await dataFiles(server, 'originals');
    const lock = holdWriteLock();
    let refused: Response;
    try {
      refused = await fetch(`${server.url}/v1/images`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice}`, 'content-type': 'image/png' },
        body: photo,
      });
    } finally {
      lock.release();
    }
    expect(refused.status).toBe(503);
    expect(await refused.json()).toEqual(unavailable);
    expect(await dataFiles(server, 'originals')).toEqual(before);
    expect(await dataFiles(server, 'tmp')).toEqual([]);
  });
  // Regression: the original was deleted first, then the row: with the store locked, the DELETE
  // was answered 503 with the original gone and the row still there, listed and its cached
  // variants still served (to anyone, for a public image), while README promised "never half
  // done".
  it('a delete that cannot be recorded is a 503 and changes nothing', async () => {
    const auth = { authorization: `Bearer ${alice}` };
    const { id } = await uploadImage(server, alice, photo, { visibility: 'public' });
    expect((await fetch(`${server.url}/v1/images/${id}?w=50`)).status).toBe(200);
    const originals = await dataFiles(server, 'originals');
    expect(originals).toContain(id);

    const lock = holdWriteLock();
    let refused: Response;
    try {
      refused = await fetch(`${server.url}/v1/images/${id}`, { method: 'DELETE', headers: auth });
    } finally {
      lock.release();
    }
    expect(refused.status).toBe(503);
    expect(await refused.json()).toEqual(unavailable);
    expect(await dataFiles(server, 'originals')).toEqual(originals);
    const original = await fetch(`${server.url}/v1/images/${id}`, { headers: auth });
    expect(original.status).toBe(200);
    expect(Buffer.from(await original.arrayBuffer())).toEqual(photo);
    expect((await fetch(`${server.url}/v1/images/${id}?w=60`, { headers: auth })).status).toBe(200);

    // Asked again with the store back, it is done completely.
    const deleted = await fetch(`${server.url}/v1/images/${id}`, { method: 'DELETE', headers: auth });
    expect(deleted.status).toBe(204);
    expect(await dataFiles(server, 'originals')).not.toContain(id);
    expect((await fetch(`${server.url}/v1/images/${id}?w=50`)).status).toBe(401);
  });
});

describe('the database file removed or replaced while the server runs', () => {
  // Regression: SQLite goes on reading and writing the file it opened, gone from the data dir
  // (deleted by mistake, a whole data dir removed, a backup restored over it). Uploads, changes and
  // sessions were answered 201 and 200 and vanished with the next start, and /readyz said ok.
  it('is a 503 for what needs the store, and /readyz says not ready', async () => {
    const doomed = await startTestServer({ dev: true });
    try {
      const owner = await doomed.token('alice', 'images:read images:write');
      const auth = { authorization: `Bearer ${owner}` };
      const { id } = await uploadImage(doomed, owner, photo);
      for (const suffix of ['', '-wal', '-shm']) await rm(join(doomed.dataDir, `pixgate.db${suffix}`));

      const upload = await fetch(`${doomed.url}/v1/images`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'image/png' },
        body: photo,
      });
      expect(upload.status).toBe(503);
      expect(await upload.json()).toEqual(unavailable);
      const patch = await fetch(`${doomed.url}/v1/images/${id}`, {
        method: 'PATCH',
        headers: { ...auth, 'content-type': 'application/json' },
        body: '{"visibility":"public"}',
      });
      expect(patch.status).toBe(503);
      const session = await fetch(`${doomed.url}/v1/sessions`, { method: 'POST', headers: auth });
      expect(session.status).toBe(503);
      const ready = await fetch(`${doomed.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ error: { code: 'unavailable', message: 'Not ready: store' } });
      // Nothing was kept of the refused upload.
      expect(await dataFiles(doomed, 'originals')).toEqual([id]);
    } finally {
      await doomed.destroy();
    }
  });
});
