/**
 * Assembles the HTTP server: security headers, cookies, rate limits,
 * authentication, the OpenAPI document, operations endpoints and each
 * module's routes under /api/v1. Wiring only — behaviour lives in modules.
 */

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import path from 'node:path';
import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import helmet from 'helmet';
import { sql } from 'kysely';
import { auditRoutes } from '../modules/audit/audit-router.js';
import { authRoutes } from '../modules/auth/auth-router.js';
import { createAuthService } from '../modules/auth/auth-service.js';
import { registerAuthentication } from '../modules/auth/authenticate.js';
import { createSessionStore } from '../modules/auth/session-store.js';
import { memberRoutes } from '../modules/members/member-router.js';
import { roleRoutes } from '../modules/roles/role-router.js';
import { secretRoutes } from '../modules/secrets/secret-router.js';
import { tokenRoutes } from '../modules/tokens/token-router.js';
import { variableRoutes } from '../modules/variables/variable-router.js';
import { workflowRoutes } from '../modules/workflows/workflow-router.js';
import { workspaceRoutes } from '../modules/workspaces/workspace-router.js';
import type { AppContext } from './context.js';
import { problem, registerErrorHandler, sendProblem } from './error-handler.js';
import type { App } from './http.js';
import { registerMetrics } from './metrics.js';
import { refineOpenApi } from './openapi.js';
import { memoryRateLimitStore, postgresRateLimitStore, redisRateLimitStore } from './rate-limit-store.js';
import { RequestLogController } from './request-log.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
export const BODY_LIMIT_BYTES = 2 * 1024 * 1024;

/**
 * The headers of every answer that is not the web UI — JSON, problem+json,
 * metrics: nothing in it may be cached, run, framed, sniffed or read by
 * another origin (OWASP's REST security headers). The UI's pages get
 * helmet's full set with the CSP they need.
 */
const API_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};
/** helmet's default for HTTPS deployments. */
const HSTS = 'max-age=31536000; includeSubDomains';

/** A bundle file's path as Vite names them: one segment under /assets/, no dot first. */
const ASSET_PATH = /^\/assets\/[\w-][\w.-]*$/;

/** Paths (with any query) that are not the web UI. */
const API_PATH = /^\/(?:api\/|(?:healthz|readyz|metrics)(?:\?|$))/;

const STRICT_HEADERS = `${Object.entries(API_HEADERS)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join('')}Connection: close\r\n`;

function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy(error);
    return;
  }
  const answer =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? problem(431, 'headers_too_large', 'The request headers are too large.')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? problem(408, 'request_timeout', 'The request took too long to arrive.')
        : problem(400, 'bad_request', 'The request could not be parsed as HTTP.');
  const { status, title } = answer;
  const body = JSON.stringify(answer);
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${STRICT_HEADERS}\r\n${body}`,
  );
}

export async function buildServer(ctx: AppContext): Promise<App> {
  const app = Fastify({
    loggerInstance: ctx.log as FastifyBaseLogger,
    logController: new RequestLogController(),
    bodyLimit: BODY_LIMIT_BYTES,
    // The configured number of hops nearest to Hush, never `true`: trusting every hop makes the
    // client IP the leftmost X-Forwarded-For entry, which the client writes itself (a proxy
    // appends the address it saw to the header it was sent).
    trustProxy: ctx.config.trustProxy > 0 ? (_address: string, hop: number) => hop < ctx.config.trustProxy : false,
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    routerOptions: { maxParamLength: 200 },
    // Errors raised before routing (a malformed URL…) skip every hook, so
    // they get the request id and strict headers here.
    frameworkErrors: (error, request, reply) => {
      reply.headers(API_HEADERS).header('x-request-id', request.id);
      const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      sendProblem(reply, problem(status, 'bad_request', 'The request URL or headers are malformed.'));
      // Fastify attaches no completion listener on this path: the request's one line is written here.
      request.log.info({ req: request, res: reply }, 'request completed');
    },
    // Requests Node's HTTP parser refuses (CR/LF in a header, oversized
    // headers, TE with CL…) never reach Fastify: answer them as problem+json too.
    clientErrorHandler: answerClientError,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandler(app);

  // The UI's security headers: helmet's middleware, built once (its Fastify
  // plugin rebuilds it, CSP parsing included, on every request).
  const uiHeaders = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: ctx.config.secureCookies,
  });
  const apiHeaders = ctx.config.secureCookies ? { ...API_HEADERS, 'strict-transport-security': HSTS } : API_HEADERS;
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    // By the path, or by the route matched (the router decodes `/%61pi/…` to an API route).
    if (API_PATH.test(request.url) || API_PATH.test(request.routeOptions.url ?? '')) {
      reply.headers(apiHeaders);
      done();
      return;
    }
    reply.header('cache-control', 'no-store');
    uiHeaders(request.raw, reply.raw, (error) => done(error as Error | undefined));
  });
  await app.register(cookie);
  // Counted in Redis when configured, else in PostgreSQL, so a limit holds across every
  // server; SQLite (one server) counts in memory. Trouble with either refuses a limited
  // request with 503 (rate-limit-store.ts).
  await app.register(rateLimit, {
    global: false,
    store: ctx.redis
      ? redisRateLimitStore(ctx.redis, 'hush-rl:')
      : ctx.dbKind === 'postgres'
        ? postgresRateLimitStore(ctx.db, 'hush-rl:')
        : memoryRateLimitStore(),
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Hush API',
        version: '1',
        description: 'Secrets for API blocks that nobody can read back. Errors are application/problem+json.',
      },
      components: {
        securitySchemes: {
          session: {
            type: 'apiKey',
            in: 'cookie',
            name: 'hush_session',
            description:
              'The sign-in cookie. A request that changes state with it (not GET, HEAD, OPTIONS) also sends the header X-Hush-Csrf equal to the hush_csrf cookie, else 403 csrf_failed.',
          },
          token: { type: 'http', scheme: 'bearer', bearerFormat: 'hush_…' },
        },
      },
      security: [{ session: [] }, { token: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: (document) =>
      'openapiObject' in document ? refineOpenApi(document.openapiObject) : document.swaggerObject,
  });

  const sessions = createSessionStore(ctx.db, ctx.config, ctx.cache);
  registerAuthentication(app, sessions);
  const auth = createAuthService({ ...ctx, sessions });

  await app.register(
    async (api) => {
      const typed = api.withTypeProvider<ZodTypeProvider>();
      await authRoutes(typed, ctx, auth);
      await tokenRoutes(typed, ctx);
      await workspaceRoutes(typed, ctx);
      await memberRoutes(typed, ctx, sessions);
      await roleRoutes(typed, ctx);
      await auditRoutes(typed, ctx);
      await variableRoutes(typed, ctx);
      await secretRoutes(typed, ctx);
      await workflowRoutes(typed, ctx);
      typed.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    },
    { prefix: '/api/v1' },
  );

  // The web UI (built by `npm run build` into dist/web): files, and index.html for app routes.
  const webRoot = path.resolve(import.meta.dirname, '../../dist/web');
  if (existsSync(path.join(webRoot, 'index.html'))) {
    await app.register(fastifyStatic, {
      root: webRoot,
      prefix: '/',
      wildcard: false,
      index: ['index.html'],
      // The page is never cached (it names the current bundle); bundle files are
      // content-hashed, so they may be cached for good.
      cacheControl: false,
      setHeaders: (reply, file) => {
        reply.header(
          'cache-control',
          file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-store',
        );
      },
    });
    app.get('/*', { schema: { hide: true } }, (request, reply) => {
      if (request.url.startsWith('/api/')) {
        return sendProblem(
          reply,
          problem(404, 'not_found', `No route for ${request.method} ${request.url.split('?')[0]}.`),
        );
      }
      if (request.url.startsWith('/assets/')) {
        // A bundle file built after start-up (a rebuild under a running server: index.html,
        // read on every request, already names it) is served; a missing one is a 404, never
        // index.html as the script, which left the page blank.
        const file = request.url.split('?')[0] ?? '';
        if (ASSET_PATH.test(file) && existsSync(path.join(webRoot, file))) return reply.sendFile(file.slice(1));
        return sendProblem(reply, problem(404, 'not_found', `No file ${file}.`));
      }
      return reply.header('cache-control', 'no-store').sendFile('index.html');
    });
  }

  registerMetrics(app, { token: ctx.config.metricsToken });
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    try {
      await sql`select 1`.execute(ctx.db);
      return { status: 'ready', database: ctx.dbKind };
    } catch {
      return reply.code(503).type('application/problem+json').send({
        type: 'https://hush.dev/problems/not-ready',
        title: 'Service Unavailable',
        status: 503,
        detail: 'The database is not reachable.',
        code: 'not_ready',
      });
    }
  });

  return app;
}
