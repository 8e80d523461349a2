/**
 * Where pixgate's time goes on the cached path: starts `dist/cli/main.js serve` under
 * `node --cpu-prof`, drives the cached variant with wrk (64 connections, ES256 bearer) and prints
 * the functions with the most self time, and the most inclusive time among pixgate's own.
 *   node --import tsx bench/profile.ts [seconds] [extra PIXGATE_X=Y ...]
 * BENCH_DIST=<folder> profiles another build than dist/ (a patched copy, to test an idea).
 * The .cpuprofile stays in the printed folder (open it in Chrome DevTools for the flame chart).
 */
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startIssuer } from './issuer.js';
import { runWrk } from './load.js';
import { synthesizePhoto } from './photo.js';
import { LIMITS_OUT_OF_REACH } from './pixgate-process.js';
import { freePort, startServer } from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const seconds = Number(process.argv[2] ?? 8);
const extra = Object.fromEntries(
  process.argv
    .slice(3)
    .map((pair) => pair.split('='))
    .map(([name = '', ...rest]) => [name, rest.join('=')]),
);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const tmp = await mkdtemp(join(tmpdir(), 'pixgate-profile-'));
const issuer = await startIssuer();
const token = await issuer.token('bench', 'images:read images:write');
const headers = { authorization: `Bearer ${token}` };
const port = await freePort();
const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.startsWith('PIXGATE_')),
);
Object.assign(env, {
  PIXGATE_PORT: String(port),
  PIXGATE_DATA_DIR: join(tmp, 'data'),
  PIXGATE_ISSUER: issuer.issuer,
  PIXGATE_AUDIENCE: issuer.audience,
  PIXGATE_JWKS_URL: issuer.jwksUrl,
  ...LIMITS_OUT_OF_REACH,
  ...extra,
});
const server = await startServer({
  args: [
    '--cpu-prof',
    '--cpu-prof-dir',
    tmp,
    join(process.env.BENCH_DIST ?? join(ROOT, 'dist'), 'cli', 'main.js'),
    'serve',
  ],
  env,
  port,
  logFile: join(tmp, 'server.log'),
  readyPath: '/healthz',
  cwd: ROOT,
});
try {
  const upload = await fetch(`${server.url}/v1/images`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'image/jpeg' },
    body: await synthesizePhoto(),
  });
  const { id } = (await upload.json()) as { id: string };
  const url = `${server.url}/v1/images/${id}?w=360`;
  await (await fetch(url, { headers })).arrayBuffer();
  await runWrk({ url, connections: 64, threads: 2, seconds: 2, headers });
  const run = await runWrk({ url, connections: 64, threads: 2, seconds, headers });
  process.stdout.write(`${run.perSecond.toFixed(0)} req/s, ${run.failures} failures\n`);
} finally {
  await server.stop();
  await issuer.close();
}

const file = (await readdir(tmp)).find((name) => name.endsWith('.cpuprofile'));
if (!file) throw new Error(`no profile in ${tmp}`);
const profile = JSON.parse(await readFile(join(tmp, file), 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
const self = new Map<number, number>();
profile.samples.forEach((id, i) => {
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);
const label = (node: ProfileNode) => {
  const where = node.callFrame.url.replace(`file://${ROOT}`, '').replace(/^.*node_modules\//, '');
  return `${node.callFrame.functionName || '(anonymous)'} ${where}:${node.callFrame.lineNumber + 1}`;
};
const selfByLabel = new Map<string, number>();
const inclusiveByLabel = new Map<string, number>();
for (const [id, time] of self) {
  const node = byId.get(id);
  if (!node) continue;
  selfByLabel.set(label(node), (selfByLabel.get(label(node)) ?? 0) + time);
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const ancestor = byId.get(at);
    if (!ancestor) break;
    const name = label(ancestor);
    if (seen.has(name)) continue;
    seen.add(name);
    inclusiveByLabel.set(name, (inclusiveByLabel.get(name) ?? 0) + time);
  }
}
const show = (title: string, entries: Map<string, number>, filter: (name: string) => boolean, n: number) => {
  process.stdout.write(`\n${title}\n`);
  for (const [name, time] of [...entries]
    .filter(([name]) => filter(name))
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)) {
    process.stdout.write(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}\n`);
  }
};
show('self time', selfByLabel, () => true, 30);
show('inclusive time, pixgate code (dist/)', inclusiveByLabel, (name) => name.includes(' dist/'), 30);
show(
  'inclusive time, dependencies',
  inclusiveByLabel,
  (name) => !name.includes(' dist/') && !name.startsWith('('),
  30,
);
process.stdout.write(`\nprofile: ${join(tmp, file)}\n`);
