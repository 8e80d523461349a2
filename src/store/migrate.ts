import { type Kysely, Migrator } from 'kysely';
import { migrationProvider } from './migrations/index.js';

/**
 * Brings the schema to the latest version at open (SQLite now, PostgreSQL later). The pending
 * migrations run in one transaction that holds the dialect's migration lock (on SQLite, the write
 * lock, taken as it begins: sqlite.ts), so two instances starting together do not both migrate.
 * A failure stops the start with the migration's name and the database's
 * own message: serving on a half-migrated schema would turn into 500s later.
 */
// biome-ignore lint/suspicious/noExplicitAny: the Migrator works on any schema.
export async function migrateToLatest(db: Kysely<any>): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error === undefined) return;
  const failed = results?.find((result) => result.status === 'Error');
  const reason = error instanceof Error ? error.message : String(error);
  throw new Error(
    failed
      ? `Database migration "${failed.migrationName}" failed: ${reason}`
      : `Database migrations could not run: ${reason}`,
    { cause: error },
  );
}
