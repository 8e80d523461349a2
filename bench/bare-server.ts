/**
 * The cached-path baseline: a bare fastify server (no logger, no hooks, no auth) answering every
 * image URL with the bytes of one variant from memory and the headers pixgate sent with it, so
 * both servers put the same bytes on the wire. Run as its own process by bench/run.ts:
 *   BENCH_PORT=… BENCH_BODY_FILE=variant.jpg BENCH_HEADERS='{"etag":…}' node --import tsx bench/bare-server.ts
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const port = Number(process.env.BENCH_PORT ?? 0);
const body = readFileSync(process.env.BENCH_BODY_FILE ?? '');
const headers = JSON.parse(process.env.BENCH_HEADERS ?? '{}') as Record<string, string>;

const app = Fastify({ logger: false });
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
