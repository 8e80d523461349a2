import { randomBytes } from 'node:crypto';
import { type CommandContext, UsageError } from './args.js';

/** A new signed-URL key, `kid:base64secret`, for PIXGATE_SIGNING_KEYS: 256 random bits. */
export async function runKeygen(context: CommandContext): Promise<number> {
  // keygen loads no settings, so the parse problems (`--x` without a value) are reported here.
  if (
    context.args.problems.length > 0 ||
    context.args.positionals.length > 0 ||
    Object.keys(context.args.options).length > 0
  ) {
    throw new UsageError([...context.args.problems, 'keygen takes no arguments']);
  }
  const kid = randomBytes(6).toString('base64url');
  process.stdout.write(`${kid}:${randomBytes(32).toString('base64')}\n`);
  return 0;
}
