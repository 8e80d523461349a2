import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  Kysely,
  type QueryResult,
  SqliteAdapter,
  type SqliteDatabase,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
} from 'kysely';
import type { Database } from './database.js';
import { failClosed } from './fail-closed.js';
import { createKyselyStore } from './kysely-store.js';
import { migrateToLatest } from './migrate.js';
import type { Store } from './store.js';

/** How long a statement waits for another connection's write lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

const isBusy = (error: unknown) => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
};

/**
 * `journal_mode = WAL` on a new file needs its exclusive lock, and SQLite refuses that at once,
 * without waiting out the busy timeout (waiting could deadlock), while another process opening
 * the same new file holds a lock on it: one of several processes opening a new data dir at once
 * failed to start, "database is locked". Tried again for up to the busy timeout; this runs while
 * opening, before anything else does, so the wait may hold the thread.
 */
function switchToWal(sqlite: BetterSqlite3.Database): void {
  const deadline = performance.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      sqlite.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if (!isBusy(error) || performance.now() >= deadline) throw error;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

/**
 * Opens the SQLite file (creating it and its directory) with the pragmas pixgate relies on.
 * `:memory:` gives a private in-memory database (tests). `busyTimeoutMs: 0` for a connection
 * behind ImmediateSqliteDialect, which waits out a lock itself without blocking the event loop.
 */
export function openSqliteDatabase(
  path: string,
  { busyTimeoutMs = BUSY_TIMEOUT_MS }: { readonly busyTimeoutMs?: number } = {},
): BetterSqlite3.Database {
  const inMemory = path === ':memory:';
  const file = inMemory ? path : resolve(path);
  let sqlite: BetterSqlite3.Database | undefined;
  try {
    if (!inMemory) mkdirSync(dirname(file), { recursive: true });
    sqlite = new BetterSqlite3(file);
    // While opening, locks are waited out synchronously: nothing else runs yet. Afterwards the
    // connection keeps `busyTimeoutMs` (0 behind ImmediateSqliteDialect, which waits itself).
    sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // WAL: readers do not block the writer nor the writer the readers (image reads go on
    // while an upload is recorded). synchronous=NORMAL is durable against a process crash in
    // WAL mode and loses at most the last transactions on power loss, for far fewer fsyncs.
    switchToWal(sqlite);
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // Off by default in SQLite; later tables (share links, sessions) reference images.
    sqlite.pragma('foreign_keys = ON');
    return sqlite;
  } catch (error) {
    sqlite?.close();
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot open the SQLite database at ${file}: ${reason}`, { cause: error });
  }
}

/**
 * A check that the file at `path` is still the one SQLite opened, by device and inode. SQLite
 * goes on reading and writing the file it has open after it was deleted or replaced (a data dir
 * removed by mistake, a backup restored over a running server's database): every write was
 * answered 201 or 200, then vanished with the next start. The check throws an error SQLite
 * itself uses for a moved database, which the store tells as unavailable (503, fail-closed.ts).
 */
export function watchDatabaseFile(path: string): () => void {
  if (path === ':memory:') return () => {};
  const file = resolve(path);
  const opened = statSync(file);
  return () => {
    const now = statSync(file, { throwIfNoEntry: false });
    if (now?.dev === opened.dev && now.ino === opened.ino) return;
    throw Object.assign(new Error(`The database file ${file} was removed or replaced while open`), {
      code: 'SQLITE_READONLY_DBMOVED',
    });
  };
}

/**
 * `store` with `check` run before each of its methods but `close`: a store whose file is gone
 * answers nothing more, reads included (they would come from a database nobody will see again).
 */
export function checkedFirst<T extends object>(store: T, check: () => void): T {
  const checked: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(store)) {
    checked[name] =
      typeof method === 'function' && name !== 'close'
        ? async (...args: unknown[]) => {
            check();
            return (method as (...values: unknown[]) => Promise<unknown>).apply(store, args);
          }
        : method;
  }
  return checked as T;
}

/**
 * Every transaction takes the write lock as it begins (`BEGIN IMMEDIATE`), waiting out another
 * connection's write for the busy timeout like any statement; kysely's plain `BEGIN` takes it
 * at the first write, after the reads before it. And the migrations run in one such transaction:
 * kysely's SQLite adapter runs them in none (it says SQLite has no transactional DDL, which it
 * has) and takes no lock, since one process has one connection. Two processes opening a new data
 * dir at once (`pixgate dev` and `pixgate import`, two servers), or the first two after an
 * upgrade that brings a migration, both read "none run yet" and ran them both: the second failed
 * to start with `table "images" already exists`. Now the second reads which migrations have run
 * only once the first has committed them, and a migration that fails leaves nothing half done.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  readonly #inTransaction: () => boolean;
  #patient: { inner: DatabaseConnection; outer: DatabaseConnection } | undefined;

  constructor(config: ImmediateSqliteDialectConfig) {
    super(config);
    this.#inTransaction = config.inTransaction;
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await super.acquireConnection();
    if (this.#patient?.inner !== inner) {
      this.#patient = { inner, outer: patient(inner, (ms) => this.#pause(ms)) };
    }
    return this.#patient.outer;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  /**
   * SQLite rolls a transaction back itself on some errors (SQLITE_FULL, an I/O error): kysely's
   * rollback then failed, "no transaction is active", and that error took the place of the one
   * that tells what happened (a full disk's 507 became a 500).
   */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (this.#inTransaction()) await super.rollbackTransaction(connection);
  }

  /**
   * The wait between two tries of a statement refused as busy. kysely lets one query at a time
   * have the connection; kept meanwhile, every other query of this process queued behind it: a
   * read, which WAL lets through at once, waited out the whole busy timeout, and each write
   * waited out its own after the previous one's (the third 503 after 15 s). Outside a transaction
   * (a single statement, or `begin immediate` itself) nothing is open on the connection, so it is
   * let go while waiting: better-sqlite3 runs a statement whole, so others cannot interleave with
   * one. Inside a transaction it is kept, as the transaction needs it whole.
   */
  async #pause(ms: number): Promise<void> {
    if (this.#inTransaction()) return sleep(ms);
    await super.releaseConnection();
    try {
      await sleep(ms);
    } finally {
      await super.acquireConnection();
    }
  }
}

/**
 * better-sqlite3 waits out a lock (busy_timeout) synchronously, holding the event loop. When the
 * lock is held by this very process (a DELETE's transaction awaiting the origin's delete, seen
 * from the session store's own connection), nothing can release it meanwhile: every request
 * stalled for the whole timeout, then the write failed (503). The connection is opened with no
 * busy timeout instead, and a statement SQLite refused as busy (it ran nothing) is retried after
 * `pause`, for as long as the busy timeout would have waited.
 */
function patient(connection: DatabaseConnection, pause: (ms: number) => Promise<void>): DatabaseConnection {
  return {
    async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      // Monotonic: a wall clock stepped back must not stretch the wait.
      const deadline = performance.now() + BUSY_TIMEOUT_MS;
      for (let wait = 1; ; wait = Math.min(wait * 2, 25)) {
        try {
          return await connection.executeQuery<R>(query);
        } catch (error) {
          if (!isBusy(error) || performance.now() >= deadline) throw error;
        }
        await pause(wait);
      }
    },
    streamQuery: (query, chunkSize) => connection.streamQuery(query, chunkSize),
  };
}

class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

interface ImmediateSqliteDialectConfig extends SqliteDialectConfig {
  /** Whether the connection has a transaction open (better-sqlite3's own answer). */
  readonly inTransaction: () => boolean;
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: ImmediateSqliteDialectConfig;

  constructor(config: ImmediateSqliteDialectConfig) {
    super(config);
    this.#config = config;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

/**
 * kysely's SQLite driver prepares every statement anew on each query, which costs more than
 * running it (a third of an image request's time on the cached path). Statements are compiled
 * once per distinct SQL text and reused; better-sqlite3 runs them synchronously, so one
 * statement object is never used by two queries at once. Our SQL texts are a small fixed set
 * (values are bound parameters), so the map stays small; the bound only guards a mistake.
 */
function withStatementCache(sqlite: BetterSqlite3.Database, maxStatements = 256) {
  const statements = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string): BetterSqlite3.Statement {
      let statement = statements.get(sql);
      if (!statement) {
        if (statements.size >= maxStatements) statements.clear();
        statement = sqlite.prepare(sql);
        statements.set(sql, statement);
      }
      return statement;
    },
  };
}

/**
 * A kysely on its own connection to the SQLite file at `path`: every transaction `BEGIN
 * IMMEDIATE`, and a lock waited out without holding the event loop (the connection has no busy
 * timeout of its own: `patient` waits instead). `prepare` wraps the connection (statement cache).
 */
export function openSqliteKysely(
  path: string,
  prepare: (sqlite: BetterSqlite3.Database) => SqliteDatabase = (sqlite) => sqlite,
): Kysely<Database> {
  const sqlite = openSqliteDatabase(path, { busyTimeoutMs: 0 });
  return new Kysely<Database>({
    dialect: new ImmediateSqliteDialect({
      database: prepare(sqlite),
      inTransaction: () => sqlite.inTransaction,
    }),
  });
}

/** The embedded Store: one SQLite file, migrated to the latest schema before it is returned. */
export async function openSqliteStore(path: string): Promise<Store> {
  const db = openSqliteKysely(path, withStatementCache);
  try {
    await migrateToLatest(db);
  } catch (error) {
    await db.destroy();
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot open the SQLite database at ${path}: ${reason}`, { cause: error });
  }
  return failClosed(checkedFirst(createKyselyStore(db), watchDatabaseFile(path)));
}
