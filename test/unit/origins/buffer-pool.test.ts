import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBufferPool } from '../../../src/origins/buffer-pool.js';
import { createFileOrigin } from '../../../src/origins/file.js';

describe('buffer pool', () => {
  it('hands back exactly the size asked for, and reuses released memory', () => {
    const pool = createBufferPool(8 * 1024 * 1024);
    const first = pool.take(3_000_000);
    expect(first.buffer.length).toBe(3_000_000);
    first.buffer[0] = 42;
    first.release();
    first.release(); // twice is harmless: the memory is pooled once
    const second = pool.take(2_000_000);
    expect(second.buffer.length).toBe(2_000_000);
    expect(second.buffer.buffer).toBe(first.buffer.buffer);
    const third = pool.take(2_000_000);
    expect(third.buffer.buffer).not.toBe(first.buffer.buffer);
  });

  it('keeps no more idle memory than its bound', () => {
    const pool = createBufferPool(1024 * 1024);
    const a = pool.take(100);
    const b = pool.take(100);
    a.release();
    b.release(); // over the bound: dropped, not pooled
    const c = pool.take(100);
    const d = pool.take(100);
    expect(c.buffer.buffer).toBe(a.buffer.buffer);
    expect(d.buffer.buffer).not.toBe(b.buffer.buffer);
  });
});

describe('file origin with a pool', () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

  it('never shows the bytes of a previous read in a smaller one', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pixgate-origin-'));
    dirs.push(root);
    await writeFile(join(root, 'big'), Buffer.alloc(50_000, 0xaa));
    await writeFile(join(root, 'small'), Buffer.alloc(1_000, 0x11));
    const origin = createFileOrigin(root, createBufferPool(8 * 1024 * 1024));
    const big = await origin.read('big', { maxBytes: 1e6 });
    expect(big.body.equals(Buffer.alloc(50_000, 0xaa))).toBe(true);
    big.release?.();
    const small = await origin.read('small', { maxBytes: 1e6 });
    expect(small.body.equals(Buffer.alloc(1_000, 0x11))).toBe(true);
    expect(small.body.buffer).toBe(big.body.buffer);
  });
});
