import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, jwtVerify } from 'jose';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { synth } from '../helpers/images.js';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';
import { mountReadOnly } from '../helpers/tiny-disk.js';

/**
 * The real command line (README "Command line"), spawned as a child process the way a user runs
 * it: its own environment (PATH and HOME plus what a test sets, never this process's PIXGATE_*),
 * exit codes, stdout and stderr. Each spawn costs about a second of tsx start-up, so the tests
 * share data dirs where they can.
 */

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BASE_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir() };
const REQUIRED = (name: string) => `  - ${name}: required to verify access tokens (or try \`pixgate dev\`)`;

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Root reads a file whatever its mode, so a test that needs an unreadable file runs the command
 * as root without the two capabilities that allow it (setpriv, from util-linux). Not as another
 * user: that user would need to read the checkout too, which a private clone does not allow.
 */
const OBEYING_FILE_MODES =
  process.getuid?.() === 0
    ? [
        'setpriv',
        '--inh-caps=-dac_override,-dac_read_search',
        '--bounding-set=-dac_override,-dac_read_search',
      ]
    : [];

interface SpawnOptions {
  /** Let file modes apply even when the tests run as root (see OBEYING_FILE_MODES). */
  readonly obeyFileModes?: boolean;
}

function spawnCli(
  args: readonly string[],
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): ChildProcess {
  const [command = process.execPath, ...rest] = [
    ...(options.obeyFileModes ? OBEYING_FILE_MODES : []),
    process.execPath,
    '--import',
    'tsx',
    'src/cli/main.ts',
    ...args,
  ];
  return spawn(command, rest, {
    cwd: REPO,
    env: { ...BASE_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Resolves when the child has exited, with everything it wrote. */
function exited(child: ChildProcess, output = collect(child)): Promise<Exit> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, ...output() }));
  });
}

function collect(child: ChildProcess): () => { stdout: string; stderr: string } {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return () => ({ stdout, stderr });
}

const run = (args: readonly string[], env: Record<string, string> = {}, options: SpawnOptions = {}) =>
  exited(spawnCli(args, env, options));

interface Running {
  readonly url: string;
  readonly port: number;
  output(): { stdout: string; stderr: string };
  /** SIGTERM, then the exit (the caller asserts how fast). */
  stop(): Promise<Exit>;
  /** SIGKILL, as a crash (OOM killer, power cut for the process): no shutdown code runs. */
  kill(): Promise<Exit>;
}

/** `pixgate serve` / `dev` on port 0: the URL comes from the "pixgate listening" log line. */
async function startCli(args: readonly string[], env: Record<string, string>): Promise<Running> {
  const child = spawnCli(args, { PIXGATE_PORT: '0', ...env });
  const output = collect(child);
  const done = exited(child, output);
  const url = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      for (const line of output().stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'pixgate listening' && entry.url) {
          child.stdout?.off('data', onData);
          resolve(entry.url);
        }
      }
    };
    child.stdout?.on('data', onData);
    done.then(
      (exit) =>
        reject(new Error(`pixgate ${args[0]} exited (${exit.code}) before listening:\n${exit.stderr}`)),
      reject,
    );
  });
  return {
    url,
    port: Number(new URL(url).port),
    output,
    stop() {
      child.kill('SIGTERM');
      return done;
    },
    kill() {
      child.kill('SIGKILL');
      return done;
    },
  };
}

/** node:http, because fetch will not let a test choose the Host header. */
function getWithHost(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The lines of the import summary: reason → the files skipped for it. */
function skippedByReason(stdout: string): Map<string, string[]> {
  const skipped = new Map<string, string[]>();
  let names: string[] | undefined;
  for (const line of stdout.split('\n')) {
    const reason = /^Skipped \d+: (.+)$/.exec(line)?.[1];
    if (reason !== undefined) {
      names = [];
      skipped.set(reason, names);
    } else if (line.startsWith('  ') && names) names.push(line.trim());
  }
  return skipped;
}

/** Not the dev default: the dev banner's token command must then name it. */
const DEV_BANNER_AUDIENCE = 'https://images.example/api';

let scratch: string;
/** Shared by `token` and `dev`: the dev issuer key is created by the first, served by the second. */
let devDataDir: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'pixgate-cli-'));
  // A name a shell would split or unquote: the dev banner's printed command must quote it.
  devDataDir = join(scratch, "dev data's");
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('usage', () => {
  it('invalid settings: exit code 2 and every problem on stderr', async () => {
    const exit = await run(['serve', '--bogus', '1'], {
      PIXGATE_PORT: 'abc',
      PIXGATE_TRUST_PROXY: 'yes',
      PIXGATE_DATA_DIR: join(scratch, 'never'),
    });
    expect(exit.code).toBe(2);
    expect(exit.stdout).toBe('');
    const [heading, ...problems] = exit.stderr.trimEnd().split('\n');
    expect(heading).toBe('pixgate serve: invalid settings or arguments:');
    expect(problems.sort()).toEqual(
      [
        '  - --bogus: unknown option',
        '  - PIXGATE_PORT: Expected integer 0..65535 but received "abc"',
        '  - PIXGATE_TRUST_PROXY: Expected true, false, 1 or 0 but received "yes"',
        REQUIRED('PIXGATE_ISSUER'),
        REQUIRED('PIXGATE_AUDIENCE'),
        REQUIRED('PIXGATE_JWKS_URL'),
      ].sort(),
    );
  });

  it('no command: the usage and exit code 2; --help: exit code 0; an unknown command: 2', async () => {
    const [none, help, unknown, keygenJunk] = await Promise.all([
      run([]),
      run(['--help']),
      run(['frobnicate']),
      run(['keygen', '--length']),
    ]);
    expect(none.code).toBe(2);
    expect(none.stdout).toContain('Usage:\n  pixgate serve');
    expect(help.code).toBe(0);
    expect(help.stdout).toBe(none.stdout);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe(
      'pixgate frobnicate: invalid settings or arguments:\n  - unknown command "frobnicate" (try pixgate --help)\n',
    );
    // A command that loads no settings still reports a malformed option.
    expect(keygenJunk.code).toBe(2);
    expect(keygenJunk.stdout).toBe('');
    expect(keygenJunk.stderr).toContain('  - --length: expected a value\n');
  });

  it('serve and dev refuse a stray argument (`-p 80`) rather than start without it', async () => {
    // The servers start when an argument is wrongly let through: stopped after a while, exit 0.
    const bounded = (args: readonly string[]) => {
      const child = spawnCli(args, { PIXGATE_PORT: '0', PIXGATE_DATA_DIR: join(scratch, 'stray-data') });
      const timer = setTimeout(() => child.kill('SIGTERM'), 8000);
      return exited(child).finally(() => clearTimeout(timer));
    };
    const [short, word] = await Promise.all([bounded(['dev', '-p', '80']), bounded(['serve', 'now'])]);
    expect(short.code).toBe(2);
    expect(short.stderr).toBe(
      'pixgate dev: invalid settings or arguments:\n  - unexpected argument "-p" (options are written --name value)\n  - unexpected argument "80" (options are written --name value)\n',
    );
    expect(word.code).toBe(2);
    // With the settings' problems, all at once.
    expect(word.stderr).toContain('  - unexpected argument "now" (options are written --name value)\n');
    expect(word.stderr).toContain(REQUIRED('PIXGATE_ISSUER'));
  });

  it('--help after an unknown command is still an unknown command: exit code 2', async () => {
    const exit = await run(['frobnicate', '--help']);
    expect(exit.code).toBe(2);
    expect(exit.stderr).toContain('unknown command "frobnicate"');
  });

  it('names every object has (constructor, __proto__) are unknown commands and options like any other', async () => {
    const [ctorCommand, toStringCommand, proto, twice] = await Promise.all([
      run(['constructor']),
      run(['toString']),
      run(['keygen', '--__proto__', '1']),
      run(['keygen', '--toString', '1']),
    ]);
    for (const [exit, word] of [
      [ctorCommand, 'constructor'],
      [toStringCommand, 'toString'],
    ] as const) {
      expect(exit.code).toBe(2);
      expect(exit.stderr).toBe(
        `pixgate ${word}: invalid settings or arguments:\n  - unknown command "${word}" (try pixgate --help)\n`,
      );
    }
    // keygen takes no option: one that vanished on the way printed a key.
    expect(proto.code).toBe(2);
    expect(proto.stdout).toBe('');
    expect(twice.code).toBe(2);
    expect(twice.stderr).not.toContain('given more than once');
  });

  it('an empty --config is a missing path, not the working directory', async () => {
    const exit = await run(['dev', '--config='], { PIXGATE_DATA_DIR: join(scratch, 'empty-config-data') });
    expect(exit.code).toBe(2);
    expect(exit.stderr).toBe(
      'pixgate dev: invalid settings or arguments:\n  - --config: expected a file path\n',
    );
  });

  it('a config file past 1 MiB is the wrong file: refused at once, not read into memory', async () => {
    const child = spawnCli(['dev', '--config', '/dev/zero'], {
      PIXGATE_DATA_DIR: join(scratch, 'zero-data'),
    });
    // Read to the end, /dev/zero never ends: the process grows until stopped.
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const exit = await exited(child).finally(() => clearTimeout(timer));
    expect(exit.code).toBe(2);
    expect(exit.stderr).toBe(
      'pixgate dev: invalid settings or arguments:\n  - --config: /dev/zero is larger than 1 MiB: not a settings file\n',
    );
  });

  it('a config file that does not parse: where, never the text around it (it may hold a secret)', async () => {
    const dir = join(scratch, 'config-secrets');
    await mkdir(dir, { recursive: true });
    const SECRET = 's3cr3t-d0-not-print';
    const files = {
      'token.json': `{"metricsToken": ${SECRET}}`,
      'quote.yaml': `port: 8080\nmetricsToken: "${SECRET}\n`,
      'nested.yaml': `metricsToken: ${SECRET}\n  port: [1\n`,
      // Valid YAML with a warning (an unknown tag): the yaml package prints it with the line.
      'tag.yaml': `metricsToken: !!secret ${SECRET}\n`,
    };
    await Promise.all(Object.entries(files).map(([name, text]) => writeFile(join(dir, name), text)));
    const exits = await Promise.all(
      Object.keys(files).map((name) =>
        run(['dev', '--config', join(dir, name)], { PIXGATE_PORT: 'x', PIXGATE_DATA_DIR: join(dir, 'data') }),
      ),
    );
    const [json, quote, nested, tag] = exits;
    for (const exit of exits) {
      expect(exit.code).toBe(2);
      expect(exit.stderr).not.toContain(SECRET.slice(0, 4));
    }
    expect(json?.stderr).toContain(`--config: ${join(dir, 'token.json')} is not valid JSON`);
    expect(quote?.stderr).toContain(
      `--config: ${join(dir, 'quote.yaml')} is not valid YAML at line 3, column 1: Missing closing "quote\n`,
    );
    expect(nested?.stderr).toMatch(/nested\.yaml is not valid YAML at line 1, column 15: \w/);
    expect(tag?.stderr).toBe(
      'pixgate dev: invalid settings or arguments:\n  - PIXGATE_PORT: Expected integer 0..65535 but received "x"\n',
    );
  });
});

describe('keygen', () => {
  it('prints kid:base64secret with 32 random bytes, different each run', async () => {
    const runs = await Promise.all([run(['keygen']), run(['keygen'])]);
    const secrets = runs.map((exit) => {
      expect(exit.code).toBe(0);
      const match = /^([A-Za-z0-9_-]+):([A-Za-z0-9+/]+={0,2})\n$/.exec(exit.stdout);
      expect(match).not.toBeNull();
      const secret = Buffer.from(match?.[2] ?? '', 'base64');
      expect(secret).toHaveLength(32);
      return secret.toString('hex');
    });
    expect(secrets[0]).not.toBe(secrets[1]);
    expect(runs[0]?.stdout.split(':')[0]).not.toBe(runs[1]?.stdout.split(':')[0]);
  });
});

describe('sign', () => {
  it('prints a signed URL the server serves without a token; without keys it is exit 2', async () => {
    const dataDir = join(scratch, 'sign-data');
    const keys = `k1:${Buffer.alloc(32, 7).toString('base64')}`;
    let server = await startTestServer({ dev: true, signingKeys: keys }, { dataDir });
    const token = await server.token('alice', 'images:write');
    const body = await sharp({ create: { width: 800, height: 400, channels: 3, background: '#369' } })
      .png()
      .toBuffer();
    const created = await fetch(`${server.url}/v1/images`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'image/png' },
      body,
    });
    const { id } = (await created.json()) as { id: string };
    await server.close();

    const env = { PIXGATE_DATA_DIR: dataDir, PIXGATE_SIGNING_KEYS: keys };
    const [signed, noKeys, badWidth] = await Promise.all([
      run(['sign', id, '--w', '360', '--format', 'webp', '--ttl', '1h'], env),
      run(['sign', id, '--w', '360'], { PIXGATE_DATA_DIR: dataDir }),
      run(['sign', id, '--w', '0'], env),
    ]);
    expect(signed.stderr).toMatch(/^expires \d{4}-/);
    expect(signed.code).toBe(0);
    const url = signed.stdout.trim();
    expect(url).toMatch(new RegExp(`^/v1/images/${id}\\?format=webp&w=360&exp=\\d+&kid=k1&sig=[\\w-]{43}$`));
    expect(noKeys.code).toBe(2);
    expect(noKeys.stderr).toContain('PIXGATE_SIGNING_KEYS: required to sign URLs');
    expect(badWidth.code).toBe(2);
    expect(badWidth.stderr).toContain('Expected integer 1..4096 for w but received 0');

    server = await startTestServer({ dev: true, signingKeys: keys }, { dataDir });
    try {
      const response = await fetch(`${server.url}${url}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/webp');
      expect((await sharp(Buffer.from(await response.arrayBuffer())).metadata()).width).toBe(360);
    } finally {
      await server.close();
    }
  });

  // A mistyped PIXGATE_DATA_DIR (or sign run from another directory, with the default ./data)
  // made an empty database there, and with --dev true a signing key, before "no image".
  it('refuses a data dir that holds no pixgate database, and writes nothing there', async () => {
    const missing = join(scratch, 'sign-typo');
    const keys = `k1:${Buffer.alloc(32, 7).toString('base64')}`;
    const [withKeys, devKey] = await Promise.all([
      run(['sign', 'AAAAAAAAAAAAAAAAAAAAAA'], { PIXGATE_DATA_DIR: missing, PIXGATE_SIGNING_KEYS: keys }),
      run(['sign', 'AAAAAAAAAAAAAAAAAAAAAA', '--dev', 'true'], { PIXGATE_DATA_DIR: missing }),
    ]);
    for (const result of [withKeys, devKey]) {
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`no pixgate database in ${missing}`);
    }
    expect(existsSync(missing)).toBe(false);
  });
});

describe('token', () => {
  let server: TestServer | undefined;
  afterAll(async () => {
    await server?.close();
  });

  it('mints dev tokens the dev server accepts, with the scope asked for; a bad --ttl is exit 2', async () => {
    const env = { PIXGATE_DATA_DIR: devDataDir };
    // The first run creates the dev issuer key; the next two run together and share it.
    const writer = await run(['token', '--sub', 'alice', '--ttl', '15m'], env);
    const [reader, badTtl] = await Promise.all([
      run(['token', '--sub', 'bob', '--scope', 'images:read'], env),
      run(['token', '--sub', 'alice', '--ttl', '8d'], env),
    ]);
    expect(writer.code).toBe(0);
    expect(reader.code).toBe(0);
    const writeToken = writer.stdout.trim();
    const readToken = reader.stdout.trim();
    const claims = decodeJwt(writeToken);
    expect(claims).toMatchObject({ sub: 'alice', iss: 'pixgate-dev', aud: 'pixgate' });
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(900);
    expect(decodeJwt(readToken)).toMatchObject({ sub: 'bob', scope: 'images:read' });

    expect(badTtl.code).toBe(2);
    expect(badTtl.stdout).toBe('');
    expect(badTtl.stderr).toBe(
      'pixgate token: invalid settings or arguments:\n  - --ttl: expected a duration from 1s to 7d, such as 3600, 15m or 1h\n',
    );

    server = await startTestServer({ dev: true }, { dataDir: devDataDir });
    const body = await sharp({ create: { width: 40, height: 30, channels: 3, background: '#369' } })
      .jpeg()
      .toBuffer();
    const upload = (token: string) =>
      fetch(`${server?.url}/v1/images?visibility=private`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'image/jpeg' },
        body,
      });
    const created = await upload(writeToken);
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ owner: 'alice', width: 40, height: 30, format: 'jpeg' });
    const refused = await upload(readToken);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('insufficient_scope');
  });
});

describe('import', () => {
  it('copies the images in like uploads and says what it skipped and why', async () => {
    const source = join(scratch, 'photos');
    const dataDir = join(scratch, 'import-data');
    await mkdir(join(source, 'trip'), { recursive: true });
    const noisy = sharp({
      create: {
        width: 160,
        height: 120,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 60 },
      },
    });
    const jpeg = await noisy.clone().jpeg({ quality: 90 }).toBuffer();
    await writeFile(join(source, 'beach.jpg'), jpeg);
    await writeFile(join(source, 'trip', 'map.png'), await noisy.clone().resize(64, 48).png().toBuffer());
    await writeFile(join(source, 'notes.txt'), 'not an image at all\n');
    await writeFile(join(source, 'trip', 'cut.jpg'), jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
    await writeFile(join(source, 'empty.jpg'), Buffer.alloc(0));

    const exit = await run(['import', source, '--owner', 'alice', '--visibility', 'preview'], {
      PIXGATE_DATA_DIR: dataDir,
    });
    expect(exit.stderr).not.toContain('invalid settings');
    expect(exit.code).toBe(0);
    expect(exit.stdout.split('\n')[0]).toBe('Imported 2 of 5 files for alice.');
    const skipped = skippedByReason(exit.stdout);
    expect(skipped).toEqual(
      new Map([
        ['Not an image: expected JPEG, PNG, WebP, GIF, AVIF, TIFF or SVG', ['notes.txt']],
        ['The upload is empty', ['empty.jpg']],
        ['The image is corrupt or truncated', [join('trip', 'cut.jpg')]],
      ]),
    );
    // Temp files are consumed whether the file was kept or refused.
    expect(await readdir(join(dataDir, 'tmp')).catch(() => [])).toEqual([]);

    const server = await startTestServer({ dev: true }, { dataDir });
    try {
      const token = await server.token('alice');
      const response = await fetch(`${server.url}/v1/images`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(200);
      const list = (await response.json()) as {
        items: { owner: string; visibility: string; format: string; width: number; height: number }[];
        nextCursor: string | null;
      };
      expect(list.nextCursor).toBeNull();
      expect(
        list.items
          .map(({ owner, visibility, format, width, height }) => ({
            owner,
            visibility,
            format,
            width,
            height,
          }))
          .sort((a, b) => a.format.localeCompare(b.format)),
      ).toEqual([
        { owner: 'alice', visibility: 'preview', format: 'jpeg', width: 160, height: 120 },
        { owner: 'alice', visibility: 'preview', format: 'png', width: 64, height: 48 },
      ]);
    } finally {
      await server.close();
    }
  });
});

describe('--owner', () => {
  it('is refused past 256 characters, as POST /v1/images refuses such an owner', async () => {
    const long = 'a'.repeat(257);
    const env = { PIXGATE_DATA_DIR: join(scratch, 'owner-data') };
    const [imported, registered] = await Promise.all([
      run(['import', scratch, '--owner', long], env),
      run(['register', 'a.jpg', '--owner', long], env),
    ]);
    for (const exit of [imported, registered]) {
      expect(exit.code).toBe(2);
      expect(exit.stdout).toBe('');
      expect(exit.stderr).toContain('  - --owner: expected at most 256 characters\n');
    }
  });
});

describe('import interrupted with Ctrl-C', () => {
  it('stops between two files: a summary naming what is not in, exit code 130, no temp file', async () => {
    const source = join(scratch, 'many-photos');
    const dataDir = join(scratch, 'interrupted-data');
    await mkdir(source, { recursive: true });
    const noisy = sharp({
      create: {
        width: 1200,
        height: 900,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 60 },
      },
    });
    const jpeg = await noisy.jpeg({ quality: 90 }).toBuffer();
    const total = 120;
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        writeFile(join(source, `${String(i).padStart(3, '0')}.jpg`), jpeg),
      ),
    );
    const child = spawnCli(['import', source, '--owner', 'alice'], { PIXGATE_DATA_DIR: dataDir });
    const done = exited(child);
    // Midway: once the first originals are in.
    await vi.waitFor(
      async () =>
        expect((await readdir(join(dataDir, 'originals')).catch(() => [])).length).toBeGreaterThan(0),
      { timeout: 20_000, interval: 20 },
    );
    child.kill('SIGINT');
    const exit = await done;
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(130);
    const imported = Number(/^Imported (\d+) of 120 files for alice\.$/m.exec(exit.stdout)?.[1]);
    expect(imported).toBeGreaterThan(0);
    expect(imported).toBeLessThan(total);
    const notIn = skippedByReason(exit.stdout).get('not imported: interrupted (Ctrl-C) before it was read');
    expect(exit.stdout).toContain(
      `Skipped ${total - imported}: not imported: interrupted (Ctrl-C) before it was read\n`,
    );
    // The first 20 are named, in order: a rerun can start there.
    expect(notIn?.[0]).toBe(`${String(imported).padStart(3, '0')}.jpg`);
    expect(await readdir(join(dataDir, 'tmp'))).toEqual([]);
    const db = new BetterSqlite3(join(dataDir, 'pixgate.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM images').get()).toEqual({ n: imported });
    } finally {
      db.close();
    }
  });
});

describe('import of symbolic links', () => {
  // Regression: Dirent.isFile() is false for a link, so linked files were left out of both the
  // import and the count, without a word.
  it('imports a link to a file; skips a dangling link and a link to a directory, saying why', async () => {
    const outside = join(scratch, 'links-elsewhere');
    const source = join(scratch, 'links-photos');
    const dataDir = join(scratch, 'links-data');
    await mkdir(join(outside, 'album'), { recursive: true });
    await mkdir(join(source, 'trip'), { recursive: true });
    const png = await sharp({ create: { width: 8, height: 6, channels: 3, background: '#369' } })
      .png()
      .toBuffer();
    await writeFile(join(source, 'own.png'), png);
    await writeFile(join(outside, 'linked.png'), png);
    await writeFile(join(outside, 'album', 'inside.png'), png);
    await symlink(join(outside, 'linked.png'), join(source, 'trip', 'linked.png'));
    await symlink(join(outside, 'gone.png'), join(source, 'dangling.png'));
    await symlink(join(outside, 'album'), join(source, 'album'));
    // A link to its own parent: followed, the walk would never end.
    await symlink('..', join(source, 'trip', 'up'));

    const exit = await run(['import', source, '--owner', 'alice'], { PIXGATE_DATA_DIR: dataDir });
    expect(exit.code).toBe(0);
    expect(exit.stdout.split('\n')[0]).toBe('Imported 2 of 5 files for alice.');
    expect(skippedByReason(exit.stdout)).toEqual(
      new Map([
        ['a link to nothing (dangling)', ['dangling.png']],
        ['a link to a directory (not followed: links can loop)', ['album', join('trip', 'up')]],
      ]),
    );
  });
});

describe('import of special files', () => {
  // Regression: FIFOs, sockets and devices were left out of both the import and the count,
  // without a word. They must not be opened either: opening a FIFO waits for a writer.
  it('skips a FIFO and a socket without opening them, counting and listing them', async () => {
    const source = join(scratch, 'special-photos');
    const dataDir = join(scratch, 'special-data');
    await mkdir(join(source, 'trip'), { recursive: true });
    const png = await sharp({ create: { width: 8, height: 6, channels: 3, background: '#369' } })
      .png()
      .toBuffer();
    await writeFile(join(source, 'photo.png'), png);
    const mkfifo = spawnSync('mkfifo', [join(source, 'pipe.jpg')]);
    expect(mkfifo.status, mkfifo.stderr.toString()).toBe(0);
    const socket = createServer();
    await new Promise<void>((resolve) => socket.listen(join(source, 'trip', 'socket.png'), resolve));
    try {
      const exit = await run(['import', source, '--owner', 'alice'], { PIXGATE_DATA_DIR: dataDir });
      expect(exit.code).toBe(0);
      expect(exit.stdout.split('\n')[0]).toBe('Imported 1 of 3 files for alice.');
      expect(skippedByReason(exit.stdout)).toEqual(
        new Map([['not a regular file', ['pipe.jpg', join('trip', 'socket.png')]]]),
      );
    } finally {
      await new Promise((resolve) => socket.close(resolve));
    }
  });
});

describe('import of a file over the size cap', () => {
  // Regression: ingest stops reading a file past PIXGATE_MAX_UPLOAD_BYTES, which destroys its
  // read stream with an AbortError; import took that for a read failure, so a file an upload
  // would refuse with 413 was "failed: The operation was aborted" with exit code 1.
  it('is skipped as too large, with exit code 0, as an upload is refused with 413', async () => {
    const source = join(scratch, 'too-large-photos');
    const dataDir = join(scratch, 'too-large-data');
    await mkdir(source, { recursive: true });
    // Larger than a few of the read stream's 64 KiB chunks: when ingest stops after the first,
    // the file is certainly not read to its end (a file read whole before ingest stopped would
    // be no AbortError, and the test would pass without the fix).
    const noisy = sharp({
      create: {
        width: 400,
        height: 300,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 60 },
      },
    });
    const large = await noisy.png().toBuffer();
    const small = await sharp({ create: { width: 8, height: 6, channels: 3, background: '#369' } })
      .png()
      .toBuffer();
    expect(large.length).toBeGreaterThan(3 * 64 * 1024);
    expect(small.length).toBeLessThan(4096);
    await writeFile(join(source, 'large.png'), large);
    await writeFile(join(source, 'small.png'), small);

    const exit = await run(['import', source, '--owner', 'alice'], {
      PIXGATE_DATA_DIR: dataDir,
      PIXGATE_MAX_UPLOAD_BYTES: '4096',
    });
    expect(exit.code).toBe(0);
    expect(exit.stdout.split('\n')[0]).toBe('Imported 1 of 2 files for alice.');
    expect([...skippedByReason(exit.stdout)]).toEqual([
      ['The image is larger than the limit of 4096 bytes', ['large.png']],
    ]);
    expect(await readdir(join(dataDir, 'tmp'))).toEqual([]);
  });
});

describe('import failures', () => {
  // Regression: the file's read stream was opened before ingest listened to it, so a file that
  // could not be opened was an uncaught 'error' event: the process died without a summary.
  it('a file that cannot be read is a failure in the summary and exit code 1, not a crash', async () => {
    const home = await mkdtemp(join(tmpdir(), 'pixgate-cli-unreadable-'));
    try {
      const source = join(home, 'photos');
      const dataDir = join(home, 'data');
      await mkdir(source, { recursive: true });
      await mkdir(dataDir);
      const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#369' } })
        .png()
        .toBuffer();
      await writeFile(join(source, 'good.png'), png);
      await writeFile(join(source, 'locked.png'), png, { mode: 0o000 });

      const exit = await run(
        ['import', source, '--owner', 'alice'],
        { PIXGATE_DATA_DIR: dataDir },
        { obeyFileModes: true },
      );
      expect(exit.stderr).not.toContain("Unhandled 'error' event");
      expect(exit.code).toBe(1);
      expect(exit.stdout.split('\n')[0]).toBe('Imported 1 of 2 files for alice.');
      expect([...skippedByReason(exit.stdout)]).toEqual([
        [`failed: EACCES: permission denied, open '${join(source, 'locked.png')}'`, ['locked.png']],
      ]);
      expect(await readdir(join(dataDir, 'tmp'))).toEqual([]);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('a temp file that cannot be written is a failure and exit code 1, not a skipped file', async () => {
    const source = join(scratch, 'read-only-tmp-photos');
    const dataDir = join(scratch, 'read-only-tmp-data');
    await mkdir(source, { recursive: true });
    await mkdir(join(dataDir, 'tmp'), { recursive: true });
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#369' } })
      .png()
      .toBuffer();
    await writeFile(join(source, 'photo.png'), png);
    const readOnly = await mountReadOnly(join(dataDir, 'tmp'));
    try {
      const exit = await run(['import', source, '--owner', 'alice'], { PIXGATE_DATA_DIR: dataDir });
      expect(exit.code).toBe(1);
      expect(exit.stdout.split('\n')[0]).toBe('Imported 0 of 1 files for alice.');
      expect([...skippedByReason(exit.stdout)]).toEqual([
        ['failed: The image could not be stored (temp file: EROFS)', ['photo.png']],
      ]);
    } finally {
      await readOnly.unmount();
    }
  });
});

describe('serve', () => {
  it('answers /healthz and exits 0 promptly on SIGTERM', async () => {
    const serve = await startCli(['serve'], {
      PIXGATE_DATA_DIR: join(scratch, 'serve-data'),
      PIXGATE_ISSUER: 'https://login.example.com/',
      PIXGATE_AUDIENCE: 'https://images.example.com',
      // Never fetched: no token is sent.
      PIXGATE_JWKS_URL: 'http://127.0.0.1:9/jwks.json',
    });
    const health = await fetch(`${serve.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect(serve.output().stderr).not.toContain('DEV MODE');
    // A connection that never sends a request, as a browser's preconnect: it must not hold the
    // shutdown (Node does not count it as idle, so it would be waited for forever).
    const { port } = new URL(serve.url);
    const preconnect = connect(Number(port), '127.0.0.1');
    await new Promise((resolve) => preconnect.once('connect', resolve));
    preconnect.on('error', () => {});

    const started = Date.now();
    const exit = await serve.stop();
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(exit.stdout).toContain('"msg":"shutting down"');
  });
});

describe('shutdown with an upload that stalls', () => {
  it('SIGTERM cuts it off after a grace period: exit 0, no temp file, no original, no row', async () => {
    const dataDir = join(scratch, 'stalled-upload');
    const server = await startCli(['dev'], { PIXGATE_DATA_DIR: dataDir });
    const token = (
      await run(['token', '--sub', 'alice', '--scope', 'images:write'], { PIXGATE_DATA_DIR: dataDir })
    ).stdout.trim();
    // Half of the announced body, then silence: a client on a dead link, or a slowloris.
    const socket = connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      [
        'POST /v1/images HTTP/1.1',
        `Host: 127.0.0.1:${server.port}`,
        `Authorization: Bearer ${token}`,
        'Content-Type: image/jpeg',
        'Content-Length: 200000',
        '',
        '',
      ].join('\r\n'),
    );
    socket.write(Buffer.alloc(100_000, 1));
    const tmp = join(dataDir, 'tmp');
    for (let tries = 0; (await readdir(tmp).catch(() => [])).length === 0 && tries < 100; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await readdir(tmp)).toHaveLength(1);

    const started = Date.now();
    const exit = await Promise.race([
      server.stop(),
      new Promise<Exit>((resolve) =>
        setTimeout(() => resolve({ code: null, signal: null, stdout: 'still running', stderr: '' }), 20_000),
      ),
    ]);
    socket.destroy();
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(15_000);
    // The server cut it, not the client: not a 499 client_closed line.
    const lines = exit.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.filter((line) => line.route === '/v1/images')).toEqual([
      expect.objectContaining({
        method: 'POST',
        status: 503,
        code: 'unavailable',
        detail: 'The server shut down before the response was complete',
      }),
    ]);
    expect(await readdir(tmp)).toEqual([]);
    expect(await readdir(join(dataDir, 'originals'), { recursive: true }).catch(() => [])).toEqual([]);
    const listed = await startTestServer({ dev: true }, { dataDir });
    try {
      const answer = await fetch(`${listed.url}/v1/images`, {
        headers: { authorization: `Bearer ${await listed.token('alice')}` },
      });
      expect(await answer.json()).toEqual({ items: [], nextCursor: null });
    } finally {
      await listed.close();
    }
  }, 40_000);
});

describe('a crash between storing an upload and recording it', () => {
  // Regression: an upload's original is moved into the origin, then its row is inserted. A crash
  // in between (kill -9, the OOM killer) left an original that no row names: never served, never
  // counted in a quota, never removed, one more with every such crash.
  it('leaves an original no row names only until a sweep an hour later; never removes it sooner', async () => {
    const dataDir = join(scratch, 'crash-before-row');
    const originals = join(dataDir, 'originals');
    const tmp = join(dataDir, 'tmp');
    const originalFiles = async () =>
      (await readdir(originals, { recursive: true, withFileTypes: true }).catch(() => []))
        .filter((entry) => entry.isFile())
        .map((entry) => entry.name);
    const server = await startCli(['dev'], { PIXGATE_DATA_DIR: dataDir });
    const token = (
      await run(['token', '--sub', 'alice', '--scope', 'images:write'], { PIXGATE_DATA_DIR: dataDir })
    ).stdout.trim();
    // Another connection holds SQLite's write lock, so the server's insert waits (retried for up
    // to 5 s) with the original already in place.
    const holder = new BetterSqlite3(join(dataDir, 'pixgate.db'));
    holder.exec('BEGIN IMMEDIATE');
    try {
      const upload = fetch(`${server.url}/v1/images`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'image/png' },
        body: (await synth('png', 64, 48)).body,
      }).catch(() => undefined);
      for (let tries = 0; (await originalFiles()).length === 0 && tries < 80; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await originalFiles()).toHaveLength(1);
      expect((await server.kill()).signal).toBe('SIGKILL');
      await upload;
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }

    // Fresh, it may be an upload another process is about to record: a start leaves it.
    await (await startTestServer({ dev: true }, { dataDir })).close();
    expect(await originalFiles()).toHaveLength(1);

    // What the crash left, untouched for two hours: the next start removes the original.
    const ago = new Date(Date.now() - 2 * 60 * 60 * 1000);
    for (const name of await readdir(tmp)) await utimes(join(tmp, name), ago, ago);
    const swept = await startTestServer({ dev: true }, { dataDir });
    try {
      expect(await originalFiles()).toEqual([]);
      expect(await readdir(tmp)).toEqual([]);
      const answer = await fetch(`${swept.url}/v1/images`, {
        headers: { authorization: `Bearer ${await swept.token('alice')}` },
      });
      expect(await answer.json()).toEqual({ items: [], nextCursor: null });
    } finally {
      await swept.close();
    }
  }, 40_000);
});

describe('a crash in the middle of a delete', () => {
  // Regression: a DELETE cut short by a crash after the original went but before the row did left
  // the image listed, without its original (every new variant and the original a 404) and its
  // cached variants still served, until someone deleted it again.
  it('is finished by a sweep an hour later: row, original and variants all gone', async () => {
    const dataDir = join(scratch, 'crash-in-delete');
    const server = await startCli(['dev'], { PIXGATE_DATA_DIR: dataDir });
    const token = (
      await run(['token', '--sub', 'alice', '--scope', 'images:write'], { PIXGATE_DATA_DIR: dataDir })
    ).stdout.trim();
    const auth = { authorization: `Bearer ${token}` };
    const stored = await fetch(`${server.url}/v1/images?visibility=public`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'image/png' },
      body: (await synth('png', 64, 48)).body,
    });
    const { id } = (await stored.json()) as { id: string };
    expect((await fetch(`${server.url}/v1/images/${id}?w=20`)).status).toBe(200);
    // The DELETE waits for SQLite's write lock (its whole process with it): killed there.
    const holder = new BetterSqlite3(join(dataDir, 'pixgate.db'));
    holder.exec('BEGIN IMMEDIATE');
    try {
      const deleting = fetch(`${server.url}/v1/images/${id}`, { method: 'DELETE', headers: auth }).catch(
        () => undefined,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect((await server.kill()).signal).toBe('SIGKILL');
      await deleting;
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    // The unlucky moment: the original had gone, the row not yet.
    await rm(join(dataDir, 'originals', id.slice(0, 2), id));

    const ago = new Date(Date.now() - 2 * 60 * 60 * 1000);
    const tmp = join(dataDir, 'tmp');
    for (const name of await readdir(tmp)) await utimes(join(tmp, name), ago, ago);
    const swept = await startTestServer({ dev: true }, { dataDir });
    try {
      const answer = await fetch(`${swept.url}/v1/images`, {
        headers: { authorization: `Bearer ${await swept.token('alice')}` },
      });
      expect(await answer.json()).toEqual({ items: [], nextCursor: null });
      expect((await fetch(`${swept.url}/v1/images/${id}?w=20`)).status).toBe(401);
      expect(await readdir(tmp)).toEqual([]);
    } finally {
      await swept.close();
    }
  }, 40_000);
});

describe('serve with PIXGATE_DEV=true', () => {
  it('is dev mode, just as loud as `pixgate dev`', async () => {
    const serve = await startCli(['serve'], {
      PIXGATE_DATA_DIR: join(scratch, 'dev-by-env'),
      PIXGATE_DEV: 'true',
    });
    const exit = await serve.stop();
    expect(exit.code).toBe(0);
    expect(exit.stderr).toContain('pixgate DEV MODE');
  });
});

describe('dev', () => {
  let dev: Running;
  beforeAll(async () => {
    // Trusting a proxy makes fastify read X-Forwarded-Host, which a rebinding page can set itself:
    // the Host check must hold regardless.
    dev = await startCli(['dev'], {
      PIXGATE_DATA_DIR: devDataDir,
      PIXGATE_TRUST_PROXY: 'true',
      PIXGATE_AUDIENCE: DEV_BANNER_AUDIENCE,
    });
  });
  afterAll(async () => {
    const exit = await dev.stop();
    expect(exit.code).toBe(0);
  });

  it('says loudly that it is dev mode', () => {
    expect(dev.output().stderr).toContain('pixgate DEV MODE');
    expect(dev.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('prints a token command that works as printed, in a shell without its settings', async () => {
    // The line goes to stderr after the log line the start waited for went to stdout: two pipes,
    // so it may not have arrived yet.
    const printed = await vi.waitFor(() => {
      const found = /get a token with: npx pixgate (token .*)$/m.exec(dev.output().stderr)?.[1];
      expect(found).toBeDefined();
      return found as string;
    });
    // The server's data dir and audience came from the environment; the command carries them
    // itself, quoted for a shell (the data dir has a space and a quote in its name).
    expect(printed).toContain('--data-dir');
    expect(printed).toContain('--audience');
    const shell = spawn('sh', ['-c', `"$0" --import tsx src/cli/main.ts ${printed}`, process.execPath], {
      cwd: REPO,
      env: BASE_ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const minted = await exited(shell);
    expect(minted.stderr).toBe('');
    expect(minted.code).toBe(0);
    const listed = await fetch(`${dev.url}/v1/images`, {
      headers: { authorization: `Bearer ${minted.stdout.trim()}` },
    });
    expect(listed.status).toBe(200);
  });

  it('answers only requests whose Host is a loopback name (DNS rebinding)', async () => {
    const healthz = `${dev.url}/healthz`;
    for (const host of ['evil.example', `evil.example:${dev.port}`, '127.0.0.2', 'localhost.evil.example']) {
      const refused = await getWithHost(healthz, { host });
      expect(refused.status, host).toBe(403);
      expect(JSON.parse(refused.body)).toEqual({
        error: { code: 'host_not_allowed', message: 'Dev mode answers loopback host names only' },
      });
    }
    const forwarded = await getWithHost(healthz, { host: 'evil.example', 'x-forwarded-host': 'localhost' });
    expect(forwarded.status).toBe(403);

    for (const host of [
      `localhost:${dev.port}`,
      `127.0.0.1:${dev.port}`,
      `app.localhost:${dev.port}`,
      `[::1]:${dev.port}`,
    ]) {
      const served = await getWithHost(healthz, { host });
      expect(served.status, host).toBe(200);
    }
  });

  it('publishes the public key only, which verifies the tokens `pixgate token` minted', async () => {
    const response = await fetch(`${dev.url}/dev/jwks.json`);
    expect(response.status).toBe(200);
    const jwks = (await response.json()) as JSONWebKeySet;
    expect(jwks.keys).toHaveLength(1);
    const [key] = jwks.keys;
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(Object.keys(key ?? {}).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    expect(key).not.toHaveProperty('d');

    const minted = await run(['token', '--sub', 'carol'], { PIXGATE_DATA_DIR: devDataDir });
    const { payload } = await jwtVerify(minted.stdout.trim(), createLocalJWKSet(jwks), {
      issuer: 'pixgate-dev',
      audience: 'pixgate',
    });
    expect(payload.sub).toBe('carol');
  });
});
