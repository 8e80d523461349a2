import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteSessionStore } from '../../../src/store/kysely-session-store.js';
import { openSqliteDatabase, openSqliteStore } from '../../../src/store/sqlite.js';
import { describeStoreConformance, makeImage } from './store-conformance.js';

const require = createRequire(import.meta.url);
const root = mkdtempSync(join(tmpdir(), 'pixgate-sqlite-'));
let counter = 0;
// A fresh file in a directory that does not exist yet: openSqliteStore creates it.
const freshPath = () => join(root, `db-${++counter}`, 'nested', 'pixgate.sqlite');

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describeStoreConformance('sqlite (file)', () => openSqliteStore(freshPath()));

describe('openSqliteStore', () => {
  it('keeps its data across close and reopen', async () => {
    const path = freshPath();
    const image = makeImage({ hasAlpha: true, visibility: 'public' });
    const first = await openSqliteStore(path);
    await first.insertImage(image);
    await first.insertImage(makeImage());
    await first.close();

    const second = await openSqliteStore(path);
    try {
      expect(await second.getImage(image.id)).toEqual(image);
      expect((await second.listImages('alice', { limit: 10 })).items).toHaveLength(2);
    } finally {
      await second.close();
    }
  });

  it('works in memory too', async () => {
    const store = await openSqliteStore(':memory:');
    const image = makeImage();
    await store.insertImage(image);
    expect(await store.getImage(image.id)).toEqual(image);
    await store.close();
  });

  it('sets the pragmas it relies on', () => {
    const path = freshPath();
    const sqlite = openSqliteDatabase(path);
    try {
      expect(sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(sqlite.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
      expect(sqlite.pragma('busy_timeout', { simple: true })).toBe(5000);
      expect(sqlite.pragma('foreign_keys', { simple: true })).toBe(1);
    } finally {
      sqlite.close();
    }
  });

  it('creates the listing index: owner, created_at desc, id desc', async () => {
    const path = freshPath();
    await (await openSqliteStore(path)).close();
    const sqlite = new BetterSqlite3(path, { readonly: true });
    try {
      const columns = sqlite
        .prepare(
          `select name, desc from pragma_index_xinfo('images_owner_created_at_id_index') where key = 1`,
        )
        .all();
      expect(columns).toEqual([
        { name: 'owner', desc: 0 },
        { name: 'created_at', desc: 1 },
        { name: 'id', desc: 1 },
      ]);
    } finally {
      sqlite.close();
    }
  });

  it('fails clearly when a migration fails', async () => {
    const path = freshPath();
    const sqlite = openSqliteDatabase(path);
    sqlite.exec('create table images (id text)');
    sqlite.close();
    await expect(openSqliteStore(path)).rejects.toThrow(
      `Cannot open the SQLite database at ${path}: Database migration "0001-images" failed: table "images" already exists`,
    );
  });

  it('refuses a database migrated by a newer version', async () => {
    const path = freshPath();
    await (await openSqliteStore(path)).close();
    const sqlite = new BetterSqlite3(path);
    sqlite.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run('9999-future', 'now');
    sqlite.close();
    await expect(openSqliteStore(path)).rejects.toThrow(/Database migrations could not run: .*9999-future/);
  });

  it('fails clearly on a file that is not a database', async () => {
    const path = join(root, 'not-a-database.sqlite');
    writeFileSync(path, 'this is plain text, not SQLite, and long enough to have a header'.repeat(20));
    await expect(openSqliteStore(path)).rejects.toThrow(
      `Cannot open the SQLite database at ${path}: file is not a database`,
    );
  });

  it('fails clearly when the directory cannot be created', async () => {
    const file = join(root, 'a-regular-file');
    writeFileSync(file, '');
    await expect(openSqliteStore(join(file, 'pixgate.sqlite'))).rejects.toThrow(
      /^Cannot open the SQLite database at .*a-regular-file\/pixgate\.sqlite: EEXIST: file already exists, mkdir/,
    );
  });
});

describe('an insert under a quota while another connection writes', () => {
  it('waits for that write, as any insert does, rather than failing', async () => {
    const path = freshPath();
    const store = await openSqliteStore(path);
    try {
      // Regression: the quota's transaction read first, and another connection's write (here a
      // worker thread, as `pixgate import` beside the server) then made its insert fail at once
      // with SQLITE_BUSY (a 503), where a plain insert waits. This one holds the write lock,
      // writes, and commits 300 ms later: well within the busy timeout.
      const holder = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads');
        const db = new (require(workerData.module))(workerData.path);
        db.pragma('busy_timeout = 5000');
        db.exec('BEGIN IMMEDIATE; CREATE TABLE other_writer (x)');
        parentPort.postMessage('locked');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
        db.exec('COMMIT');
        db.close();`,
        { eval: true, workerData: { path, module: require.resolve('better-sqlite3') } },
      );
      const exited = new Promise((resolve) => holder.once('exit', resolve));
      await new Promise((resolve) => holder.once('message', resolve));
      const image = makeImage();
      await store.insertImage(image, { ownerQuotaBytes: 1_000_000 });
      expect(await store.getImage(image.id)).toEqual(image);
      await exited;
    } finally {
      await store.close();
    }
  });
});

describe('processes opening a new database at once', () => {
  // Regression: the first `pixgate serve`, `dev` or `import` on a new data dir (or the first after
  // an upgrade that brings a migration) could fail to start when another process opened the same
  // file at that moment: both read "nothing migrated yet" before either took the write lock, and
  // the second then failed with `table "images" already exists`. Separate processes, as in real
  // use: one process's busy wait would block the event loop of the other connection.
  it('each opens it: the migrations run once, and nobody fails', async () => {
    const repo = fileURLToPath(new URL('../../../', import.meta.url));
    const opener = `
      const { openSqliteStore } = await import('./src/store/sqlite.ts');
      const { openSqliteSessionStore } = await import('./src/store/kysely-session-store.ts');
      const [path, at] = [process.argv[1], Number(process.argv[2])];
      while (Date.now() < at) {}
      try {
        await (await openSqliteStore(path)).close();
        await (await openSqliteSessionStore(path)).close();
        process.stdout.write('ok');
      } catch (error) {
        process.stdout.write(error.message);
      }`;
    for (let round = 0; round < 3; round++) {
      const path = freshPath();
      // One instant for all, after the slow part (node and tsx starting) is over.
      const at = Date.now() + 3000;
      const answers = await Promise.all(
        Array.from(
          { length: 4 },
          () =>
            new Promise<string>((resolve, reject) => {
              const child = spawn(
                process.execPath,
                ['--import', 'tsx', '--input-type=module', '-e', opener, path, String(at)],
                { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] },
              );
              let out = '';
              child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
                out += chunk;
              });
              child.once('error', reject);
              child.once('close', () => resolve(out));
            }),
        ),
      );
      expect(answers.join(' | ')).toBe('ok | ok | ok | ok');
    }
  }, 60_000);
});

describe('the session store beside the image store, in one process', () => {
  it('waits for a DELETE holding the write lock without stopping the event loop', async () => {
    const path = freshPath();
    const store = await openSqliteStore(path);
    const sessions = await openSqliteSessionStore(path);
    try {
      const image = makeImage();
      await store.insertImage(image);
      // The origin's delete (an S3 call) takes a while; meanwhile a browser signs in.
      const originDelete = new Promise<void>((resolve) => setTimeout(resolve, 100));
      const deleted = store.deleteImage(image.id, { beforeCommit: () => originDelete });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const started = Date.now();
      const session = sessions.insert({
        idHash: 'h',
        subject: 'alice',
        scopes: [],
        expiresAt: Date.now() + 60_000,
        createdAt: Date.now(),
      });
      // Synchronous up to here: a session write that spun on SQLite's busy handler would have
      // held the event loop (and so the DELETE it waits for) for the whole busy timeout.
      expect(Date.now() - started).toBeLessThan(1000);
      await expect(deleted).resolves.toBe(true);
      await expect(session).resolves.toBeUndefined();
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await sessions.close();
      await store.close();
    }
  }, 20_000);
});

describe('statements waiting out another process write lock', () => {
  // Regression: a statement refused as busy was retried holding kysely's one connection, so every
  // other query of the process queued behind it: a read, which WAL lets through at once, waited
  // the whole busy timeout, and writes waited one busy timeout after another (the third 503 came
  // after 15 s, where the README promises one that gives up after 5).
  it('neither hold up this process reads nor queue their waits one after another', async () => {
    const path = freshPath();
    const store = await openSqliteStore(path);
    const [first, second] = [makeImage(), makeImage()];
    await store.insertImage(first);
    await store.insertImage(second);
    // Another program (the sqlite3 shell, a script) holds the write lock and does not let go.
    const holder = new BetterSqlite3(path);
    holder.exec('BEGIN IMMEDIATE');
    try {
      const started = performance.now();
      // When each one has given up, and with what.
      const settled = (work: Promise<unknown>) =>
        work.then(
          () => ({ ms: performance.now() - started, code: 'none' }),
          (error: { code?: string }) => ({ ms: performance.now() - started, code: error.code }),
        );
      const writes = Promise.all([
        settled(store.setVisibility(first.id, 'public')),
        settled(store.setVisibility(second.id, 'public')),
        settled(store.bumpVersion(first.id)),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await expect(store.getImage(second.id)).resolves.toEqual(second);
      expect(performance.now() - started).toBeLessThan(1000);
      for (const write of await writes) {
        expect(write.code).toBe('unavailable');
        expect(write.ms).toBeLessThan(7000);
      }
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
      await store.close();
    }
  }, 30_000);
});
