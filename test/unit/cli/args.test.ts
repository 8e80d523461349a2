import { describe, expect, it } from 'vitest';
import { parseArgs, parseDuration, takeOptions } from '../../../src/cli/args.js';

describe('parseArgs', () => {
  it('splits the command, positionals and options', () => {
    expect(parseArgs(['import', 'photos', '--owner', 'alice', '--visibility=preview'])).toEqual({
      command: 'import',
      positionals: ['photos'],
      options: { owner: 'alice', visibility: 'preview' },
      help: false,
      problems: [],
    });
  });

  it('options may come before the command', () => {
    const args = parseArgs(['--port', '9000', 'serve']);
    expect(args.command).toBe('serve');
    expect(args.options).toEqual({ port: '9000' });
  });

  it('no words: no command', () => {
    expect(parseArgs([])).toEqual({
      command: undefined,
      positionals: [],
      options: {},
      help: false,
      problems: [],
    });
  });

  it('every option takes a value, booleans too: the next word is always the value', () => {
    const args = parseArgs(['serve', '--trust-proxy', 'false', '--port', '-1', 'extra']);
    expect(args.options).toEqual({ 'trust-proxy': 'false', port: '-1' });
    expect(args.positionals).toEqual(['extra']);
    expect(args.problems).toEqual([]);
  });

  it('--name=value keeps everything after the first =, even an empty value or one with dashes', () => {
    const args = parseArgs([
      'token',
      '--scope=images:read images:write',
      '--sub=',
      '--presets={"a":{"w":1}}',
      '--x=--y',
    ]);
    expect(args.options).toEqual({
      scope: 'images:read images:write',
      sub: '',
      presets: '{"a":{"w":1}}',
      x: '--y',
    });
    expect(args.problems).toEqual([]);
  });

  it('an option without a value is a problem, and does not eat the next option', () => {
    const args = parseArgs(['serve', '--port', '--host', '127.0.0.1', '--bogus']);
    expect(args.problems).toEqual(['--port: expected a value', '--bogus: expected a value']);
    expect(args.options).toEqual({ host: '127.0.0.1' });
  });

  it('an option given twice is a problem; the last one is kept', () => {
    const args = parseArgs(['serve', '--port', '1', '--port=2']);
    expect(args.problems).toEqual(['--port: given more than once']);
    expect(args.options).toEqual({ port: '2' });
  });

  it.each([['--help'], ['-h']])('%s asks for help wherever it stands, and takes no value', (flag) => {
    const args = parseArgs(['token', flag, '--sub', 'alice']);
    expect(args).toMatchObject({ command: 'token', help: true, options: { sub: 'alice' }, problems: [] });
  });

  it('after --, every word is a positional', () => {
    const args = parseArgs(['import', '--owner', 'bob', '--', '--weird-folder', 'b']);
    expect(args.positionals).toEqual(['--weird-folder', 'b']);
    expect(args.options).toEqual({ owner: 'bob' });
  });

  it('a single dash word is a positional, not an option', () => {
    expect(parseArgs(['import', '-x']).positionals).toEqual(['-x']);
  });
});

describe('takeOptions', () => {
  it('splits the config file, the command own options and the settings flags', () => {
    const options = { config: 'pixgate.yaml', sub: 'alice', ttl: '1h', 'preview-max': '400', port: '1' };
    expect(takeOptions(options, ['sub', 'scope', 'ttl'])).toEqual({
      own: { sub: 'alice', ttl: '1h' },
      settings: { 'preview-max': '400', port: '1' },
      configFile: 'pixgate.yaml',
    });
  });

  it('without own options everything but --config is a setting', () => {
    expect(takeOptions({ owner: 'alice' }, [])).toEqual({
      own: {},
      settings: { owner: 'alice' },
      configFile: undefined,
    });
  });
});

describe('parseDuration', () => {
  it.each([
    ['90', 90],
    ['90s', 90],
    ['15m', 900],
    ['1h', 3600],
    ['7d', 604_800],
    [' 2h ', 7200],
    ['0', 0],
  ])('%j is %d seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', 'h', '1.5h', '-1', '1w', '1H', '1 h', '1h30m', 'abc', '1e3'])(
    '%j is not a duration',
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );
});
