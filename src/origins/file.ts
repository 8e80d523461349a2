import { constants } from 'node:fs';
import { access, copyFile, type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import { AppError, notFound } from '../errors.js';
import { type TreeEntry, walk } from '../walk.js';
import type { BufferPool } from './buffer-pool.js';
import { checkOriginKey } from './key.js';
import type { Origin, OriginObject, ReadOptions } from './origin.js';
import { tooLargeAtOrigin } from './read-body.js';

/** Originals on local disk under one root directory; the embedded default. */
export function createFileOrigin(root: string, pool?: BufferPool): Origin {
  const rootDir = resolve(root);

  // Keys are checked again here although callers made or checked them: the path is built from
  // the key, and nothing may ever resolve outside the root.
  function pathOf(key: string): string {
    const path = resolve(rootDir, checkOriginKey(key));
    if (!path.startsWith(rootDir + sep)) throw new AppError('invalid_request', 'Invalid source key');
    return path;
  }

  return {
    kind: 'file',
    isWritable: true,

    async read(key: string, options: ReadOptions): Promise<OriginObject> {
      const path = pathOf(key);
      let handle: FileHandle;
      try {
        handle = await open(path, 'r');
      } catch (error) {
        throw readError(error, key);
      }
      try {
        const { size, mtime } = await handle.stat();
        if (size > options.maxBytes) throw tooLargeAtOrigin('file', options.maxBytes, size);
        if (!pool) return { body: await handle.readFile({ signal: options.signal }), lastModified: mtime };
        const pooled = pool.take(size);
        try {
          const read = await readFully(handle, pooled.buffer);
          // A file that shrank since the stat: only the bytes read, never stale pool memory.
          return { body: pooled.buffer.subarray(0, read), lastModified: mtime, release: pooled.release };
        } catch (error) {
          pooled.release();
          throw error;
        }
      } catch (error) {
        throw error instanceof AppError ? error : readError(error, key);
      } finally {
        await handle.close();
      }
    },

    async write(key: string, tempPath: string): Promise<void> {
      const path = pathOf(key);
      try {
        await mkdir(dirname(path), { recursive: true });
        try {
          await rename(tempPath, path);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
          // Another filesystem: copy next to the target, then rename, so the key is never partial.
          // One name per key (keys are written once), so that `delete` also removes a copy a
          // crash cut short.
          const staged = stagedPath(path);
          try {
            await copyFile(tempPath, staged);
            await rename(staged, path);
          } finally {
            await rm(staged, { force: true });
          }
          await rm(tempPath, { force: true });
        }
      } catch (error) {
        await rm(tempPath, { force: true });
        throw writeError(error);
      }
    },

    async delete(key: string): Promise<void> {
      const path = pathOf(key);
      await rm(path, { force: true });
      await rm(stagedPath(path), { force: true });
    },

    async check(): Promise<void> {
      await mkdir(rootDir, { recursive: true });
      await access(rootDir, constants.R_OK | constants.W_OK);
    },

    async *list(prefix: string): AsyncIterable<string> {
      const start = prefix === '' ? rootDir : pathOf(prefix);
      let entries: TreeEntry[];
      try {
        entries = await walk(start);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      const keys = entries
        .filter(({ entry }) => entry.isFile())
        .map(({ path }) => relative(rootDir, path).split(sep).join('/'))
        .sort();
      yield* keys;
    },
  };
}

/** Where `write` copies a file from another filesystem before renaming it to `path`. */
const stagedPath = (path: string) => `${path}.partial`;

async function readFully(handle: FileHandle, target: Buffer): Promise<number> {
  let offset = 0;
  while (offset < target.length) {
    const { bytesRead } = await handle.read(target, offset, target.length - offset, offset);
    if (bytesRead === 0) break;
    offset += bytesRead;
  }
  return offset;
}

function readError(error: unknown, key: string): AppError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return notFound(`file origin: no ${key}`);
  return new AppError('origin_error', 'The original could not be read', {
    detail: `file origin: ${code}`,
    cause: error,
  });
}

/** A failed write of ours: a full disk is 507, anything else a 500 whose log names `where`. */
export function writeError(error: unknown, where = 'file origin'): AppError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new AppError('insufficient_storage', 'No space left to store the image', { cause: error });
  }
  return new AppError('internal', 'The image could not be stored', {
    detail: `${where}: ${code}`,
    cause: error,
  });
}
