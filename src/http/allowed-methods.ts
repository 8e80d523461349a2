import type { FastifyInstance } from 'fastify';

/**
 * Which methods a path takes, for the 405 of a method it does not (RFC 9110 §15.5.6: "Method Not
 * Allowed", with `Allow`). fastify answers any method a route lacks as not found; a client told
 * 404 for `PUT /v1/images/{id}` would think the path wrong, not the method.
 *
 * Decided by the routes' patterns alone, never by whether an image exists: `PUT` of an id that
 * does not exist is the same 405 as of one that does, so nothing can be probed this way.
 */

/** The order `Allow` lists them in: reading before changing, as the README's API table does. */
const ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

interface RoutePattern {
  readonly pattern: RegExp;
  readonly methods: Set<string>;
}

const escapeRegExp = (text: string) => text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');

/** A fastify path as a RegExp: `:name` is one segment (empty too, as fastify matches it). */
function toPattern(url: string): RegExp {
  const source = url
    .split(/(:[A-Za-z0-9_]+)/)
    .map((part) => (part.startsWith(':') ? '[^/]*' : escapeRegExp(part)))
    .join('');
  return new RegExp(`^${source}$`);
}

/**
 * The path of a request target as fastify's router matches it: an absolute-form target's scheme
 * and host dropped (RFC 9112 §3.2.2), query and fragment cut, percent-encoding decoded (decodeURI
 * leaves an encoded `/` encoded, as the router does). Matched raw, `PUT /v1/imag%65s/{id}` was a
 * 404 while its GET reached the image.
 */
function routedPath(target: string): string {
  const authority = /^https?:\/\/[^/?#]*/i.exec(target)?.[0];
  const path = (authority ? target.slice(authority.length) : target).split(/[?#]/, 1)[0] || '/';
  try {
    return decodeURI(path);
  } catch {
    return path;
  }
}

export interface AllowedMethods {
  /** The methods the path of `target` (a request.url) takes, in `Allow` order; empty if none. */
  of(target: string): string[];
}

/** Records every route as it is added; call before any route or plugin is registered. */
export function recordAllowedMethods(app: FastifyInstance): AllowedMethods {
  const routes = new Map<string, RoutePattern>();
  /** Methods every path takes (a wildcard route: @fastify/cors answers OPTIONS everywhere). */
  const everywhere = new Set<string>();
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.url.includes('*')) {
      for (const method of methods) everywhere.add(method);
      return;
    }
    let entry = routes.get(route.url);
    if (!entry) {
      entry = { pattern: toPattern(route.url), methods: new Set() };
      routes.set(route.url, entry);
    }
    for (const method of methods) entry.methods.add(method);
  });
  return {
    of(target) {
      const path = routedPath(target);
      const found = new Set<string>();
      for (const { pattern, methods } of routes.values()) {
        if (pattern.test(path)) for (const method of methods) found.add(method);
      }
      if (found.size === 0) return [];
      for (const method of everywhere) found.add(method);
      return ORDER.filter((method) => found.has(method));
    },
  };
}
