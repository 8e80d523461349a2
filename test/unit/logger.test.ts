import { describe, expect, it, vi } from 'vitest';
import { createLogger, LazyChildLogger, redactUrl } from '../../src/logger.js';

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

describe('LazyChildLogger', () => {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('info', {
      write: (line: string) => {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    });
    return { logger, lines };
  }

  it('binds its bindings to what is logged through it, and makes the child once, when first used', () => {
    const { logger, lines } = capture();
    const children = vi.spyOn(logger, 'child');
    const lazy = new LazyChildLogger(logger, { reqId: 'r-1' });
    expect(children).not.toHaveBeenCalled();
    lazy.warn({ sub: 'alice' }, 'first');
    lazy.info('second');
    expect(children).toHaveBeenCalledTimes(1);
    expect(lines).toMatchObject([
      { level: 40, reqId: 'r-1', sub: 'alice', msg: 'first' },
      { level: 30, reqId: 'r-1', msg: 'second' },
    ]);
  });

  it('makes no child for a level that is off', () => {
    const { logger, lines } = capture();
    const children = vi.spyOn(logger, 'child');
    const lazy = new LazyChildLogger(logger, { reqId: 'r-2' });
    lazy.debug('hidden');
    lazy.trace('hidden');
    expect(children).not.toHaveBeenCalled();
    expect(lines).toEqual([]);
    expect(lazy.level).toBe('info');
  });
});
