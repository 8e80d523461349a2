import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Principal } from '../../auth/principal.js';
import { invalidSignature, type SignedUrls } from '../../auth/signed-url.js';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config/schema.js';
import { sha256 } from '../../digest.js';
import { AppError, isAppError, messages } from '../../errors.js';
import { clampTransform, predictOutputSize } from '../../images/output-size.js';
import { defaultTransform, parseTransform, transformToQuery } from '../../images/transform.js';
import type { Transform } from '../../images/types.js';
import type { Limits } from '../../limits/limits.js';
import { authorizeCapability, type PolicyOptions } from '../../policy/authorize.js';
import { isImageId, newImageId } from '../../store/ids.js';
import type { ImageRecord, LinkRecord, Store } from '../../store/store.js';
import { type Identify, rawQuery } from '../authenticate.js';
import { IMAGE_METHODS, type VariantSender } from '../send-variant.js';

/**
 * Capabilities (SPEC §5, issue 4): signed URLs, share links and revocation. A signed URL is
 * checked on the image route itself (`sendSigned`, called from routes/images.ts); share links
 * have their own path, `/s/{token}`.
 */

export interface CapabilityOptions {
  readonly config: Config;
  readonly store: Store;
  readonly identify: Identify;
  readonly signedUrls: SignedUrls;
  readonly limits: Limits;
  readonly clock: Clock;
  readonly sendVariant: VariantSender;
}

/** Longest life of a signed URL or share link: a year. */
const MAX_TTL_SECONDS = 365 * 86400;

const ttlSchema = z
  .number({ error: `Expected integer 1..${MAX_TTL_SECONDS} for ttlSeconds` })
  .int({ error: `Expected integer 1..${MAX_TTL_SECONDS} for ttlSeconds` })
  .min(1, { error: `Expected integer 1..${MAX_TTL_SECONDS} for ttlSeconds` })
  .max(MAX_TTL_SECONDS, { error: `Expected integer 1..${MAX_TTL_SECONDS} for ttlSeconds` });

const signBodySchema = z
  .object({
    transform: z
      .record(z.string(), z.union([z.string(), z.number()]), {
        error: 'Expected an object of transform parameters for transform, such as { "w": 360 }',
      })
      .optional(),
    ttlSeconds: ttlSchema.optional(),
  })
  .strict();

const positive = (name: string) =>
  z
    .number({ error: `Expected a positive integer for ${name}` })
    .int({ error: `Expected a positive integer for ${name}` })
    .min(1, { error: `Expected a positive integer for ${name}` })
    .max(1_000_000_000, { error: `Expected a positive integer for ${name}` });

const linkBodySchema = z
  .object({
    ttlSeconds: ttlSchema,
    maxViews: positive('maxViews').optional(),
    maxWidth: positive('maxWidth').optional(),
  })
  .strict();

function parseBody<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const message =
      issue?.code === 'unrecognized_keys' ? `Unknown field ${JSON.stringify(issue.keys[0])}` : issue?.message;
    throw new AppError('invalid_request', message ?? `Expected ${what}`);
  }
  return parsed.data;
}

/** Share-link tokens: 256 random bits, base64url (43 characters). */
const LINK_TOKEN = /^[A-Za-z0-9_-]{43}$/;
const tokenHash = (token: string) => sha256(token);
const noSuchLink = (detail: string) => new AppError('not_found', messages.noSuchLink, { detail });

/**
 * The transform scaled down so that the output is at most `maxWidth` wide (a share link's
 * `maxWidth`); the same object when it already is.
 */
export function clampWidth(source: ImageRecord, t: Transform, maxWidth: number): Transform {
  if (predictOutputSize(source, t).width <= maxWidth) return t;
  // A box is scaled to maxWidth keeping its proportions and fit, when that is enough...
  if (t.w !== undefined && t.h !== undefined) {
    const scaled = { ...t, w: maxWidth, h: Math.max(1, Math.floor((t.h * maxWidth) / t.w)) };
    if (predictOutputSize(source, scaled).width <= maxWidth) return scaled;
  }
  // ...else the width alone decides (fit inside, never enlarged: at most maxWidth wide).
  return { ...t, w: maxWidth, h: undefined, fit: 'inside' };
}

export function createCapabilities(options: CapabilityOptions) {
  const { config, store, identify, signedUrls, limits, clock, sendVariant } = options;
  const _policy: PolicyOptions = config;

  async function findImage(id: string): Promise<ImageRecord | undefined> {
    return isImageId(id) ? store.getImage(id) : undefined;
  }

  /** GET/HEAD of an image URL with `exp`, `kid`, `sig`: exactly the signed variant, no token. */
  async function sendSigned(
    request: FastifyRequest<{ Params: { id: string } }>,
    reply: FastifyReply,
    query: URLSearchParams,
  ) {
    const now = clock.now();
    // Limits first: a flood of forged signatures or made-up ids is throttled like any request.
    await limits.view(`ip:${request.ip}`, request.params.id, false);
    // The image row comes from the row cache: no database round trip on the hot path. A missing
    // image is the same 403 as a bad signature, so signed URLs cannot probe ids.
    const image = await findImage(request.params.id);
    if (!image) throw invalidSignature('no such image');
    const at = request.url.indexOf('?');
    signedUrls.verify(`/v1/images/${image.id}`, image.version, query, now, request.url.slice(at + 1));
    let requested: Transform | null;
    try {
      requested = parseTransform(query, config, ['exp', 'kid', 'sig']);
    } catch (error) {
      // Signed with other settings (a preset or a size since removed): still only a 403.
      if (isAppError(error)) throw invalidSignature(`transform: ${error.message}`);
      throw error;
    }
    const transform = clampTransform(image, requested ?? defaultTransform, config.maxDimension);
    const exp = Number(query.get('exp'));
    // Never cached beyond exp: a cache must not keep serving what the URL no longer grants.
    const maxAge = Math.max(0, Math.min(config.cacheMaxAgeSeconds, Math.floor(exp - now / 1000)));
    return sendVariant(request, reply, image, transform, {
      isClamped: false,
      cacheControl: `public, max-age=${maxAge}`,
    });
  }

  async function ownImage(
    request: FastifyRequest<{ Params: { id: string } }>,
    scope: 'images:read' | 'images:write',
  ) {
    const caller = await identify(request, { allowQuery: false });
    const image = await findImage(request.params.id);
    const principal: Principal = authorizeCapability(caller.principal, image, scope);
    return { principal, image: image as ImageRecord };
  }

  function linkJson(link: LinkRecord) {
    return {
      id: link.id,
      createdAt: link.createdAt.toISOString(),
      expiresAt: link.expiresAt.toISOString(),
      maxViews: link.maxViews,
      maxWidth: link.maxWidth,
      views: link.views,
    };
  }

  function register(app: FastifyInstance): void {
    app.post<{ Params: { id: string } }>('/v1/images/:id/signed-urls', async (request, reply) => {
      const { image } = await ownImage(request, 'images:write');
      const body = parseBody(signBodySchema, request.body, '{ "transform", "ttlSeconds" }');
      const given = new URLSearchParams();
      for (const [name, value] of Object.entries(body.transform ?? {})) given.set(name, String(value));
      // The same strict parser as a request: what is signed is the normalized transform.
      const transform = parseTransform(given, config) ?? defaultTransform;
      const { url, exp } = signedUrls.sign(
        `/v1/images/${image.id}`,
        image.version,
        transformToQuery(transform),
        body.ttlSeconds ?? 3600,
        clock.now(),
      );
      return reply
        .header('cache-control', 'no-store')
        .send({ url, expiresAt: new Date(exp * 1000).toISOString() });
    });

    app.post<{ Params: { id: string } }>('/v1/images/:id/revoke', async (request, reply) => {
      const { image } = await ownImage(request, 'images:write');
      if (!(await store.bumpVersion(image.id))) throw new AppError('not_found', messages.notFound);
      return reply.code(204).header('cache-control', 'no-store').send();
    });

    app.post<{ Params: { id: string } }>('/v1/images/:id/links', async (request, reply) => {
      const { principal, image } = await ownImage(request, 'images:write');
      const body = parseBody(linkBodySchema, request.body, '{ "ttlSeconds", "maxViews", "maxWidth" }');
      // 256 random bits; only the hash is stored, and lookups go by hash (an index lookup on a
      // digest leaks nothing about how close a guessed token came).
      const token = randomBytes(32).toString('base64url');
      const now = clock.now();
      const link: LinkRecord = {
        id: newImageId(),
        imageId: image.id,
        tokenHash: tokenHash(token),
        imageVersion: image.version,
        createdBy: principal.subject,
        createdAt: new Date(now),
        expiresAt: new Date(now + body.ttlSeconds * 1000),
        maxViews: body.maxViews ?? null,
        maxWidth: body.maxWidth ?? null,
        views: 0,
      };
      await store.insertLink(link);
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({ id: link.id, url: `/s/${token}`, expiresAt: link.expiresAt.toISOString() });
    });

    app.get<{ Params: { id: string } }>('/v1/images/:id/links', async (request, reply) => {
      const { image } = await ownImage(request, 'images:read');
      const links = await store.listLinks(image.id, new Date(clock.now()));
      return reply.header('cache-control', 'private, no-cache').send({ items: links.map(linkJson) });
    });

    app.delete<{ Params: { linkId: string } }>('/v1/links/:linkId', async (request, reply) => {
      const caller = await identify(request, { allowQuery: false });
      const link = isImageId(request.params.linkId) ? await store.getLink(request.params.linkId) : undefined;
      const image = link ? await findImage(link.imageId) : undefined;
      // A link of an image the caller may not change is the same 404 as no link at all.
      try {
        authorizeCapability(caller.principal, image, 'images:write');
      } catch (error) {
        if (isAppError(error) && error.code === 'not_found') throw noSuchLink('not the owner');
        throw error;
      }
      if (!link || !(await store.deleteLink(link.id))) throw noSuchLink('gone');
      return reply.code(204).header('cache-control', 'no-store').send();
    });

    app.route<{ Params: { token: string } }>({
      method: IMAGE_METHODS,
      url: '/s/:token',
      handler: async (request, reply) => {
        // Parsed first: a bad parameter answers the same whether the link exists or not.
        const requested = parseTransform(rawQuery(request), config);
        const { token } = request.params;
        // Guessing is throttled per client IP: every miss takes from that IP's request budget.
        const miss = async (detail: string) => {
          await limits.request(`ip:${request.ip}`);
          return noSuchLink(detail);
        };
        if (!LINK_TOKEN.test(token)) throw await miss('malformed token');
        const link = await store.findLinkByTokenHash(tokenHash(token));
        const now = clock.now();
        if (!link) throw await miss('unknown token');
        if (now >= link.expiresAt.getTime()) throw noSuchLink('expired');
        if (link.maxViews !== null && link.views >= link.maxViews) throw noSuchLink('out of views');
        const image = await findImage(link.imageId);
        if (!image || image.version !== link.imageVersion) throw noSuchLink('revoked');
        await limits.view(`l:${link.id}`, image.id, false);

        let transform = clampTransform(image, requested ?? defaultTransform, config.maxDimension);
        const bounded = transform;
        if (link.maxWidth !== null) transform = clampWidth(image, transform, link.maxWidth);
        return sendVariant(request, reply, image, transform, {
          isClamped: transform !== bounded,
          // private, no-store: no shared cache may answer for the link, or the budget and a
          // revocation could be bypassed.
          cacheControl: 'private, no-store',
          beforeBody: async () => {
            // Counted only now that the variant exists: a failed render costs no view. Refused when
            // the budget ran out or the image was revoked while the variant was being made.
            if (!(await store.countLinkView(link.id, new Date(clock.now())))) {
              throw noSuchLink('out of views or revoked');
            }
          },
        });
      },
    });
  }

  return { sendSigned, register };
}

export type Capabilities = ReturnType<typeof createCapabilities>;
