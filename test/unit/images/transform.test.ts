import { describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors.js';
import {
  canonicalTransform,
  defaultTransform,
  parseTransform,
  type TransformLimits,
  transformToQuery,
} from '../../../src/images/transform.js';
import type { Transform } from '../../../src/images/types.js';

const limits: TransformLimits = {
  maxDimension: 4096,
  sizes: [],
  strictSizes: false,
  presets: {
    thumb: { w: 200, h: 200, fit: 'cover', format: 'webp', q: 70 },
    wide: { w: 800 },
    soft: { blur: 2 },
    huge: { w: 5000 },
    tall: { h: 300, fit: 'cover' },
  },
};

const parse = (query: string, overrides: Partial<TransformLimits> = {}, ignore?: readonly string[]) =>
  parseTransform(new URLSearchParams(query), { ...limits, ...overrides }, ignore);

function failure(query: string, overrides: Partial<TransformLimits> = {}): AppError {
  try {
    parse(query, overrides);
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error(`expected ${query} to fail`);
}

describe('parseTransform: accepted values', () => {
  it.each<[string, Transform | null]>([
    ['', null],
    ['w=1', { w: 1, fit: 'inside', format: 'auto' }],
    ['w=4096', { w: 4096, fit: 'inside', format: 'auto' }],
    ['h=300', { h: 300, fit: 'inside', format: 'auto' }],
    ['w=200&h=100', { w: 200, h: 100, fit: 'inside', format: 'auto' }],
    ['w=200&h=100&fit=cover', { w: 200, h: 100, fit: 'cover', format: 'auto' }],
    ['w=200&h=100&fit=contain', { w: 200, h: 100, fit: 'contain', format: 'auto' }],
    ['w=200&h=100&fit=fill', { w: 200, h: 100, fit: 'fill', format: 'auto' }],
    ['w=200&h=100&fit=outside', { w: 200, h: 100, fit: 'outside', format: 'auto' }],
    ['format=jpeg', { fit: 'inside', format: 'jpeg' }],
    ['format=png', { fit: 'inside', format: 'png' }],
    ['format=webp', { fit: 'inside', format: 'webp' }],
    ['format=avif', { fit: 'inside', format: 'avif' }],
    ['format=auto', { fit: 'inside', format: 'auto' }],
    ['q=1', { fit: 'inside', format: 'auto', q: 1 }],
    ['q=100', { fit: 'inside', format: 'auto', q: 100 }],
    ['blur=0.3', { fit: 'inside', format: 'auto', blur: 0.3 }],
    ['blur=0.30', { fit: 'inside', format: 'auto', blur: 0.3 }],
    ['blur=100', { fit: 'inside', format: 'auto', blur: 100 }],
    ['blur=12.75', { fit: 'inside', format: 'auto', blur: 12.75 }],
    ['dpr=2', { fit: 'inside', format: 'auto' }],
    ['w=100&dpr=1', { w: 100, fit: 'inside', format: 'auto' }],
    ['w=100&dpr=2', { w: 200, fit: 'inside', format: 'auto' }],
    ['w=100&h=50&dpr=1.5', { w: 150, h: 75, fit: 'inside', format: 'auto' }],
    ['w=3&dpr=1.15', { w: 3, fit: 'inside', format: 'auto' }], // 3.45 rounds down, exactly
    ['w=10&dpr=1.25', { w: 13, fit: 'inside', format: 'auto' }], // 12.5 rounds half up
    ['w=1024&dpr=4', { w: 4096, fit: 'inside', format: 'auto' }],
    ['w=1&dpr=4.00', { w: 4, fit: 'inside', format: 'auto' }],
  ])('%s', (query, transform) => {
    expect(parse(query)).toStrictEqual(transform);
  });
});

describe('parseTransform: rejected values name the parameter (sharp style)', () => {
  it.each([
    ['w=0', 'Expected integer 1..4096 for w but received 0'],
    ['w=4097', 'Expected integer 1..4096 for w but received 4097'],
    ['w=-5', 'Expected integer 1..4096 for w but received -5'],
    ['w=5.0', 'Expected integer 1..4096 for w but received 5.0'],
    ['w=010', 'Expected integer 1..4096 for w but received "010"'],
    ['w=1e3', 'Expected integer 1..4096 for w but received "1e3"'],
    ['w=%205', 'Expected integer 1..4096 for w but received " 5"'],
    ['w=5%20', 'Expected integer 1..4096 for w but received "5 "'],
    ['w=%2B5', 'Expected integer 1..4096 for w but received "+5"'],
    ['w=0x10', 'Expected integer 1..4096 for w but received "0x10"'],
    ['w=abc', 'Expected integer 1..4096 for w but received "abc"'],
    ['w=', 'Expected integer 1..4096 for w but received ""'],
    ['w', 'Expected integer 1..4096 for w but received ""'],
    ['w=99999999999999999999', 'Expected integer 1..4096 for w but received 99999999999999999999'],
    ['h=0', 'Expected integer 1..4096 for h but received 0'],
    ['h=4097', 'Expected integer 1..4096 for h but received 4097'],
    ['fit=big', 'Expected one of cover, contain, fill, inside, outside for fit but received "big"'],
    ['fit=Cover', 'Expected one of cover, contain, fill, inside, outside for fit but received "Cover"'],
    ['fit=', 'Expected one of cover, contain, fill, inside, outside for fit but received ""'],
    ['format=gif', 'Expected one of auto, jpeg, png, webp, avif for format but received "gif"'],
    ['format=jpg', 'Expected one of auto, jpeg, png, webp, avif for format but received "jpg"'],
    ['format=', 'Expected one of auto, jpeg, png, webp, avif for format but received ""'],
    ['q=0', 'Expected integer 1..100 for q but received 0'],
    ['q=101', 'Expected integer 1..100 for q but received 101'],
    ['q=50.5', 'Expected integer 1..100 for q but received 50.5'],
    ['q=', 'Expected integer 1..100 for q but received ""'],
    ['dpr=0.5', 'Expected number 1..4 with at most 2 decimals for dpr but received 0.5'],
    ['dpr=4.01', 'Expected number 1..4 with at most 2 decimals for dpr but received 4.01'],
    ['dpr=5', 'Expected number 1..4 with at most 2 decimals for dpr but received 5'],
    ['dpr=1.333', 'Expected number 1..4 with at most 2 decimals for dpr but received 1.333'],
    // Three decimals within the range: refused, never read as another number (1.005 as 1.05).
    ['dpr=1.005', 'Expected number 1..4 with at most 2 decimals for dpr but received 1.005'],
    ['dpr=1.', 'Expected number 1..4 with at most 2 decimals for dpr but received "1."'],
    ['dpr=.5', 'Expected number 1..4 with at most 2 decimals for dpr but received ".5"'],
    ['dpr=2e0', 'Expected number 1..4 with at most 2 decimals for dpr but received "2e0"'],
    ['dpr=', 'Expected number 1..4 with at most 2 decimals for dpr but received ""'],
    ['blur=0.29', 'Expected number 0.3..100 with at most 2 decimals for blur but received 0.29'],
    ['blur=0', 'Expected number 0.3..100 with at most 2 decimals for blur but received 0'],
    ['blur=100.01', 'Expected number 0.3..100 with at most 2 decimals for blur but received 100.01'],
    ['blur=2.125', 'Expected number 0.3..100 with at most 2 decimals for blur but received 2.125'],
    ['blur=01', 'Expected number 0.3..100 with at most 2 decimals for blur but received "01"'],
    ['blur=NaN', 'Expected number 0.3..100 with at most 2 decimals for blur but received "NaN"'],
    ['blur=Infinity', 'Expected number 0.3..100 with at most 2 decimals for blur but received "Infinity"'],
    ['w=3000&dpr=2', 'Expected integer 1..4096 for w × dpr but received 6000'],
    ['h=2049&dpr=2', 'Expected integer 1..4096 for h × dpr but received 4098'],
    ['preset=huge', 'Expected integer 1..4096 for w but received 5000'],
    ['foo=1', 'Unknown parameter "foo"'],
    ['W=100', 'Unknown parameter "W"'],
    ['width=100', 'Unknown parameter "width"'],
    ['=5', 'Unknown parameter ""'],
    ['w=1&w=1', 'Repeated parameter "w"'],
    ['w=abc&w=5', 'Repeated parameter "w"'],
    ['fit=cover&w=1&h=1&fit=cover', 'Repeated parameter "fit"'],
    ['preset=x', 'Unknown preset "x"'],
    ['preset=', 'Unknown preset ""'],
    ['preset=constructor', 'Unknown preset "constructor"'],
    ['preset=__proto__', 'Unknown preset "__proto__"'],
    ['preset=toString', 'Unknown preset "toString"'],
  ])('%s → %s', (query, message) => {
    const error = failure(query);
    expect(error.code).toBe('invalid_transform');
    expect(error.status).toBe(400);
    expect(error.publicMessage).toBe(message);
  });

  it('reports the first unknown name before any bad value', () => {
    expect(failure('w=abc&zzz=1').publicMessage).toBe('Unknown parameter "zzz"');
  });

  it('never echoes more than 40 characters of what it was sent', () => {
    const long = 'x'.repeat(500);
    expect(failure(`${long}=1`).publicMessage).toBe(`Unknown parameter "${'x'.repeat(40)}…"`);
    expect(failure(`fit=${long}`).publicMessage).toBe(
      `Expected one of cover, contain, fill, inside, outside for fit but received "${'x'.repeat(40)}…"`,
    );
    expect(failure(`w=${'9'.repeat(60)}`).publicMessage).toBe(
      `Expected integer 1..4096 for w but received "${'9'.repeat(40)}…"`,
    );
    expect(failure(`preset=${long}`).publicMessage).toBe(`Unknown preset "${'x'.repeat(40)}…"`);
  });

  it('escapes control characters and quotes instead of echoing them raw', () => {
    expect(failure('fit=a%0D%0Ab%22').publicMessage).toBe(
      'Expected one of cover, contain, fill, inside, outside for fit but received "a\\r\\nb\\""',
    );
    // Truncation counts characters, so it never splits a surrogate pair into invalid text.
    const message = failure(`fit=${'😀'.repeat(50)}`).publicMessage;
    expect(message).toContain(`"${'😀'.repeat(40)}…"`);
  });
});

describe('parseTransform: normalization (one cache entry per variant)', () => {
  it.each([
    ['w=100&fit=inside', 'w=100'],
    ['w=100&fit=cover', 'w=100'],
    ['h=100&fit=fill', 'h=100'],
    ['fit=outside', 'format=auto'],
    ['w=100&h=80&fit=inside', 'h=80&w=100'],
    ['w=100&format=auto', 'w=100'],
    ['w=50&dpr=2', 'w=100'],
    ['w=50&h=40&dpr=2&fit=cover', 'fit=cover&h=80&w=100'],
    ['dpr=3', 'format=auto'],
    ['dpr=1&w=7', 'w=7'],
    ['blur=2.50', 'blur=2.5'],
    ['q=70&format=webp&preset=thumb', 'preset=thumb'],
    ['preset=thumb', 'w=200&h=200&fit=cover&format=webp&q=70'],
    ['preset=wide', 'w=800'],
  ])('%s ≡ %s', (a, b) => {
    const left = parse(a);
    const right = parse(b);
    expect(left).toStrictEqual(right);
    expect(canonicalTransform(left as Transform)).toBe(canonicalTransform(right as Transform));
  });

  it('keeps different variants apart', () => {
    const distinct = [
      'w=100',
      'h=100',
      'w=100&h=100',
      'w=100&h=100&fit=cover',
      'w=100&q=80',
      'w=100&format=webp',
    ];
    const canon = distinct.map((query) => canonicalTransform(parse(query) as Transform));
    expect(new Set(canon).size).toBe(distinct.length);
  });

  it('returns null only when no transform parameter is present', () => {
    expect(parse('')).toBeNull();
    expect(parse('access_token=abc', {}, ['access_token'])).toBeNull();
    expect(parse('dpr=2')).toStrictEqual(defaultTransform);
    expect(parse('format=auto')).toStrictEqual(defaultTransform);
  });
});

describe('parseTransform: presets', () => {
  it('expands the preset as the base', () => {
    expect(parse('preset=thumb')).toStrictEqual({ w: 200, h: 200, fit: 'cover', format: 'webp', q: 70 });
    expect(parse('preset=soft&w=10')).toStrictEqual({ w: 10, fit: 'inside', format: 'auto', blur: 2 });
  });

  it('lets explicit parameters override it', () => {
    expect(parse('preset=thumb&w=300&format=avif&fit=contain')).toStrictEqual({
      w: 300,
      h: 200,
      fit: 'contain',
      format: 'avif',
      q: 70,
    });
  });

  it('applies dpr to the preset box too', () => {
    expect(parse('preset=thumb&dpr=2')).toStrictEqual({
      w: 400,
      h: 400,
      fit: 'cover',
      format: 'webp',
      q: 70,
    });
  });

  it('drops a preset fit that does not matter', () => {
    expect(parse('preset=tall')).toStrictEqual({ h: 300, fit: 'inside', format: 'auto' });
    expect(canonicalTransform(parse('preset=tall') as Transform)).toBe('format=auto&h=300');
  });
});

describe('parseTransform: strictSizes', () => {
  const strict = { strictSizes: true, sizes: [100, 200, 400] };

  it('accepts only configured sizes, after dpr', () => {
    expect(parse('w=100&h=200', strict)).toStrictEqual({ w: 100, h: 200, fit: 'inside', format: 'auto' });
    expect(parse('w=100&dpr=2', strict)).toStrictEqual({ w: 200, fit: 'inside', format: 'auto' });
    expect(parse('format=webp&q=50', strict)).toStrictEqual({ fit: 'inside', format: 'webp', q: 50 });
  });

  it.each([
    ['w=150', 'Expected one of 100, 200, 400 for w but received 150'],
    ['w=100&h=300', 'Expected one of 100, 200, 400 for h but received 300'],
    ['w=100&dpr=1.5', 'Expected one of 100, 200, 400 for w × dpr but received 150'],
    ['preset=thumb&dpr=1.25', 'Expected one of 100, 200, 400 for w × dpr but received 250'],
  ])('%s → %s', (query, message) => {
    const error = failure(query, strict);
    expect(error.code).toBe('invalid_transform');
    expect(error.publicMessage).toBe(message);
  });

  it('refuses every size when none is configured', () => {
    expect(failure('w=100', { strictSizes: true, sizes: [] }).publicMessage).toBe(
      'Expected no size (none is configured) for w but received 100',
    );
  });

  it('ignores sizes when not strict', () => {
    expect(parse('w=150', { sizes: [100] })).toStrictEqual({ w: 150, fit: 'inside', format: 'auto' });
  });
});

describe('parseTransform: ignored credential parameters', () => {
  const ignore = ['access_token', 'exp', 'kid', 'sig'];

  it('skips them, even repeated or empty (the credential layer judges them)', () => {
    expect(parse('access_token=a&w=10&exp=1&kid=k&sig=', {}, ignore)).toStrictEqual({
      w: 10,
      fit: 'inside',
      format: 'auto',
    });
    expect(parse('access_token=a&access_token=b', {}, ignore)).toBeNull();
  });

  it('still refuses them when not ignored', () => {
    expect(failure('access_token=abc').publicMessage).toBe('Unknown parameter "access_token"');
  });

  it('never echoes a credential value in a message', () => {
    const error = (() => {
      try {
        parse('access_token=SECRET-TOKEN&w=0', {}, ignore);
      } catch (caught) {
        return caught as AppError;
      }
      throw new Error('expected a failure');
    })();
    expect(error.publicMessage).toBe('Expected integer 1..4096 for w but received 0');
    expect(error.message).not.toContain('SECRET');
  });
});

describe('canonicalTransform and transformToQuery', () => {
  it('sorts by name, lists set fields only, and fit only with a box', () => {
    expect(canonicalTransform({ w: 200, h: 200, fit: 'cover', format: 'webp', q: 80 })).toBe(
      'fit=cover&format=webp&h=200&q=80&w=200',
    );
    expect(canonicalTransform({ w: 200, fit: 'cover', format: 'auto' })).toBe('format=auto&w=200');
    expect(canonicalTransform({ fit: 'inside', format: 'auto', blur: 0.5 })).toBe('blur=0.5&format=auto');
    expect(canonicalTransform(defaultTransform)).toBe('format=auto');
  });

  it('round-trips through parseTransform for random normalized transforms', () => {
    let seed = 42;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const fitsList = ['cover', 'contain', 'fill', 'inside', 'outside'] as const;
    const formats = ['auto', 'jpeg', 'png', 'webp', 'avif'] as const;
    for (let i = 0; i < 500; i++) {
      const w = next(3) > 0 ? 1 + next(4096) : undefined;
      const h = next(3) > 0 ? 1 + next(4096) : undefined;
      const q = next(2) ? 1 + next(100) : undefined;
      const blur = next(2) ? (30 + next(9971)) / 100 : undefined;
      const transform = parse(
        new URLSearchParams(
          Object.entries({ w, h, q, blur, fit: fitsList[next(5)], format: formats[next(5)] })
            .filter(([, value]) => value !== undefined)
            .map(([key, value]): [string, string] => [key, String(value)]),
        ).toString(),
      ) as Transform;
      const query = transformToQuery(transform);
      expect(parseTransform(query, limits)).toStrictEqual(transform);
      expect(query.toString()).toBe(canonicalTransform(transform));
      expect([...query.keys()]).toStrictEqual([...query.keys()].sort());
    }
  });
});

describe('canonicalTransform', () => {
  it('is exactly transformToQuery(t).toString() for every combination of fields', () => {
    const options = {
      w: [undefined, 1, 360],
      h: [undefined, 200],
      fit: ['cover', 'inside', 'outside'] as const,
      format: ['auto', 'jpeg', 'avif'] as const,
      q: [undefined, 80],
      blur: [undefined, 0.3, 12.5],
    };
    let checked = 0;
    for (const w of options.w)
      for (const h of options.h)
        for (const fit of options.fit)
          for (const format of options.format)
            for (const q of options.q)
              for (const blur of options.blur) {
                const t: Transform = { w, h, fit, format, q, blur };
                expect(canonicalTransform(t)).toBe(transformToQuery(t).toString());
                checked++;
              }
    expect(checked).toBe(3 * 2 * 3 * 3 * 2 * 3);
  });
});
