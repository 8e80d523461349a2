import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/logger.js';

describe('redactUrl', () => {
  it.each([
    ['/v1/images/abc', '/v1/images/abc'],
    ['/v1/images/abc?w=360&format=webp', '/v1/images/abc?w=360&format=webp'],
    ['/v1/images/abc?w=360&access_token=T', '/v1/images/abc?w=360&access_token=[redacted]'],
    ['/v1/images/abc?ACCESS_TOKEN=T', '/v1/images/abc?ACCESS_TOKEN=[redacted]'],
    ['/v1/images/abc?access%5Ftoken=T', '/v1/images/abc?access%5Ftoken=[redacted]'],
    ['/v1/images/abc?%73ig=S&exp=1', '/v1/images/abc?%73ig=[redacted]&exp=1'],
    ['/v1/images/abc?w=360&sig=S&kid=k', '/v1/images/abc?w=360&sig=[redacted]&kid=k'],
    // Names that merely contain the words are not credentials.
    ['/v1/images/abc?signature=S', '/v1/images/abc?signature=S'],
    // URLSearchParams drops one leading `?`: the server reads these as credentials.
    ['/v1/images/abc??access_token=T', '/v1/images/abc??access_token=[redacted]'],
    ['/v1/images/abc??sig=S&exp=1', '/v1/images/abc??sig=[redacted]&exp=1'],
    ['/s/SHARETOKEN', '/s/[redacted]'],
    ['/s/SHARETOKEN?w=360', '/s/[redacted]?w=360'],
    ['http://127.0.0.1:8080/s/SHARETOKEN?w=360', 'http://127.0.0.1:8080/s/[redacted]?w=360'],
    ['/%73/SHARETOKEN', '/%73/[redacted]'],
    ['//S//SHARETOKEN/x', '//S//[redacted]/x'],
    ['/./s/SHARETOKEN', '/./s/[redacted]'],
    ['/v1/../s/SHARETOKEN', '/v1/../s/[redacted]'],
  ])('%s is logged as %s', (url, logged) => {
    expect(redactUrl(url)).toBe(logged);
  });
});
