import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics, one registry per server (tests run several in one process). Parts below
 * `http/` get plain hook functions wired in main.ts, not the registry.
 * Labels never hold a URL, a token or an id: routes are templates, reasons are fixed words.
 */
export function createMetrics() {
  const registry = new Registry();
  return {
    registry,
    requests: new Counter({
      name: 'pixgate_http_requests_total',
      help: 'HTTP requests by route template, method and status',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'pixgate_http_request_duration_seconds',
      help: 'HTTP request latency by route template, method and status',
      labelNames: ['route', 'method', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    transformDuration: new Histogram({
      name: 'pixgate_transform_duration_seconds',
      help: 'Time to make a variant (origin read excluded), by output format',
      labelNames: ['format'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    cacheLookups: new Counter({
      name: 'pixgate_cache_lookups_total',
      help: 'Variant cache lookups by layer and result (hit or miss)',
      labelNames: ['layer', 'result'] as const,
      registers: [registry],
    }),
    queueWaiting: new Gauge({
      name: 'pixgate_queue_depth',
      help: 'Transforms waiting for a processing slot',
      registers: [registry],
    }),
    queueRunning: new Gauge({
      name: 'pixgate_queue_running',
      help: 'Transforms running',
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'pixgate_auth_failures_total',
      help: 'Refused credentials by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    // Issue 4.
    limited: new Counter({
      name: 'pixgate_limited_total',
      help: 'Requests refused with 429 by limit (rate, scrape, upload)',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
