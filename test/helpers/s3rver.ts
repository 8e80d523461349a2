/**
 * A real S3 protocol server (s3rver 3) on a free loopback port, with its objects in a temp
 * directory, spoken to through the real AWS SDK. Path-style addressing; s3rver checks request
 * signatures against its one account (access key and secret `S3RVER`), so wrong credentials get
 * a real 403 (see /work/shared/notes/test-parts.md).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface TestS3 {
  /** `http://127.0.0.1:PORT`: PIXGATE_S3_ENDPOINT. */
  readonly endpoint: string;
  readonly region: string;
  /** A client for the test itself (seeding and checking objects), set up like pixgate's. */
  readonly client: S3Client;
  close(): Promise<void>;
}

export async function startS3rver(buckets: readonly string[]): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), 'pixgate-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const region = 'us-east-1';
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    endpoint,
    region,
    client,
    async close() {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
