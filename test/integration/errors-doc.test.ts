import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCodes, errorStatus } from '../../src/errors.js';

// The README's error table is the users' contract: every code the server can answer with is
// documented there, with its status, and nothing documented is missing from the catalogue.
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const section = readme.slice(readme.indexOf('## Errors'));
const rows = new Map(
  [...section.matchAll(/^\| `([a-z_]+)` *\| (\d{3}) *\|/gm)].map(
    (match) => [match[1], Number(match[2])] as const,
  ),
);

describe('README error table', () => {
  it.each(errorCodes)('documents %s with its status', (code) => {
    expect(rows.get(code)).toBe(errorStatus[code]);
  });

  it('documents no code the catalogue lacks', () => {
    expect([...rows.keys()].filter((code) => !errorCodes.includes(code as never))).toEqual([]);
  });
});
