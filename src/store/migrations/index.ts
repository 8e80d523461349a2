import type { Migration, MigrationProvider } from 'kysely';
import * as images from './0001-images.js';
import * as sessions from './0002-sessions.js';
import * as capabilities from './0003-capabilities.js';

/**
 * Every migration, imported statically: they are compiled with the rest into dist/ and run the
 * same under vitest, with no directory scan (kysely's FileMigrationProvider would need the .js
 * files next to a known path at run time). Names sort in the order they run; add new ones at the
 * end (share links, sessions, ...) and never edit one that has shipped.
 */
export const migrations: Readonly<Record<string, Migration>> = {
  '0001-images': images,
  '0002-sessions': sessions,
  '0003-capabilities': capabilities,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => ({ ...migrations }),
};
