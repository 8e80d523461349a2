import { loadDevIssuer } from '../auth/dev-issuer.js';
import { type CommandContext, parseDuration, UsageError } from './args.js';

/** `pixgate token --sub S [--scope ...] [--ttl 1h]`: a token from the dev issuer (dev mode only). */
export async function runToken(context: CommandContext): Promise<number> {
  const { config, own } = context.config('dev', ['sub', 'scope', 'ttl']);
  const problems: string[] = [];
  if (!own.sub) problems.push('--sub: required (the user the token is for)');
  const ttlSeconds = own.ttl === undefined ? 3600 : parseDuration(own.ttl);
  if (ttlSeconds === undefined || ttlSeconds < 1 || ttlSeconds > 7 * 86400) {
    problems.push('--ttl: expected a duration from 1s to 7d, such as 3600, 15m or 1h');
  }
  if (context.args.positionals.length > 0) problems.push('token takes no positional arguments');
  if (problems.length > 0) throw new UsageError(problems);

  const issuer = await loadDevIssuer(config.dataDir, config.issuer as string, config.audience as string);
  const token = await issuer.issue({ sub: own.sub as string, scope: own.scope, ttlSeconds });
  process.stdout.write(`${token}\n`);
  return 0;
}
