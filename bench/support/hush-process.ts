/**
 * Real `hush serve` processes for the load and memory scenarios, run as
 * deployed: src/ compiled with the production tsconfig (tsconfig.build.json,
 * as `npm run build` does) once per benchmark run into
 * node_modules/.cache/hush-bench/dist, then `node dist/cli/hush.js serve`
 * with HUSH_* variables — no tsx loader in the measured process (it would
 * add ~40 MB of RSS and a module-loading hook that production does not have).
 *
 * A site is one data directory (SQLite file or master key) and, for
 * PostgreSQL, one fresh database; several processes may serve one site.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Profiler } from 'node:inspector';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { registerCleanup } from './cleanup.js';
import { buildHush, sourceOfCompiled } from './compiled.js';
import { type BenchDatabaseKind, createPostgresDatabase } from './databases.js';
import { freePort } from './ports.js';

const SETUP_TOKEN = `bench-setup-${randomBytes(12).toString('hex')}`;
const PASSWORD = 'benchmark password, not a secret';

export interface HushSite {
  kind: BenchDatabaseKind;
  dataDir: string;
  /** The environment every process of this site gets (no port). */
  env: Record<string, string>;
  /** PostgreSQL database name (for pg_stat_activity), when kind is postgres. */
  pgDatabase?: string;
  pgUrl?: string;
  remove(): Promise<void>;
}

/** A new site: temp data dir, a random master key, and for PostgreSQL a fresh database. */
export async function createSite(kind: BenchDatabaseKind, env: Record<string, string> = {}): Promise<HushSite> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hush-bench-site-'));
  const removeDir = registerCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
  const pg = kind === 'postgres' ? await createPostgresDatabase() : undefined;
  return {
    kind,
    dataDir,
    env: {
      HUSH_DATA_DIR: dataDir,
      HUSH_MASTER_KEY: randomBytes(32).toString('base64'),
      HUSH_SETUP_TOKEN: SETUP_TOKEN,
      HUSH_LOG_LEVEL: 'silent',
      HUSH_HOST: '127.0.0.1',
      ...(pg ? { HUSH_DATABASE_URL: pg.url } : {}),
      ...env,
    },
    ...(pg ? { pgDatabase: pg.name, pgUrl: pg.url } : {}),
    async remove() {
      await pg?.drop();
      await removeDir();
    },
  };
}

export interface HushProcess {
  pid: number;
  port: number;
  /** http://127.0.0.1:PORT */
  origin: string;
  child: ChildProcess;
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

/**
 * `node <compiled>/cli/hush.js serve` for `site` on a free port; resolves once
 * /healthz answers. `nodeFlags` go to node itself (e.g. --cpu-prof for a profiled run).
 */
export async function startHush(
  site: HushSite,
  extraEnv: Record<string, string> = {},
  nodeFlags: string[] = [],
): Promise<HushProcess> {
  const { entry } = await buildHush();
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeFlags, entry, 'serve'], {
    // Only what Hush needs: no stray HUSH_* or NODE_OPTIONS from the caller's shell.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...site.env, ...extraEnv, HUSH_PORT: String(port) },
    cwd: site.dataDir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 20_000) stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = registerCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`hush serve exited early (code ${child.exitCode}):\n${stderr}`);
    try {
      const res = await fetch(`${origin}/healthz`);
      if (res.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`hush serve not healthy after 30 s:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid as number, port, origin, child, stop };
}

export interface HttpReply {
  status: number;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: setup code reads the JSON freely
  json: any;
  cookies: Map<string, string>;
}

/** One request to a Hush process (setup only; never measured). */
export async function call(
  origin: string,
  method: string,
  url: string,
  options: { body?: unknown; bearer?: string; session?: Session } = {},
): Promise<HttpReply> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.bearer) headers.authorization = `Bearer ${options.bearer}`;
  if (options.session) {
    headers.cookie = options.session.cookie;
    headers['x-hush-csrf'] = options.session.csrf;
  }
  const res = await fetch(`${origin}${url}`, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const cookies = new Map<string, string>();
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const eq = pair?.indexOf('=') ?? -1;
    if (pair && eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, cookies };
}

/** Throws unless `reply` has status `expected`. */
export function expectStatus(what: string, reply: HttpReply, expected: number): HttpReply {
  if (reply.status !== expected) throw new Error(`${what}: HTTP ${reply.status} ${reply.text.slice(0, 300)}`);
  return reply;
}

export interface Session {
  cookie: string;
  csrf: string;
}

export interface SiteOwner {
  userId: string;
  workspaceId: string;
  session: Session;
  /** A personal API token (`hush_…`) for `workspaceId`. */
  bearer: string;
}

/** First-run setup over HTTP, then a personal API token for the first workspace. */
export async function setupOwnerHttp(origin: string): Promise<SiteOwner> {
  const setup = expectStatus(
    'setup',
    await call(origin, 'POST', '/api/v1/setup', {
      body: {
        token: SETUP_TOKEN,
        email: 'owner@bench.example',
        password: PASSWORD,
        name: 'Bench Owner',
        workspaceName: 'Bench',
      },
    }),
    201,
  );
  const csrf = setup.cookies.get('hush_csrf');
  if (!setup.cookies.get('hush_session') || !csrf) throw new Error('setup did not set the session cookies');
  const session = { cookie: [...setup.cookies].map(([k, v]) => `${k}=${v}`).join('; '), csrf };
  const workspaceId = setup.json.workspace.id as string;
  const bearer = await createTokenHttp(origin, session, workspaceId);
  return { userId: setup.json.user.id as string, workspaceId, session, bearer };
}

export async function createTokenHttp(origin: string, session: Session, workspaceId: string): Promise<string> {
  const token = expectStatus(
    'token',
    await call(origin, 'POST', '/api/v1/tokens', {
      session,
      body: { name: 'bench', workspaceId, expiresInDays: 1 },
    }),
    201,
  );
  return token.json.token as string;
}

/**
 * The main thread's profile among those --cpu-prof wrote to `dir`: every
 * thread writes one (the SQLite checkpoint worker too), named
 * CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile; the main thread is 0.
 */
export function serverProfileFile(dir: string): string {
  const file = readdirSync(dir).find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  if (!file) throw new Error(`no main-thread .cpuprofile in ${dir}`);
  return path.join(dir, file);
}

/**
 * A V8 CPU profile written by a `hush serve` started with --cpu-prof, with
 * the compiled files mapped back to src/ (dist/x/y.js → src/x/y.ts) so that
 * support/profile.ts charges them to their source files.
 */
export function readServerProfile(dir: string): Profiler.Profile {
  const profile = JSON.parse(readFileSync(serverProfileFile(dir), 'utf8')) as Profiler.Profile;
  for (const node of profile.nodes) {
    const url = node.callFrame.url;
    const source = url.startsWith('file:') ? sourceOfCompiled(fileURLToPath(url)) : null;
    if (source) node.callFrame.url = pathToFileURL(source).href;
  }
  return profile;
}
