import { createReadStream, type ReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { AppError, notFound } from '../errors.js';
import type { BufferPool } from './buffer-pool.js';
import { checkOriginKey } from './key.js';
import type { S3Location } from './location.js';
import type { Origin, OriginObject, ReadOptions } from './origin.js';
import { originTimeout, readBody, startDeadline } from './read-body.js';

export interface S3ClientSettings {
  readonly endpoint?: string | undefined;
  readonly region?: string | undefined;
  readonly forcePathStyle?: boolean | undefined;
  /** Only tests pass these; otherwise the SDK's default chain (AWS_ACCESS_KEY_ID, profiles, roles). */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Attempts per request, the SDK's own retries included (SDK default 3). */
  readonly maxAttempts?: number | undefined;
  /**
   * Longest wait to connect, and longest silence on a connection, before a call fails (the SDK
   * sets neither). A silence, not a total: a large upload over a slow link is not cut short.
   */
  readonly idleTimeoutMs?: number | undefined;
}

export function createS3Client(settings: S3ClientSettings): S3Client {
  return new S3Client({
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    // An S3-compatible store needs some region to sign with; AWS itself finds it in the chain.
    region: settings.region ?? (settings.endpoint ? 'us-east-1' : undefined),
    forcePathStyle: settings.forcePathStyle ?? false,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    ...(settings.maxAttempts ? { maxAttempts: settings.maxAttempts } : {}),
    ...(settings.idleTimeoutMs
      ? {
          requestHandler: {
            connectionTimeout: settings.idleTimeoutMs,
            socketTimeout: settings.idleTimeoutMs,
          },
        }
      : {}),
    // Recent SDKs add flexible checksums with aws-chunked framing by default, which S3-compatible
    // stores (s3rver, older MinIO, ...) may store verbatim: 12,000 bytes sent became 12,044
    // starting `2ee0\r\n`. Checksums only where the operation requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export interface S3OriginOptions {
  readonly client: S3Client;
  readonly location: S3Location;
  /** For one whole read: request and body. */
  readonly timeoutMs: number;
  readonly pool?: BufferPool | undefined;
}

/**
 * Originals in an S3 bucket under a prefix. Reads stream the body into memory with the size
 * cap and one deadline (read-body.ts); the object's ETag and LastModified are its identity.
 * Uploads are stored there too: PutObject is atomic, so a key holds nothing or the whole file.
 */
export function createS3Origin(options: S3OriginOptions): Origin {
  const { client, timeoutMs, pool } = options;
  const { bucket, prefix } = options.location;
  const objectKey = (key: string) => `${prefix}${checkOriginKey(key)}`;

  /**
   * A delete or a bucket check under the read's deadline (the SDK sets none: a stalled store
   * would hang a delete or /readyz for good). Timed out: 504 `origin_timeout`; refused
   * or down: 502 `origin_error` saying `message`, never a stack or the SDK's text for the client.
   */
  async function withDeadline<T>(message: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const deadline = startDeadline(timeoutMs);
    try {
      return await call(deadline.signal);
    } catch (error) {
      if (isTimeout(error, deadline.timedOut())) throw originTimeout('s3', timeoutMs);
      throw new AppError('origin_error', message, { detail: `s3 origin: ${describe(error)}` });
    } finally {
      deadline.dispose();
    }
  }

  return {
    kind: 's3',
    isWritable: true,

    async read(key: string, readOptions: ReadOptions): Promise<OriginObject> {
      const Key = objectKey(key);
      const deadline = startDeadline(timeoutMs, readOptions.signal);
      let body: Readable | undefined;
      const stopBody = () => body?.destroy();
      deadline.signal.addEventListener('abort', stopBody, { once: true });
      try {
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key }), {
          abortSignal: deadline.signal,
        });
        body = answer.Body as Readable | undefined;
        if (!body)
          throw new AppError('origin_error', 'The original could not be read', {
            detail: 's3 origin: no body',
          });
        if (deadline.signal.aborted) body.destroy();
        const read = await readBody(body, {
          kind: 's3',
          maxBytes: readOptions.maxBytes,
          length: answer.ContentLength,
          pool,
        });
        return { ...read, etag: unquote(answer.ETag), lastModified: answer.LastModified };
      } catch (error) {
        body?.destroy();
        throw s3ReadError(error, key, deadline.timedOut(), timeoutMs);
      } finally {
        deadline.signal.removeEventListener('abort', stopBody);
        deadline.dispose();
      }
    },

    async write(key: string, tempPath: string, contentType: string): Promise<void> {
      let body: ReadStream | undefined;
      try {
        const Key = objectKey(key);
        const { size } = await stat(tempPath);
        body = createReadStream(tempPath);
        // No total deadline: a 25 MiB original over a slow link may take a while. A store that
        // stops answering is cut off by the client's idle timeout (createS3Client).
        await client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key,
            Body: body,
            ContentLength: size,
            ContentType: contentType,
          }),
        );
      } catch (error) {
        if (isTimeout(error, false)) throw originTimeout('s3', timeoutMs);
        // The store refused or is down: an origin failure (502), never a stack for the client.
        throw new AppError('origin_error', 'The image could not be stored', {
          detail: `s3 origin: ${describe(error)}`,
        });
      } finally {
        // A failed send may leave the stream open: its descriptor would keep the unlinked
        // file's disk space for good.
        body?.destroy();
        await rm(tempPath, { force: true });
      }
    },

    async delete(key: string): Promise<void> {
      // S3 answers 204 for a missing key too.
      await withDeadline('The original could not be deleted', (abortSignal) =>
        client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(key) }), { abortSignal }),
      );
    },

    async check(): Promise<void> {
      await withDeadline('The store is unavailable', (abortSignal) =>
        client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal }),
      );
    },

    async *list(under: string): AsyncIterable<string> {
      const Prefix = under === '' ? prefix : `${prefix}${checkOriginKey(under)}`;
      let ContinuationToken: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix, ContinuationToken }),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key?.startsWith(prefix) && !object.Key.endsWith('/'))
            yield object.Key.slice(prefix.length);
        }
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (ContinuationToken);
    },
  };
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^(W\/)?"(.*)"$/, '$2');
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** The error's name and status, never its message (which may quote a request). */
function describe(error: unknown): string {
  if (error instanceof S3ServiceException) return `${error.name} (${statusOf(error) ?? 'no status'})`;
  const code = (error as NodeJS.ErrnoException).code;
  return code ?? (error as Error).name ?? 'unknown error';
}

/**
 * The store went silent: our deadline ran out, or the client's idle timeout (createS3Client) ended
 * the call first, which the SDK reports as a TimeoutError.
 */
const isTimeout = (error: unknown, deadlineExpired: boolean) =>
  deadlineExpired || (error as Error).name === 'TimeoutError';

function s3ReadError(error: unknown, key: string, timedOut: boolean, timeoutMs: number): AppError {
  if (error instanceof AppError) return error;
  if (isTimeout(error, timedOut)) return originTimeout('s3', timeoutMs);
  const status = statusOf(error);
  const name = (error as Error).name;
  // A 404 for the bucket itself (deleted, misnamed) is the origin's failure, not a missing image:
  // as a 404 every original would look gone, and `register` would skip each key as missing.
  if (name !== 'NoSuchBucket' && (name === 'NoSuchKey' || name === 'NotFound' || status === 404)) {
    return notFound(`s3 origin: no ${key}`);
  }
  if (status === 401 || status === 403) {
    return new AppError('origin_error', 'The original could not be read', {
      detail: `s3 origin: the store refused pixgate's credentials (${status} ${name})`,
    });
  }
  return new AppError('origin_error', 'The original could not be read', {
    detail: `s3 origin: ${describe(error)}`,
  });
}
