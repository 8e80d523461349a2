import { existsSync } from 'node:fs';
import { createSignedUrls, loadDevSigningKey } from '../auth/signed-url.js';
import { isAppError } from '../errors.js';
import {
  defaultTransform,
  parseTransform,
  transformParameters,
  transformToQuery,
} from '../images/transform.js';
import { databaseFile, openStorage } from '../main.js';
import { isImageId } from '../store/ids.js';
import { type CommandContext, parseDuration, UsageError } from './args.js';

/**
 * `pixgate sign ID [--w 360 --format webp ...] [--ttl 1h]`: a signed URL (path and query, relative
 * to the server) printed on stdout, made exactly as `POST /v1/images/{id}/signed-urls` makes it:
 * the same keys (PIXGATE_SIGNING_KEYS, or dev mode's key in the data dir), the image version
 * from the database, the same bucket.
 */
export async function runSign(context: CommandContext): Promise<number> {
  const { config, own } = context.config('tool', [...transformParameters, 'ttl']);
  const problems: string[] = [];
  const [id, ...extra] = context.args.positionals;
  if (id === undefined || extra.length > 0) problems.push('expected exactly one image id');
  const ttlSeconds = own.ttl === undefined ? 3600 : parseDuration(own.ttl);
  if (ttlSeconds === undefined || ttlSeconds < 1 || ttlSeconds > 365 * 86400) {
    problems.push('--ttl: expected a duration from 1s to 365d, such as 3600, 15m or 1h');
  }
  const given = new URLSearchParams();
  for (const name of transformParameters) {
    const value = own[name];
    if (value !== undefined) given.set(name, value);
  }
  let transform = defaultTransform;
  try {
    transform = parseTransform(given, config) ?? defaultTransform;
  } catch (error) {
    if (!isAppError(error)) throw error;
    problems.push(error.publicMessage);
  }
  // Only reads: a mistyped data dir (or the default ./data, run from elsewhere) would otherwise get
  // an empty database, and with --dev true a signing key, before the image was found missing.
  if (!existsSync(databaseFile(config.dataDir))) {
    problems.push(`PIXGATE_DATA_DIR: no pixgate database in ${config.dataDir}`);
  }
  if (problems.length > 0) throw new UsageError(problems);

  const keys =
    config.signingKeys.length > 0
      ? config.signingKeys
      : config.dev
        ? [await loadDevSigningKey(config.dataDir)]
        : [];
  if (keys.length === 0) {
    throw new UsageError([
      'PIXGATE_SIGNING_KEYS: required to sign URLs (pixgate keygen prints a key; for the key of pixgate dev, add --dev true)',
    ]);
  }
  const storage = await openStorage(config);
  try {
    const image = isImageId(id as string) ? await storage.store.getImage(id as string) : undefined;
    if (!image) {
      process.stderr.write(`pixgate sign: no image ${JSON.stringify(id)}\n`);
      return 1;
    }
    const signer = createSignedUrls(keys, config.signedUrlBucket);
    const { url, exp } = signer.sign(
      `/v1/images/${image.id}`,
      image.version,
      transformToQuery(transform),
      ttlSeconds as number,
      Date.now(),
    );
    process.stdout.write(`${url}\n`);
    process.stderr.write(`expires ${new Date(exp * 1000).toISOString()}\n`);
    return 0;
  } finally {
    await storage.close();
  }
}
