import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEV_AUDIENCE,
  DEV_ISSUER,
  type LoadConfigOptions,
  loadConfig,
  settingNames,
} from '../../../src/config/load.js';

/**
 * The settings loader (README "Settings", SPEC §7) with every input passed explicitly: the
 * environment is a plain object here, never process.env, and `cwd` a made-up absolute path
 * (only the base of relative paths; nothing is read from it).
 */

const CWD = '/srv/pixgate';
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const TRIO = {
  PIXGATE_ISSUER: 'https://login.example.com/',
  PIXGATE_AUDIENCE: 'https://images.example.com',
  PIXGATE_JWKS_URL: 'https://login.example.com/.well-known/jwks.json',
};
const REQUIRED = (name: string) => `${name}: required to verify access tokens (or try \`pixgate dev\`)`;
const BOOLEAN = 'Expected true, false, 1 or 0';
const BYTE_SIZE = 'Expected a byte size such as 26214400 or 25MiB';
const LOOPBACK_ONLY = 'dev mode listens on loopback only (127.0.0.1, ::1 or localhost)';

/** `tool` unless said otherwise: the purpose that needs no issuer, so each test sees only its own problem. */
const load = (options: LoadConfigOptions = {}) =>
  loadConfig({ env: {}, cwd: CWD, purpose: 'tool', ...options });

function problemsOf(options: LoadConfigOptions): string[] {
  let thrown: unknown;
  try {
    load(options);
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ConfigError);
  return [...(thrown as ConfigError).problems];
}

/** Every problem, in any order: the order of the list is not part of the promise, its contents are. */
function expectProblems(options: LoadConfigOptions, expected: string[]) {
  expect(problemsOf(options).sort()).toEqual([...expected].sort());
}

let dir: string;
const file = async (name: string, contents: string) => {
  await writeFile(join(dir, name), contents);
  return name;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixgate-config-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('defaults', () => {
  it('are the ones the README promises, with paths resolved under the data dir', () => {
    expect(load()).toEqual({
      host: '127.0.0.1',
      port: 8080,
      dataDir: join(CWD, 'data'),
      requestTimeoutSeconds: 300,
      dev: false,
      issuer: undefined,
      audience: undefined,
      requireAtJwt: false,
      clockSkewSeconds: 30,
      jwksCooldownSeconds: 30,
      tokenCacheSize: 10_000,
      previewMax: 360,
      previewAnonymous: false,
      maxUploadBytes: 25 * MiB,
      maxInputPixels: 50_000_000,
      maxDimension: 4096,
      maxFrames: 100,
      sizes: [],
      strictSizes: false,
      presets: {},
      avifEffort: 2,
      avifAutoMaxPixels: 1_000_000,
      concurrency: availableParallelism(),
      queueSize: 64,
      storage: `file:${join(CWD, 'data', 'originals')}`,
      cache: `file:${join(CWD, 'data', 'cache')}`,
      memoryCacheBytes: 64 * MiB,
      diskCacheBytes: GiB,
      cacheMaxAgeSeconds: 3600,
      imageCacheSize: 10_000,
      imageCacheTtlSeconds: 5,
      s3ForcePathStyle: false,
      originTimeoutSeconds: 15,
      sessionMaxSeconds: 86400,
      cookieSamesite: 'Strict',
      jsonMaxBytes: 5 * MiB,
      corsOrigins: [],
      signingKeys: [],
      signedUrlBucket: 3600,
      rateLimit: 600,
      scrapeLimit: 1000,
      uploadLimit: 200,
      quotaBytes: 10 * GiB,
      previewBlur: 0,
      trustProxy: false,
      logLevel: 'info',
    });
  });

  it('read the browser settings of issue 3', () => {
    const config = load({
      env: {
        PIXGATE_COOKIE_SAMESITE: 'Lax',
        PIXGATE_JSON_MAX_BYTES: '1MiB',
        PIXGATE_CORS_ORIGINS: 'https://app.example, http://localhost:5173',
        PIXGATE_SESSION_MAX_SECONDS: '600',
      },
    });
    expect(config.cookieSamesite).toBe('Lax');
    expect(config.jsonMaxBytes).toBe(MiB);
    expect(config.corsOrigins).toEqual(['https://app.example', 'http://localhost:5173']);
    expect(config.sessionMaxSeconds).toBe(600);
    expect(() => load({ env: { PIXGATE_CORS_ORIGINS: 'https://app.example/path' } })).toThrow(/origins/);
    expect(() => load({ env: { PIXGATE_COOKIE_SAMESITE: 'None' } })).toThrow(/Strict or Lax/);
  });

  it('ignore environment variables that are not PIXGATE_ ones', () => {
    const config = load({ env: { PATH: '/usr/bin', HOME: '/root', PORT: '1', PIXGATEPORT: '2' } });
    expect(config.port).toBe(8080);
  });

  it('cover exactly the PIXGATE_* names of the README settings table', async () => {
    const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Settings'), readme.indexOf('## Errors'));
    // The table's rows only: the prose around it names settings SPEC §7 has that are not built.
    const table = section
      .split('\n')
      .filter((line) => line.startsWith('|'))
      .join('\n');
    const documented = new Set(table.match(/PIXGATE_[A-Z0-9_]*[A-Z0-9]/g));
    expect([...documented].sort()).toEqual(settingNames.map((s) => s.env).sort());
  });

  it('name each setting by env and flag from its key', () => {
    expect(settingNames).toContainEqual({
      key: 'maxUploadBytes',
      env: 'PIXGATE_MAX_UPLOAD_BYTES',
      flag: 'max-upload-bytes',
    });
    expect(settingNames).toContainEqual({ key: 'jwksUrl', env: 'PIXGATE_JWKS_URL', flag: 'jwks-url' });
  });
});

describe('layers: file < environment < flags', () => {
  it('each layer overrides the one before for the same key', async () => {
    const name = await file('layers.json', JSON.stringify({ port: 9000, previewMax: 400 }));
    const env = { PIXGATE_PORT: '9001', PIXGATE_PREVIEW_MAX: '500' };
    expect(load({ cwd: dir, file: name }).port).toBe(9000);
    expect(load({ cwd: dir, file: name, env }).port).toBe(9001);
    const all = load({ cwd: dir, file: name, env, flags: { port: '9002' } });
    expect(all.port).toBe(9002);
    // A key set by one layer only keeps that layer's value.
    expect(all.previewMax).toBe(500);
    expect(load({ cwd: dir, file: name, flags: { port: '9002' } }).previewMax).toBe(400);
  });

  it('a problem names the layer the bad value came from', async () => {
    const name = await file('bad-port.json', JSON.stringify({ port: 'x' }));
    expectProblems({ cwd: dir, file: name }, [`port in ${name}: Expected integer 0..65535 but received "x"`]);
    expectProblems({ cwd: dir, file: name, env: { PIXGATE_PORT: 'y' } }, [
      'PIXGATE_PORT: Expected integer 0..65535 but received "y"',
    ]);
    expectProblems({ cwd: dir, file: name, env: { PIXGATE_PORT: 'y' }, flags: { port: 'z' } }, [
      '--port: Expected integer 0..65535 but received "z"',
    ]);
  });
});

describe('config files', () => {
  const expected = {
    port: 9000,
    previewMax: 400,
    trustProxy: true,
    previewAnonymous: false,
    sizes: [100, 200],
    maxUploadBytes: 10 * MiB,
    presets: { thumb: { w: 200, h: 200, fit: 'cover' } },
  };

  it('reads JSON, with plain values and strings alike', async () => {
    const name = await file(
      'pixgate.json',
      JSON.stringify({ ...expected, previewAnonymous: '0', maxUploadBytes: '10MiB', dataDir: 'store' }),
    );
    const config = load({ cwd: dir, file: name });
    expect(config).toMatchObject(expected);
    // Relative paths in the file are relative to the working directory, like everything else.
    expect(config.dataDir).toBe(join(dir, 'store'));
  });

  it.each(['pixgate.yaml', 'pixgate.yml'])('reads YAML (%s)', async (fileName) => {
    const name = await file(
      fileName,
      [
        'port: 9000',
        'previewMax: 400',
        'trustProxy: true',
        'previewAnonymous: "false"',
        'sizes: [100, 200]',
        'maxUploadBytes: 10MiB',
        'presets:',
        '  thumb: { w: 200, h: 200, fit: cover }',
        '',
      ].join('\n'),
    );
    expect(load({ cwd: dir, file: name })).toMatchObject(expected);
  });

  it('takes a path relative to the working directory, or an absolute one', async () => {
    await file('absolute.json', '{"port": 9100}');
    expect(load({ file: join(dir, 'absolute.json') }).port).toBe(9100);
  });

  it('reports a file that cannot be read', () => {
    expectProblems({ cwd: dir, file: 'missing.json' }, [
      `--config: cannot read ${join(dir, 'missing.json')} (ENOENT)`,
    ]);
    expectProblems({ cwd: dir, file: '.' }, [`--config: cannot read ${dir} (EISDIR)`]);
  });

  it('reports a file that does not parse, or holds no object', async () => {
    const json = await file('broken.json', '{"port": ');
    const [jsonProblem, ...moreJson] = problemsOf({ cwd: dir, file: json });
    expect(moreJson).toEqual([]);
    expect(jsonProblem).toMatch(
      new RegExp(`^--config: ${join(dir, json)} is not valid JSON( at line \\d+, column \\d+)?: .+`),
    );

    const yaml = await file('broken.yaml', 'port: [\n');
    const [yamlProblem, ...moreYaml] = problemsOf({ cwd: dir, file: yaml });
    expect(moreYaml).toEqual([]);
    expect(yamlProblem).toMatch(
      new RegExp(`^--config: ${join(dir, yaml)} is not valid YAML at line \\d+, column \\d+: .+`),
    );

    for (const [name, contents] of [
      ['list.json', '[1, 2]'],
      ['number.json', '42'],
      ['null.json', 'null'],
      ['empty.yaml', ''],
    ] as const) {
      await file(name, contents);
      expectProblems({ cwd: dir, file: name }, [
        `--config: ${join(dir, name)} must hold an object of settings`,
      ]);
    }
  });

  it('names every unknown key in the file, one by one', async () => {
    const name = await file('unknown.json', JSON.stringify({ port: 9000, trustProxi: true, preview_max: 1 }));
    expectProblems({ cwd: dir, file: name }, [
      `trustProxi in ${name}: unknown setting`,
      `preview_max in ${name}: unknown setting`,
    ]);
  });
});

describe('every problem at once', () => {
  it('bad values, unknown variables and flags, a bad file, and the missing issuer', () => {
    expectProblems(
      {
        purpose: 'serve',
        cwd: dir,
        file: 'missing.yaml',
        env: {
          PIXGATE_PORT: 'abc',
          PIXGATE_TRUST_PROXY: 'yes',
          PIXGATE_TRUST_PROXI: 'true',
          PIXGATE_MAX_UPLOAD_BYTES: '25 MB',
          PIXGATE_LOG_LEVEL: 'loud',
          PIXGATE_PREVIEW_MAX: '',
        },
        flags: { bogus: '1', 'queue-size': '1.5' },
      },
      [
        `--config: cannot read ${join(dir, 'missing.yaml')} (ENOENT)`,
        'PIXGATE_TRUST_PROXI: unknown setting',
        '--bogus: unknown option',
        'PIXGATE_PORT: Expected integer 0..65535 but received "abc"',
        `PIXGATE_TRUST_PROXY: ${BOOLEAN} but received "yes"`,
        `PIXGATE_MAX_UPLOAD_BYTES: ${BYTE_SIZE} but received "25 MB"`,
        'PIXGATE_LOG_LEVEL: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent" but received "loud"',
        'PIXGATE_PREVIEW_MAX: Expected integer 16..4096 but received ""',
        '--queue-size: Expected integer 0..100000 but received "1.5"',
        REQUIRED('PIXGATE_ISSUER'),
        REQUIRED('PIXGATE_AUDIENCE'),
        REQUIRED('PIXGATE_JWKS_URL'),
      ],
    );
  });

  it('checks across settings still run when another value is invalid', () => {
    expectProblems({ env: { PIXGATE_STRICT_SIZES: 'true', PIXGATE_PORT: 'abc' } }, [
      'PIXGATE_PORT: Expected integer 0..65535 but received "abc"',
      'PIXGATE_STRICT_SIZES: needs PIXGATE_SIZES, the list of allowed sizes',
    ]);
    expectProblems({ purpose: 'dev', env: { PIXGATE_HOST: '0.0.0.0', PIXGATE_CONCURRENCY: '0' } }, [
      'PIXGATE_CONCURRENCY: Expected integer 1..256 but received "0"',
      `PIXGATE_HOST: ${LOOPBACK_ONLY}`,
    ]);
  });

  it('ConfigError lists them in its message', () => {
    let thrown: unknown;
    try {
      load({ env: { PIXGATE_PORT: 'abc', PIXGATE_NOPE: '1' } });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as Error).message).toBe(
      'Invalid settings:\n  - PIXGATE_NOPE: unknown setting\n  - PIXGATE_PORT: Expected integer 0..65535 but received "abc"',
    );
  });
});

describe('booleans', () => {
  it.each([
    ['true', true],
    ['1', true],
    ['false', false],
    ['0', false],
  ])('%j is %s', (text, value) => {
    expect(load({ env: { PIXGATE_TRUST_PROXY: text } }).trustProxy).toBe(value);
    expect(load({ flags: { 'trust-proxy': text } }).trustProxy).toBe(value);
  });

  it('PIXGATE_TRUST_PROXY=false is false (z.coerce.boolean would make any non-empty string true)', () => {
    const config = load({ env: { PIXGATE_TRUST_PROXY: 'false', PIXGATE_PREVIEW_ANONYMOUS: 'false' } });
    expect(config.trustProxy).toBe(false);
    expect(config.previewAnonymous).toBe(false);
  });

  // SPEC §7: true/false/1/0 and nothing else, so not another spelling either.
  it.each(['yes', 'no', 'on', 'off', '', '2', 'truee', 'false!', 'null', 'TRUE', 'False'])(
    '%j is a problem',
    (text) => {
      expectProblems({ env: { PIXGATE_TRUST_PROXY: text } }, [
        `PIXGATE_TRUST_PROXY: ${BOOLEAN} but received ${JSON.stringify(text)}`,
      ]);
    },
  );

  it('a config file may give true/false/1/0 as JSON values too, and nothing else', async () => {
    const good = await file('bools.json', JSON.stringify({ trustProxy: 1, previewAnonymous: 0, dev: false }));
    expect(load({ cwd: dir, file: good })).toMatchObject({ trustProxy: true, previewAnonymous: false });
    const bad = await file('bad-bools.json', JSON.stringify({ trustProxy: 2, previewAnonymous: null }));
    expectProblems({ cwd: dir, file: bad }, [
      `trustProxy in ${bad}: ${BOOLEAN} but received 2`,
      `previewAnonymous in ${bad}: ${BOOLEAN} but received null`,
    ]);
  });
});

describe('byte sizes', () => {
  it.each([
    ['25MiB', 25 * MiB],
    ['25 MiB', 25 * MiB],
    ['25mib', 25 * MiB],
    ['512KiB', 512 * 1024],
    ['1GiB', GiB],
    ['1048576', 1_048_576],
    ['100b', 100],
    [' 7 ', 7],
  ])('%j is %d bytes', (text, bytes) => {
    expect(load({ env: { PIXGATE_MAX_UPLOAD_BYTES: text } }).maxUploadBytes).toBe(bytes);
  });

  it('10 GiB for the disk cache', () => {
    expect(load({ env: { PIXGATE_DISK_CACHE_BYTES: '10 GiB' } }).diskCacheBytes).toBe(10 * GiB);
  });

  it.each(['25MB', '25 M', '1.5MiB', '-1', 'abc', '', 'MiB', '1e6', '0x10'])('%j is a problem', (text) => {
    expectProblems({ env: { PIXGATE_MAX_UPLOAD_BYTES: text } }, [
      `PIXGATE_MAX_UPLOAD_BYTES: ${BYTE_SIZE} but received ${JSON.stringify(text)}`,
    ]);
  });

  it('out of range is a problem that gives the range', () => {
    expectProblems({ env: { PIXGATE_MAX_UPLOAD_BYTES: '10 GiB', PIXGATE_MEMORY_CACHE_BYTES: '65GiB' } }, [
      'PIXGATE_MAX_UPLOAD_BYTES: Expected at most 2147483648 bytes but received "10 GiB"',
      `PIXGATE_MEMORY_CACHE_BYTES: Expected at most ${64 * GiB} bytes but received "65GiB"`,
    ]);
    expectProblems({ env: { PIXGATE_MAX_UPLOAD_BYTES: '0' } }, [
      'PIXGATE_MAX_UPLOAD_BYTES: Expected at least 1 byte but received "0"',
    ]);
  });

  it('a file may give a number, which must be whole', async () => {
    const good = await file('bytes.json', JSON.stringify({ maxUploadBytes: 1000 }));
    expect(load({ cwd: dir, file: good }).maxUploadBytes).toBe(1000);
    const bad = await file('bad-bytes.json', JSON.stringify({ maxUploadBytes: 1.5 }));
    expectProblems({ cwd: dir, file: bad }, [
      `maxUploadBytes in ${bad}: Expected a whole number of bytes but received 1.5`,
    ]);
  });
});

describe('sizes', () => {
  it('are a comma list of whole pixel sizes', () => {
    expect(load({ env: { PIXGATE_SIZES: '100, 200,360,' } }).sizes).toEqual([100, 200, 360]);
    expect(load({ env: { PIXGATE_SIZES: '' } }).sizes).toEqual([]);
  });

  it.each([
    ['100,abc', 'Expected a comma list of whole pixel sizes'],
    ['100,1.5', 'Expected a comma list of whole pixel sizes'],
    ['0', 'Expected sizes 1..16384'],
    ['100,20000', 'Expected sizes 1..16384'],
  ])('%j is a problem', (text, message) => {
    expectProblems({ env: { PIXGATE_SIZES: text } }, [
      `PIXGATE_SIZES: ${message} but received ${JSON.stringify(text)}`,
    ]);
  });

  it('strictSizes without sizes is a problem, named by where it was set', () => {
    expectProblems({ env: { PIXGATE_STRICT_SIZES: 'true' } }, [
      'PIXGATE_STRICT_SIZES: needs PIXGATE_SIZES, the list of allowed sizes',
    ]);
    expectProblems({ flags: { 'strict-sizes': '1' } }, [
      '--strict-sizes: needs PIXGATE_SIZES, the list of allowed sizes',
    ]);
    const config = load({ env: { PIXGATE_STRICT_SIZES: 'true', PIXGATE_SIZES: '200,400' } });
    expect(config).toMatchObject({ strictSizes: true, sizes: [200, 400] });
  });
});

describe('presets', () => {
  const INVALID = 'Expected a JSON object of presets, such as {"thumb":{"w":200,"h":200,"fit":"cover"}}';

  it('come as JSON in PIXGATE_PRESETS', () => {
    const presets = { thumb: { w: 200, h: 200, fit: 'cover' }, hero_2x: { w: 1600, format: 'webp', q: 70 } };
    expect(load({ env: { PIXGATE_PRESETS: JSON.stringify(presets) } }).presets).toEqual(presets);
  });

  it.each(['{bad', '[1]', '"thumb"', 'null'])('%j is a problem', (text) => {
    expectProblems({ env: { PIXGATE_PRESETS: text } }, [
      `PIXGATE_PRESETS: ${INVALID} but received ${JSON.stringify(text)}`,
    ]);
  });

  it('a bad name, an unknown member or a bad value names the preset, not the whole JSON', () => {
    expectProblems({ env: { PIXGATE_PRESETS: '{"Big Thumb":{"w":200}}' } }, [
      'PIXGATE_PRESETS: Big Thumb: Preset names are 1 to 32 of a-z 0-9 _ -',
    ]);
    expectProblems({ env: { PIXGATE_PRESETS: '{"thumb":{"w":200,"zoom":2}}' } }, [
      'PIXGATE_PRESETS: thumb: Unrecognized key: "zoom"',
    ]);
    const [problem, ...more] = problemsOf({ env: { PIXGATE_PRESETS: '{"thumb":{"w":0}}' } });
    expect(more).toEqual([]);
    expect(problem).toMatch(/^PIXGATE_PRESETS: thumb\.w: /);
    expect(problem).not.toContain('received');
  });
});

describe('purpose', () => {
  it('serve needs the issuer, the audience and the JWKS URL, one problem each', () => {
    expectProblems({ purpose: 'serve' }, [
      REQUIRED('PIXGATE_ISSUER'),
      REQUIRED('PIXGATE_AUDIENCE'),
      REQUIRED('PIXGATE_JWKS_URL'),
    ]);
    expectProblems({ purpose: 'serve', env: { PIXGATE_ISSUER: TRIO.PIXGATE_ISSUER } }, [
      REQUIRED('PIXGATE_AUDIENCE'),
      REQUIRED('PIXGATE_JWKS_URL'),
    ]);
    const config = load({ purpose: 'serve', env: TRIO });
    expect(config).toMatchObject({
      dev: false,
      issuer: TRIO.PIXGATE_ISSUER,
      audience: TRIO.PIXGATE_AUDIENCE,
      jwksUrl: TRIO.PIXGATE_JWKS_URL,
    });
  });

  it('with no purpose given, PIXGATE_DEV decides between serve and dev', () => {
    expect(problemsOf({ purpose: undefined })).toHaveLength(3);
    expect(load({ purpose: undefined, env: { PIXGATE_DEV: 'true' } })).toMatchObject({
      dev: true,
      issuer: DEV_ISSUER,
    });
  });

  it('the JWKS URL must be http(s)', () => {
    expectProblems({ purpose: 'serve', env: { ...TRIO, PIXGATE_JWKS_URL: 'file:///etc/jwks.json' } }, [
      'PIXGATE_JWKS_URL: Expected an http(s) URL but received "file:///etc/jwks.json"',
    ]);
  });

  it('dev needs no issuer and fills in its own', () => {
    const config = load({ purpose: 'dev' });
    expect(config).toMatchObject({ dev: true, issuer: DEV_ISSUER, audience: DEV_AUDIENCE });
    expect(config.jwksUrl).toBeUndefined();
    expect([DEV_ISSUER, DEV_AUDIENCE]).toEqual(['pixgate-dev', 'pixgate']);
    // `pixgate dev` is dev mode whatever PIXGATE_DEV says.
    expect(load({ purpose: 'dev', env: { PIXGATE_DEV: 'false' } }).dev).toBe(true);
    // ...but a value that is no boolean is still a problem (SPEC §7: every bad value, exit 2).
    expectProblems({ purpose: 'dev', env: { PIXGATE_DEV: 'yes' } }, [
      `PIXGATE_DEV: ${BOOLEAN} but received "yes"`,
    ]);
    // An issuer given explicitly is kept.
    expect(load({ purpose: 'dev', env: { PIXGATE_ISSUER: 'me', PIXGATE_AUDIENCE: 'you' } })).toMatchObject({
      issuer: 'me',
      audience: 'you',
    });
  });

  it.each(['127.0.0.1', '::1', 'localhost'])('dev may listen on %s', (host) => {
    expect(load({ purpose: 'dev', env: { PIXGATE_HOST: host } }).host).toBe(host);
  });

  it.each(['0.0.0.0', '::', '192.168.1.10', 'example.com'])('dev refuses to listen on %s', (host) => {
    expectProblems({ purpose: 'dev', env: { PIXGATE_HOST: host } }, [`PIXGATE_HOST: ${LOOPBACK_ONLY}`]);
    expectProblems({ purpose: 'dev', flags: { host } }, [`--host: ${LOOPBACK_ONLY}`]);
    // Dev mode turned on by the variable is held to the same rule.
    expectProblems({ purpose: undefined, env: { PIXGATE_DEV: '1', PIXGATE_HOST: host } }, [
      `PIXGATE_HOST: ${LOOPBACK_ONLY}`,
    ]);
  });

  it('serve may listen anywhere', () => {
    expect(load({ purpose: 'serve', env: { ...TRIO, PIXGATE_HOST: '0.0.0.0' } }).host).toBe('0.0.0.0');
  });
});

describe('resolved paths', () => {
  it('the data dir is absolute, from the working directory', () => {
    expect(load({ env: { PIXGATE_DATA_DIR: './var/pix' } }).dataDir).toBe(join(CWD, 'var', 'pix'));
    expect(load({ env: { PIXGATE_DATA_DIR: '/data/pix' } }).dataDir).toBe('/data/pix');
  });

  it('storage and cache default to folders in the data dir', () => {
    const config = load({ env: { PIXGATE_DATA_DIR: 'var' } });
    expect(config.storage).toBe(`file:${join(CWD, 'var', 'originals')}`);
    expect(config.cache).toBe(`file:${join(CWD, 'var', 'cache')}`);
  });

  it('file: locations are made absolute from the working directory', () => {
    const config = load({ env: { PIXGATE_STORAGE: 'file:originals', PIXGATE_CACHE: 'file:/tmp/variants' } });
    expect(config.storage).toBe(`file:${join(CWD, 'originals')}`);
    expect(config.cache).toBe('file:/tmp/variants');
  });

  it('cache: none turns the cache off', () => {
    expect(load({ env: { PIXGATE_CACHE: 'none' } }).cache).toBe('none');
  });

  it('takes S3 and HTTP locations, and refuses malformed ones', () => {
    const config = load({
      env: { PIXGATE_STORAGE: 's3://bucket/originals', PIXGATE_CACHE: 's3://bucket/cache/' },
    });
    expect(config.storage).toBe('s3://bucket/originals');
    expect(config.cache).toBe('s3://bucket/cache/');
    expect(load({ env: { PIXGATE_STORAGE: 'https://files.internal:8443/library/' } }).storage).toBe(
      'https://files.internal:8443/library/',
    );
    expectProblems(
      {
        env: {
          PIXGATE_STORAGE: 'https://user:pass@files.internal/',
          PIXGATE_CACHE: 'https://files.internal/cache/',
        },
      },
      [
        'PIXGATE_STORAGE: Expected file:PATH, s3://bucket/prefix or an http(s):// base URL without credentials in it but received "https://[redacted]@files.internal/"',
        'PIXGATE_CACHE: Expected file:PATH, s3://bucket/prefix or none but received "https://files.internal/cache/"',
      ],
    );
    expectProblems({ env: { PIXGATE_STORAGE: 's3://bucket/../other' } }, [
      'PIXGATE_STORAGE: Expected file:PATH, s3://bucket/prefix or an http(s):// base URL without credentials in it but received "s3://bucket/../other"',
    ]);
  });

  it('HTTP origin credentials: one kind, complete, only with an HTTP origin', () => {
    const http = { PIXGATE_STORAGE: 'http://127.0.0.1:9000/lib/' };
    expect(load({ env: { ...http, PIXGATE_ORIGIN_HEADER: 'X-Api-Key: abc' } }).originHeader).toBe(
      'X-Api-Key: abc',
    );
    expectProblems({ env: { ...http, PIXGATE_ORIGIN_BEARER: 't', PIXGATE_ORIGIN_BASIC: 'u:p' } }, [
      'PIXGATE_ORIGIN_BEARER, PIXGATE_ORIGIN_BASIC: choose one way to authenticate to the HTTP origin',
    ]);
    expectProblems({ env: { ...http, PIXGATE_ORIGIN_TOKEN_URL: 'http://op.test/token' } }, [
      'PIXGATE_ORIGIN_CLIENT_ID: required for OAuth client credentials to the HTTP origin',
      'PIXGATE_ORIGIN_CLIENT_SECRET: required for OAuth client credentials to the HTTP origin',
    ]);
    expectProblems({ env: { PIXGATE_ORIGIN_BEARER: 't' } }, [
      'PIXGATE_ORIGIN_BEARER: only for an http(s) PIXGATE_STORAGE',
    ]);
    expectProblems(
      { env: { ...http, PIXGATE_ORIGIN_HEADER: 'Host: evil.test', PIXGATE_ORIGIN_BASIC: 'nocolon' } },
      [
        'PIXGATE_ORIGIN_BASIC: Expected user:password',
        'PIXGATE_ORIGIN_HEADER: Expected "Name: value" with a header name pixgate does not set itself',
        // Set, if invalid: two kinds all the same.
        'PIXGATE_ORIGIN_BASIC, PIXGATE_ORIGIN_HEADER: choose one way to authenticate to the HTTP origin',
      ],
    );
    // An invalid value is reported once, as invalid: not also as missing, and nothing is judged
    // from it (an invalid PIXGATE_STORAGE is not "not an HTTP origin").
    const clientCredentials = { PIXGATE_ORIGIN_CLIENT_ID: 'pixgate', PIXGATE_ORIGIN_CLIENT_SECRET: 's3cret' };
    expectProblems({ env: { ...http, ...clientCredentials, PIXGATE_ORIGIN_TOKEN_URL: 'not a url' } }, [
      'PIXGATE_ORIGIN_TOKEN_URL: Expected an http(s) URL but received "not a url"',
    ]);
    expectProblems({ env: { PIXGATE_STORAGE: 'ftp://lib', PIXGATE_ORIGIN_BEARER: 't' } }, [
      'PIXGATE_STORAGE: Expected file:PATH, s3://bucket/prefix or an http(s):// base URL without credentials in it but received "ftp://lib"',
    ]);
  });

  it('an empty data dir is a problem', () => {
    expectProblems({ env: { PIXGATE_DATA_DIR: ' ' } }, [
      'PIXGATE_DATA_DIR: Expected a non-empty value but received " "',
    ]);
  });
});

describe('problems never echo a secret', () => {
  // The problems go to stderr, and from there to journald or the container log: a password
  // there is a password leaked (SPEC §4: no secret in a log line).
  const SECRET = 'hunter2-7f3a9c';
  const base64Secret = Buffer.alloc(32, 7).toString('base64');

  it('names the setting and what is wrong, without its value', () => {
    const http = { PIXGATE_STORAGE: 'http://127.0.0.1:9000/lib/' };
    const problems = problemsOf({
      env: {
        ...http,
        PIXGATE_ORIGIN_BASIC: SECRET,
        PIXGATE_INTROSPECTION_URL: 'https://op.test/introspect',
        PIXGATE_INTROSPECTION_CLIENT_ID: 'pixgate',
        PIXGATE_INTROSPECTION_CLIENT_SECRET: ' ',
        PIXGATE_SIGNING_KEYS: base64Secret,
      },
      flags: { 'origin-header': `X-Api-Key ${SECRET}` },
    });
    expect(problems.sort()).toEqual(
      [
        'PIXGATE_ORIGIN_BASIC: Expected user:password',
        '--origin-header: Expected "Name: value" with a header name pixgate does not set itself',
        'PIXGATE_INTROSPECTION_CLIENT_SECRET: Expected a non-empty value',
        'PIXGATE_SIGNING_KEYS: Expected kid:base64secret (`pixgate keygen` prints one)',
        'PIXGATE_ORIGIN_BASIC, --origin-header: choose one way to authenticate to the HTTP origin',
      ].sort(),
    );
    expect(
      problemsOf({
        env: { PIXGATE_SIGNING_KEYS: `k1:${base64Secret},k1:${Buffer.alloc(32, 8).toString('base64')}` },
      }),
    ).toEqual(['PIXGATE_SIGNING_KEYS: Each key id may appear only once']);
  });

  it('refuses a user and password written into a URL pixgate fetches: fetch refuses it, quoting it', () => {
    // Accepted, the server started and then answered every token 503, logging the password with
    // each request (undici's message quotes the URL it refuses).
    const withCredentials = `https://user:${SECRET}@login.example.com/`;
    const problems = problemsOf({
      env: {
        PIXGATE_JWKS_URL: `${withCredentials}jwks.json`,
        PIXGATE_INTROSPECTION_URL: `${withCredentials}introspect`,
        PIXGATE_INTROSPECTION_CLIENT_ID: 'pixgate',
        PIXGATE_INTROSPECTION_CLIENT_SECRET: 'secret',
        PIXGATE_STORAGE: 'https://files.internal/lib/',
        PIXGATE_ORIGIN_TOKEN_URL: `${withCredentials}token`,
        PIXGATE_ORIGIN_CLIENT_ID: 'pixgate',
        PIXGATE_ORIGIN_CLIENT_SECRET: 'secret',
      },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'PIXGATE_JWKS_URL: Expected an http(s) URL without credentials in it but received "https://[redacted]@login.example.com/jwks.json"',
        'PIXGATE_INTROSPECTION_URL: Expected an http(s) URL without credentials in it but received "https://[redacted]@login.example.com/introspect"',
        'PIXGATE_ORIGIN_TOKEN_URL: Expected an http(s) URL without credentials in it but received "https://[redacted]@login.example.com/token"',
      ]),
    );
    expect(problems.join('\n')).not.toContain(SECRET);
  });

  it('refuses them however the URL spells its authority (as fetch parses it, not by its text)', () => {
    // `https:///user:pass@host` is https://user:pass@host to the URL parser, and so to fetch.
    const problems = problemsOf({
      env: { PIXGATE_JWKS_URL: `https:///user:${SECRET}@login.example.com/jwks` },
    });
    expect(problems).toEqual([
      'PIXGATE_JWKS_URL: Expected an http(s) URL without credentials in it but received "https:///[redacted]@login.example.com/jwks"',
    ]);
  });

  it('shows a URL without the user and password written into it', () => {
    expect(problemsOf({ env: { PIXGATE_STORAGE: `https://user:${SECRET}@files.internal/` } })).toEqual([
      'PIXGATE_STORAGE: Expected file:PATH, s3://bucket/prefix or an http(s):// base URL without credentials in it but received "https://[redacted]@files.internal/"',
    ]);
  });

  it('hides a password that holds a URL delimiter (/, ?, #, @) all the same', () => {
    for (const password of [`a/${SECRET}`, `a?${SECRET}`, `a#${SECRET}`, `a@${SECRET}`]) {
      const problems = problemsOf({
        env: { PIXGATE_JWKS_URL: `https://user:${password}@login.example.com/` },
      });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^PIXGATE_JWKS_URL: Expected an http\(s\) URL/);
      expect(problems[0]).not.toContain(SECRET);
    }
  });
});

describe('the result', () => {
  it('is frozen, its lists and presets included (ES modules are strict: assigning throws)', () => {
    const config = load({ env: { PIXGATE_SIZES: '100', PIXGATE_PRESETS: '{"thumb":{"w":100}}' } });
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config as { trustProxy: boolean }).trustProxy = true;
    }).toThrow(TypeError);
    expect(() => {
      (config.sizes as number[]).push(200);
    }).toThrow(TypeError);
    expect(() => {
      (config.presets as Record<string, unknown>).big = { w: 2000 };
    }).toThrow(TypeError);
    expect(() => {
      (config.presets.thumb as { w: number }).w = 4000;
    }).toThrow(TypeError);
    expect(config.port).toBe(8080);
    expect(config.sizes).toEqual([100]);
  });
});

describe('issue 4 settings', () => {
  const key = (kid: string, fill = 1) => `${kid}:${Buffer.alloc(32, fill).toString('base64')}`;

  it('read signing keys as kid:base64secret, in order', () => {
    const config = load({ env: { PIXGATE_SIGNING_KEYS: ` ${key('new', 2)} , ${key('old')}` } });
    expect(config.signingKeys).toEqual([
      { kid: 'new', secret: Buffer.alloc(32, 2).toString('base64') },
      { kid: 'old', secret: Buffer.alloc(32, 1).toString('base64') },
    ]);
  });

  it('refuse malformed, short or repeated signing keys', () => {
    expect(problemsOf({ env: { PIXGATE_SIGNING_KEYS: 'nokid' } })[0]).toContain(
      'Expected kid:base64secret (`pixgate keygen` prints one)',
    );
    expect(
      problemsOf({ env: { PIXGATE_SIGNING_KEYS: `k1:${Buffer.alloc(16).toString('base64')}` } })[0],
    ).toContain('A signing secret needs at least 32 bytes');
    expect(problemsOf({ env: { PIXGATE_SIGNING_KEYS: `${key('k1')},${key('k1', 2)}` } })[0]).toContain(
      'Each key id may appear only once',
    );
    expect(
      problemsOf({ env: { PIXGATE_SIGNING_KEYS: `bad kid!:${Buffer.alloc(32).toString('base64')}` } })[0],
    ).toContain('Key ids are 1 to 32 of A-Z a-z 0-9 _ -');
  });

  it('need the introspection client with the introspection URL', () => {
    expectProblems({ env: { PIXGATE_INTROSPECTION_URL: 'https://login.example.com/introspect' } }, [
      'PIXGATE_INTROSPECTION_CLIENT_ID: required with PIXGATE_INTROSPECTION_URL',
      'PIXGATE_INTROSPECTION_CLIENT_SECRET: required with PIXGATE_INTROSPECTION_URL',
    ]);
  });

  it('take 0 as off for the count limits, and a byte size for the quota', () => {
    const config = load({
      env: {
        PIXGATE_RATE_LIMIT: '0',
        PIXGATE_SCRAPE_LIMIT: '0',
        PIXGATE_QUOTA_BYTES: '5GiB',
        PIXGATE_PREVIEW_BLUR: '2.5',
      },
    });
    expect([config.rateLimit, config.scrapeLimit, config.quotaBytes, config.previewBlur]).toEqual([
      0,
      0,
      5 * GiB,
      2.5,
    ]);
    expect(problemsOf({ env: { PIXGATE_PREVIEW_BLUR: '0.1' } })).toEqual([
      'PIXGATE_PREVIEW_BLUR: Expected 0 (off) or a sigma 0.3..100 but received "0.1"',
    ]);
  });
});
