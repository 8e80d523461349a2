import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** An entry of a directory tree, with its path (the directory given, joined with the rest). */
export interface TreeEntry {
  readonly entry: Dirent;
  readonly path: string;
}

/**
 * Every entry under `dir`, at any depth, in readdir's order; links are not followed. An entry's
 * directory is `Dirent.parentPath` from Node 20.12, and `Dirent.path` before it (`engines` says
 * 20.9; Node 24 drops `path`), so neither is read anywhere else.
 */
export async function walk(dir: string): Promise<TreeEntry[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.map((entry) => ({ entry, path: join(entry.parentPath ?? entry.path, entry.name) }));
}
