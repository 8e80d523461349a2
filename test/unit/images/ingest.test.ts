import { mkdtempSync, rmSync } from 'node:fs';
import { stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createIngest } from '../../../src/images/ingest.js';
import { createFileOrigin } from '../../../src/origins/file.js';
import type { Origin } from '../../../src/origins/origin.js';
import { openSqliteStore } from '../../../src/store/sqlite.js';
import type { Store } from '../../../src/store/store.js';

const root = mkdtempSync(join(tmpdir(), 'pixgate-ingest-'));
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('sweepTempFiles beside another process at work', () => {
  it('leaves the pending mark of an upload whose origin write outlasts the stale age', async () => {
    const store = await openSqliteStore(join(root, 'pixgate.db'));
    const files = createFileOrigin(join(root, 'origin'));
    const tempDir = join(root, 'tmp');
    let recording: (() => void) | undefined;
    // A very slow origin write (S3 over a poor link, an hour long): by the time it has finished
    // and the row is being recorded, the mark made before it is old.
    const slow: Origin = {
      ...files,
      write: async (key, path, type) => {
        await files.write(key, path, type);
        const mark = join(tempDir, `pending-${key.slice(3)}`);
        const ago = new Date(Date.now() - 2 * 60 * 60 * 1000);
        await utimes(mark, ago, ago);
      },
    };
    // The row's insert waits a moment (the store's write lock held by another program).
    const waiting: Store = {
      ...store,
      insertImage: async (image, insertOptions) => {
        await new Promise<void>((resolve) => {
          recording = resolve;
        });
        await store.insertImage(image, insertOptions);
      },
    };
    const options = { tempDir, maxUploadBytes: 1 << 20, maxInputPixels: 1e8, maxFrames: 10, now: Date.now };
    const uploader = createIngest({ ...options, store: waiting, origin: slow, markRefreshMs: 10 });
    // Another process on the same data dir (a second server, `pixgate import`).
    const other = createIngest({ ...options, store, origin: files });
    try {
      const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#f00' } })
        .png()
        .toBuffer();
      const upload = uploader.fromStream(Readable.from([png]), { owner: 'alice', visibility: 'private' });
      while (!recording) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await other.sweepTempFiles();
      recording();
      const image = await upload;
      expect(await store.getImage(image.id)).toBeDefined();
      // The original the row names is still there.
      await expect(stat(join(root, 'origin', image.originKey))).resolves.toBeDefined();
    } finally {
      await store.close();
    }
  });
});
