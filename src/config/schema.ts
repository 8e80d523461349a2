import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { hasCredentials, isHttpBase, parseS3Url } from '../origins/location.js';

/**
 * Every setting pixgate reads. Values arrive as strings (environment, command line) or as
 * JSON/YAML values (config file), so each field parses both, strictly: `z.coerce.boolean()`
 * would turn the string "false" into true, and `z.coerce.number()` would turn "" into 0.
 * The env name of a key is PIXGATE_ + its SCREAMING_SNAKE form; the flag is its kebab form.
 */

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

function parseWhole(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  return /^\d+$/.test(value.trim()) ? Number(value.trim()) : value;
}

const integer = (min: number, max: number) =>
  z.preprocess(
    parseWhole,
    z
      .number({ error: `Expected integer ${min}..${max}` })
      .int({ error: `Expected integer ${min}..${max}` })
      .min(min, { error: `Expected integer ${min}..${max}` })
      .max(max, { error: `Expected integer ${min}..${max}` }),
  );

/** `1 byte`, `2 bytes`: a count with its unit, for the messages below. */
const plural = (count: number, unit: string) => `${count} ${unit}${count === 1 ? '' : 's'}`;

/** Byte sizes: a whole number of bytes, or with a unit (`25MiB`, `10 GiB`, `512KiB`). */
const bytes = (min: number, max: number) =>
  z.preprocess(
    (value) => {
      if (typeof value !== 'string') return value;
      const match = /^(\d+)\s*(b|kib|mib|gib)?$/i.exec(value.trim());
      if (!match) return value;
      return Number(match[1]) * (BYTE_UNITS[(match[2] ?? '').toLowerCase()] ?? Number.NaN);
    },
    z
      .number({ error: 'Expected a byte size such as 26214400 or 25MiB' })
      .int({ error: 'Expected a whole number of bytes' })
      .min(min, { error: `Expected at least ${plural(min, 'byte')}` })
      .max(max, { error: `Expected at most ${plural(max, 'byte')}` }),
  );

const boolean = z.preprocess(
  (value) => {
    // A config file may say `trustProxy: 1`: the message promises 1 and 0, so take them as numbers too.
    if (value === 1 || value === 0) return value === 1;
    if (typeof value !== 'string') return value;
    // SPEC §7: these four words and nothing else, `TRUE` included.
    const text = value.trim();
    if (text === 'true' || text === '1') return true;
    if (text === 'false' || text === '0') return false;
    return value;
  },
  z.boolean({ error: 'Expected true, false, 1 or 0' }),
);

const text = z.string().trim().min(1, { error: 'Expected a non-empty value' });

const httpUrl = z
  .string()
  .trim()
  .refine((value) => /^https?:\/\//i.test(value) && URL.canParse(value), {
    error: 'Expected an http(s) URL',
  });

/**
 * A URL pixgate fetches itself (JWKS, introspection, an origin's token endpoint). fetch refuses
 * one with `user:password@` in it, with an error that quotes it: the server would start, fail
 * every request, and log the password with each one.
 */
const fetchUrl = httpUrl.refine(
  // An unparsable one: httpUrl says what is wrong with it.
  (value) => !URL.canParse(value) || !hasCredentials(new URL(value)),
  { error: 'Expected an http(s) URL without credentials in it' },
);

const sizesList = z.preprocess(
  (value) => {
    if (typeof value !== 'string') return value;
    return value
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '')
      .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
  },
  z.array(
    z
      .number({ error: 'Expected a comma list of whole pixel sizes' })
      .int({ error: 'Expected a comma list of whole pixel sizes' })
      .min(1, { error: 'Expected sizes 1..16384' })
      .max(16384, { error: 'Expected sizes 1..16384' }),
    { error: 'Expected a comma list of whole pixel sizes' },
  ),
);

/** A comma list of web origins: `https://app.example`, no path, no trailing slash. */
const originList = z.preprocess(
  (value) =>
    typeof value === 'string'
      ? value
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part !== '')
      : value,
  z.array(
    z.string().refine((value) => URL.canParse(value) && new URL(value).origin === value, {
      error: 'Expected a comma list of origins such as https://app.example (no path, no trailing slash)',
    }),
    { error: 'Expected a comma list of origins' },
  ),
);

const presetSchema = z
  .object({
    w: z.number().int().positive().optional(),
    h: z.number().int().positive().optional(),
    fit: z.enum(['cover', 'contain', 'fill', 'inside', 'outside']).optional(),
    format: z.enum(['auto', 'jpeg', 'png', 'webp', 'avif']).optional(),
    q: z.number().int().min(1).max(100).optional(),
    blur: z.number().min(0.3).max(100).optional(),
  })
  .strict();

/** Presets come as an object in a config file, or as JSON text in PIXGATE_PRESETS. */
const presets = z.preprocess(
  (value) => {
    if (typeof value !== 'string') return value;
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value;
    }
  },
  z.record(z.string().regex(/^[a-z0-9_-]{1,32}$/), presetSchema, {
    // Without these, JSON that does not parse reads "expected record, received string".
    error: (issue) =>
      issue.code === 'invalid_key'
        ? 'Preset names are 1 to 32 of a-z 0-9 _ -'
        : 'Expected a JSON object of presets, such as {"thumb":{"w":200,"h":200,"fit":"cover"}}',
  }),
);

/**
 * PIXGATE_SIGNING_KEYS: `kid:base64secret,...` (issue 4, signed URLs). The first key signs, every
 * key verifies, so a new key can be put first while URLs signed with the old one still work.
 */
const signingKeys = z.preprocess(
  (value) => {
    if (typeof value !== 'string') return value;
    return value
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '')
      .map((part) => {
        const colon = part.indexOf(':');
        return colon === -1 ? part : { kid: part.slice(0, colon), secret: part.slice(colon + 1) };
      });
  },
  z
    .array(
      z.object(
        {
          kid: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, { error: 'Key ids are 1 to 32 of A-Z a-z 0-9 _ -' }),
          secret: z
            .string()
            .regex(/^[A-Za-z0-9+/_-]+={0,2}$/, { error: 'Expected a base64 secret after "kid:"' })
            .refine((secret) => Buffer.from(secret, 'base64').length >= 32, {
              error: 'A signing secret needs at least 32 bytes (256 bits); `pixgate keygen` makes one',
            }),
        },
        { error: 'Expected kid:base64secret (`pixgate keygen` prints one)' },
      ),
      { error: 'Expected a comma list of kid:base64secret' },
    )
    .refine((keys) => new Set(keys.map((key) => key.kid)).size === keys.length, {
      error: 'Each key id may appear only once',
    }),
);

const storageUrl = z
  .string()
  .trim()
  .refine((value) => value.startsWith('file:') || parseS3Url(value) !== undefined || isHttpBase(value), {
    error: 'Expected file:PATH, s3://bucket/prefix or an http(s):// base URL without credentials in it',
  });

const cacheUrl = z
  .string()
  .trim()
  .refine((value) => value === 'none' || value.startsWith('file:') || parseS3Url(value) !== undefined, {
    error: 'Expected file:PATH, s3://bucket/prefix or none',
  });

// Headers pixgate must set itself; an origin credential cannot replace them.
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'accept-encoding',
]);

const originHeader = text.refine(
  (value) => {
    const match = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(\S.*)$/.exec(value);
    return match !== null && !RESERVED_HEADERS.has((match[1] as string).toLowerCase());
  },
  { error: 'Expected "Name: value" with a header name pixgate does not set itself' },
);

/** Relative to the working directory, as an operator starting pixgate there expects. */
export const DEFAULT_DATA_DIR = './data';

export const ConfigSchema = z
  .object({
    host: text.default('127.0.0.1'),
    port: integer(0, 65535).default(8080),
    dataDir: text.default(DEFAULT_DATA_DIR),
    /**
     * The longest a request may take to arrive in full, head and body: Node's own default, which
     * fastify turns off. Past it a client that stopped sending (a dead link, a slowloris) is
     * answered 408 and its upload keeps nothing.
     */
    requestTimeoutSeconds: integer(1, 86_400).default(300),
    /** Dev mode: demo issuer with a key in the data dir, loopback only, loud warning. */
    dev: boolean.default(false),

    issuer: text.optional(),
    audience: text.optional(),
    jwksUrl: fetchUrl.optional(),
    requireAtJwt: boolean.default(false),
    /** Allowed difference between our clock and the issuer's for `exp`/`nbf`. */
    clockSkewSeconds: integer(0, 300).default(30),
    /** Shortest gap between two JWKS fetches caused by unknown `kid`s. */
    jwksCooldownSeconds: integer(1, 3600).default(30),
    /** How many verified tokens are remembered (by hash) until their expiry. */
    tokenCacheSize: integer(0, 1_000_000).default(10_000),

    previewMax: integer(16, 4096).default(360),
    previewAnonymous: boolean.default(false),

    maxUploadBytes: bytes(1, 2 * 1024 ** 3).default(25 * 1024 ** 2),
    maxInputPixels: integer(1, 1_000_000_000).default(50_000_000),
    maxDimension: integer(16, 16384).default(4096),
    /** Animated input: at most this many frames are read; WebP output keeps the animation. */
    maxFrames: integer(1, 1000).default(100),
    sizes: sizesList.default([]),
    strictSizes: boolean.default(false),
    presets: presets.default({}),
    /** AVIF encoder effort 0..9: above 2 a large AVIF takes seconds on two cores. */
    avifEffort: integer(0, 9).default(2),
    /** `format=auto` picks AVIF only up to this many output pixels, WebP beyond (speed). */
    avifAutoMaxPixels: integer(0, 100_000_000).default(1_000_000),

    concurrency: integer(1, 256).default(availableParallelism()),
    queueSize: integer(0, 100_000).default(64),

    storage: storageUrl.optional(),
    cache: cacheUrl.optional(),
    memoryCacheBytes: bytes(0, 64 * 1024 ** 3).default(64 * 1024 ** 2),
    diskCacheBytes: bytes(0, 1024 ** 4).default(1024 ** 3),
    /** max-age of image responses (never longer than a signed URL's expiry). */
    cacheMaxAgeSeconds: integer(0, 31_536_000).default(3600),

    /** Image rows remembered in memory, so the cached path needs no database round trip. */
    imageCacheSize: integer(0, 10_000_000).default(10_000),
    /** How long a remembered row is trusted: how late a change made by another instance is seen. */
    imageCacheTtlSeconds: integer(0, 3600).default(5),

    // Issue 5 (private origins): S3 and authenticated HTTP origins, and the S3 variant cache.
    /** For S3-compatible stores; credentials come from the AWS SDK's chain (AWS_ACCESS_KEY_ID, ...). */
    s3Endpoint: httpUrl.optional(),
    s3Region: text.optional(),
    s3ForcePathStyle: boolean.default(false),
    /** Credentials pixgate sends to an HTTP origin: one of these four kinds. */
    originBearer: text.optional(),
    originBasic: text.refine((value) => value.includes(':'), { error: 'Expected user:password' }).optional(),
    originHeader: originHeader.optional(),
    originTokenUrl: fetchUrl.optional(),
    originClientId: text.optional(),
    originClientSecret: text.optional(),
    originScope: text.optional(),
    /** One whole read from an S3 or HTTP origin (token, redirects, body); beyond it, 504. */
    originTimeoutSeconds: integer(1, 600).default(15),
    // Issue 3: carrying the credential in a browser (sessions, JSON form, CORS).
    /** Longest a session lasts, whatever the token's own `exp`. */
    sessionMaxSeconds: integer(60, 30 * 86400).default(86400),
    /** SameSite of the session cookie (PIXGATE_COOKIE_SAMESITE, SPEC §7): Strict or Lax. */
    cookieSamesite: z.enum(['Strict', 'Lax'], { error: 'Expected Strict or Lax' }).default('Strict'),
    /** Cap of the JSON (data URI) form's encoded image, before base64 (422 output_too_large). */
    jsonMaxBytes: bytes(1, 512 * 1024 ** 2).default(5 * 1024 ** 2),
    /** Page origins allowed to call pixgate cross-origin (exact `scheme://host[:port]`). */
    corsOrigins: originList.default([]),
    // Issue 4: capabilities (signed URLs, share links), abuse limits, opaque tokens.
    signingKeys: signingKeys.default([]),
    signedUrlBucket: integer(1, 7 * 86400).default(3600),
    /** Image requests per minute per principal (per IP when anonymous, per share link); 0: off. */
    rateLimit: integer(0, 10_000_000).default(600),
    /** Distinct originals per hour per principal, likewise; 0: off. */
    scrapeLimit: integer(0, 10_000_000).default(1000),
    /** Uploads per hour per owner; 0: off. */
    uploadLimit: integer(0, 10_000_000).default(200),
    /** Bytes of originals stored per owner. */
    quotaBytes: bytes(1, 1024 ** 5).default(10 * 1024 ** 3),
    introspectionUrl: fetchUrl.optional(),
    introspectionClientId: text.optional(),
    introspectionClientSecret: text.optional(),
    /** Previews (what a preview-only viewer gets) are blurred by this sigma; 0: off. */
    previewBlur: z
      .preprocess(
        (value) => (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : value),
        z
          .number({ error: 'Expected 0 (off) or a sigma 0.3..100' })
          .refine((n) => n === 0 || (n >= 0.3 && n <= 100), {
            error: 'Expected 0 (off) or a sigma 0.3..100',
          }),
      )
      .default(0),
    /** Text drawn on every preview, so a sniff is visibly a sniff. */
    previewWatermark: text.max(100).optional(),

    metricsToken: text.optional(),
    trustProxy: boolean.default(false),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

export type ConfigInput = z.input<typeof ConfigSchema>;
export type Config = Readonly<z.output<typeof ConfigSchema>> & {
  /** Resolved: absolute data dir, storage and cache locations, issuer trio set. */
  readonly storage: string;
  readonly cache: string;
};

export const configKeys = Object.keys(ConfigSchema.shape) as (keyof typeof ConfigSchema.shape)[];
