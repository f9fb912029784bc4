/**
 * An in-process Hush for tests: a real database (SQLite file in a temp dir,
 * or a fresh PostgreSQL database), real keys, the real server, driven with
 * fastify.inject through small cookie-keeping clients.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createAppContext } from '../../src/app/bootstrap.js';
import { loadConfig } from '../../src/app/config.js';
import type { AppContext } from '../../src/app/context.js';
import type { App } from '../../src/app/http.js';
import { createLogger } from '../../src/app/logger.js';
import { buildServer } from '../../src/app/server.js';
import { prepareSetup } from '../../src/modules/auth/auth-service.js';
import { createPostgresDatabase, type DatabaseKindUnderTest } from './databases.js';

export const SETUP_TOKEN = 'test-setup-token-0123456789';
export const PASSWORD = 'correct horse battery staple';

export interface TestApp {
  app: App;
  ctx: AppContext;
  dataDir: string;
  /** Everything the server logged, one JSON line each. */
  logs: string[];
  client(): TestClient;
  close(): Promise<void>;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: tests read the JSON freely
  body: any;
  text: string;
}

/** A browser-like client: keeps cookies and echoes the CSRF cookie. */
export class TestClient {
  readonly cookies = new Map<string, string>();
  bearer: string | undefined;

  constructor(private readonly app: App) {}

  async request(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const h: Record<string, string> = { ...headers };
    if (this.cookies.size > 0) h.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const csrf = this.cookies.get('hush_csrf');
    if (csrf && !('x-hush-csrf' in h)) h['x-hush-csrf'] = csrf;
    if (this.bearer) h.authorization = `Bearer ${this.bearer}`;
    const res = await this.app.inject({
      method: method as 'GET',
      url,
      headers: h,
      ...(body === undefined ? {} : typeof body === 'string' ? { payload: body } : { payload: body as object }),
    });
    for (const c of res.cookies) {
      if (
        c.value === '' ||
        (c.maxAge !== undefined && c.maxAge <= 0) ||
        (c.expires && c.expires.getTime() < Date.now())
      ) {
        this.cookies.delete(c.name);
      } else {
        this.cookies.set(c.name, c.value);
      }
    }
    let parsed: unknown;
    try {
      parsed = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.statusCode, headers: res.headers, body: parsed, text: res.body };
  }

  get = (url: string, headers?: Record<string, string>) => this.request('GET', url, undefined, headers);
  post = (url: string, body?: unknown, headers?: Record<string, string>) =>
    this.request('POST', url, body ?? {}, headers);
  patch = (url: string, body?: unknown, headers?: Record<string, string>) =>
    this.request('PATCH', url, body ?? {}, headers);
  put = (url: string, body?: unknown, headers?: Record<string, string>) =>
    this.request('PUT', url, body ?? {}, headers);
  delete = (url: string, headers?: Record<string, string>) => this.request('DELETE', url, undefined, headers);
}

export async function startTestApp(kind: DatabaseKindUnderTest, env: Record<string, string> = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hush-test-'));
  const pgDb = kind === 'postgres' ? await createPostgresDatabase() : undefined;
  const config = loadConfig({
    HUSH_DATA_DIR: dataDir,
    HUSH_MASTER_KEY: randomBytes(32).toString('base64'),
    HUSH_SETUP_TOKEN: SETUP_TOKEN,
    HUSH_LOG_LEVEL: 'debug',
    HUSH_LOGIN_LIMIT_PER_MIN: '1000',
    HUSH_PUBLIC_URL: 'http://hush.test',
    ...(pgDb ? { HUSH_DATABASE_URL: pgDb.url } : {}),
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const ctx = await createAppContext(config, createLogger(config.logLevel, sink));
  const app = await buildServer(ctx);
  await app.ready();
  await prepareSetup(ctx);
  return {
    app,
    ctx,
    dataDir,
    logs,
    client: () => new TestClient(app),
    async close() {
      await app.close();
      await ctx.close();
      await pgDb?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** One request with exactly the headers given: no cookie jar, no automatic CSRF header. */
export async function raw(
  t: TestApp,
  method: string,
  url: string,
  options: { headers?: Record<string, string>; payload?: unknown; remoteAddress?: string } = {},
): Promise<Reply> {
  const res = await t.app.inject({
    method: method as 'GET',
    url,
    headers: options.headers ?? {},
    ...(options.remoteAddress ? { remoteAddress: options.remoteAddress } : {}),
    ...(options.payload === undefined
      ? {}
      : typeof options.payload === 'string'
        ? { payload: options.payload }
        : { payload: options.payload as object }),
  });
  let body: unknown;
  try {
    body = res.body ? JSON.parse(res.body) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.statusCode, headers: res.headers, body, text: res.body };
}

/** The client's cookies as a Cookie header, with some replaced (a value) or dropped (undefined). */
export function cookieHeader(c: TestClient, overrides: Record<string, string | undefined> = {}): string {
  const jar = new Map(c.cookies);
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) jar.delete(k);
    else jar.set(k, v);
  }
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
}
