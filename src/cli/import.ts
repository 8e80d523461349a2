import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { relative } from 'node:path';
import cliProgress from 'cli-progress';
import { isAppError } from '../errors.js';
import { openStorage } from '../main.js';
import { type Visibility, visibilities } from '../store/store.js';
import { walk } from '../walk.js';
import { type CommandContext, ownerProblems, UsageError } from './args.js';

/**
 * `pixgate import DIR --owner SUB [--visibility V]`: copies every file under DIR in, exactly as
 * an upload would (same size cap, content sniffing, pixel limit, atomic store), and ends with a
 * summary of what was skipped and why. A symbolic link to a file is imported like the file; one
 * that leads nowhere or to a directory is skipped (linkProblem), and so is anything else that is
 * not a regular file (a FIFO, a socket, a device). Exit code 1 when a file failed
 * for a reason other than its content (an I/O error), 130 when interrupted, 0 otherwise.
 */
export async function runImport(context: CommandContext): Promise<number> {
  const { config, own } = context.config('tool', ['owner', 'visibility']);
  const problems: string[] = [];
  const dir = context.args.positionals[0];
  if (dir === undefined || context.args.positionals.length > 1)
    problems.push('expected exactly one directory');
  problems.push(...ownerProblems(own.owner));
  const visibility = (own.visibility ?? 'private') as Visibility;
  if (!visibilities.includes(visibility))
    problems.push(`--visibility: expected one of ${visibilities.join(', ')}`);
  if (problems.length > 0) throw new UsageError(problems);

  const root = dir as string;
  if (!(await stat(root).catch(() => undefined))?.isDirectory())
    throw new UsageError([`${root}: not a directory`]);
  const skipped = new Map<string, string[]>();
  const skip = (reason: string, name: string) => skipped.set(reason, [...(skipped.get(reason) ?? []), name]);
  const files: string[] = [];
  /** Entries skipped from their type alone, before any read: counted like the files. */
  let leftOut = 0;
  const entries = (await walk(root)).sort((a, b) => (a.path < b.path ? -1 : 1));
  for (const { entry, path } of entries) {
    if (entry.isDirectory()) continue; // walked by walk itself
    const problem = entry.isFile()
      ? undefined
      : entry.isSymbolicLink()
        ? await linkProblem(path)
        : // A FIFO, socket or device: never opened, as opening a FIFO waits for a writer.
          'not a regular file';
    if (problem === undefined) files.push(path);
    else {
      leftOut++;
      skip(problem, relative(root, path));
    }
  }

  const storage = await openStorage(config);
  let imported = 0;
  let failed = 0;
  const bar = new cliProgress.SingleBar(
    { format: 'importing [{bar}] {value}/{total} {file}', hideCursor: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  // Ctrl-C (or SIGTERM) stops between two files, never inside one, and the summary still says
  // what is in and what is not, for a rerun to start there: imports are not deduplicated. A
  // second Ctrl-C finds no handler left and kills at once; a crash's leftovers are swept.
  let interrupted: string | undefined;
  const interrupt = (signal: NodeJS.Signals) => {
    interrupted = signal === 'SIGINT' ? 'Ctrl-C' : signal;
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  bar.start(files.length, 0, { file: '' });
  try {
    for (const [index, file] of files.entries()) {
      if (interrupted !== undefined) {
        const reason = `not imported: interrupted (${interrupted}) before it was read`;
        for (const left of files.slice(index)) skip(reason, relative(root, left));
        break;
      }
      const name = relative(root, file);
      bar.update({ file: name });
      const stream = createReadStream(file);
      try {
        await storage.ingest.fromStream(stream, { owner: own.owner as string, visibility });
        imported++;
      } catch (thrown) {
        // A file that could not be read is an I/O failure, whatever ingest made of it (to
        // ingest a source that broke off is a client that went away: a 4xx). A stream ingest
        // stopped reading itself (past the size cap, or its temp file failing) is destroyed
        // with an AbortError: no read failed then, and ingest's own error says why.
        const readError = stream.errored && !isAbortError(stream.errored) ? stream.errored : undefined;
        const error = readError ?? thrown;
        const reason = isAppError(error) && error.status < 500 ? error.publicMessage : undefined;
        if (reason === undefined) failed++;
        skip(reason ?? `failed: ${(error as Error).message}`, name);
      } finally {
        // Ingest may stop before reading it (its temp file could not be made): the file stays
        // open until the stream is destroyed.
        stream.destroy();
      }
      bar.increment();
    }
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    bar.stop();
    await storage.close();
  }

  process.stdout.write(`Imported ${imported} of ${files.length + leftOut} files for ${own.owner}.\n`);
  for (const [reason, names] of skipped) {
    process.stdout.write(`Skipped ${names.length}: ${reason}\n`);
    for (const name of names.slice(0, 20)) process.stdout.write(`  ${name}\n`);
    if (names.length > 20) process.stdout.write(`  ... and ${names.length - 20} more\n`);
  }
  // 128 + the signal's number, as a shell reports a command the signal ended.
  if (interrupted !== undefined) return interrupted === 'SIGTERM' ? 143 : 130;
  return failed > 0 ? 1 : 0;
}

/**
 * Why a symbolic link is left out, or undefined to import the file it points to. A link to a
 * directory is not followed: a link back up the tree would make the walk endless. Any other
 * failure to look (EACCES) is left to the read, which reports it as a failed file.
 */
async function linkProblem(path: string): Promise<string | undefined> {
  try {
    const target = await stat(path);
    if (target.isFile()) return undefined;
    return target.isDirectory()
      ? 'a link to a directory (not followed: links can loop)'
      : 'a link to something other than a file';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'a link to nothing (dangling)';
    if (code === 'ELOOP') return 'a link that loops';
    return undefined;
  }
}

/** What Node destroys a readable stream with when a `for await` over it stops early. */
const isAbortError = (error: Error) => error.name === 'AbortError';
