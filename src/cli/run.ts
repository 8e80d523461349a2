import { ConfigError, loadConfig } from '../config/load.js';
import { type CommandContext, parseArgs, takeOptions, UsageError } from './args.js';
import { runImport } from './import.js';
import { runKeygen } from './keygen.js';
import { runRegister } from './register.js';
import { runServe } from './serve.js';
import { runSign } from './sign.js';
import { runToken } from './token.js';

const USAGE = `pixgate: an image server for private images

Usage:
  pixgate serve [--config FILE] [--SETTING VALUE ...]     run the server
  pixgate dev   [--config FILE] [--SETTING VALUE ...]     run with a dev token issuer (loopback only)
  pixgate token --sub SUB [--scope "images:read images:write"] [--ttl SECONDS]
                                                        a dev-mode access token
  pixgate import DIR --owner SUB [--visibility private|preview|public]
                                                        copy a folder of images in, like uploads
  pixgate register KEY... --owner SUB [--visibility V]  record originals already in the origin
  pixgate register --prefix P --owner SUB [--visibility V]
                                                        the same for every key under a prefix
  pixgate sign ID [--w 360 --format webp ...] [--ttl 1h]
                                                        a signed URL for one variant
  pixgate keygen                                        a new key for PIXGATE_SIGNING_KEYS

Settings come from --config (JSON or YAML), then PIXGATE_* variables, then flags:
PIXGATE_PREVIEW_MAX=400 is --preview-max 400. The README lists them all.`;

const commands: Record<string, (context: CommandContext) => Promise<number>> = {
  serve: (context) => runServe(context, 'serve'),
  dev: (context) => runServe(context, 'dev'),
  token: runToken,
  import: runImport,
  register: runRegister,
  keygen: runKeygen,
  sign: runSign,
};

export async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  // Own names only: `pixgate constructor` found Object itself, and crashed with a stack trace.
  const command =
    args.command !== undefined && Object.hasOwn(commands, args.command) ? commands[args.command] : undefined;
  // `--help` after an unknown command (a typo) is still that typo: reported below, exit code 2.
  if (args.command === undefined || args.command === 'help' || (args.help && command)) {
    process.stdout.write(`${USAGE}\n`);
    return args.command === undefined && !args.help ? 2 : 0;
  }
  const context: CommandContext = {
    args,
    config(purpose, ownOptions = []) {
      const { own, settings, configFile } = takeOptions(args.options, ownOptions);
      try {
        const config = loadConfig({ file: configFile, flags: settings, purpose });
        if (args.problems.length > 0) throw new UsageError(args.problems);
        return { config, own };
      } catch (error) {
        if (error instanceof ConfigError) throw new UsageError([...args.problems, ...error.problems]);
        throw error;
      }
    },
  };
  try {
    if (!command) throw new UsageError([`unknown command "${args.command}" (try pixgate --help)`]);
    return await command(context);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`pixgate ${args.command ?? ''}: invalid settings or arguments:\n`);
      for (const problem of error.problems) process.stderr.write(`  - ${problem}\n`);
      return 2;
    }
    process.stderr.write(`pixgate ${args.command}: ${(error as Error).message}\n`);
    return 1;
  }
}
