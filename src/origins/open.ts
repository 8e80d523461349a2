import type { S3Client } from '@aws-sdk/client-s3';
import { originAuthOf } from '../config/origin-settings.js';
import type { Config } from '../config/schema.js';
import type { BufferPool } from './buffer-pool.js';
import { createFileOrigin } from './file.js';
import { createHttpOrigin } from './http.js';
import { parseS3Url } from './location.js';
import type { Origin } from './origin.js';

/**
 * The origin `PIXGATE_STORAGE` names (validated by the settings loader). The AWS SDK is loaded
 * only when S3 is used: importing it costs about 25 MB and 0.2 s, which every other set-up and
 * every short CLI command would pay for nothing.
 */
export async function openOrigin(config: Config, pool: BufferPool): Promise<Origin> {
  const timeoutMs = config.originTimeoutSeconds * 1000;
  if (config.storage.startsWith('file:')) return createFileOrigin(config.storage.slice('file:'.length), pool);
  const s3 = parseS3Url(config.storage);
  if (s3) {
    const { createS3Origin } = await import('./s3.js');
    return createS3Origin({ client: await s3ClientFor(config), location: s3, timeoutMs, pool });
  }
  return createHttpOrigin({ baseUrl: config.storage, auth: originAuthOf(config), timeoutMs, pool });
}

export async function s3ClientFor(config: Config): Promise<S3Client> {
  const { createS3Client } = await import('./s3.js');
  return createS3Client({
    endpoint: config.s3Endpoint,
    region: config.s3Region,
    forcePathStyle: config.s3ForcePathStyle,
    idleTimeoutMs: config.originTimeoutSeconds * 1000,
  });
}
