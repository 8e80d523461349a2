/**
 * The cold path from the S3 and HTTP origins, as ratios to the file origin: the same workload
 * as cold.ts (w=360 JPEG of the 4000×3000 photo, 8 connections, PIXGATE_CACHE=none, one copy per
 * connection so every response is a transform), with the originals registered in a real S3
 * server (s3rver) and behind an HTTP origin that checks a Bearer token. Both origin servers run
 * in this process, on the same machine: their own CPU is part of what the ratio shows, as a
 * local MinIO or file service would be.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { COLD_CONNECTIONS, measurePixgate } from './cold.js';
import { type BenchContext, WIDTH } from './context.js';
import type { Pixgate } from './pixgate-process.js';

const ORIGIN_TOKEN = 'bench-origin-token';
const KINDS = ['file', 's3', 'http'] as const;
type Kind = (typeof KINDS)[number];

export interface OriginsResult {
  readonly perSecond: Readonly<Record<Kind, number>>;
  /** req/s of the S3 and HTTP origins ÷ req/s of the file origin. */
  readonly s3Ratio: number;
  readonly httpRatio: number;
  readonly warnings: readonly string[];
}

async function startHttpOrigin(photo: Buffer) {
  const server = createServer((request, response) => {
    if (request.headers.authorization !== `Bearer ${ORIGIN_TOKEN}`) return response.writeHead(401).end();
    if (!/^\/lib\/photo-\d+\.jpg$/.test(request.url ?? '')) return response.writeHead(404).end();
    response.writeHead(200, {
      'content-type': 'image/jpeg',
      'content-length': photo.length,
      etag: '"photo"',
    });
    response.end(photo);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/lib/`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function registerAll(pixgate: Pixgate, adminToken: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const response = await fetch(`${pixgate.url}/v1/images`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: `photo-${i}.jpg`, owner: 'bench' }),
    });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`registering photo-${i}.jpg: ${response.status} ${text}`);
    ids.push((JSON.parse(text) as { id: string }).id);
  }
  return ids;
}

export async function runOriginsPhase(ctx: BenchContext): Promise<OriginsResult> {
  const s3Dir = await mkdtemp(join(ctx.tmp, 's3rver-'));
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: s3Dir,
    configureBuckets: [{ name: 'bench' }],
  });
  const { port } = await s3.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const http = await startHttpOrigin(ctx.photo);
  const running: Pixgate[] = [];
  try {
    for (let i = 0; i < COLD_CONNECTIONS; i++) {
      await client.send(
        new PutObjectCommand({ Bucket: 'bench', Key: `lib/photo-${i}.jpg`, Body: ctx.photo }),
      );
    }
    const adminToken = await ctx.issuer.token('bench-admin', 'images:admin');
    const start = async (kind: Kind): Promise<{ pixgate: Pixgate; ids: readonly string[] }> => {
      const common = { PIXGATE_CACHE: 'none' };
      if (kind === 'file') return { pixgate: await ctx.startPixgate('origins-file', common), ids: ctx.ids };
      const env: Record<string, string> =
        kind === 's3'
          ? {
              PIXGATE_STORAGE: 's3://bench/lib',
              PIXGATE_S3_ENDPOINT: endpoint,
              PIXGATE_S3_FORCE_PATH_STYLE: 'true',
              AWS_ACCESS_KEY_ID: credentials.accessKeyId,
              AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
            }
          : { PIXGATE_STORAGE: http.baseUrl, PIXGATE_ORIGIN_BEARER: ORIGIN_TOKEN };
      const pixgate = await ctx.startPixgate(`origins-${kind}`, {
        ...common,
        ...env,
        PIXGATE_DATA_DIR: join(ctx.tmp, `data-${kind}`),
      });
      return { pixgate, ids: await registerAll(pixgate, adminToken, COLD_CONNECTIONS) };
    };

    const servers = new Map<Kind, { pixgate: Pixgate; ids: readonly string[] }>();
    for (const kind of KINDS) {
      const started = await start(kind);
      running.push(started.pixgate);
      servers.set(kind, started);
    }
    const ok: Record<Kind, number> = { file: 0, s3: 0, http: 0 };
    const seconds: Record<Kind, number> = { file: 0, s3: 0, http: 0 };
    const warnings: string[] = [];
    for (let round = 0; round < ctx.rounds; round++) {
      // Rotated each round (file s3 http, s3 http file, ...): drift on a shared machine spreads.
      const sequence = KINDS.map((_, i) => KINDS[(i + round) % KINDS.length] as Kind);
      for (const kind of sequence) {
        const { pixgate, ids } = servers.get(kind) as { pixgate: Pixgate; ids: readonly string[] };
        const urls = ids.map((id) => `${pixgate.url}/v1/images/${id}?w=${WIDTH}`);
        const measured = await measurePixgate(ctx, pixgate, urls);
        ok[kind] += measured.ok;
        seconds[kind] += measured.seconds;
        if (measured.non200 > 0)
          warnings.push(`origins round ${round + 1}, ${kind}: ${measured.non200} responses were not 200`);
        ctx.progress(`origins round ${round + 1}: ${kind} ${(measured.ok / measured.seconds).toFixed(1)}/s`);
      }
    }
    const perSecond = {
      file: ok.file / seconds.file,
      s3: ok.s3 / seconds.s3,
      http: ok.http / seconds.http,
    };
    return {
      perSecond,
      s3Ratio: perSecond.s3 / perSecond.file,
      httpRatio: perSecond.http / perSecond.file,
      warnings,
    };
  } finally {
    await Promise.all(running.map((pixgate) => pixgate.stop()));
    client.destroy();
    await http.close();
    await s3.close();
    await rm(s3Dir, { recursive: true, force: true });
  }
}

export const originsLines = (result: OriginsResult): string[] => [
  `origins cold w=${WIDTH} jpeg, ${COLD_CONNECTIONS} conn  file ${result.perSecond.file.toFixed(1)} req/s   s3 ${result.perSecond.s3.toFixed(1)} req/s (ratio ${result.s3Ratio.toFixed(2)})   http ${result.perSecond.http.toFixed(1)} req/s (ratio ${result.httpRatio.toFixed(2)})`,
];
