import type { ConfigPurpose } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { MAX_OWNER_LENGTH } from '../store/store.js';

/**
 * Command-line words: `pixgate <command> [positionals] [--name value | --name=value]...`.
 * Every option takes a value (booleans too, written out: `--trust-proxy false`), so there is
 * no guessing whether the next word is a value or a positional. `--help` is the exception.
 */
export interface ParsedArgs {
  readonly command: string | undefined;
  readonly positionals: string[];
  readonly options: Record<string, string>;
  readonly help: boolean;
  readonly problems: string[];
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const positionals: string[] = [];
  // No prototype: `--constructor` was "given more than once", and `--__proto__ x` vanished.
  const options: Record<string, string> = Object.create(null);
  const problems: string[] = [];
  let help = false;
  let command: string | undefined;

  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === '--help' || word === '-h') {
      help = true;
      continue;
    }
    if (word === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (word.startsWith('--')) {
      const eq = word.indexOf('=');
      const name = eq === -1 ? word.slice(2) : word.slice(2, eq);
      let value: string | undefined = eq === -1 ? undefined : word.slice(eq + 1);
      if (value === undefined) {
        const next = argv[i + 1];
        if (next === undefined || next.startsWith('--')) {
          problems.push(`--${name}: expected a value`);
          continue;
        }
        value = next;
        i++;
      }
      if (name in options) problems.push(`--${name}: given more than once`);
      options[name] = value;
      continue;
    }
    if (command === undefined) command = word;
    else positionals.push(word);
  }
  return { command, positionals, options, help, problems };
}

/** Splits a command's own options from the settings flags that go to loadConfig. */
export function takeOptions(
  options: Record<string, string>,
  own: readonly string[],
): {
  own: Record<string, string | undefined>;
  settings: Record<string, string>;
  configFile: string | undefined;
} {
  const mine: Record<string, string | undefined> = {};
  const settings: Record<string, string> = Object.create(null); // as in parseArgs
  let configFile: string | undefined;
  for (const [name, value] of Object.entries(options)) {
    if (name === 'config') configFile = value;
    else if (own.includes(name)) mine[name] = value;
    else settings[name] = value;
  }
  return { own: mine, settings, configFile };
}

/** A wrong invocation or invalid settings: exit code 2, every problem listed. */
export class UsageError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}

export interface CommandContext {
  readonly args: ParsedArgs;
  /** Loads the settings with the command's own options taken out. */
  config(
    purpose: ConfigPurpose,
    ownOptions?: readonly string[],
  ): { config: Config; own: Record<string, string | undefined> };
}

/** `90`, `90s`, `15m`, `1h`, `7d` → seconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)(s|m|h|d)?$/.exec(text.trim());
  if (!match) return undefined;
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(match[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

/** `--owner` of import and register: what the API's register takes (routes/register.ts). */
export function ownerProblems(owner: string | undefined): string[] {
  if (!owner) return ['--owner: required (the sub the images will belong to)'];
  if (owner.length > MAX_OWNER_LENGTH) return [`--owner: expected at most ${MAX_OWNER_LENGTH} characters`];
  return [];
}
