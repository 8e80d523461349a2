#!/usr/bin/env node
/**
 * Runs the test suite again on the oldest Node.js that `engines` allows, so that promise is
 * checked, not assumed: a built-in newer than it (a `Dirent.parentPath`, a `zlib.crc32`) or a
 * dependency that cannot load there (sharp 0.35 on 20.9) fails here, not on a user's machine.
 *
 * The binary comes from the npm registry (the `node-<platform>-<arch>` packages that the `node`
 * package installs from), cached in node_modules/.cache. The browser tests are left out: they
 * check the browser's side, which does not depend on the server's Node.
 *
 * Native addons (better-sqlite3) were built for the Node that ran `npm ci`; they load on the
 * oldest version only within the same major. On another major this says why and stops, and
 * fails when CI is set (CI must check the promise, not step around it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { engines } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const range = /^>=\s*(\d+)\.(\d+)(?:\.(\d+))?$/.exec(engines?.node ?? '');
if (!range) fail(`engines.node is "${engines?.node}"; this script reads only ">=MAJOR.MINOR[.PATCH]"`);
const [major, minor, patch = '0'] = range.slice(1);
const version = `${major}.${minor}.${patch}`;

const running = process.versions.node.split('.')[0];
if (running !== major) {
  const why =
    `oldest-node: this is Node ${process.versions.node}; the addons npm built for it do not load ` +
    `on Node ${version}. Run \`npm ci && npm test\` on a Node ${major} release to check ${version}.`;
  if (process.env.CI) fail(why);
  console.warn(`${why}\nThe suite ran on Node ${process.versions.node} only.`);
  process.exit(0);
}

const node = ensureNode(version);
console.log(`\nThe suite again on Node ${version}, the oldest engines allows (${node}):\n`);
const run = spawnSync(
  node,
  [
    join(root, 'node_modules/vitest/vitest.mjs'),
    'run',
    '--exclude',
    'test/browser/**',
    ...process.argv.slice(2),
  ],
  // Tests start pixgate with process.execPath, so this Node runs it too. PATH stays as it is: the
  // setup's `npm run build:client` runs on the Node npm was installed for.
  { cwd: root, stdio: 'inherit' },
);
process.exit(run.status ?? 1);

/** The path of Node `version`'s binary for this platform, fetched once from the npm registry. */
function ensureNode(version) {
  const name = `node-${process.platform}-${process.arch}`; // Linux and macOS: what CI and we run
  const cache = join(root, 'node_modules/.cache/pixgate-oldest-node');
  const dir = join(cache, `${name}-${version}`);
  const binary = join(dir, 'bin', 'node');
  if (existsSync(binary)) return binary;
  mkdirSync(cache, { recursive: true });
  const scratch = mkdtempSync(join(cache, 'fetch-'));
  try {
    const tarball = execFileSync(
      'npm',
      ['pack', `${name}@${version}`, '--silent', '--pack-destination', scratch],
      {
        cwd: scratch,
        encoding: 'utf8',
      },
    ).trim();
    execFileSync('tar', ['-xzf', join(scratch, tarball), '-C', scratch]);
    // Whole or not at all: moved in by one rename, so a fetch cut short leaves no binary that
    // looks ready.
    try {
      renameSync(join(scratch, 'package'), dir);
    } catch (error) {
      // Another run on this node_modules (a second checkout's npm test) moved its copy in first:
      // that one is used, and never removed under it. A dir without a binary is only litter.
      if (existsSync(binary)) return binary;
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
      rmSync(dir, { recursive: true, force: true });
      renameSync(join(scratch, 'package'), dir);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (!existsSync(binary)) fail(`oldest-node: ${name}@${version} holds no ${binary}`);
  return binary;
}

function fail(message) {
  console.error(message);
  process.exit(1);
}
