import { Readable } from 'node:stream';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CREDENTIAL_QUERY_PARAMS } from '../../auth/credentials.js';
import type { Principal } from '../../auth/principal.js';
import type { VariantCache } from '../../cache/variant-cache.js';
import type { Config } from '../../config/schema.js';
import { AppError, notFound } from '../../errors.js';
import { checkQuota, type Ingest, tooLarge } from '../../images/ingest.js';
import { parseTransform } from '../../images/transform.js';
import { contentTypes } from '../../images/types.js';
import type { VariantService } from '../../images/variants.js';
import type { Limits } from '../../limits/limits.js';
import type { Logger } from '../../logger.js';
import type { Origin } from '../../origins/origin.js';
import {
  authorizeChange,
  authorizeList,
  authorizeMeta,
  authorizeRegister,
  authorizeUpload,
  authorizeView,
  type PolicyOptions,
  type ViewDecision,
} from '../../policy/authorize.js';
import { isImageId } from '../../store/ids.js';
import { type ImageRecord, type Store, visibilities } from '../../store/store.js';
import { type Caller, type Identify, rawQuery, requesterOf } from '../authenticate.js';
import { continueBody } from '../continue.js';
import { evaluatePreconditions, VARY_IMAGE, VARY_IMAGE_ANONYMOUS, VARY_IMAGE_BY_HEADER } from '../headers.js';
import { jsonFormEtag, outputTooLarge, sendJsonForm, wantsJsonForm } from '../json-form.js';
import { IMAGE_METHODS, type VariantSender } from '../send-variant.js';
import { isJsonRequest, registerFromJson } from './register.js';

export interface ImageRoutesOptions {
  readonly config: Config;
  readonly store: Store;
  readonly cache: VariantCache;
  readonly origin: Origin;
  readonly variants: VariantService;
  readonly ingest: Ingest;
  readonly identify: Identify;
  readonly logger: Logger;
  // Issue 4: limits, and the signed-URL and variant halves of an image response.
  readonly limits: Limits;
  readonly sendVariant: VariantSender;
  readonly sendSigned: (
    request: FastifyRequest<{ Params: { id: string } }>,
    reply: FastifyReply,
    query: URLSearchParams,
  ) => Promise<unknown>;
}

/** The JSON an image is described by (SPEC §4, `/meta`); `owner` only for owner and admins. */
export function imageMeta(image: ImageRecord, showOwner: boolean) {
  return {
    id: image.id,
    ...(showOwner ? { owner: image.owner } : {}),
    visibility: image.visibility,
    width: image.width,
    height: image.height,
    format: image.format,
    bytes: image.bytes,
    createdAt: image.createdAt.toISOString(),
    placeholder: image.placeholder,
  };
}

/**
 * The ETag of the original as its owner reads it: the bytes, or their JSON form when `Accept` asks
 * for it.
 */
function originalEtag(record: ImageRecord, asJson: boolean): string {
  const etag = `"${record.originEtag}"`;
  return asJson ? jsonFormEtag(etag) : etag;
}

/**
 * The tags PATCH and DELETE evaluate If-Match and If-None-Match against: both forms of the
 * original, which name one state of the image (RFC 9110 §13.1: its current representations).
 * Only the one `Accept` selects, and a client that read the bytes' tag and sent it with a JSON
 * Accept (axios's default) was refused every change.
 */
const originalEtags = (record: ImageRecord) => [originalEtag(record, false), originalEtag(record, true)];

const visibilitySchema = z.enum(visibilities as [string, ...string[]], {
  error: `Expected one of ${visibilities.join(', ')} for visibility`,
});

const patchSchema = z.object({ visibility: visibilitySchema }).strict();

/**
 * A `boundary` parameter (or its RFC 2231 `boundary*`) anywhere in a form's Content-Type: looser
 * than busboy's own parsing, so that what this refuses, busboy would have refused too.
 */
const NAMES_A_BOUNDARY = /boundary\*?\s*=/i;

/** Only these parameters, each at most once: anything else is a mistake worth reporting. */
function readParams(query: URLSearchParams, allowed: readonly string[]): Map<string, string> {
  const params = new Map<string, string>();
  for (const [name, value] of query) {
    if (!allowed.includes(name))
      throw new AppError('invalid_request', `Unknown parameter "${name.slice(0, 40)}"`);
    if (params.has(name)) throw new AppError('invalid_request', `Repeated parameter "${name.slice(0, 40)}"`);
    params.set(name, value);
  }
  return params;
}

function parseVisibility(value: string | undefined): ImageRecord['visibility'] {
  if (value === undefined) return 'private';
  const parsed = visibilitySchema.safeParse(value);
  if (!parsed.success)
    throw new AppError('invalid_request', `Expected one of ${visibilities.join(', ')} for visibility`);
  return parsed.data as ImageRecord['visibility'];
}

const notOnlyTheFile = () =>
  new AppError(
    'invalid_request',
    'Expected one multipart field, "file", holding the image (visibility goes in the query)',
  );

export async function registerImageRoutes(app: FastifyInstance, options: ImageRoutesOptions): Promise<void> {
  const { config, store, cache, origin, variants, ingest, identify, logger } = options;
  const { limits, sendVariant, sendSigned } = options;
  const policy: PolicyOptions = config;
  const transformLimits = config;

  async function findImage(id: string): Promise<ImageRecord | undefined> {
    // A malformed id is a 404 too, without a store round trip.
    return isImageId(id) ? store.getImage(id) : undefined;
  }

  function cacheControl(caller: Caller, image: ImageRecord, decision: ViewDecision): string {
    // A token in the URL must not sit in any cache, the browser's included (SPEC §3.2).
    if (caller.source === 'query') return 'private, no-store';
    // The owner's original keeps its metadata: never in a shared cache, even for a public image.
    if (image.visibility === 'public' && decision.kind === 'variant') {
      return `public, max-age=${config.cacheMaxAgeSeconds}`;
    }
    return `private, max-age=${config.cacheMaxAgeSeconds}`;
  }

  async function sendImage(request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) {
    const query = rawQuery(request);
    const caller = await identify(request, { allowQuery: true, query });
    if (caller.source === 'signed') return sendSigned(request, reply, query);
    // Parsed before the image is looked up: a bad parameter must answer the same for an id
    // that exists and one that does not.
    const requested = parseTransform(query, transformLimits, CREDENTIAL_QUERY_PARAMS);
    const image = await findImage(request.params.id);
    // Issue 4: rate and scrape limits, before the policy so probing unknown ids counts too.
    const principal = caller.principal;
    await limits.view(
      requesterOf(request, caller),
      request.params.id,
      principal !== null && image?.owner === principal.subject,
    );
    const decision = authorizeView(caller.principal, image, requested, policy);
    const record = image as ImageRecord;
    const caching = cacheControl(caller, record, decision);
    const vary =
      caller.source === 'header'
        ? VARY_IMAGE_BY_HEADER
        : caller.source === 'none' && !caching.startsWith('public')
          ? VARY_IMAGE_ANONYMOUS
          : VARY_IMAGE;

    if (decision.kind === 'original') {
      reply.header('vary', vary).header('cache-control', caching);
      const asJson = wantsJsonForm(request.headers.accept);
      const etag = originalEtag(record, asJson);
      reply.header('etag', etag);
      if (evaluatePreconditions(request, etag) === 'not-modified') return reply.code(304).send();
      // Known before reading a byte from the origin.
      if (asJson && record.bytes > config.jsonMaxBytes)
        throw outputTooLarge(record.bytes, config.jsonMaxBytes);
      const original = await variants.original(record);
      const contentType = contentTypes[record.format] ?? 'application/octet-stream';
      if (asJson) {
        const { width, height } = record;
        return sendJsonForm(reply, { body: original.body, contentType, width, height }, config.jsonMaxBytes);
      }
      return reply.type(contentType).send(original.body);
    }

    return sendVariant(request, reply, record, decision.transform, {
      isClamped: decision.isClamped,
      isPreview: decision.isPreview,
      cacheControl: caching,
      vary,
    });
  }

  app.route<{ Params: { id: string } }>({ method: IMAGE_METHODS, url: '/v1/images/:id', handler: sendImage });

  app.get<{ Params: { id: string } }>('/v1/images/:id/meta', async (request, reply) => {
    const caller = await identify(request, { allowQuery: false });
    readParams(rawQuery(request), []);
    const image = await findImage(request.params.id);
    // Rate, not scrape: the metadata shows no original (its placeholder is a few dozen bytes).
    await limits.request(requesterOf(request, caller));
    const { showOwner } = authorizeMeta(caller.principal, image, policy);
    return reply
      .header('cache-control', 'private, no-cache')
      .send(imageMeta(image as ImageRecord, showOwner));
  });

  app.get('/v1/images', async (request, reply) => {
    const query = rawQuery(request);
    const caller = await identify(request, { allowQuery: false, query });
    const params = readParams(query, ['owner', 'cursor', 'limit']);
    await limits.request(requesterOf(request, caller));
    // An empty value is the default, as SPEC §4 writes the route: `?owner=me&cursor=&limit=`.
    const ownerParam = params.get('owner') || 'me';
    const principal = caller.principal;
    const owner = ownerParam === 'me' && principal ? principal.subject : ownerParam;
    authorizeList(principal, owner);
    const limitText = params.get('limit') || '50';
    if (!/^[1-9]\d{0,2}$/.test(limitText) || Number(limitText) > 100) {
      throw new AppError(
        'invalid_request',
        `Expected integer 1..100 for limit but received "${limitText.slice(0, 40)}"`,
      );
    }
    const page = await store.listImages(owner, {
      limit: Number(limitText),
      cursor: params.get('cursor') || undefined,
    });
    return reply.header('cache-control', 'private, no-cache').send({
      items: page.items.map((image) => imageMeta(image, true)),
      nextCursor: page.nextCursor,
    });
  });

  // multipart only where uploads arrive: at the root its hooks (an async onRequest adding a
  // 'close' listener, an async onResponse) ran on every request, and other routes read a form as
  // an empty body. They now answer it 415, like any type they do not read.
  await app.register(async (uploads) => {
    await uploads.register(multipart);
    uploads.post('/v1/images', upload);
  });

  async function upload(request: FastifyRequest, reply: FastifyReply) {
    const caller = await identify(request, { allowQuery: false });
    // Issue 5: a JSON body registers an original already in the origin (admins only).
    if (isJsonRequest(request)) {
      const admin = authorizeRegister(caller.principal);
      readParams(rawQuery(request), []);
      const image = await registerFromJson(request, admin, ingest);
      logger.info({ imageId: image.id, owner: image.owner, bytes: image.bytes }, 'original registered');
      return reply
        .code(201)
        .header('location', `/v1/images/${image.id}`)
        .header('cache-control', 'no-store')
        .send({ ...imageMeta(image, true), source: image.originKey });
    }
    const principal = authorizeUpload(caller.principal);
    if (!origin.isWritable) {
      throw new AppError(
        'read_only_storage',
        'The origin is read-only: register its originals instead of uploading',
      );
    }
    await limits.upload(principal.subject);
    const params = readParams(rawQuery(request), ['visibility']);
    const visibility = parseVisibility(params.get('visibility'));
    // Refused before reading a byte when the length is announced; multipart framing adds a little.
    const declared = Number(request.headers['content-length'] ?? 0);
    const framing = request.isMultipart() ? 64 * 1024 : 0;
    if (declared > config.maxUploadBytes + framing) throw tooLarge(config.maxUploadBytes);
    // busboy looks for the boundary only once the first part is asked for, after 100 Continue,
    // and refuses a header without one with a plain Error (a 500): checked here, with the rest.
    if (request.isMultipart() && !NAMES_A_BOUNDARY.test(request.headers['content-type'] ?? '')) {
      throw new AppError('invalid_request', 'Expected a boundary in the multipart/form-data Content-Type');
    }

    const image = await readUpload(request, principal, visibility);
    logger.info({ imageId: image.id, owner: image.owner, bytes: image.bytes }, 'image stored');
    return reply
      .code(201)
      .header('location', `/v1/images/${image.id}`)
      .header('cache-control', 'no-store')
      .send(imageMeta(image, true));
  }

  async function readUpload(
    request: FastifyRequest,
    principal: Principal,
    visibility: ImageRecord['visibility'],
  ) {
    // Issue 4: each owner's originals stay within PIXGATE_QUOTA_BYTES. An owner already there is
    // refused before the body is read; ingest checks again with the size, and with the insert.
    await checkQuota(store, principal.subject, 1, config.quotaBytes);
    // Everything the headers alone could refuse has passed: a client that waits, may send.
    continueBody(request.raw);
    const newImage = { owner: principal.subject, visibility, quotaBytes: config.quotaBytes };
    if (request.isMultipart()) {
      // One part, the file. Any other would be dropped unread, and a form field `visibility`
      // quietly stored the image private: refused instead, after the file if it comes later.
      // One byte over our own cap: busboy would silently truncate at its limit, while ingest
      // counts the bytes itself and refuses with 413 before anything is stored.
      const parts = request.parts({ limits: { fileSize: config.maxUploadBytes + 1, parts: 1 } });
      const first = await parts.next();
      const part = first.done ? undefined : first.value;
      if (part?.type !== 'file' || part.fieldname !== 'file') {
        if (part?.type === 'file') part.file.resume();
        throw notOnlyTheFile();
      }
      return ingest.fromStream(part.file, newImage, {
        // The rest of the form, read before anything is stored: it must be empty.
        afterSource: async () => {
          const rest = await parts.next().catch((error: unknown) => {
            throw (error as { code?: unknown }).code === 'FST_PARTS_LIMIT' ? notOnlyTheFile() : error;
          });
          if (!rest.done) throw notOnlyTheFile();
        },
      });
    }
    // Raw bodies arrive as the request stream itself (content-type parser in server.ts); any
    // other parsed body (JSON, text) is not an upload.
    if (!(request.body instanceof Readable)) {
      throw new AppError(
        'unsupported_media_type',
        'Expected an image body (image/* or application/octet-stream) or multipart/form-data',
      );
    }
    return ingest.fromStream(request.body, newImage);
  }

  app.patch<{ Params: { id: string } }>('/v1/images/:id', async (request, reply) => {
    const caller = await identify(request, { allowQuery: false });
    readParams(rawQuery(request), []);
    const image = await findImage(request.params.id);
    authorizeChange(caller.principal, image, policy);
    evaluatePreconditions(request, originalEtags(image as ImageRecord));
    const body = patchSchema.safeParse(request.body);
    if (!body.success) {
      throw new AppError('invalid_request', body.error.issues[0]?.message ?? 'Expected { "visibility" }');
    }
    const updated = await store.setVisibility(
      request.params.id,
      body.data.visibility as ImageRecord['visibility'],
    );
    if (!updated) throw notFound();
    return reply.header('cache-control', 'no-store').send(imageMeta(updated, true));
  });

  app.delete<{ Params: { id: string } }>('/v1/images/:id', async (request, reply) => {
    const caller = await identify(request, { allowQuery: false });
    readParams(rawQuery(request), []);
    const image = await findImage(request.params.id);
    authorizeChange(caller.principal, image, policy);
    const record = image as ImageRecord;
    evaluatePreconditions(request, originalEtags(record));
    // The row and the original go as one (Store.deleteImage, through ingest, which notes the
    // delete so that a sweep finishes one a crash cut short): a store that cannot take the
    // deletion (locked: 503) refuses before the original is touched, and an origin that refuses
    // (S3 down: 502/504) rolls the row back. Either way nothing changes, and the owner deletes
    // again later.
    if (!(await ingest.delete(record))) throw notFound();
    // Then nothing serves it any more.
    await cache.deleteImage(record.id);
    return reply.code(204).header('cache-control', 'no-store').send();
  });
}
