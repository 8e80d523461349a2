import { mkdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';
import { mountReadOnly } from '../helpers/tiny-disk.js';

/**
 * /readyz over real HTTP (SPEC §4: ready when the store, the variant cache and the origin answer).
 * A part is made to fail for real: a read-only tmpfs mounted over its directory, where a write
 * fails with EROFS even for root (tests run as root; chmod would not stop a write). An HTTP
 * origin that is down is in origins.test.ts. The store has no test here: its check is SQLite's
 * `select 1`, which touches no file, and no real fault (the file deleted, overwritten, locked by
 * another connection) makes it fail on a running server.
 */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ dev: true });
});
afterAll(() => server.destroy());

const readyz = async () => {
  const response = await fetch(`${server.url}/readyz`);
  return {
    status: response.status,
    cacheControl: response.headers.get('cache-control'),
    json: await response.json(),
  };
};

const dirOf = (location: string) => {
  if (!location.startsWith('file:')) throw new Error(`expected a file location, got ${location}`);
  return location.slice('file:'.length);
};

/** Runs `work` while a read-only filesystem covers each of `dirs`. */
async function whileReadOnly(dirs: string[], work: () => Promise<void>): Promise<void> {
  const mounts: Array<{ unmount(): Promise<void> }> = [];
  try {
    for (const dir of dirs) {
      await mkdir(dir, { recursive: true });
      mounts.push(await mountReadOnly(dir));
    }
    await work();
  } finally {
    for (const mount of mounts.reverse()) await mount.unmount();
  }
}

const notReady = (parts: string) => ({
  status: 503,
  cacheControl: 'no-store',
  json: { error: { code: 'unavailable', message: `Not ready: ${parts}` } },
});

describe('/readyz', () => {
  it('is ready while every part answers', async () => {
    expect(await readyz()).toEqual({ status: 200, cacheControl: 'no-store', json: { status: 'ok' } });
  });

  it('is not ready, naming the cache, while the variant cache directory cannot be written', async () => {
    const from = server.logs.length;
    await whileReadOnly([dirOf(server.config.cache)], async () => {
      expect(await readyz()).toEqual(notReady('cache'));
    });
    // The operator learns which part and why.
    const warnings = server.logs
      .slice(from)
      .map((line) => JSON.parse(line) as { msg: string; part?: string; err?: { message?: string } })
      .filter((line) => line.msg === 'readiness check failed');
    expect(warnings).toEqual([
      expect.objectContaining({
        part: 'cache',
        err: expect.objectContaining({ message: expect.stringContaining('EROFS') }),
      }),
    ]);
    // Ready again once the directory can be written.
    expect((await readyz()).status).toBe(200);
  });

  it('names every failing part: the cache and the origin both read-only', async () => {
    await whileReadOnly([dirOf(server.config.cache), dirOf(server.config.storage)], async () => {
      expect(await readyz()).toEqual(notReady('cache, origin'));
    });
    expect((await readyz()).status).toBe(200);
  });
});
