import { readdir, rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { photoWithGps } from '../helpers/images.js';
import { startTestServer, uploadImage } from '../helpers/pixgate.js';

/** Closing the server (what SIGTERM does, cli/serve.ts) while requests are in flight. */

const METRICS_TOKEN = 'metrics-secret-0123456789';

describe('closing with a transform in flight', () => {
  // Regression: the in-flight response went out `Connection: keep-alive`, and closing waited for
  // that connection, idle from then on, until the 5 s grace period cut it: every SIGTERM during
  // a transform took the whole grace period, however soon the transform was done.
  it('answers it with Connection: close and stops once it is done, not after the grace period', async () => {
    const server = await startTestServer({ dev: true, concurrency: 1, metricsToken: METRICS_TOKEN });
    try {
      const token = await server.token('erin');
      const { id } = await uploadImage(server, token, await photoWithGps(2400, 2400), {
        type: 'image/jpeg',
      });
      const rendering = fetch(`${server.url}/v1/images/${id}?w=2001&format=png`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await eventually(async () => {
        const metrics = await fetch(`${server.url}/metrics`, {
          headers: { authorization: `Bearer ${METRICS_TOKEN}` },
        });
        expect(await metrics.text()).toMatch(/^pixgate_queue_running 1$/m);
      });

      const started = Date.now();
      const closing = server.close();
      const rendered = await rendering;
      expect(rendered.status).toBe(200);
      expect(rendered.headers.get('connection')).toBe('close');
      expect((await rendered.arrayBuffer()).byteLength).toBeGreaterThan(0);
      await closing;
      // The grace period (main.ts) is 5 s; the transform takes well under a second.
      expect(Date.now() - started).toBeLessThan(4000);

      // Nothing partial: no upload temp file, no cache temp file.
      expect(await readdir(`${server.dataDir}/tmp`)).toEqual([]);
      const cached = await readdir(`${server.dataDir}/cache`, { recursive: true });
      expect(cached.filter((name) => name.endsWith('.tmp'))).toEqual([]);
    } finally {
      await server.close();
      await rm(server.dataDir, { recursive: true, force: true });
    }
  });
});
