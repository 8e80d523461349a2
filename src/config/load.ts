import { closeSync, openSync, readSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parse as parseYaml, YAMLError } from 'yaml';
import type { z } from 'zod';
import { type OriginAuthSettings, originAuthProblems } from './origin-settings.js';
import { type Config, ConfigSchema, configKeys } from './schema.js';

/**
 * Settings come from a file (`--config`), then PIXGATE_* environment variables, then
 * command-line flags, each layer overriding the one before. Every problem is collected and
 * reported at once (the CLI exits 2), and the result is frozen. This is the only module that
 * reads the environment.
 */

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid settings:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** What the settings are for: `serve` needs a token issuer, `dev` brings its own, tools need neither. */
export type ConfigPurpose = 'serve' | 'dev' | 'tool';

export interface LoadConfigOptions {
  /** Path given with `--config` (JSON or YAML). */
  file?: string | undefined;
  /** Command-line flags by kebab name (`max-upload-bytes`), without the leading dashes. */
  flags?: Readonly<Record<string, string>>;
  env?: NodeJS.ProcessEnv;
  purpose?: ConfigPurpose;
  /** Base for relative paths; the working directory by default. */
  cwd?: string;
}

export const DEV_ISSUER = 'pixgate-dev';
export const DEV_AUDIENCE = 'pixgate';

const envName = (key: string) => `PIXGATE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
const flagName = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export const settingNames: ReadonlyArray<{ key: string; env: string; flag: string }> = configKeys.map(
  (key) => ({
    key,
    env: envName(key),
    flag: flagName(key),
  }),
);

const originAuthKeys = [
  'storage',
  'originBearer',
  'originBasic',
  'originHeader',
  'originTokenUrl',
  'originClientId',
  'originClientSecret',
  'originScope',
] as const;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * Settings whose value is a credential. A problem with one names the setting and what is wrong,
 * never the value: problems go to stderr, and from there to journald or a container's log.
 */
const SECRET_KEYS = new Set([
  'originBearer',
  'originBasic',
  'originHeader',
  'originClientSecret',
  'introspectionClientSecret',
  'signingKeys',
  'metricsToken',
]);

/**
 * A value as a problem quotes it: a URL's `user:password@` is not quoted either. Up to the last
 * `@`, whatever comes between: a password may hold a `/`, `?`, `#` or `@` of its own (the URL is
 * then invalid, and quoted). A path with an `@` in it is hidden too, which costs nothing.
 */
const quoted = (value: unknown) =>
  JSON.stringify(typeof value === 'string' ? value.replace(/(\/\/\/?).*@/, '$1[redacted]@') : value);

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];
  const merged: Record<string, unknown> = {};
  const origin: Record<string, string> = {};

  // `--config=` resolves to the working directory itself, and was reported as that (EISDIR).
  if (options.file?.trim() === '') problems.push('--config: expected a file path');
  else if (options.file !== undefined) {
    const fromFile = readConfigFile(resolve(cwd, options.file), problems);
    const known = new Set<string>(configKeys);
    for (const [key, value] of Object.entries(fromFile)) {
      // Named one by one and with the file, like an unknown PIXGATE_* variable.
      if (!known.has(key)) problems.push(`${key} in ${options.file}: unknown setting`);
      else {
        merged[key] = value;
        origin[key] = `${key} in ${options.file}`;
      }
    }
  }

  const byEnv = new Map(settingNames.map((s) => [s.env, s.key]));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('PIXGATE_') || value === undefined) continue;
    const key = byEnv.get(name);
    // A typo in a security setting (PIXGATE_TRUST_PROXI) must not pass silently.
    if (key === undefined) problems.push(`${name}: unknown setting`);
    else {
      merged[key] = value;
      origin[key] = name;
    }
  }

  const byFlag = new Map(settingNames.map((s) => [s.flag, s.key]));
  for (const [name, value] of Object.entries(options.flags ?? {})) {
    const key = byFlag.get(name);
    if (key === undefined) problems.push(`--${name}: unknown option`);
    else {
      merged[key] = value;
      origin[key] = `--${name}`;
    }
  }

  // `pixgate dev` is dev mode whatever PIXGATE_DEV says, but a value that is no boolean at all
  // stays to be reported: a bad value is a problem under every command (SPEC §7, exit code 2).
  if (options.purpose === 'dev' && ConfigSchema.shape.dev.safeParse(merged.dev).success) merged.dev = true;

  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? '');
      const where = origin[key] ?? (key || 'settings');
      // Inside a structured value (presets), name the part (`thumb.w: …`) rather than echo it all.
      const inner = issue.path.slice(1).filter((part) => typeof part === 'string');
      const shown =
        inner.length === 0 &&
        key in merged &&
        !SECRET_KEYS.has(key) &&
        (merged[key] === null || typeof merged[key] !== 'object')
          ? ` but received ${quoted(merged[key])}`
          : '';
      problems.push(`${where}: ${inner.length > 0 ? `${inner.join('.')}: ` : ''}${issue.message}${shown}`);
    }
  }

  // The checks across settings run even when other values are invalid, so that every problem
  // is reported at once. Each reads its settings on their own and stays silent about one that
  // is itself invalid (already reported above).
  const valid = <K extends keyof typeof ConfigSchema.shape>(key: K) => {
    const result = ConfigSchema.shape[key].safeParse(merged[key]);
    return (result.success ? result.data : undefined) as z.output<(typeof ConfigSchema.shape)[K]> | undefined;
  };
  const dev = valid('dev');
  const purpose = options.purpose ?? (dev === undefined ? 'tool' : dev ? 'dev' : 'serve');
  if (dev === true) {
    // Dev mode mints tokens for anyone who can reach it: never beyond this machine.
    const host = valid('host');
    if (host !== undefined && !LOOPBACK_HOSTS.has(host)) {
      problems.push(
        `${origin.host ?? 'host'}: dev mode listens on loopback only (127.0.0.1, ::1 or localhost)`,
      );
    }
  } else if (dev === false && purpose === 'serve') {
    for (const key of ['issuer', 'audience', 'jwksUrl'] as const) {
      if (merged[key] === undefined) {
        problems.push(`${envName(key)}: required to verify access tokens (or try \`pixgate dev\`)`);
      }
    }
  }
  // Issue 4: introspection needs its client credentials (RFC 7662 §2.1: the endpoint is protected).
  if (merged.introspectionUrl !== undefined) {
    for (const key of ['introspectionClientId', 'introspectionClientSecret'] as const) {
      if (merged[key] === undefined)
        problems.push(`${envName(key)}: required with PIXGATE_INTROSPECTION_URL`);
    }
  }
  if (valid('strictSizes') === true && valid('sizes')?.length === 0) {
    problems.push(`${origin.strictSizes ?? 'strictSizes'}: needs PIXGATE_SIZES, the list of allowed sizes`);
  }
  problems.push(
    ...originAuthProblems(
      Object.fromEntries(originAuthKeys.map((key) => [key, valid(key)])) as OriginAuthSettings,
      (key) => merged[key] !== undefined,
      (key) => origin[key] ?? envName(key),
    ),
  );
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);

  const config = parsed.data;
  const dataDir = resolve(cwd, config.dataDir);
  const resolveLocation = (value: string | undefined, fallback: string) => {
    if (value === undefined) return `file:${resolve(dataDir, fallback)}`;
    if (value.startsWith('file:')) {
      const path = value.slice('file:'.length);
      return `file:${isAbsolute(path) ? path : resolve(cwd, path)}`;
    }
    return value;
  };

  return Object.freeze({
    ...config,
    dataDir,
    issuer: config.dev ? (config.issuer ?? DEV_ISSUER) : config.issuer,
    audience: config.dev ? (config.audience ?? DEV_AUDIENCE) : config.audience,
    storage: resolveLocation(config.storage, 'originals'),
    cache: config.cache === 'none' ? 'none' : resolveLocation(config.cache, 'cache'),
    sizes: Object.freeze([...config.sizes]) as number[],
    presets: Object.freeze(
      Object.fromEntries(
        Object.entries(config.presets).map(([name, preset]) => [name, Object.freeze(preset)]),
      ),
    ),
  });
}

/**
 * Settings files are small: a bigger one is the wrong file (a log, an image, /dev/zero, which
 * never ends), and is read no further than this. A FIFO (`--config <(...)`) is read like a file.
 */
const MAX_CONFIG_BYTES = 1024 ** 2;

/** The file's text, or undefined past MAX_CONFIG_BYTES. */
function readCapped(path: string): string | undefined {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
    }
    return length > MAX_CONFIG_BYTES ? undefined : buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

function readConfigFile(path: string, problems: string[]): Record<string, unknown> {
  let text: string | undefined;
  try {
    text = readCapped(path);
  } catch (error) {
    problems.push(`--config: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    return {};
  }
  if (text === undefined) {
    problems.push(`--config: ${path} is larger than 1 MiB: not a settings file`);
    return {};
  }
  const yaml = /\.ya?ml$/i.test(path);
  const lines = new LineCounter();
  try {
    // logLevel 'error': a warning (an unknown tag) would be printed with its line, and the value
    // read as a plain string, which the schema judges like any other.
    const value: unknown = yaml
      ? parseYaml(text, { prettyErrors: false, lineCounter: lines, logLevel: 'error' })
      : JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`--config: ${path} must hold an object of settings`);
      return {};
    }
    return value as Record<string, unknown>;
  } catch (error) {
    problems.push(
      `--config: ${path} is not valid ${yaml ? 'YAML' : 'JSON'}${syntaxError(error, text, lines)}`,
    );
    return {};
  }
}

/**
 * Where a config file stops parsing and what the parser wanted there, never the text around it:
 * the file may hold secrets (SECRET_KEYS), and V8 and the yaml package both quote the text at
 * the error. What follows a colon in a yaml message is such a quote; so is V8's `Unexpected token
 * 'x', ..."text"... is not valid JSON`, which gives no position.
 */
function syntaxError(error: unknown, text: string, lines: LineCounter): string {
  const message = (error as Error).message;
  if (error instanceof YAMLError) {
    const [offset = -1] = error.pos;
    const { line, col } = offset < 0 ? { line: 0, col: 0 } : lines.linePos(offset);
    return `${line > 0 ? ` at line ${line}, column ${col}` : ''}: ${message.replace(/:[\s\S]*$/, '')}`;
  }
  const at = / in JSON at position (\d+)/.exec(message);
  if (at) {
    const before = text.slice(0, Number(at[1])).split('\n');
    return ` at line ${before.length}, column ${(before.at(-1) ?? '').length + 1}: ${message.slice(0, at.index)}`;
  }
  if (error instanceof SyntaxError && !message.startsWith('Unexpected end')) return ': Unexpected token';
  // The end of the text, or not the parser's (yaml's alias count, against an alias bomb).
  return `: ${message}`;
}
