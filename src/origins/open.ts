import { originAuthOf } from '../config/origin-settings.js';
import type { Config } from '../config/schema.js';
import type { BufferPool } from './buffer-pool.js';
import { createFileOrigin } from './file.js';
import { createHttpOrigin } from './http.js';
import { parseS3Url } from './location.js';
import type { Origin } from './origin.js';
import { createS3Client, createS3Origin } from './s3.js';

/** The origin `PIXGATE_STORAGE` names (validated by the settings loader). */
export function openOrigin(config: Config, pool: BufferPool): Origin {
  const timeoutMs = config.originTimeoutSeconds * 1000;
  if (config.storage.startsWith('file:')) return createFileOrigin(config.storage.slice('file:'.length), pool);
  const s3 = parseS3Url(config.storage);
  if (s3) {
    return createS3Origin({ client: s3ClientFor(config), location: s3, timeoutMs, pool });
  }
  return createHttpOrigin({ baseUrl: config.storage, auth: originAuthOf(config), timeoutMs, pool });
}

export function s3ClientFor(config: Config) {
  return createS3Client({
    endpoint: config.s3Endpoint,
    region: config.s3Region,
    forcePathStyle: config.s3ForcePathStyle,
  });
}
