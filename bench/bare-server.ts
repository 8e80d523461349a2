/**
 * The cached-path baseline: a bare fastify server (no logger, no hooks, no auth) answering every
 * image URL with the bytes of one variant from memory and the headers pixgate sent with it, so
 * both servers put the same bytes on the wire. Run as its own process by bench/cached.ts:
 *   BENCH_PORT=… BENCH_BODY_FILE=variant.jpg BENCH_HEADERS='{"etag":…}' node --import tsx bench/bare-server.ts
 *
 * With BENCH_FLOOR=1 it also does what issue 2 asks of every request and nothing else: pixgate's
 * request metrics (prom-client counter and histogram by route, method and status) and one pino
 * line through pixgate's own logger, in an onResponse hook. No credential is looked at, no policy,
 * no cache: the most any server meeting those two requirements on fastify could reach.
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { createLogger, redactUrl } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';

const port = Number(process.env.BENCH_PORT ?? 0);
const body = readFileSync(process.env.BENCH_BODY_FILE ?? '');
const headers = JSON.parse(process.env.BENCH_HEADERS ?? '{}') as Record<string, string>;

const app = Fastify({ logger: false });
if (process.env.BENCH_FLOOR === '1') {
  const logger = createLogger('info');
  const metrics = createMetrics();
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { route, method: request.method, status: String(reply.statusCode) };
    metrics.requests.inc(labels);
    metrics.requestDuration.observe(labels, reply.elapsedTime / 1000);
    logger.info(
      {
        reqId: request.id,
        method: request.method,
        url: redactUrl(request.url),
        route,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
    done();
  });
}
app.get('/v1/images/:id', (_request, reply) => {
  reply.headers(headers).send(body);
});
app.get('/healthz', (_request, reply) => {
  reply.send({ status: 'ok' });
});
await app.listen({ host: '127.0.0.1', port });

const stop = () => {
  void app.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
