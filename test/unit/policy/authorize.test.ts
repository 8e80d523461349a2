import { describe, expect, it } from 'vitest';
import type { Principal } from '../../../src/auth/principal.js';
import { AppError } from '../../../src/errors.js';
import { predictOutputSize } from '../../../src/images/output-size.js';
import type { Transform } from '../../../src/images/types.js';
import {
  authorizeChange,
  authorizeList,
  authorizeMeta,
  authorizeRegister,
  authorizeUpload,
  authorizeView,
  type PolicyOptions,
} from '../../../src/policy/authorize.js';
import type { ImageRecord, Visibility } from '../../../src/store/store.js';

const options: PolicyOptions = { previewMax: 360, previewAnonymous: false, maxDimension: 4096 };

const principal = (subject: string, scope = 'images:read images:write'): Principal => ({
  subject,
  scopes: new Set(scope.split(' ').filter(Boolean)),
  expiresAt: 2_000_000_000,
});

const image = (visibility: Visibility, format = 'jpeg'): ImageRecord => ({
  id: 'AAAAAAAAAAAAAAAAAAAAAA',
  owner: 'alice',
  visibility,
  version: 1,
  originKey: 'AA/AAAAAAAAAAAAAAAAAAAAAA',
  originEtag: 'etag',
  format,
  width: 2000,
  height: 1500,
  bytes: 1000,
  hasAlpha: false,
  pages: 1,
  placeholder: '',
  createdAt: new Date(0),
});

const callers = {
  owner: principal('alice'),
  admin: principal('root', 'images:admin'),
  other: principal('bob'),
  anonymous: null,
} as const;

const big: Transform = { w: 1000, fit: 'inside', format: 'auto' };
const small: Transform = { w: 200, fit: 'inside', format: 'webp' };

/** `preview`: a preview within previewMax as asked, not scaled down but marked as a preview. */
type Outcome = 'original' | 'variant' | 'clamped' | 'preview' | 401 | 404;

/**
 * What authorizeView answers. A clamped preview is checked by what it makes, not by its flag:
 * the output size predicted for its transform (as the pipeline will make it) fits previewMax on
 * both sides, or the test fails here. Every clamped variant is a preview.
 */
function outcome(
  who: Principal | null,
  source: ImageRecord | undefined,
  requested: Transform | null,
  policy: PolicyOptions = options,
): Outcome {
  try {
    const decision = authorizeView(who, source, requested, policy);
    if (decision.kind === 'original') return 'original';
    if (decision.isClamped) {
      expectWithinPreview(source as ImageRecord, decision.transform, policy);
      expect(decision.isPreview).toBe(true);
      return 'clamped';
    }
    return decision.isPreview ? 'preview' : 'variant';
  } catch (error) {
    if (error instanceof AppError && (error.status === 401 || error.status === 404)) return error.status;
    throw error;
  }
}

function expectWithinPreview(source: ImageRecord, transform: Transform, policy: PolicyOptions): void {
  const size = predictOutputSize(source, transform);
  expect(size.width, JSON.stringify(transform)).toBeLessThanOrEqual(policy.previewMax);
  expect(size.height, JSON.stringify(transform)).toBeLessThanOrEqual(policy.previewMax);
}

// Every cell of SPEC §2's table, for three requests: the original (no parameters), a variant
// larger than previewMax, and one within it.
const table: Array<[keyof typeof callers, Visibility, Outcome, Outcome, Outcome]> = [
  //  caller       visibility   original     big        small
  ['owner', 'private', 'original', 'variant', 'variant'],
  ['owner', 'preview', 'original', 'variant', 'variant'],
  ['owner', 'public', 'original', 'variant', 'variant'],
  ['admin', 'private', 'original', 'variant', 'variant'],
  ['admin', 'preview', 'original', 'variant', 'variant'],
  ['admin', 'public', 'original', 'variant', 'variant'],
  ['other', 'private', 404, 404, 404],
  ['other', 'preview', 'clamped', 'clamped', 'preview'],
  ['other', 'public', 'variant', 'variant', 'variant'],
  ['anonymous', 'private', 401, 401, 401],
  ['anonymous', 'preview', 401, 401, 401],
  ['anonymous', 'public', 'variant', 'variant', 'variant'],
];

describe('authorizeView: the table of SPEC §2', () => {
  for (const [caller, visibility, original, large, within] of table) {
    it(`${caller} × ${visibility}: original → ${original}, w=1000 → ${large}, w=200 → ${within}`, () => {
      const who = callers[caller];
      expect(outcome(who, image(visibility), null)).toBe(original);
      expect(outcome(who, image(visibility), big)).toBe(large);
      expect(outcome(who, image(visibility), small)).toBe(within);
    });
  }

  it('anonymous previews when previewAnonymous is on, and still 401 for private', () => {
    const on = { ...options, previewAnonymous: true };
    expect(outcome(null, image('preview'), big, on)).toBe('clamped');
    expect(outcome(null, image('preview'), null, on)).toBe('clamped');
    expect(outcome(null, image('private'), big, on)).toBe(401);
  });

  it('a missing image is 404 for a user and 401 for the anonymous, like a private one', () => {
    expect(outcome(callers.other, undefined, null)).toBe(404);
    expect(outcome(callers.owner, undefined, null)).toBe(404);
    expect(outcome(null, undefined, null)).toBe(401);
  });

  it('a clamped preview has both sides within previewMax', () => {
    const source = image('preview');
    const decision = authorizeView(
      callers.other,
      source,
      { w: 2000, h: 2000, fit: 'cover', format: 'auto' },
      options,
    );
    expect(decision).toMatchObject({ kind: 'variant', isClamped: true });
    if (decision.kind !== 'variant') return;
    expectWithinPreview(source, decision.transform, options);
    expect(decision.transform.fit).toBe('cover');
  });

  it('the original of a non-owner is a re-encoded variant, never the stored bytes', () => {
    const decision = authorizeView(callers.other, image('public'), null, options);
    expect(decision).toMatchObject({ kind: 'variant', isClamped: false, isPreview: false });
  });

  it('SVG is rasterized even for its owner', () => {
    expect(authorizeView(callers.owner, image('private', 'svg'), null, options).kind).toBe('variant');
  });

  it('a token without images:read (nor write/admin) is 403 insufficient_scope', () => {
    const noScope = principal('alice', 'openid profile');
    expect(() => authorizeView(noScope, image('public'), null, options)).toThrowError(
      expect.objectContaining({ code: 'insufficient_scope', status: 403 }),
    );
  });
});

describe('authorizeMeta', () => {
  it('names the owner only to owner and admin', () => {
    expect(authorizeMeta(callers.owner, image('public'), options).showOwner).toBe(true);
    expect(authorizeMeta(callers.admin, image('private'), options).showOwner).toBe(true);
    expect(authorizeMeta(callers.other, image('public'), options).showOwner).toBe(false);
    expect(authorizeMeta(null, image('public'), options).showOwner).toBe(false);
    expect(() => authorizeMeta(callers.other, image('private'), options)).toThrowError(
      expect.objectContaining({ status: 404 }),
    );
  });
});

describe('authorizeChange', () => {
  const code = (run: () => void) => {
    try {
      run();
      return 'ok';
    } catch (error) {
      return (error as AppError).code;
    }
  };
  it('owner and admin may change; others get 404 when they cannot see it, 403 when they can', () => {
    expect(code(() => authorizeChange(callers.owner, image('private'), options))).toBe('ok');
    expect(code(() => authorizeChange(callers.admin, image('private'), options))).toBe('ok');
    expect(code(() => authorizeChange(callers.other, image('private'), options))).toBe('not_found');
    expect(code(() => authorizeChange(callers.other, image('preview'), options))).toBe('forbidden');
    expect(code(() => authorizeChange(callers.other, image('public'), options))).toBe('forbidden');
    expect(code(() => authorizeChange(null, image('public'), options))).toBe('unauthenticated');
    expect(code(() => authorizeChange(principal('alice', 'images:read'), image('private'), options))).toBe(
      'insufficient_scope',
    );
  });
});

describe('authorizeRegister', () => {
  it('registering needs images:admin; images:write is not enough', () => {
    expect(authorizeRegister(callers.admin).subject).toBe('root');
    expect(() => authorizeRegister(null)).toThrowError(expect.objectContaining({ code: 'unauthenticated' }));
    expect(() => authorizeRegister(principal('alice', 'images:read'))).toThrowError(
      expect.objectContaining({
        code: 'insufficient_scope',
        publicMessage: 'The access token needs the scope images:admin',
      }),
    );
    expect(() => authorizeRegister(principal('alice', 'images:read images:write'))).toThrowError(
      expect.objectContaining({
        code: 'insufficient_scope',
        publicMessage: 'The access token needs the scope images:admin',
      }),
    );
  });
});

describe('authorizeUpload and authorizeList', () => {
  it('upload needs images:write', () => {
    expect(authorizeUpload(callers.owner).subject).toBe('alice');
    expect(() => authorizeUpload(principal('alice', 'images:read'))).toThrowError(
      expect.objectContaining({ code: 'insufficient_scope' }),
    );
    expect(() => authorizeUpload(null)).toThrowError(expect.objectContaining({ code: 'unauthenticated' }));
  });
  it('one lists one own images; admins anyone', () => {
    expect(authorizeList(callers.owner, 'alice').subject).toBe('alice');
    expect(authorizeList(callers.admin, 'alice').subject).toBe('root');
    expect(() => authorizeList(callers.other, 'alice')).toThrowError(
      expect.objectContaining({ code: 'forbidden' }),
    );
    expect(() => authorizeList(null, 'alice')).toThrowError(
      expect.objectContaining({ code: 'unauthenticated' }),
    );
  });
});
