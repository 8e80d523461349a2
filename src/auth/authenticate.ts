/**
 * From a credential to a principal (DESIGN.md, "auth.verify(credential)"). A JWT goes to the JWT
 * verifier; an opaque token goes to introspection (RFC 7662) when it is configured, else to the JWT
 * verifier too, which refuses it as 'malformed' (SPEC §3: "a token that is not a JWT is
 * introspected when introspection is configured, else it is a 401").
 */
import type { Credential } from './credentials.js';
import { isJwtShaped } from './jwt.js';
import type { Principal } from './principal.js';
import type { TokenVerifier } from './token-verifier.js';

/**
 * The principal, or null for an anonymous request; throws 401 `invalid_token` or 503
 * `unavailable`. The same shape as http/authenticate.ts's `Authenticator`.
 */
export type Authenticator = (credential: Credential) => Promise<Principal | null>;

export interface AuthenticatorParts {
  jwt: TokenVerifier;
  /** Introspection of opaque tokens; absent until it is configured. */
  opaque?: TokenVerifier;
}

export function createAuthenticator(parts: AuthenticatorParts): Authenticator {
  const { jwt, opaque } = parts;
  return async (credential) => {
    switch (credential.kind) {
      case 'none':
      // A signed URL names no principal: the image route checks it against the image.
      case 'signed':
        return null;
      case 'bearer':
        return opaque && !isJwtShaped(credential.token)
          ? opaque.verify(credential.token)
          : jwt.verify(credential.token);
    }
  };
}
