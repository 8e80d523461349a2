import { resolve } from 'node:path';
import { DEV_AUDIENCE, DEV_ISSUER } from '../config/load.js';
import { type Config, DEFAULT_DATA_DIR } from '../config/schema.js';
import { startPixgate } from '../main.js';
import type { CommandContext } from './args.js';

/** A word the shell reads as it is, or that word in single quotes. */
const shellWord = (word: string) =>
  /^[\w./:@%+=-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;

/**
 * The `pixgate token` command that mints a token this dev server accepts, with every setting it
 * needs that was not the default: the data dir (the issuer's key is there) and the issuer and
 * audience. They may have come from a config file or the environment, which the shell the user
 * pastes the command into need not have.
 */
function tokenCommand(config: Config): string {
  const words = ['npx', 'pixgate', 'token', '--sub', 'alice'];
  if (config.dataDir !== resolve(DEFAULT_DATA_DIR)) words.push('--data-dir', config.dataDir);
  if (config.issuer !== DEV_ISSUER) words.push('--issuer', config.issuer ?? '');
  if (config.audience !== DEV_AUDIENCE) words.push('--audience', config.audience ?? '');
  return words.map(shellWord).join(' ');
}

/** `pixgate serve` and `pixgate dev`: run until SIGINT/SIGTERM, then close cleanly. */
export async function runServe(context: CommandContext, purpose: 'serve' | 'dev'): Promise<number> {
  // serve and dev take no word of their own: one let through (`-p 80`, a short option pixgate
  // does not have) would start the server without what it asked for. Reported with the settings'
  // problems, which context.config adds the parse problems to.
  context.args.problems.push(
    ...context.args.positionals.map(
      (word) => `unexpected argument ${JSON.stringify(word)} (options are written --name value)`,
    ),
  );
  const { config } = context.config(purpose);
  // PIXGATE_DEV=true under `pixgate serve` is dev mode too, and just as loud.
  if (config.dev) {
    process.stderr.write(
      [
        '',
        '  ************************************************************',
        '  *  pixgate DEV MODE: a built-in issuer signs tokens for     *',
        '  *  anyone on this machine. Loopback only. Not for real use. *',
        '  ************************************************************',
        '',
      ].join('\n'),
    );
  }
  const pixgate = await startPixgate(config);
  pixgate.server.log.info({ url: pixgate.url, dev: config.dev }, 'pixgate listening');
  if (config.dev) {
    process.stderr.write(
      `  demo page: ${pixgate.url.replace('127.0.0.1', 'localhost')}/ — or get a token with: ${tokenCommand(config)}

`,
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  pixgate.server.log.info('shutting down');
  await pixgate.close();
  return 0;
}
