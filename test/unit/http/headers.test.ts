import { describe, expect, it } from 'vitest';
import { matchesIfNoneMatch } from '../../../src/http/headers.js';

const ETAG = '"Zm9vYmFy"';

describe('matchesIfNoneMatch (RFC 9110 §13.1.2: weak comparison)', () => {
  it.each([
    ['our ETag', ETAG],
    ['our ETag made weak, as a proxy that compresses hands it back', `W/${ETAG}`],
    ['our ETag among others', `"other", ${ETAG}`],
    ['our weak ETag among others, without blanks', `W/"other",W/${ETAG}`],
    ['the wildcard', '*'],
    ['the wildcard with blanks', ' * '],
  ])('matches %s', (_name, header) => {
    expect(matchesIfNoneMatch(header, ETAG)).toBe(true);
  });

  it.each([
    ['no header', undefined],
    ['another ETag', '"other"'],
    ['our ETag unquoted', 'Zm9vYmFy'],
    ['a prefix of our ETag', '"Zm9v"'],
    ['a lower-case weak prefix (w/ is not W/)', `w/${ETAG}`],
    ['an empty header', ''],
  ])('does not match %s', (_name, header) => {
    expect(matchesIfNoneMatch(header, ETAG)).toBe(false);
  });
});
