/**
 * Dev mode's own token issuer (SPEC §8, `pixgate dev` and `pixgate token`): an ES256 key kept in the
 * data dir, so tokens survive a restart and `pixgate token` can mint tokens the dev server accepts.
 * Never used outside dev mode: whoever can read the data dir can mint tokens.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  SignJWT,
} from 'jose';
import { type Clock, systemClock } from '../clock.js';

export interface DevIssuer {
  jwks: JSONWebKeySet;
  issue(claims: { sub: string; scope?: string; ttlSeconds?: number }): Promise<string>;
}

export const DEV_ISSUER_KEY_FILE = 'dev-issuer-key.json';
const ALG = 'ES256';
const DEFAULT_SCOPE = 'images:read images:write';
const DEFAULT_TTL_SECONDS = 3600;
/** RFC 9068 §2.2 requires `client_id` in an access token; this is the dev issuer's own. */
const DEV_CLIENT_ID = 'pixgate-dev';

function isPrivateP256(value: unknown): value is JWK & { d: string; x: string; y: string } {
  if (typeof value !== 'object' || value === null) return false;
  const jwk = value as Record<string, unknown>;
  return (
    jwk.kty === 'EC' &&
    jwk.crv === 'P-256' &&
    typeof jwk.d === 'string' &&
    typeof jwk.x === 'string' &&
    typeof jwk.y === 'string'
  );
}

/**
 * Creates the key file if it does not exist yet. It appears complete or not at all (written to a
 * temp file first), never readable by others (0600: it is a signing key), and never replaces a key
 * another process created meanwhile (`pixgate dev` and `pixgate token` may start together): the
 * temp file is hard-linked into place, which fails if the name exists, and the winner is read back.
 */
async function createKeyFile(path: string): Promise<void> {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  const contents = `${JSON.stringify({ ...jwk, kid, alg: ALG, use: 'sig' }, null, 2)}\n`;
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, contents, { mode: 0o600, flag: 'wx' });
  try {
    await link(temp, path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    // A file system without hard links: rename is still atomic, only not exclusive.
    await rename(temp, path);
    return;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

async function readKeyFile(path: string): Promise<JWK & { d: string; x: string; y: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await createKeyFile(path);
    text = await readFile(path, 'utf8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isPrivateP256(parsed)) {
    throw new Error(`${path} does not hold an ES256 (P-256) private JWK; delete it to create a new key`);
  }
  return parsed;
}

export async function loadDevIssuer(
  dataDir: string,
  issuer: string,
  audience: string,
  clock: Clock = systemClock,
): Promise<DevIssuer> {
  await mkdir(dataDir, { recursive: true });
  const stored = await readKeyFile(join(dataDir, DEV_ISSUER_KEY_FILE));
  // The kid is the RFC 7638 thumbprint of the public key (only crv, kty, x, y count), recomputed rather than trusted from the
  // file, so a hand-edited file cannot publish one key under another key's kid.
  const kid = await calculateJwkThumbprint(stored);
  const key = await importJWK({ ...stored, alg: ALG }, ALG);
  const jwks: JSONWebKeySet = {
    keys: [{ kty: 'EC', crv: 'P-256', x: stored.x, y: stored.y, kid, alg: ALG, use: 'sig' }],
  };

  return {
    jwks,
    async issue({ sub, scope = DEFAULT_SCOPE, ttlSeconds = DEFAULT_TTL_SECONDS }) {
      if (typeof sub !== 'string' || sub === '') throw new TypeError('sub must be a non-empty string');
      if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
        throw new TypeError(`Expected an integer >= 1 for ttlSeconds but received ${ttlSeconds}`);
      }
      const now = Math.floor(clock.now() / 1000);
      return new SignJWT({ scope, client_id: DEV_CLIENT_ID })
        .setProtectedHeader({ alg: ALG, typ: 'at+jwt', kid })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(sub)
        .setIssuedAt(now)
        .setExpirationTime(now + ttlSeconds)
        .setJti(randomUUID())
        .sign(key);
    },
  };
}
