import type { OriginAuth } from '../origins/http.js';
import { isHttpBase } from '../origins/location.js';

/**
 * The settings of an HTTP origin's credentials, checked across each other (at most one kind,
 * client credentials complete, none without an HTTP origin) and turned into an OriginAuth.
 */

export interface OriginAuthSettings {
  readonly storage?: string | undefined;
  readonly originBearer?: string | undefined;
  readonly originBasic?: string | undefined;
  readonly originHeader?: string | undefined;
  readonly originTokenUrl?: string | undefined;
  readonly originClientId?: string | undefined;
  readonly originClientSecret?: string | undefined;
  readonly originScope?: string | undefined;
}

const CLIENT_CREDENTIALS = ['originTokenUrl', 'originClientId', 'originClientSecret'] as const;

/**
 * Problems as `NAME: what is wrong`, with `nameOf` giving where each setting came from. `settings`
 * holds the valid values; `given` says which settings were set at all, valid or not: one set to
 * an invalid value (reported on its own) is not missing, and nothing is judged from its value.
 */
export function originAuthProblems(
  settings: OriginAuthSettings,
  given: (key: keyof OriginAuthSettings) => boolean,
  nameOf: (key: string) => string,
): string[] {
  const problems: string[] = [];
  const kinds = [
    given('originBearer') && 'originBearer',
    given('originBasic') && 'originBasic',
    given('originHeader') && 'originHeader',
    CLIENT_CREDENTIALS.some(given) && 'originTokenUrl',
  ].filter((kind): kind is string => kind !== false);
  if (kinds.length > 1) {
    problems.push(`${kinds.map(nameOf).join(', ')}: choose one way to authenticate to the HTTP origin`);
  }
  if (CLIENT_CREDENTIALS.some(given)) {
    for (const key of CLIENT_CREDENTIALS) {
      if (!given(key))
        problems.push(`${nameOf(key)}: required for OAuth client credentials to the HTTP origin`);
    }
  } else if (given('originScope')) {
    problems.push(`${nameOf('originScope')}: only with PIXGATE_ORIGIN_TOKEN_URL (OAuth client credentials)`);
  }
  const storageInvalid = given('storage') && settings.storage === undefined;
  if (
    (kinds.length > 0 || given('originScope')) &&
    !storageInvalid &&
    !(settings.storage && isHttpBase(settings.storage))
  ) {
    problems.push(`${nameOf(kinds[0] ?? 'originScope')}: only for an http(s) PIXGATE_STORAGE`);
  }
  return problems;
}

export function originAuthOf(settings: OriginAuthSettings): OriginAuth {
  if (settings.originBearer) return { kind: 'bearer', token: settings.originBearer };
  if (settings.originBasic) {
    const at = settings.originBasic.indexOf(':');
    return {
      kind: 'basic',
      user: settings.originBasic.slice(0, at),
      password: settings.originBasic.slice(at + 1),
    };
  }
  if (settings.originHeader) {
    const at = settings.originHeader.indexOf(':');
    return {
      kind: 'header',
      name: settings.originHeader.slice(0, at).trim(),
      value: settings.originHeader.slice(at + 1).trim(),
    };
  }
  if (settings.originTokenUrl && settings.originClientId && settings.originClientSecret) {
    return {
      kind: 'client-credentials',
      tokenUrl: settings.originTokenUrl,
      clientId: settings.originClientId,
      clientSecret: settings.originClientSecret,
      scope: settings.originScope,
    };
  }
  return { kind: 'none' };
}
