import { describe, expect, it } from 'vitest';
import { acceptsExplicitly, chooseFormat, isAnimated } from '../../../src/images/negotiate.js';
import type { OutputFormat } from '../../../src/images/types.js';

const photo = { hasAlpha: false, isAnimated: false };
const logo = { hasAlpha: true, isAnimated: false };
const animation = { hasAlpha: false, isAnimated: true };
const SMALL = 360 * 270;
const CAP = 1_000_000;

const CHROME = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8';
const SAFARI_16 =
  'image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5';
const FIREFOX_WEBP_ONLY = 'image/webp,*/*';
const OLD_BROWSER = 'image/png,image/*;q=0.8,*/*;q=0.5';

describe('chooseFormat with format=auto', () => {
  it.each<[string, string | undefined, OutputFormat]>([
    ['no Accept header', undefined, 'jpeg'],
    ['empty Accept', '', 'jpeg'],
    ['Chrome', CHROME, 'avif'],
    ['Safari 16', SAFARI_16, 'avif'],
    ['WebP only', FIREFOX_WEBP_ONLY, 'webp'],
    ['old browser', OLD_BROWSER, 'jpeg'],
    ['wildcards only', 'image/*,*/*', 'jpeg'],
    ['*/* only', '*/*', 'jpeg'],
    ['avif alone', 'image/avif', 'avif'],
    ['webp alone', 'image/webp', 'webp'],
    ['case-insensitive type', 'IMAGE/AVIF', 'avif'],
    ['spaces around', '  image/webp ; q=0.5 , text/html', 'webp'],
    ['avif refused with q=0', 'image/avif;q=0,image/webp', 'webp'],
    ['avif refused with q=0.000', 'image/avif;q=0.000,image/webp', 'webp'],
    ['both refused', 'image/avif;q=0,image/webp;q=0,image/*', 'jpeg'],
    ['webp q=0 with a wildcard', 'image/webp;q=0,*/*', 'jpeg'],
    ['lowest positive q still counts', 'image/webp;q=0.001', 'webp'],
    ['q=1.000', 'image/webp;q=1.000', 'webp'],
    ['Q in capitals', 'image/webp;Q=0.5', 'webp'],
    ['other params before q', 'image/webp;level=1;q=0.4', 'webp'],
    ['q=0 elsewhere in the list wins', 'image/webp, image/webp;q=0', 'jpeg'],
    ['malformed q counts for nothing', 'image/webp;q=abc', 'jpeg'],
    ['q above 1 counts for nothing', 'image/webp;q=2', 'jpeg'],
    ['q with 4 decimals counts for nothing', 'image/webp;q=0.1234', 'jpeg'],
    ['negative q counts for nothing', 'image/avif;q=-1,image/webp', 'webp'],
    ['a prefix is not a match', 'image/webpx,image/avif2', 'jpeg'],
    ['a suffix parameter is not a type', 'text/html;image/webp', 'jpeg'],
  ])('%s', (_name, accept, format) => {
    expect(chooseFormat('auto', accept, photo, SMALL, CAP)).toBe(format);
  });

  it('gives PNG rather than JPEG to an image with alpha', () => {
    expect(chooseFormat('auto', OLD_BROWSER, logo, SMALL, CAP)).toBe('png');
    expect(chooseFormat('auto', CHROME, logo, SMALL, CAP)).toBe('avif');
    expect(chooseFormat('auto', FIREFOX_WEBP_ONLY, logo, SMALL, CAP)).toBe('webp');
  });

  it('skips AVIF above the pixel cap, where it would take seconds', () => {
    expect(chooseFormat('auto', CHROME, photo, CAP, CAP)).toBe('avif');
    expect(chooseFormat('auto', CHROME, photo, CAP + 1, CAP)).toBe('webp');
    expect(chooseFormat('auto', 'image/avif', photo, CAP + 1, CAP)).toBe('jpeg');
    expect(chooseFormat('auto', CHROME, photo, 1, 0)).toBe('webp');
  });

  it('skips AVIF for animations, which WebP keeps', () => {
    expect(chooseFormat('auto', CHROME, animation, SMALL, CAP)).toBe('webp');
    expect(chooseFormat('auto', 'image/avif', animation, SMALL, CAP)).toBe('jpeg');
  });
});

describe('chooseFormat with an explicit format', () => {
  it.each<OutputFormat>(['jpeg', 'png', 'webp', 'avif'])('always honours %s', (format) => {
    expect(chooseFormat(format, undefined, photo, 50_000_000, CAP)).toBe(format);
    expect(chooseFormat(format, 'image/avif;q=0,image/webp;q=0', animation, SMALL, 0)).toBe(format);
  });
});

describe('acceptsExplicitly', () => {
  it('matches the exact type only', () => {
    expect(acceptsExplicitly('image/*', 'image/webp')).toBe(false);
    expect(acceptsExplicitly('image/webp', 'image/webp')).toBe(true);
    expect(acceptsExplicitly(undefined, 'image/webp')).toBe(false);
  });
});

describe('isAnimated', () => {
  it.each<[string, number, boolean]>([
    ['gif', 2, true],
    ['webp', 10, true],
    ['gif', 1, false],
    ['tiff', 5, false],
    ['heif', 3, false],
  ])('%s with %i pages → %s', (format, pages, expected) => {
    expect(isAnimated(format, pages)).toBe(expected);
  });
});
