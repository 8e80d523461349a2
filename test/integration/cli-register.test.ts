import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth } from '../helpers/images.js';
import { startTestServer } from '../helpers/pixgate.js';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3 } from '../helpers/s3rver.js';

/**
 * `pixgate register`, spawned as a user runs it (like cli.test.ts): keys named one by one or
 * walked under a prefix, in a local directory and in a real S3 server; the images it records
 * are then served by a real server on the same data dir.
 */

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BASE_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir() };

function run(args: readonly string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: REPO,
    env: { ...BASE_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let scratch: string;
let jpeg: Buffer;
let png: Buffer;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'pixgate-register-'));
  jpeg = (await synth('jpeg', 160, 120)).body;
  png = (await synth('png', 64, 48)).body;
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

describe('pixgate register (file origin)', () => {
  it('records named keys and every key under a prefix, and says what it skipped and why', async () => {
    const library = join(scratch, 'library');
    const dataDir = join(scratch, 'data');
    await mkdir(join(library, '2019'), { recursive: true });
    await mkdir(join(library, '2020'), { recursive: true });
    await writeFile(join(library, '2019', 'beach.jpg'), jpeg);
    await writeFile(join(library, '2019', 'notes.txt'), 'not an image\n');
    await writeFile(join(library, '2020', 'map.png'), png);
    const env = { PIXGATE_DATA_DIR: dataDir, PIXGATE_STORAGE: `file:${library}` };

    const named = await run(
      ['register', '2019/beach.jpg', '../etc/passwd', 'nope.jpg', '--owner', 'alice'],
      env,
    );
    expect(named.stderr).toBe('');
    expect(named.code).toBe(0);
    const lines = named.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^[A-Za-z0-9_-]{22,} 2019\/beach\.jpg$/);
    expect(lines).toContain('Registered 1 of 3 keys for alice.');
    expect(lines).toContain('Skipped 1: Invalid source key: empty, "." and ".." segments are not allowed');
    expect(lines).toContain('Skipped 1: No such original in the origin');

    const walked = await run(
      ['register', '--prefix', '2020', '--owner', 'bob', '--visibility', 'public'],
      env,
    );
    expect(walked.code).toBe(0);
    expect(walked.stdout).toContain('Registered 1 of 1 keys for bob.');

    const usage = await run(['register', '--owner', 'alice'], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('expected one or more keys, or --prefix');
    const unlistable = await run(['register', '--prefix', '2019', '--owner', 'alice'], {
      ...env,
      PIXGATE_STORAGE: 'http://127.0.0.1:9/lib/',
    });
    expect(unlistable.code).toBe(2);
    expect(unlistable.stderr).toContain('--prefix: the http origin cannot list its keys; name them instead');

    const server = await startTestServer({ dev: true, storage: `file:${library}` }, { dataDir });
    try {
      const token = await server.token('alice');
      const list = (await (
        await fetch(`${server.url}/v1/images`, { headers: { authorization: `Bearer ${token}` } })
      ).json()) as { items: { id: string; width: number; format: string }[] };
      expect(list.items.map(({ width, format }) => ({ width, format }))).toEqual([
        { width: 160, format: 'jpeg' },
      ]);
      const variant = await fetch(`${server.url}/v1/images/${list.items[0]?.id}?w=40`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(variant.status).toBe(200);
      const id = /^(\S+) 2020\/map\.png$/m.exec(walked.stdout)?.[1];
      expect((await fetch(`${server.url}/v1/images/${id}?w=32`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('pixgate register, an original over the upload cap', () => {
  it('is skipped as too large (413), like an upload, not counted as the origin failing', async () => {
    const library = join(scratch, 'big-library');
    await mkdir(library, { recursive: true });
    await writeFile(join(library, 'big.jpg'), jpeg);
    const env = {
      PIXGATE_DATA_DIR: join(scratch, 'big-data'),
      PIXGATE_STORAGE: `file:${library}`,
      PIXGATE_MAX_UPLOAD_BYTES: String(jpeg.length - 1),
    };
    const result = await run(['register', 'big.jpg', '--owner', 'alice'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Registered 0 of 1 keys for alice.');
    expect(result.stdout).toContain(
      `Skipped 1: The image is larger than the limit of ${jpeg.length - 1} bytes`,
    );
  });
});

describe('pixgate register (S3 origin)', () => {
  let s3: TestS3;
  beforeAll(async () => {
    s3 = await startS3rver(['photos']);
  });
  afterAll(() => s3.close());

  it('walks a prefix of the bucket', async () => {
    for (const [key, body] of [
      ['lib/trips/a.jpg', jpeg],
      ['lib/trips/b.png', png],
      ['lib/other/c.jpg', jpeg],
    ] as const) {
      await s3.client.send(new PutObjectCommand({ Bucket: 'photos', Key: key, Body: body }));
    }
    const exit = await run(['register', '--prefix', 'trips/', '--owner', 'carol'], {
      PIXGATE_DATA_DIR: join(scratch, 's3-data'),
      PIXGATE_STORAGE: 's3://photos/lib',
      PIXGATE_S3_ENDPOINT: s3.endpoint,
      PIXGATE_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    });
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stdout).toMatch(/^\S+ trips\/a\.jpg$/m);
    expect(exit.stdout).toMatch(/^\S+ trips\/b\.png$/m);
    expect(exit.stdout).not.toContain('other/c.jpg');
    expect(exit.stdout).toContain('Registered 2 of 2 keys for carol.');
  });
});
