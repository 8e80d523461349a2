/**
 * Which credential a request carries (SPEC §3, "Carrying the credential"). Pure: the route passes
 * the raw `Authorization` header and the query, so this never touches fastify types.
 *
 * Only the syntax is judged here. Whether the token is any good is `authenticate`'s question: a
 * malformed credential is a 400 `invalid_request`, a well-formed one that fails verification a 401.
 */
import { AppError } from '../errors.js';

export type Credential =
  | { kind: 'none' }
  | { kind: 'bearer'; token: string; source: 'header' | 'query' }
  // Signed-URL parameters (`exp`, `kid`, `sig`): checked by the image route against the image
  // version (signed-url.ts), since the signature covers the path and the version.
  | { kind: 'signed'; source: 'signed' };

/**
 * Query parameters that carry a credential rather than a transform: the transform parser skips
 * them, and logs, metric labels and error messages must drop them (SPEC §3.2).
 */
export const CREDENTIAL_QUERY_PARAMS: readonly string[] = ['access_token', 'exp', 'kid', 'sig'];

const SIGNATURE_PARAMS = ['exp', 'kid', 'sig'];

export interface CredentialInput {
  /**
   * The raw `Authorization` header, if any; every line of it when the request repeats the header
   * (Node's `request.headers` keeps only the first of repeated Authorization lines).
   */
  authorization: string | readonly string[] | undefined;
  query: URLSearchParams;
  /** True only for GET and HEAD of image URLs: the one place RFC 6750 §2.3 tokens are accepted. */
  allowQuery: boolean;
}

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. The scheme is case-insensitive (RFC 9110
// §11.1). No flag `s` or `m`: a line break can never sneak into the token.
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * The `WWW-Authenticate` challenge of RFC 6750 §3. `description` must be printable ASCII without
 * `"` or `\` (§3: error_description's syntax), which holds for the fixed texts passed here.
 */
export function bearerChallenge(error?: 'invalid_request' | 'invalid_token', description?: string): string {
  let challenge = 'Bearer realm="pixgate"';
  if (error) challenge += `, error="${error}"`;
  if (description) challenge += `, error_description="${description}"`;
  return challenge;
}

function invalidRequest(message: string): AppError {
  return new AppError('invalid_request', message, {
    headers: { 'WWW-Authenticate': bearerChallenge('invalid_request', message) },
  });
}

// Every message is a fixed text: none of them echoes the header or the parameter, since either
// may hold a live token (SPEC §3.2: the token never appears in an error message).
const texts = {
  tooMany: 'The request carries more than one explicit credential',
  malformedHeader: 'The Authorization header must be: Bearer followed by one token',
  queryNotAllowed: 'The access_token parameter is accepted only on GET and HEAD of image URLs',
  emptyQuery: 'The access_token parameter is empty',
} as const;

export function extractCredential(input: CredentialInput): Credential {
  const { authorization, query, allowQuery } = input;
  const queryTokens = query.getAll('access_token');

  const headers = typeof authorization === 'string' ? [authorization] : (authorization ?? []);

  // SPEC §3: more than one explicit credential, equal or not, is refused rather than picking
  // one, so a proxy and the application can never disagree on who is asking. Two Authorization
  // lines count as two: Node would read the first, a proxy in front may well read the last.
  // Any one of the signature parameters makes a signed URL (a half one is refused as a bad one).
  const signed = allowQuery && SIGNATURE_PARAMS.some((name) => query.has(name)) ? 1 : 0;
  const explicit = headers.length + queryTokens.length + signed;
  if (explicit > 1) throw invalidRequest(texts.tooMany);

  const [header] = headers;
  if (header !== undefined) {
    const token = BEARER.exec(header)?.[1];
    if (token === undefined) throw invalidRequest(texts.malformedHeader);
    return { kind: 'bearer', token, source: 'header' };
  }

  const [queryToken] = queryTokens;
  if (queryToken !== undefined) {
    // Elsewhere (uploads, sessions, links) a token in the URL would only land in logs and
    // histories: refuse it loudly instead of ignoring it.
    if (!allowQuery) throw invalidRequest(texts.queryNotAllowed);
    if (queryToken === '') throw invalidRequest(texts.emptyQuery);
    // The value's syntax is not judged: SPEC §3 makes only a bad header a 400, so any other
    // value goes on to verification and fails there with a 401 like every bad token.
    return { kind: 'bearer', token: queryToken, source: 'query' };
  }

  if (signed) return { kind: 'signed', source: 'signed' };
  return { kind: 'none' };
}
