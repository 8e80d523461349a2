import { execFile } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A real, tiny filesystem (tmpfs) for disk-full tests: no mock, the kernel answers ENOSPC.
 * Mounting needs root, which the CI machines are; elsewhere the test fails and says why rather
 * than skipping.
 */
export interface TinyDisk {
  readonly dir: string;
  /** Writes a filler file until the disk is full. */
  fill(): Promise<void>;
  unmount(): Promise<void>;
}

export async function mountTinyDisk(bytes: number): Promise<TinyDisk> {
  const dir = await mkdtemp(join(tmpdir(), 'pixgate-tiny-disk-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`disk-full tests mount a tmpfs and need root: ${(error as Error).message}`);
  }
  return {
    dir,
    async fill() {
      const file = await open(join(dir, 'filler'), 'w');
      const chunk = Buffer.alloc(4096, 1);
      try {
        for (;;) await file.write(chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      } finally {
        await file.close().catch(() => undefined);
      }
    },
    async unmount() {
      await run('umount', [dir]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * An empty read-only tmpfs mounted over `dir` (which must exist): creating a file under it fails
 * for real with EROFS, as root too (where chmod would not stop a write). Needs root, like
 * mountTinyDisk.
 */
export async function mountReadOnly(dir: string): Promise<{ unmount(): Promise<void> }> {
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', dir]);
  } catch (error) {
    throw new Error(`read-only tests mount a tmpfs and need root: ${(error as Error).message}`);
  }
  return {
    async unmount() {
      await run('umount', [dir]);
    },
  };
}
