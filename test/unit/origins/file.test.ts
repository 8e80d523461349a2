import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll } from 'vitest';
import { createBufferPool } from '../../../src/origins/buffer-pool.js';
import { createFileOrigin } from '../../../src/origins/file.js';
import { describeOriginConformance } from './origin-conformance.js';

const root = await mkdtemp(join(tmpdir(), 'pixgate-file-origin-'));
afterAll(() => rm(root, { recursive: true, force: true }));

// A local directory has no network: it cannot be slow, down or refuse credentials, so those
// scenarios are not part of its fixture.
describeOriginConformance('file', () => ({
  async open() {
    const dir = await mkdtemp(join(root, 'origin-'));
    return {
      origin: createFileOrigin(dir, createBufferPool(8 * 1024 * 1024)),
      async put(key, bytes) {
        await mkdir(dirname(join(dir, key)), { recursive: true });
        await writeFile(join(dir, key), bytes);
      },
    };
  },
}));
