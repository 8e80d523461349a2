import { describe, expect, it, vi } from 'vitest';
import { createLogger, LazyChildLogger, redactUrl, scrubLine } from '../../src/logger.js';

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

describe('credentials in logged objects', () => {
  function lineOf(log: (logger: ReturnType<typeof createLogger>) => void): string {
    const lines: string[] = [];
    log(createLogger('trace', { write: (line: string) => void lines.push(line) }));
    expect(lines).toHaveLength(1);
    return lines[0] as string;
  }

  it('censors header values at any depth, whatever the case of the name', () => {
    const line = lineOf((logger) =>
      logger.trace(
        {
          busboyOptions: {
            headers: { authorization: 'Bearer SECRET-1', cookie: 'sid=SECRET-2', accept: '*/*' },
          },
          origin: {
            request: {
              options: { headers: { Authorization: 'Basic SECRET-3', 'X-CSRF-Token': 'SECRET-4' } },
            },
          },
          list: [{ 'set-cookie': ['sid=SECRET-5'] }],
        },
        'options',
      ),
    );
    expect(line).not.toContain('SECRET');
    expect(JSON.parse(line)).toMatchObject({
      busboyOptions: { headers: { authorization: '[redacted]', cookie: '[redacted]', accept: '*/*' } },
    });
  });

  it("censors an error's raw request bytes, in its causes too, and keeps the rest of it", () => {
    const packet = () =>
      Buffer.from('GET /?access_token=SECRET HTTP/1.1\r\nAuthorization: Bearer SECRET\r\n');
    const cause = Object.assign(new Error('inner'), { rawPacket: packet() });
    const error = Object.assign(new Error('Parse Error', { cause }), { code: 'HPE_X', rawPacket: packet() });
    const line = lineOf((logger) => logger.trace({ err: error, context: { error: cause } }, 'client error'));
    expect(line).not.toContain('SECRET');
    expect(JSON.parse(line)).toMatchObject({
      err: { type: 'Error', code: 'HPE_X', rawPacket: '[redacted]', message: 'Parse Error: inner' },
      context: { error: { message: 'inner', rawPacket: '[redacted]' } },
    });
  });

  it('censors an error held in a field of another error, and in an AggregateError', () => {
    const inner = () =>
      Object.assign(new Error('parse'), {
        rawPacket: Buffer.from('GET / HTTP/1.1\r\nAuthorization: Bearer RAWSECRET\r\n'),
        headers: { authorization: 'Bearer HEADERSECRET' },
      });
    const wrapper = Object.assign(new Error('wrapper'), { original: inner() });
    const aggregate = new AggregateError([inner()], 'several');
    for (const err of [wrapper, aggregate]) {
      const line = lineOf((logger) => logger.error({ err }, 'failed'));
      expect(line).not.toContain('HEADERSECRET');
      expect(line).not.toContain('RAWSECRET');
      expect(line).not.toContain(JSON.stringify([...Buffer.from('RAWSECRET')]).slice(1, -1));
      expect(line).toContain('"message":"parse"');
    }
  });

  it('leaves a line of plain values as it is (the request line: no copy)', () => {
    const line = { reqId: 'r-1', method: 'GET', url: '/v1/images/abc', status: 200, ms: 0.4 };
    expect(scrubLine(line)).toBe(line);
  });

  it('ends on a cycle through an error', () => {
    const error = new Error('loop') as Error & { context?: unknown };
    error.context = { error };
    expect(lineOf((logger) => logger.error({ err: error }, 'loop'))).toContain('"message":"loop"');
  });
});
