/** Who is asking, from a verified credential (SPEC §1, "Principal"). */

export type Scope = 'images:read' | 'images:write' | 'images:admin';

export interface Principal {
  /** The token's `sub`, or its `client_id` when it has no `sub`. */
  readonly subject: string;
  /** Every scope the token carries, ours and others. */
  readonly scopes: ReadonlySet<string>;
  /** Unix seconds; the principal is not valid after it. */
  readonly expiresAt: number;
}

export const isAdmin = (principal: Principal) => principal.scopes.has('images:admin');

/**
 * Admin implies everything, and write implies read: a token that may upload and delete an image
 * may also look at it. Other scopes grant nothing here.
 */
export function hasScope(principal: Principal, scope: Scope): boolean {
  if (principal.scopes.has('images:admin') || principal.scopes.has(scope)) return true;
  return scope === 'images:read' && principal.scopes.has('images:write');
}
