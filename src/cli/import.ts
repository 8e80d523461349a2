import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import cliProgress from 'cli-progress';
import { isAppError } from '../errors.js';
import { openStorage } from '../main.js';
import { type Visibility, visibilities } from '../store/store.js';
import { type CommandContext, UsageError } from './args.js';

/**
 * `pixgate import DIR --owner SUB [--visibility V]`: copies every file under DIR in, exactly as
 * an upload would (same size cap, content sniffing, pixel limit, atomic store), and ends with a
 * summary of what was skipped and why. Exit code 1 when a file failed for a reason other than
 * its content (an I/O error), 0 otherwise.
 */
export async function runImport(context: CommandContext): Promise<number> {
  const { config, own } = context.config('tool', ['owner', 'visibility']);
  const problems: string[] = [];
  const dir = context.args.positionals[0];
  if (dir === undefined || context.args.positionals.length > 1)
    problems.push('expected exactly one directory');
  if (!own.owner) problems.push('--owner: required (the sub the images will belong to)');
  const visibility = (own.visibility ?? 'private') as Visibility;
  if (!visibilities.includes(visibility))
    problems.push(`--visibility: expected one of ${visibilities.join(', ')}`);
  if (problems.length > 0) throw new UsageError(problems);

  const root = dir as string;
  if (!(await stat(root).catch(() => undefined))?.isDirectory())
    throw new UsageError([`${root}: not a directory`]);
  const files = (await readdir(root, { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();

  const storage = await openStorage(config);
  const skipped = new Map<string, string[]>();
  let imported = 0;
  let failed = 0;
  const bar = new cliProgress.SingleBar(
    { format: 'importing [{bar}] {value}/{total} {file}', hideCursor: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  bar.start(files.length, 0, { file: '' });
  try {
    for (const file of files) {
      const name = relative(root, file);
      bar.update({ file: name });
      const stream = createReadStream(file);
      try {
        await storage.ingest.fromStream(stream, { owner: own.owner as string, visibility });
        imported++;
      } catch (thrown) {
        // A file that could not be read is an I/O failure, whatever ingest made of it (to
        // ingest a source that broke off is a client that went away: a 4xx).
        const error = stream.errored ?? thrown;
        const reason = isAppError(error) && error.status < 500 ? error.publicMessage : undefined;
        if (reason === undefined) failed++;
        const key = reason ?? `failed: ${(error as Error).message}`;
        skipped.set(key, [...(skipped.get(key) ?? []), name]);
      } finally {
        // Ingest may stop before reading it (its temp file could not be made): the file stays
        // open until the stream is destroyed.
        stream.destroy();
      }
      bar.increment();
    }
  } finally {
    bar.stop();
    await storage.close();
  }

  process.stdout.write(`Imported ${imported} of ${files.length} files for ${own.owner}.\n`);
  for (const [reason, names] of skipped) {
    process.stdout.write(`Skipped ${names.length}: ${reason}\n`);
    for (const name of names.slice(0, 20)) process.stdout.write(`  ${name}\n`);
    if (names.length > 20) process.stdout.write(`  ... and ${names.length - 20} more\n`);
  }
  return failed > 0 ? 1 : 0;
}
