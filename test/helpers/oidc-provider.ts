/**
 * A real OpenID provider (oidc-provider 9) on 127.0.0.1, issuing access tokens by client
 * credentials for a resource indicator (RFC 8707) whose audience is pixgate's. Two resources:
 * `audience` itself gets JWT access tokens (RFC 9068, `typ: at+jwt`), `OPAQUE_RESOURCE` gets opaque
 * tokens for the introspection tests (RFC 7662). Introspection and revocation are enabled.
 *
 * What it takes to make oidc-provider do this is in /work/shared/notes/test-parts.md.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

/** The resource indicator that gets opaque tokens (same audience, different format). */
export const OPAQUE_RESOURCE = 'urn:pixgate:opaque';

const SCOPES = ['images:read', 'images:write', 'images:admin'];

// oidc-provider 9 calls `URL.parse`, which Node has from 20.18; the suite also runs on the oldest
// Node pixgate's `engines` allows (20.9), where this test-only provider gets the same function.
if (typeof (URL as { parse?: unknown }).parse !== 'function') {
  Object.defineProperty(URL, 'parse', {
    value: (url: string, base?: string) => (URL.canParse(url, base) ? new URL(url, base) : null),
    configurable: true,
    writable: true,
  });
}

export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
}

export interface OidcProvider {
  /** `iss` of its tokens; also its base URL. */
  issuer: string;
  audience: string;
  jwksUrl: string;
  tokenUrl: string;
  introspectionUrl: string;
  revocationUrl: string;
  /** pixgate's own client at the provider: may introspect every token (RFC 7662 §2.1). */
  resourceServer: ClientCredentials;
  /** The clients that may get tokens; the first is the default. */
  clients: readonly ClientCredentials[];
  /**
   * An access token for `clientId` (default: the first client). `scope` is space-separated;
   * omitted, the token has no scope claim. `format: 'opaque'` asks for an opaque token.
   */
  clientCredentialsToken(options?: {
    clientId?: string;
    scope?: string;
    format?: 'jwt' | 'opaque';
  }): Promise<string>;
  /** Revokes a token as the client it was issued to (RFC 7009). */
  revoke(token: string, clientId?: string): Promise<void>;
  close(): Promise<void>;
}

export interface OidcProviderOptions {
  /** pixgate's audience; an absolute URI, since it doubles as the resource indicator. */
  audience?: string;
  clientIds?: string[];
  ttlSeconds?: number;
}

const basic = ({ clientId, clientSecret }: ClientCredentials) =>
  `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`;

export async function startOidcProvider(options: OidcProviderOptions = {}): Promise<OidcProvider> {
  const audience = options.audience ?? 'https://pixgate.test';
  const ttlSeconds = options.ttlSeconds ?? 600;
  const clients = (options.clientIds ?? ['app', 'other-app']).map((clientId) => ({
    clientId,
    clientSecret: `${clientId}-secret`,
  }));
  const resourceServer = { clientId: 'pixgate', clientSecret: 'pixgate-secret' };

  // The issuer URL must be known before the provider exists, so listen first, attach later.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'op-es256', alg: 'ES256', use: 'sig' };
  // Clients must name the only key's algorithm, or client validation fails (invalid_client_metadata).
  const clientMetadata = (client: ClientCredentials, grantTypes: string[]) => ({
    client_id: client.clientId,
    client_secret: client.clientSecret,
    grant_types: grantTypes,
    redirect_uris: [],
    response_types: [],
    scope: SCOPES.join(' '),
    id_token_signed_response_alg: 'ES256',
  });
  const resourceServerInfo = (format: 'jwt' | 'opaque') => ({
    audience,
    scope: SCOPES.join(' '),
    accessTokenFormat: format,
    ...(format === 'jwt' ? { jwt: { sign: { alg: 'ES256' } } } : {}),
  });

  const provider = new Provider(issuer, {
    jwks: { keys: [signingKey] },
    scopes: ['openid', ...SCOPES],
    clients: [
      ...clients.map((client) => clientMetadata(client, ['client_credentials'])),
      clientMetadata(resourceServer, []),
    ],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // The resource server introspects every client's tokens; a client only its own.
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) =>
          client.clientId === resourceServer.clientId || client.clientId === token.clientId,
      },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: async (_ctx: unknown, resource: string) => {
          if (resource === audience) return resourceServerInfo('jwt');
          if (resource === OPAQUE_RESOURCE) return resourceServerInfo('opaque');
          throw new Error(`unknown resource indicator ${resource}`);
        },
      },
    },
    ttl: { ClientCredentials: ttlSeconds },
  });
  server.on('request', provider.callback());

  const clientFor = (clientId: string | undefined) => {
    const client = clientId === undefined ? clients[0] : clients.find((each) => each.clientId === clientId);
    if (!client) throw new Error(`no client ${clientId} at the test provider`);
    return client;
  };

  const post = async (path: string, client: ClientCredentials, form: Record<string, string>) => {
    const response = await fetch(`${issuer}${path}`, {
      method: 'POST',
      headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`${path} answered ${response.status}: ${text}`);
    return text;
  };

  return {
    issuer,
    audience,
    jwksUrl: `${issuer}/jwks`,
    tokenUrl: `${issuer}/token`,
    introspectionUrl: `${issuer}/token/introspection`,
    revocationUrl: `${issuer}/token/revocation`,
    resourceServer,
    clients,
    async clientCredentialsToken({ clientId, scope, format = 'jwt' } = {}) {
      const form: Record<string, string> = {
        grant_type: 'client_credentials',
        resource: format === 'jwt' ? audience : OPAQUE_RESOURCE,
      };
      if (scope !== undefined) form.scope = scope;
      const body = JSON.parse(await post('/token', clientFor(clientId), form)) as { access_token?: unknown };
      if (typeof body.access_token !== 'string') throw new Error('the test provider issued no access_token');
      return body.access_token;
    },
    async revoke(token, clientId) {
      await post('/token/revocation', clientFor(clientId), { token });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}
