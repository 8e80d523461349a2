import { describe, expect, it } from 'vitest';
import { matchesIfMatch, matchesIfNoneMatch } from '../../../src/http/headers.js';

const ETAG = '"Zm9vYmFy"';

describe('matchesIfNoneMatch (RFC 9110 §13.1.2: weak comparison)', () => {
  it.each([
    ['our ETag', ETAG],
    ['our ETag made weak, as a proxy that compresses hands it back', `W/${ETAG}`],
    ['our ETag among others', `"other", ${ETAG}`],
    ['our weak ETag among others, without blanks', `W/"other",W/${ETAG}`],
    ['the wildcard', '*'],
    ['the wildcard with blanks', ' * '],
    ['our ETag after one with a comma inside its quotes', `"a,b", ${ETAG}`],
    ['our ETag after an element that is not a tag', `junk, ${ETAG}`],
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
    ['our ETag with junk after it', `${ETAG}junk`],
    ['our ETag split by a comma inside quotes', `"Zm9v,${ETAG.slice(1)}`],
  ])('does not match %s', (_name, header) => {
    expect(matchesIfNoneMatch(header, ETAG)).toBe(false);
  });
});

describe('matchesIfMatch (RFC 9110 §13.1.1: strong comparison)', () => {
  it.each([
    ['no header', undefined],
    ['our ETag', ETAG],
    ['our ETag among others', `"other",${ETAG}`],
    ['the wildcard', ' * '],
  ])('holds for %s', (_name, header) => {
    expect(matchesIfMatch(header, ETAG)).toBe(true);
  });

  it.each([
    ['another ETag', '"other"'],
    ['our ETag made weak', `W/${ETAG}`],
    ['our ETag unquoted', 'Zm9vYmFy'],
    ['an empty header', ''],
  ])('fails for %s', (_name, header) => {
    expect(matchesIfMatch(header, ETAG)).toBe(false);
  });
});
