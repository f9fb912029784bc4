/**
 * The real `hush` command as child processes, for the CLI tests: one-shot
 * commands (doctor, keys, audit, backup, restore) with their exit code and
 * output, a `serve` process on a free port driven over HTTP with a personal
 * API token, and an in-process context on the same data directory and
 * database for seeding and for checking what is stored.
 *
 * Each process is node itself running the compiled CLI (dist/, as `npm
 * start` runs it), so the pid we hold is the process that runs Hush: SIGKILL
 * reaches it, not a wrapper.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../bench/support/ports.js';
import { createAppContext } from '../../src/app/bootstrap.js';
import { loadConfig } from '../../src/app/config.js';
import type { AppContext } from '../../src/app/context.js';
import { createLogger } from '../../src/app/logger.js';
import { decryptSecretValue } from '../../src/crypto/envelope.js';
import { compiledCli, ROOT } from './compile-cli.js';
import { createPostgresDatabase, type DatabaseKindUnderTest } from './databases.js';

export { freePort, ROOT };
export const SETUP_TOKEN = 'cli-test-setup-token-0123456789';
export const PASSWORD = 'correct horse battery staple';

/** `node dist/cli/hush.js`: one process, no wrapper (SIGKILL reaches Hush itself). */
export const HUSH_ENTRY = [compiledCli()];

/** Every process these helpers started and that has not exited yet. */
const running = new Set<ChildProcess>();

/** SIGKILLs every process these helpers started that still runs (for afterAll/afterEach). */
export function killStartedProcesses(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** Only what Hush needs from the environment: no stray HUSH_* from the caller's shell. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...extra };
}

export interface HushProcess {
  child: ChildProcess;
  /** Output so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves when the process ends. */
  exited: Promise<HushResult>;
}

export interface HushResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Starts `hush <args>` with exactly `env` (plus PATH and HOME); does not wait. */
export function spawnHush(args: string[], env: Record<string, string>, cwd?: string): HushProcess {
  const started = Date.now();
  const child = spawn(process.execPath, [...HUSH_ENTRY, ...args], {
    env: cleanEnv(env),
    cwd: cwd ?? tmpdir(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (d: Buffer) => {
    out.stdout += d.toString('utf8');
  });
  child.stderr?.on('data', (d: Buffer) => {
    out.stderr += d.toString('utf8');
  });
  const exited = new Promise<HushResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, stdout: out.stdout, stderr: out.stderr, ms: Date.now() - started });
    });
  });
  return {
    child,
    get stdout() {
      return out.stdout;
    },
    get stderr() {
      return out.stderr;
    },
    exited,
  };
}

/** Runs `hush <args>` to completion (SIGKILL after `timeoutMs`). */
export async function runHush(
  args: string[],
  env: Record<string, string>,
  options: { timeoutMs?: number; cwd?: string } = {},
): Promise<HushResult> {
  const p = spawnHush(args, env, options.cwd);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** For assertion messages: what a command printed. */
export function describeRun(r: HushResult): string {
  return `exit ${r.code} signal ${r.signal} after ${r.ms} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Where one Hush lives: a data directory (key file, SQLite) and, for PostgreSQL, a fresh database. */
export interface HushSite {
  kind: DatabaseKindUnderTest;
  dataDir: string;
  /** The environment every process of this site gets. */
  env: Record<string, string>;
  pgUrl?: string;
  /** An in-process context on the same database and keys (close it when done). */
  open(): Promise<AppContext & { close(): Promise<void> }>;
  cleanup(): Promise<void>;
}

/**
 * A new, empty site. The root key comes from `$dataDir/master.key` (created
 * by the first process that opens the site) unless `env` sets HUSH_MASTER_KEY.
 */
export async function createSite(kind: DatabaseKindUnderTest, env: Record<string, string> = {}): Promise<HushSite> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hush-cli-'));
  const pg = kind === 'postgres' ? await createPostgresDatabase() : undefined;
  const siteEnv: Record<string, string> = {
    HUSH_DATA_DIR: dataDir,
    HUSH_SETUP_TOKEN: SETUP_TOKEN,
    HUSH_LOG_LEVEL: 'warn',
    HUSH_LOGIN_LIMIT_PER_MIN: '1000',
    HUSH_REVEAL_LIMIT_PER_MIN: '100000',
    ...(pg ? { HUSH_DATABASE_URL: pg.url } : {}),
    ...env,
  };
  return {
    kind,
    dataDir,
    env: siteEnv,
    ...(pg ? { pgUrl: pg.url } : {}),
    open: () => openSiteContext(siteEnv),
    async cleanup() {
      await pg?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** An AppContext for `env`, as the CLI builds one, logging nothing. */
export async function openSiteContext(env: Record<string, string>): Promise<AppContext & { close(): Promise<void> }> {
  const config = loadConfig(env);
  return createAppContext(config, createLogger('silent'));
}

export interface ApiReply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests read the JSON freely
  body: any;
  text: string;
}

/** A small HTTP client for a `serve` process: a session (cookies + CSRF) or a bearer token. */
export class HushClient {
  readonly cookies = new Map<string, string>();
  bearer: string | undefined;

  constructor(readonly base: string) {}

  /** The same credentials (cookies or token) against another server, e.g. after a restart. */
  at(origin: string): HushClient {
    const c = new HushClient(`${origin}/api/v1`);
    for (const [k, v] of this.cookies) c.cookies.set(k, v);
    c.bearer = this.bearer;
    return c;
  }

  async request(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiReply> {
    const h: Record<string, string> = { ...headers };
    if (body !== undefined) h['content-type'] = 'application/json';
    if (this.bearer) h.authorization = `Bearer ${this.bearer}`;
    else if (this.cookies.size > 0) {
      h.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      const csrf = this.cookies.get('hush_csrf');
      if (csrf) h['x-hush-csrf'] = csrf;
    }
    const res = await fetch(`${this.base}${url}`, {
      method,
      headers: h,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (pair && eq > 0) this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text };
  }

  get = (url: string) => this.request('GET', url);
  post = (url: string, body: unknown = {}) => this.request('POST', url, body);
  patch = (url: string, body: unknown) => this.request('PATCH', url, body);
}

export interface HushServer {
  port: number;
  /** http://127.0.0.1:PORT */
  origin: string;
  process: HushProcess;
  /** SIGTERM, then wait for a clean exit (SIGKILL after 10 s). */
  stop(): Promise<HushResult>;
}

/** `hush serve` on a free port; resolves once GET /healthz answers. */
export async function startServer(env: Record<string, string>): Promise<HushServer> {
  const port = await freePort();
  const p = spawnHush(['serve'], { ...env, HUSH_PORT: String(port), HUSH_HOST: '127.0.0.1' });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  let exited: HushResult | undefined;
  void p.exited.then((r) => {
    exited = r;
  });
  for (;;) {
    if (exited) throw new Error(`hush serve exited before it was healthy:\n${describeRun(exited)}`);
    try {
      const res = await fetch(`${origin}/healthz`);
      if (res.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      p.child.kill('SIGKILL');
      throw new Error(`hush serve not healthy after 30 s:\n${p.stdout}\n${p.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    origin,
    process: p,
    async stop() {
      p.child.kill('SIGTERM');
      const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
      try {
        return await p.exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export interface Owner {
  userId: string;
  workspaceId: string;
  /** Signed in (cookies + CSRF): may create workspaces and tokens. */
  session: HushClient;
  /** A personal API token of the owner for `workspaceId`. */
  api: HushClient;
  token: string;
}

/** First-run setup over HTTP, then an API token for the workspace. */
export async function setUp(server: HushServer, email = 'owner@example.com'): Promise<Owner> {
  const session = new HushClient(`${server.origin}/api/v1`);
  const setup = await session.post('/setup', {
    token: SETUP_TOKEN,
    email,
    password: PASSWORD,
    name: 'Olivia Owner',
    workspaceName: 'Acme',
  });
  if (setup.status !== 201) throw new Error(`setup failed: ${setup.status} ${setup.text}`);
  const workspaceId = setup.body.workspace.id as string;
  const token = await createToken(session, workspaceId);
  const api = new HushClient(session.base);
  api.bearer = token;
  return { userId: setup.body.user.id as string, workspaceId, session, api, token };
}

export async function createToken(session: HushClient, workspaceId: string): Promise<string> {
  const res = await session.post('/tokens', { name: 'cli tests', workspaceId, expiresInDays: 1 });
  if (res.status !== 201) throw new Error(`token creation failed: ${res.status} ${res.text}`);
  return res.body.token as string;
}

/** A client for `origin` that uses an existing bearer token. */
export function tokenClient(origin: string, token: string): HushClient {
  const c = new HushClient(`${origin}/api/v1`);
  c.bearer = token;
  return c;
}

export interface StoredSecret {
  id: string;
  name: string;
  version: number;
  keyVersion: number;
  value: string;
}

/**
 * Decrypts the current version of every live secret of a workspace straight
 * from the database (the test's own check, independent of any server).
 */
export async function readStoredSecrets(ctx: AppContext, workspaceId: string): Promise<Map<string, StoredSecret>> {
  const rows = await ctx.db
    .selectFrom('secrets')
    .innerJoin('secret_versions', (j) =>
      j.onRef('secret_versions.secret_id', '=', 'secrets.id').onRef('secret_versions.version', '=', 'secrets.version'),
    )
    .select([
      'secrets.id',
      'secrets.name',
      'secrets.version',
      'secret_versions.key_version',
      'secret_versions.ciphertext',
    ])
    .where('secrets.workspace_id', '=', workspaceId)
    .where('secrets.deleted_at', 'is', null)
    .execute();
  const out = new Map<string, StoredSecret>();
  for (const r of rows) {
    const version = Number(r.version);
    const keyVersion = Number(r.key_version);
    const dek = await ctx.keyring.dataKey(workspaceId, keyVersion);
    const plain = decryptSecretValue(dek, Buffer.from(r.ciphertext), {
      workspaceId,
      secretId: r.id,
      version,
      keyVersion,
    });
    out.set(r.id, { id: r.id, name: r.name, version, keyVersion, value: plain.toString('utf8') });
  }
  return out;
}

/** How many stored versions (current and older) of a workspace are encrypted under a key older than `version`. */
export async function countRowsUnderOlderKeys(ctx: AppContext, workspaceId: string, version: number): Promise<number> {
  const r = await ctx.db
    .selectFrom('secret_versions')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('workspace_id', '=', workspaceId)
    .where('key_version', '<', version)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** The key versions a workspace has in workspace_keys, ascending, with their root key ids. */
export async function workspaceKeyVersions(
  ctx: AppContext,
  workspaceId: string,
): Promise<{ version: number; rootKeyId: string }[]> {
  const rows = await ctx.db
    .selectFrom('workspace_keys')
    .select(['version', 'root_key_id'])
    .where('workspace_id', '=', workspaceId)
    .orderBy('version')
    .execute();
  return rows.map((r) => ({ version: Number(r.version), rootKeyId: r.root_key_id }));
}
