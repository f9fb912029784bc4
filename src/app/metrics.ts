/**
 * GET /metrics in the Prometheus text format (prom-client): the process
 * (CPU, memory, event-loop delay, GC — shared by every app in the process)
 * and the HTTP traffic of this server, counted by method, matched route
 * *template* and status. Labels never carry a URL as requested, an id, a
 * workspace, a name or a value — nothing a tenant wrote. With
 * HUSH_METRICS_TOKEN set, a scraper must present it as a Bearer token.
 */
import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { UnauthenticatedError } from './errors.js';
import { safeEqual } from './ids.js';

let processRegistry: Registry | undefined;

/** Process metrics are collected once per process, however many servers it builds (tests build many). */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'hush_' });
  }
  return processRegistry;
}

/** Requests no route matched are counted under one label, so a scanner cannot grow the series. */
const UNMATCHED = '(unmatched)';

export function registerMetrics(app: FastifyInstance, options: { token: string | undefined }): void {
  const registry = new Registry();
  const requests = new Counter({
    name: 'hush_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'hush_http_request_duration_seconds',
    help: 'Time from receiving a request to answering it, by method and route template.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const merged = Registry.merge([processMetrics(), registry]);

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? UNMATCHED;
    requests.inc({ method: request.method, route, status_code: String(reply.statusCode) });
    duration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    done();
  });

  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (options.token !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
      if (!match?.[1] || !safeEqual(match[1], options.token)) {
        throw new UnauthenticatedError('GET /metrics needs the metrics token (HUSH_METRICS_TOKEN) as a Bearer token.');
      }
    }
    return reply.type(merged.contentType).send(await merged.metrics());
  });
}
