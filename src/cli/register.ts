import { isAppError } from '../errors.js';
import { openStorage } from '../main.js';
import { checkOriginKey } from '../origins/key.js';
import { type Visibility, visibilities } from '../store/store.js';
import { type CommandContext, ownerProblems, UsageError } from './args.js';

/**
 * `pixgate register KEY... --owner SUB [--visibility V]` or `pixgate register --prefix P --owner
 * SUB`: records originals that already sit in the origin (PIXGATE_STORAGE), without copying
 * them; each is read once and judged like an upload. Prints one line per image (`id key`) and a
 * summary of what was skipped and why. Exit code 1 when a key failed for a reason other than
 * its content or its name (the origin is down, refuses pixgate...), 0 otherwise.
 */
export async function runRegister(context: CommandContext): Promise<number> {
  const { config, own } = context.config('tool', ['owner', 'visibility', 'prefix']);
  const problems: string[] = [];
  const keys = context.args.positionals;
  const prefix = own.prefix;
  if (prefix === undefined && keys.length === 0) problems.push('expected one or more keys, or --prefix');
  if (prefix !== undefined && keys.length > 0) problems.push('expected keys or --prefix, not both');
  if (prefix !== undefined && prefix !== '') {
    try {
      checkOriginKey(prefix.replace(/\/+$/, ''));
    } catch (error) {
      problems.push(`--prefix: ${isAppError(error) ? error.publicMessage : 'invalid'}`);
    }
  }
  problems.push(...ownerProblems(own.owner));
  const visibility = (own.visibility ?? 'private') as Visibility;
  if (!visibilities.includes(visibility))
    problems.push(`--visibility: expected one of ${visibilities.join(', ')}`);
  if (problems.length > 0) throw new UsageError(problems);

  const storage = await openStorage(config);
  const skipped = new Map<string, string[]>();
  let registered = 0;
  let seen = 0;
  let failed = 0;
  try {
    const list = storage.origin.list?.bind(storage.origin);
    if (prefix !== undefined && !list) {
      throw new UsageError([
        `--prefix: the ${storage.origin.kind} origin cannot list its keys; name them instead`,
      ]);
    }
    const source: AsyncIterable<string> | string[] =
      prefix === undefined ? keys : (list as NonNullable<typeof list>)(prefix.replace(/\/+$/, ''));
    for await (const key of source) {
      seen++;
      try {
        const image = await storage.ingest.fromOrigin(key, { owner: own.owner as string, visibility });
        process.stdout.write(`${image.id} ${key}\n`);
        registered++;
      } catch (error) {
        const reason = isAppError(error) && error.status < 500 ? error.publicMessage : undefined;
        if (reason === undefined) failed++;
        const why = reason ?? `failed: ${isAppError(error) ? error.message : (error as Error).message}`;
        skipped.set(why, [...(skipped.get(why) ?? []), key]);
      }
    }
  } finally {
    await storage.close();
  }

  process.stdout.write(`Registered ${registered} of ${seen} keys for ${own.owner}.\n`);
  for (const [reason, names] of skipped) {
    process.stdout.write(`Skipped ${names.length}: ${reason}\n`);
    for (const name of names.slice(0, 20)) process.stdout.write(`  ${name}\n`);
    if (names.length > 20) process.stdout.write(`  ... and ${names.length - 20} more\n`);
  }
  return failed > 0 ? 1 : 0;
}
