import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isAdmin, type Principal } from '../../auth/principal.js';
import { AppError } from '../../errors.js';
import type { Ingest } from '../../images/ingest.js';
import { type ImageRecord, MAX_OWNER_LENGTH, visibilities } from '../../store/store.js';

/**
 * `POST /v1/images` with a JSON body (admins only): records an original already in the origin,
 * `{ "source": "KEY", "owner": "SUB", "visibility": "private" }`, without copying it. The key
 * is checked by the origin layer (a plain relative path, key.ts) and is shown to admins only.
 */

const registerSchema = z
  .object({
    source: z.string({ error: 'Expected a "source" key' }),
    owner: z
      .string({ error: 'Expected an "owner"' })
      .min(1, { error: 'Expected an "owner"' })
      .max(MAX_OWNER_LENGTH, { error: `Expected an owner of at most ${MAX_OWNER_LENGTH} characters` }),
    visibility: z
      .enum(visibilities as [string, ...string[]], {
        error: `Expected one of ${visibilities.join(', ')} for visibility`,
      })
      .default('private'),
  })
  .strict();

export function isJsonRequest(request: FastifyRequest): boolean {
  return /^application\/json\b/i.test(request.headers['content-type'] ?? '');
}

export async function registerFromJson(
  request: FastifyRequest,
  principal: Principal,
  ingest: Ingest,
): Promise<ImageRecord> {
  if (!isAdmin(principal)) throw new AppError('forbidden', 'Only admins may register originals');
  const body = registerSchema.safeParse(request.body);
  if (!body.success) {
    throw new AppError('invalid_request', body.error.issues[0]?.message ?? 'Expected { "source", "owner" }');
  }
  return ingest.fromOrigin(body.data.source, {
    owner: body.data.owner,
    visibility: body.data.visibility as ImageRecord['visibility'],
  });
}
