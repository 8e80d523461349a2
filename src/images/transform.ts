import { AppError } from '../errors.js';
import { type Fit, fits, type OutputFormat, outputFormats, type Transform } from './types.js';

/**
 * Strict parsing of the transform query (SPEC §4). Every parameter is validated before sharp
 * sees it, so user input yields a 400 naming the parameter, never a 500; and every spelling of
 * the same variant normalizes to one Transform, so junk (`w=010`, `fit=inside` without a box,
 * unknown or repeated parameters) can neither bust the variant cache nor mint new signatures.
 */

export type TransformPreset = Partial<Omit<Transform, 'fit' | 'format'>> & {
  fit?: Fit;
  format?: OutputFormat | 'auto';
};

export interface TransformLimits {
  maxDimension: number;
  sizes: readonly number[];
  strictSizes: boolean;
  presets: Readonly<Record<string, TransformPreset>>;
}

export const transformParameters = ['w', 'h', 'fit', 'format', 'q', 'dpr', 'blur', 'preset'] as const;
type Parameter = (typeof transformParameters)[number];

const formatChoices: readonly (OutputFormat | 'auto')[] = ['auto', ...outputFormats];

export const defaultTransform: Transform = Object.freeze({ fit: 'inside', format: 'auto' });

// Strict syntax: one spelling per number. No sign, exponent, blanks or leading zeros; decimals
// only where the parameter takes them, and at most two (dpr, blur), which also bounds how many
// distinct variants one image can be asked for.
const INTEGER = /^[1-9]\d*$/;
const DECIMAL = /^(0|[1-9]\d*)(\.\d{1,2})?$/;
const NUMBER_LIKE = /^-?(0|[1-9]\d*)(\.\d+)?$/;
const ECHO_LIMIT = 40;

/** User input in a message: at most ECHO_LIMIT characters, quoted and escaped unless a plain number. */
function shown(raw: string): string {
  const chars = Array.from(raw);
  if (chars.length <= ECHO_LIMIT && NUMBER_LIKE.test(raw)) return raw;
  return JSON.stringify(chars.length > ECHO_LIMIT ? `${chars.slice(0, ECHO_LIMIT).join('')}…` : raw);
}

const invalid = (message: string) => new AppError('invalid_transform', message);
const expected = (what: string, name: string, raw: string) =>
  invalid(`Expected ${what} for ${name} but received ${shown(raw)}`);

function integer(name: string, raw: string, min: number, max: number): number {
  const value = INTEGER.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max)) throw expected(`integer ${min}..${max}`, name, raw);
  return value;
}

/** A decimal with at most two places, in hundredths, so dpr arithmetic is exact. */
function hundredths(name: string, raw: string, min: number, max: number): number {
  const match = DECIMAL.exec(raw);
  const value = match
    ? Number(match[1]) * 100 + Number((match[2] ?? '.').slice(1).padEnd(2, '0'))
    : Number.NaN;
  if (!(value >= min * 100 && value <= max * 100)) {
    throw expected(`number ${min}..${max} with at most 2 decimals`, name, raw);
  }
  return value;
}

function oneOf<T extends string>(name: string, raw: string, choices: readonly T[]): T {
  const found = choices.find((choice) => choice === raw);
  if (found === undefined) throw expected(`one of ${choices.join(', ')}`, name, raw);
  return found;
}

const isParameter = (name: string): name is Parameter =>
  (transformParameters as readonly string[]).includes(name);

/**
 * Parses and normalizes the transform parameters of a query. `ignore` names parameters that
 * are credentials handled elsewhere (`access_token`, `exp`, `kid`, `sig`): skipped here.
 * Returns null when the query has no transform parameter at all (the caller may then serve
 * the original).
 */
export function parseTransform(
  query: URLSearchParams,
  limits: TransformLimits,
  ignore: readonly string[] = [],
): Transform | null {
  // Names first, so `?w=abc&w=5` is reported as repeated, whatever the values.
  const raw = new Map<Parameter, string>();
  for (const [name, value] of query) {
    if (ignore.includes(name)) continue;
    if (!isParameter(name)) throw invalid(`Unknown parameter ${shown(name)}`);
    if (raw.has(name)) throw invalid(`Repeated parameter ${shown(name)}`);
    raw.set(name, value);
  }
  if (raw.size === 0) return null;

  let preset: TransformPreset = {};
  const given: {
    w?: number;
    h?: number;
    fit?: Fit;
    format?: OutputFormat | 'auto';
    q?: number;
    blur?: number;
  } = {};
  let dpr = 100;
  for (const [name, value] of raw) {
    switch (name) {
      case 'w':
      case 'h':
        given[name] = integer(name, value, 1, limits.maxDimension);
        break;
      case 'fit':
        given.fit = oneOf(name, value, fits);
        break;
      case 'format':
        given.format = oneOf(name, value, formatChoices);
        break;
      case 'q':
        given.q = integer(name, value, 1, 100);
        break;
      case 'dpr':
        dpr = hundredths(name, value, 1, 4);
        break;
      case 'blur':
        given.blur = hundredths(name, value, 0.3, 100) / 100;
        break;
      case 'preset': {
        // Object.hasOwn: `preset=constructor` must not find Object.prototype's members.
        const found = Object.hasOwn(limits.presets, value) ? limits.presets[value] : undefined;
        if (!found) throw invalid(`Unknown preset ${shown(value)}`);
        preset = found;
        break;
      }
    }
  }

  // The preset is the base, explicit parameters override it, then dpr scales the box.
  const merged = { ...preset, ...given };
  const w = scaled('w', merged.w, dpr, limits);
  const h = scaled('h', merged.h, dpr, limits);
  return build({ w, h, fit: merged.fit, format: merged.format, q: merged.q, blur: merged.blur });
}

function scaled(
  axis: 'w' | 'h',
  base: number | undefined,
  dpr: number,
  limits: TransformLimits,
): number | undefined {
  if (base === undefined) return undefined;
  // Integer arithmetic on hundredths: round half up, exactly (1.15 × 3 must not become 3.4499…).
  const value = Math.floor((base * dpr + 50) / 100);
  const name = dpr === 100 ? axis : `${axis} × dpr`;
  if (!(value >= 1 && value <= limits.maxDimension)) {
    throw expected(`integer 1..${limits.maxDimension}`, name, String(value));
  }
  if (limits.strictSizes && !limits.sizes.includes(value)) {
    const allowed =
      limits.sizes.length > 0 ? `one of ${limits.sizes.join(', ')}` : 'no size (none is configured)';
    throw expected(allowed, name, String(value));
  }
  return value;
}

/**
 * The normalized object: only set fields; `fit` kept only when both w and h make it matter.
 * Assigned field by field, not spread from conditionals: this runs on every image request.
 */
function build(fields: {
  w?: number | undefined;
  h?: number | undefined;
  fit?: Fit | undefined;
  format?: OutputFormat | 'auto' | undefined;
  q?: number | undefined;
  blur?: number | undefined;
}): Transform {
  const { w, h, q, blur } = fields;
  const transform: { -readonly [K in keyof Transform]: Transform[K] } = {
    fit: w !== undefined && h !== undefined ? (fields.fit ?? 'inside') : 'inside',
    format: fields.format ?? 'auto',
  };
  if (w !== undefined) transform.w = w;
  if (h !== undefined) transform.h = h;
  if (q !== undefined) transform.q = q;
  if (blur !== undefined) transform.blur = blur;
  return transform;
}

/**
 * The normalized transform as query parameters, sorted by name; `format` is always present, so
 * a URL built from any transform (signed URLs) is never mistaken for a request of the original.
 * `parseTransform(transformToQuery(t))` gives `t` back.
 */
export function transformToQuery(t: Transform): URLSearchParams {
  const hasBox = t.w !== undefined && t.h !== undefined;
  const entries: [string, string | undefined][] = [
    ['blur', t.blur === undefined ? undefined : String(t.blur)],
    ['fit', hasBox ? t.fit : undefined],
    ['format', t.format],
    ['h', t.h === undefined ? undefined : String(t.h)],
    ['q', t.q === undefined ? undefined : String(t.q)],
    ['w', t.w === undefined ? undefined : String(t.w)],
    ['watermark', t.watermark ? '1' : undefined],
  ];
  return new URLSearchParams(entries.filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/**
 * Canonical, stable text of a transform: used in variant keys, ETags and URL signatures. The
 * same text as `transformToQuery(t).toString()` (a test holds them equal), built directly: it is
 * computed on every image request, and no value here needs percent-encoding.
 */
export function canonicalTransform(t: Transform): string {
  let text = t.blur === undefined ? '' : `blur=${t.blur}&`;
  if (t.w !== undefined && t.h !== undefined) text += `fit=${t.fit}&`;
  text += `format=${t.format}`;
  if (t.h !== undefined) text += `&h=${t.h}`;
  if (t.q !== undefined) text += `&q=${t.q}`;
  if (t.w !== undefined) text += `&w=${t.w}`;
  if (t.watermark) text += '&watermark=1';
  return text;
}
