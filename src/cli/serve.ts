import { startPixgate } from '../main.js';
import type { CommandContext } from './args.js';

/** `pixgate serve` and `pixgate dev`: run until SIGINT/SIGTERM, then close cleanly. */
export async function runServe(context: CommandContext, purpose: 'serve' | 'dev'): Promise<number> {
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
      `  demo page: ${pixgate.url.replace('127.0.0.1', 'localhost')}/ — or get a token with: npx pixgate token --sub alice

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
