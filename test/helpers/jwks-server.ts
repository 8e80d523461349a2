/**
 * A real token issuer for tests about token edge cases: a JWKS served over HTTP on 127.0.0.1, keys
 * made with jose, and helpers to mint good and deliberately bad tokens. It counts JWKS requests
 * and can be switched to fail, to test the JWKS cooldown and the 503 (fail closed) path.
 */
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CompactSign,
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from 'jose';

export type SigningAlg = 'RS256' | 'ES256';

/**
 * - `known`: the published key of that algorithm (kid `rsa-1` or `ec-1`).
 * - `rogue`: a key of the same algorithm that is NOT published, signing under the known kid.
 * - `next`: an ES256 key (kid `ec-next`) published only after `publishNextKey()` (rotation).
 */
export type KeyChoice = 'known' | 'rogue' | 'next';

/** false: serve the JWKS; 'status' (or true): 500; 'close': drop the connection; 'invalid_json'. */
export type FailureMode = boolean | 'status' | 'close' | 'invalid_json';

export interface SignOptions {
  /** Merged over the defaults (iss, aud, sub, iat, exp of now + 1 h); `undefined` removes a claim. */
  claims?: Record<string, unknown>;
  alg?: SigningAlg;
  /** Merged over `{ alg, kid, typ: 'at+jwt' }`; `undefined` removes a header parameter. */
  header?: Record<string, unknown>;
  key?: KeyChoice;
}

export interface JwksServer {
  /** Base URL, e.g. http://127.0.0.1:PORT */
  url: string;
  jwksUrl: string;
  /** The `iss` of tokens minted here (the base URL). */
  issuer: string;
  audience: string;
  /** The published set, as served. */
  jwks(): JSONWebKeySet;
  /** How many JWKS requests arrived, failed ones included. */
  readonly requests: number;
  sign(options?: SignOptions): Promise<string>;
  /** A compact JWS over arbitrary payload bytes (not necessarily a claims set), by a known key. */
  signBytes(payload: string, options?: Omit<SignOptions, 'claims'>): Promise<string>;
  /** The default claims `sign()` starts from, at the server's `now()`. */
  defaultClaims(): Record<string, unknown>;
  /** An unsecured JWT (`alg: none`, empty signature) with the given claims over the defaults. */
  unsigned(claims?: Record<string, unknown>): string;
  /**
   * HS256 "signed" with the RSA public key's PEM as the HMAC secret, under the RSA kid: the
   * RS256 → HS256 key-confusion attack. A verifier that let the token pick HS256 would accept it.
   */
  hs256WithPublicKey(claims?: Record<string, unknown>): Promise<string>;
  publishNextKey(): void;
  setFailing(mode: FailureMode): void;
  close(): Promise<void>;
}

export interface JwksServerOptions {
  audience?: string;
  /** Milliseconds since the epoch, for default iat/exp; pass the test's injected clock. */
  now?: () => number;
}

interface KeyPair {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

async function makeKey(alg: SigningAlg, kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, publicJwk };
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Applies overrides; an override of `undefined` deletes the member. */
function merge(base: Record<string, unknown>, overrides: Record<string, unknown> = {}) {
  const result: Record<string, unknown> = { ...base };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete result[name];
    else result[name] = value;
  }
  return result;
}

export async function startJwksServer(options: JwksServerOptions = {}): Promise<JwksServer> {
  const audience = options.audience ?? 'https://pixgate.test';
  const now = options.now ?? Date.now;
  const [rsa, ec, rogueRsa, rogueEc, next] = await Promise.all([
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
    makeKey('ES256', 'ec-next'),
  ]);
  const published: KeyPair[] = [rsa, ec];
  const rsaPublicPem = await exportSPKI(rsa.publicKey);
  let failing: FailureMode = false;
  let requests = 0;

  const server = createServer((request, response) => {
    if (request.url !== '/jwks') {
      response.writeHead(404).end();
      return;
    }
    requests += 1;
    if (failing === 'close') {
      request.socket.destroy();
      return;
    }
    if (failing === true || failing === 'status') {
      response.writeHead(500, { 'content-type': 'text/plain' }).end('down');
      return;
    }
    const body = failing === 'invalid_json' ? '{"keys": [' : JSON.stringify(jwks());
    response.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  function jwks(): JSONWebKeySet {
    return { keys: published.map((key) => key.publicJwk) };
  }

  function defaultClaims(): Record<string, unknown> {
    const seconds = Math.floor(now() / 1000);
    return { iss: url, aud: audience, sub: 'user-1', iat: seconds, exp: seconds + 3600 };
  }

  function pick(alg: SigningAlg, choice: KeyChoice): KeyPair {
    if (choice === 'next') return next;
    if (choice === 'rogue') return alg === 'RS256' ? rogueRsa : rogueEc;
    return alg === 'RS256' ? rsa : ec;
  }

  return {
    url,
    jwksUrl: `${url}/jwks`,
    issuer: url,
    audience,
    jwks,
    get requests() {
      return requests;
    },
    defaultClaims,
    async sign({ claims, alg = 'ES256', header, key = 'known' } = {}) {
      const signer = pick(alg, key);
      const protectedHeader = merge({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' }, header);
      return new SignJWT(merge(defaultClaims(), claims) as JWTPayload)
        .setProtectedHeader(protectedHeader as JWTHeaderParameters)
        .sign(signer.privateKey);
    },
    async signBytes(payload, { alg = 'ES256', header, key = 'known' } = {}) {
      const signer = pick(alg, key);
      const protectedHeader = merge({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' }, header);
      return new CompactSign(new TextEncoder().encode(payload))
        .setProtectedHeader(protectedHeader as JWTHeaderParameters)
        .sign(signer.privateKey);
    },
    unsigned(claims) {
      return `${b64url({ alg: 'none', typ: 'at+jwt' })}.${b64url(merge(defaultClaims(), claims))}.`;
    },
    async hs256WithPublicKey(claims) {
      // Signed by hand: jose refuses to use a PEM string as an HMAC key, as it should.
      const signingInput = `${b64url({ alg: 'HS256', kid: rsa.kid, typ: 'at+jwt' })}.${b64url(merge(defaultClaims(), claims))}`;
      const mac = createHmac('sha256', rsaPublicPem).update(signingInput).digest('base64url');
      return `${signingInput}.${mac}`;
    },
    publishNextKey() {
      if (!published.includes(next)) published.push(next);
    },
    setFailing(mode) {
      failing = mode;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}
