/**
 * An in-process Hush for benchmarks, built exactly as the server builds
 * itself (loadConfig → createAppContext → buildServer) from the compiled
 * src/ (support/compiled.ts), on a fresh database,
 * with logging silenced. Requests go through fastify.inject: the whole HTTP
 * stack (routing, auth hook, zod validation and serialisation) without
 * network noise.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AppContext } from '../../src/app/context.js';
import type { App } from '../../src/app/http.js';
import { registerCleanup } from './cleanup.js';
import { compiled } from './compiled.js';
import { type BenchDatabaseKind, createPostgresDatabase } from './databases.js';

const SETUP_TOKEN = `bench-setup-${randomBytes(12).toString('hex')}`;
const PASSWORD = 'benchmark password, not a secret';

export interface BenchServer {
  kind: BenchDatabaseKind;
  app: App;
  ctx: AppContext;
  /** A second server on the same context, for one-off requests outside measurement. */
  build(ctx: AppContext): Promise<App>;
  close(): Promise<void>;
}

export interface BenchOwner {
  userId: string;
  workspaceId: string;
  /** A personal API token (`hush_…`) of the owner, scoped to the workspace. */
  bearer: string;
  /** The owner's signed-in session (cookie header and CSRF token), e.g. to create more tokens. */
  session: { cookie: string; csrf: string };
}

export async function startBenchServer(
  kind: BenchDatabaseKind,
  env: Record<string, string> = {},
): Promise<BenchServer> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hush-bench-'));
  const removeDir = registerCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
  const [{ createAppContext }, { loadConfig }, { createLogger }, { buildServer }, { prepareSetup }] = await Promise.all(
    [
      compiled<typeof import('../../src/app/bootstrap.js')>('app/bootstrap.js'),
      compiled<typeof import('../../src/app/config.js')>('app/config.js'),
      compiled<typeof import('../../src/app/logger.js')>('app/logger.js'),
      compiled<typeof import('../../src/app/server.js')>('app/server.js'),
      compiled<typeof import('../../src/modules/auth/auth-service.js')>('modules/auth/auth-service.js'),
    ],
  );
  const pgDb = kind === 'postgres' ? await createPostgresDatabase() : undefined;
  const config = loadConfig({
    HUSH_DATA_DIR: dataDir,
    HUSH_MASTER_KEY: randomBytes(32).toString('base64'),
    HUSH_SETUP_TOKEN: SETUP_TOKEN,
    HUSH_LOG_LEVEL: 'silent',
    HUSH_PUBLIC_URL: 'http://hush.bench',
    ...(pgDb ? { HUSH_DATABASE_URL: pgDb.url } : {}),
    ...env,
  });
  const ctx = await createAppContext(config, createLogger(config.logLevel));
  const build = async (c: AppContext) => {
    const app = await buildServer(c);
    await app.ready();
    return app;
  };
  const app = await build(ctx);
  await prepareSetup(ctx);
  const close = registerCleanup(async () => {
    await app.close();
    await ctx.close();
  });
  return {
    kind,
    app,
    ctx,
    build,
    async close() {
      await close();
      await pgDb?.drop();
      await removeDir();
    },
  };
}

function cookieHeader(cookies: Map<string, string>): string {
  return [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
}

/**
 * First-run setup through the real API (owner + workspace, session cookies),
 * then a personal API token for the measured requests.
 */
export async function setupOwner(server: BenchServer): Promise<BenchOwner> {
  const setup = await server.app.inject({
    method: 'POST',
    url: '/api/v1/setup',
    payload: {
      token: SETUP_TOKEN,
      email: 'owner@bench.example',
      password: PASSWORD,
      name: 'Bench Owner',
      workspaceName: 'Bench',
    },
  });
  if (setup.statusCode !== 201) throw new Error(`setup failed: ${setup.statusCode} ${setup.body}`);
  const body = setup.json() as { user: { id: string }; workspace: { id: string } };
  const cookies = new Map(setup.cookies.map((c) => [c.name, c.value]));
  const csrf = cookies.get('hush_csrf');
  if (!cookies.get('hush_session') || !csrf) throw new Error('setup did not set the session cookies');

  const token = await server.app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: { cookie: cookieHeader(cookies), 'x-hush-csrf': csrf },
    payload: { name: 'bench', workspaceId: body.workspace.id, expiresInDays: 1 },
  });
  if (token.statusCode !== 201) throw new Error(`token creation failed: ${token.statusCode} ${token.body}`);
  return {
    userId: body.user.id,
    workspaceId: body.workspace.id,
    bearer: (token.json() as { token: string }).token,
    session: { cookie: cookieHeader(cookies), csrf },
  };
}
