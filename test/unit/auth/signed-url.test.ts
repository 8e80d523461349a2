import { createHmac } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { canonicalString, createSignedUrls } from '../../../src/auth/signed-url.js';
import { AppError } from '../../../src/errors.js';
import { compared } from '../../helpers/timing-safe-equal.js';

// Every timingSafeEqual signed-url.ts makes, passed through to the real one.
vi.mock('node:crypto', async (original) =>
  (await import('../../helpers/timing-safe-equal.js')).recordingTimingSafeEqual(original),
);

const SECRET = Buffer.alloc(32, 9).toString('base64');
const PATH = '/v1/images/AAAAAAAAAAAAAAAAAAAAAA';
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected a refusal');
}

describe('canonical string (README "Signed URLs")', () => {
  it('is the version tag, path, version and the sorted, encoded parameters but sig', () => {
    const params = new URLSearchParams('w=360&sig=x&kid=k1&format=webp&exp=1767272400&a b=c/d');
    expect(canonicalString(PATH, 3, params)).toBe(
      `pixgate-sig-v1\n${PATH}\n3\na%20b=c%2Fd&exp=1767272400&format=webp&kid=k1&w=360`,
    );
  });

  it('makes sig = base64url(HMAC-SHA256(secret, canonical)), checkable by hand', () => {
    const signer = createSignedUrls([{ kid: 'k1', secret: SECRET }], 3600);
    const { url, exp } = signer.sign(PATH, 2, new URLSearchParams('format=auto&w=100'), 60, NOW);
    expect(exp).toBe(Math.ceil((NOW / 1000 + 60) / 3600) * 3600);
    const query = new URL(url, 'http://x').searchParams;
    const expected = createHmac('sha256', Buffer.from(SECRET, 'base64'))
      .update(`pixgate-sig-v1\n${PATH}\n2\nexp=${exp}&format=auto&kid=k1&w=100`)
      .digest('base64url');
    expect(query.get('sig')).toBe(expected);
    expect(() => signer.verify(PATH, 2, query, NOW)).not.toThrow();
    expect(refusal(() => signer.verify(PATH, 3, query, NOW)).code).toBe('invalid_signature');
    expect(refusal(() => signer.verify(PATH, 2, query, exp * 1000)).message).toContain('expired');
  });

  it('remembers verified URLs by their exact text and version, still ending at exp', () => {
    const signer = createSignedUrls([{ kid: 'k1', secret: SECRET }], 60);
    const { url, exp } = signer.sign(PATH, 1, new URLSearchParams('format=auto&w=100'), 30, NOW);
    const raw = url.slice(url.indexOf('?') + 1);
    const query = new URLSearchParams(raw);
    signer.verify(PATH, 1, query, NOW, raw);
    signer.verify(PATH, 1, query, NOW, raw);
    // Another version (a revocation) is not served from what version 1 verified.
    expect(refusal(() => signer.verify(PATH, 2, query, NOW, raw)).code).toBe('invalid_signature');
    const tampered = raw.replace('w=100', 'w=101');
    expect(refusal(() => signer.verify(PATH, 1, new URLSearchParams(tampered), NOW, tampered)).code).toBe(
      'invalid_signature',
    );
    expect(refusal(() => signer.verify(PATH, 1, query, exp * 1000, raw)).message).toContain('expired');
  });

  it('refuses a sig of the wrong length with the 403, not a 500', () => {
    const signer = createSignedUrls([{ kid: 'k1', secret: SECRET }], 3600);
    for (const sig of ['', 'abc', 'A'.repeat(44), 'é'.repeat(43)]) {
      const query = new URLSearchParams({ exp: '9999999999', kid: 'k1', sig });
      expect(refusal(() => signer.verify(PATH, 1, query, NOW)).status).toBe(403);
    }
  });

  it('compares sig in constant time: timingSafeEqual over equal lengths, for good and bad alike (security review)', () => {
    const signer = createSignedUrls([{ kid: 'k1', secret: SECRET }], 3600);
    const { url } = signer.sign(PATH, 1, new URLSearchParams('format=auto&w=100'), 60, NOW);
    const query = new URL(url, 'http://x').searchParams;
    const sig = query.get('sig') as string;
    compared.length = 0;
    signer.verify(PATH, 1, query, NOW);
    // Wrong in its last character only: an early-exit comparison would be fastest to tell.
    const nearMiss = `${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`;
    query.set('sig', nearMiss);
    expect(refusal(() => signer.verify(PATH, 1, query, NOW)).code).toBe('invalid_signature');
    expect(compared.map(([given]) => given.toString())).toEqual([sig, nearMiss]);
    for (const [given, expected] of compared) {
      expect(given.length).toBe(expected.length);
      expect(expected.toString()).toBe(sig);
    }
  });

  it('without a key, signing is a clear 501 not_configured', () => {
    const signer = createSignedUrls([], 3600);
    expect(signer.canSign).toBe(false);
    const error = refusal(() => signer.sign(PATH, 1, new URLSearchParams(), 60, NOW));
    expect(error.code).toBe('not_configured');
    expect(error.publicMessage).toContain('PIXGATE_SIGNING_KEYS');
  });
});
