import { describe, expect, it } from 'vitest';
import {
  CREDENTIAL_QUERY_PARAMS,
  type CredentialInput,
  extractCredential,
} from '../../../src/auth/credentials.js';
import { AppError } from '../../../src/errors.js';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl';

function extract(input: Partial<Omit<CredentialInput, 'query'>> & { query?: string }) {
  return extractCredential({
    authorization: input.authorization,
    query: new URLSearchParams(input.query ?? ''),
    allowQuery: input.allowQuery ?? true,
  });
}

/** Runs `fn`, expects a 400 invalid_request with `message`, and returns the error. */
function expectInvalidRequest(fn: () => unknown, message: string): AppError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(AppError);
  const error = thrown as AppError;
  expect(error.code).toBe('invalid_request');
  expect(error.status).toBe(400);
  expect(error.publicMessage).toBe(message);
  expect(error.headers['WWW-Authenticate']).toBe(
    `Bearer realm="pixgate", error="invalid_request", error_description="${message}"`,
  );
  // RFC 6750 §3: error_description is printable ASCII without `"` and `\`.
  expect(message).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/);
  return error;
}

const malformedHeader = 'The Authorization header must be: Bearer followed by one token';
const tooMany = 'The request carries more than one explicit credential';

describe('extractCredential', () => {
  it('finds no credential in a bare request', () => {
    expect(extract({})).toEqual({ kind: 'none' });
  });

  it('reads a bearer token from the header', () => {
    expect(extract({ authorization: `Bearer ${TOKEN}` })).toEqual({
      kind: 'bearer',
      token: TOKEN,
      source: 'header',
    });
  });

  it.each(['bearer', 'BEARER', 'BeArEr'])('takes the scheme %s case-insensitively', (scheme) => {
    expect(extract({ authorization: `${scheme} ${TOKEN}` })).toMatchObject({ kind: 'bearer', token: TOKEN });
  });

  it('accepts every b64token character, trailing = included (RFC 6750 §2.1)', () => {
    const token = 'AZaz09-._~+/abc==';
    expect(extract({ authorization: `Bearer ${token}` })).toMatchObject({ token });
  });

  it('accepts several spaces after the scheme (1*SP)', () => {
    expect(extract({ authorization: `Bearer   ${TOKEN}` })).toMatchObject({ token: TOKEN });
  });

  it.each([
    ['another scheme', `Basic ${Buffer.from('user:pass').toString('base64')}`],
    ['a scheme that only starts like Bearer', `Bearerx ${TOKEN}`],
    ['Bearer alone', 'Bearer'],
    ['Bearer and a space', 'Bearer '],
    ['an empty header', ''],
    ['a token without a scheme', TOKEN],
    ['two tokens', `Bearer ${TOKEN} ${TOKEN}`],
    ['a token with a space inside', 'Bearer abc def'],
    ['a tab instead of a space', `Bearer\t${TOKEN}`],
    ['= inside the token', 'Bearer ab=c'],
    ['a token with a comma (a second auth-param)', `Bearer ${TOKEN},x`],
    ['a token with a quote', 'Bearer "abc"'],
    ['a line break', `Bearer ${TOKEN}\nX-Injected: 1`],
  ])('refuses %s as a malformed header, without echoing it', (_name, authorization) => {
    const error = expectInvalidRequest(() => extract({ authorization }), malformedHeader);
    expect(error.message).not.toContain(TOKEN);
  });

  it('reads access_token from the query where it is allowed (RFC 6750 §2.3)', () => {
    expect(extract({ query: `w=360&access_token=${TOKEN}` })).toEqual({
      kind: 'bearer',
      token: TOKEN,
      source: 'query',
    });
  });

  it('passes a query token of any syntax on to verification (only a bad header is a 400)', () => {
    expect(extract({ query: 'access_token=not%20a%20token' })).toMatchObject({ token: 'not a token' });
  });

  it('refuses access_token where the query may not carry one', () => {
    const error = expectInvalidRequest(
      () => extract({ query: `access_token=${TOKEN}`, allowQuery: false }),
      'The access_token parameter is accepted only on GET and HEAD of image URLs',
    );
    expect(error.message).not.toContain(TOKEN);
  });

  it('does not mind the absence of a query token where it is not allowed', () => {
    expect(extract({ authorization: `Bearer ${TOKEN}`, allowQuery: false })).toMatchObject({
      source: 'header',
    });
    expect(extract({ allowQuery: false })).toEqual({ kind: 'none' });
  });

  it('refuses an empty access_token', () => {
    expectInvalidRequest(() => extract({ query: 'access_token=' }), 'The access_token parameter is empty');
    expectInvalidRequest(() => extract({ query: 'access_token' }), 'The access_token parameter is empty');
  });

  it.each([
    ['a repeated access_token', { query: `access_token=${TOKEN}&access_token=other` }],
    ['a repeated equal access_token', { query: `access_token=${TOKEN}&access_token=${TOKEN}` }],
    ['a header and a query token', { authorization: `Bearer ${TOKEN}`, query: 'access_token=other' }],
    [
      'a header and an equal query token',
      { authorization: `Bearer ${TOKEN}`, query: `access_token=${TOKEN}` },
    ],
    ['a malformed header and a query token', { authorization: 'Basic x', query: `access_token=${TOKEN}` }],
    ['a header and an empty query token', { authorization: `Bearer ${TOKEN}`, query: 'access_token=' }],
    [
      'two credentials where the query may not carry one',
      {
        authorization: `Bearer ${TOKEN}`,
        query: `access_token=${TOKEN}`,
        allowQuery: false,
      },
    ],
  ])('refuses %s as more than one explicit credential', (_name, input) => {
    const error = expectInvalidRequest(() => extract(input), tooMany);
    expect(error.message).not.toContain(TOKEN);
  });

  it.each(['exp=1&kid=k&sig=s', 'w=360&sig=s', 'exp=1'])(
    'reads %s as a signed URL where the query may carry credentials (a half one too)',
    (query) => {
      expect(extract({ query })).toEqual({ kind: 'signed', source: 'signed' });
    },
  );

  it('refuses a header token with signature parameters as more than one explicit credential', () => {
    expectInvalidRequest(
      () => extract({ authorization: `Bearer ${TOKEN}`, query: 'exp=1&kid=k&sig=s' }),
      tooMany,
    );
    expectInvalidRequest(() => extract({ query: `access_token=${TOKEN}&sig=s` }), tooMany);
  });

  it('does not read signature parameters as a credential where the query may not carry one', () => {
    expect(
      extract({ authorization: `Bearer ${TOKEN}`, query: 'exp=1&kid=k&sig=s', allowQuery: false }),
    ).toEqual({ kind: 'bearer', token: TOKEN, source: 'header' });
    expect(extract({ query: 'exp=1&kid=k&sig=s', allowQuery: false })).toEqual({ kind: 'none' });
  });

  it('names the query parameters that carry credentials, for the transform parser', () => {
    expect(CREDENTIAL_QUERY_PARAMS).toEqual(['access_token', 'exp', 'kid', 'sig']);
  });
});
