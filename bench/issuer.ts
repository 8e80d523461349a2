import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

/**
 * A token issuer for the benchmark: an ES256 key made with jose and its JWKS served on loopback,
 * so pixgate runs as `serve` does in production (remote JWKS, real signature checks), not in
 * dev mode. pixgate fetches the set once; later requests hit its verified-token cache.
 */
export interface BenchIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUrl: string;
  token(subject: string, scope: string): Promise<string>;
  close(): Promise<void>;
}

export async function startIssuer(audience = 'https://pixgate.bench'): Promise<BenchIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = 'bench-es256';
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] });
  const server = createServer((request, response) => {
    if (request.url !== '/jwks') {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(jwks);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    issuer,
    audience,
    jwksUrl: `${issuer}/jwks`,
    token(subject, scope) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ scope, client_id: 'pixgate-bench' })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(subject)
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .setJti(randomUUID())
        .sign(privateKey);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
