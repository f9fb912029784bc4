/**
 * `hush serve` as a real process: bad configuration stops it with one line;
 * a first start prints the setup URL, and that URL's token sets Hush up.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanEnv, HUSH_ENTRY as ENTRY, freePort } from '../support/cli.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * `hush <args>` in `dir` (`serve` unless told; node flags first); resolves
 * with the setup URL it prints once it listens.
 */
async function serveUntilSetupUrl(
  dir: string,
  env: Record<string, string>,
  { nodeFlags = [], args = ['serve'] }: { nodeFlags?: string[]; args?: string[] } = {},
): Promise<{ child: ChildProcess; url: URL; output: () => string }> {
  const child = spawn(process.execPath, [...nodeFlags, ...ENTRY, ...args], { env: cleanEnv(env), cwd: dir });
  children.push(child);
  let out = '';
  const url = await new Promise<URL>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no setup URL in output:\n${out}`)), 20_000);
    child.stdout?.on('data', (d) => {
      out += String(d);
      const m = /(http:\/\/127\.0\.0\.1:\d+\/setup#token=[\w-]+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(new URL(m[1]));
      }
    });
  });
  return { child, url, output: () => out };
}

describe('hush serve (process)', () => {
  it('stops with exit code 1 and one line naming the bad variable', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-cli-'));
    dirs.push(dir);
    const r = spawnSync(process.execPath, [...ENTRY, 'serve'], {
      env: cleanEnv({ HUSH_DATA_DIR: dir, HUSH_PORT: 'not-a-port' }),
      encoding: 'utf8',
      cwd: dir,
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['hush: invalid configuration: HUSH_PORT: must be a whole number']);
  });

  it('a root key file whose directory cannot be created: exit 1, one line naming it, no stack trace', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-cli-'));
    dirs.push(dir);
    // A file where a directory should be: no one can create the directory, root included.
    writeFileSync(path.join(dir, 'blocker'), 'a file');
    const keyFile = path.join(dir, 'blocker', 'keys', 'master.key');
    const serve = (env: Record<string, string>) =>
      spawnSync(process.execPath, [...ENTRY, 'serve'], {
        env: cleanEnv({ HUSH_DATA_DIR: dir, HUSH_PORT: '0', ...env }),
        encoding: 'utf8',
        cwd: dir,
        timeout: 30_000,
      });
    const r = serve({ HUSH_MASTER_KEY_FILE: keyFile });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^hush: .*key file \/.*\/blocker\/keys\/master\.key .*\(ENOTDIR\)$/),
    ]);
    // Kernel file systems are refused before anything is tried (creating a directory under /proc hung).
    const sys = serve({ HUSH_MASTER_KEY_FILE: '/sys/hush-test-nope/keys/master.key' });
    expect(sys.status, sys.stderr).toBe(1);
    expect(sys.stderr.trim().split('\n')).toEqual([
      'hush: invalid configuration: HUSH_MASTER_KEY_FILE: must not be under /proc, /sys or /dev',
    ]);
  });

  it('prints the setup URL at first start, creates owner-only key and database files, and the URL sets Hush up', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-cli-'));
    dirs.push(dir);
    const port = await freePort();
    // No command word: `serve` is the default.
    const { url, output } = await serveUntilSetupUrl(
      dir,
      { HUSH_DATA_DIR: path.join(dir, 'data'), HUSH_PORT: String(port) },
      { args: [] },
    );
    const out = output();
    expect(statSync(path.join(dir, 'data/master.key')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, 'data/hush.db')).mode & 0o777).toBe(0o600);
    expect(out).toMatch(/back it up/);
    const token = decodeURIComponent(url.hash.replace('#token=', ''));
    const base = `http://127.0.0.1:${port}/api/v1`;
    expect(await (await fetch(`${base}/setup`)).json()).toEqual({ needed: true });
    const res = await fetch(`${base}/setup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        token,
        email: 'o@example.com',
        password: 'a long password',
        name: 'O',
        workspaceName: 'W',
      }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('set-cookie')).toMatch(/hush_session=.*HttpOnly/i);
    expect(await (await fetch(`${base}/setup`)).json()).toEqual({ needed: false });
  });

  it('on SQLite without Redis, serve loads neither the PostgreSQL nor the Redis driver, nor the operator commands', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-cli-'));
    dirs.push(dir);
    // Every CommonJS module the process loaded (ESM imports of a package load it through the same cache).
    const preload = path.join(dir, 'loaded.cjs');
    const list = path.join(dir, 'loaded.json');
    writeFileSync(
      preload,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, JSON.stringify(Object.keys(require.cache))));`,
    );
    const { child, url } = await serveUntilSetupUrl(
      dir,
      { HUSH_DATA_DIR: path.join(dir, 'data'), HUSH_PORT: '0' },
      { nodeFlags: ['-r', preload] },
    );
    expect((await fetch(new URL('/healthz', url))).status).toBe(200);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    const loaded = (JSON.parse(readFileSync(list, 'utf8')) as string[]).map((f) => f.replaceAll('\\', '/'));
    const packages = new Set(loaded.flatMap((f) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1] ?? []));
    // Loaded at all (the check can see packages): the SQLite driver and the web framework.
    expect(packages).toContain('better-sqlite3');
    expect(packages).toContain('fastify');
    // Not loaded: pg, ioredis, and cli-progress (which only the operator commands import).
    expect([...packages].filter((p) => ['pg', 'pg-pool', 'ioredis', 'cli-progress'].includes(p))).toEqual([]);
  });

  it('HUSH_PORT=0: the printed setup URL names the port the system picked, and it answers', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-cli-'));
    dirs.push(dir);
    const { url } = await serveUntilSetupUrl(dir, { HUSH_DATA_DIR: path.join(dir, 'data'), HUSH_PORT: '0' });
    expect(url.port).not.toBe('0');
    expect(await (await fetch(new URL('/api/v1/setup', url))).json()).toEqual({ needed: true });
  });

  it('with HUSH_SETUP_TOKEN set, prints the setup URL without the token and points to the configured one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-cli-'));
    dirs.push(dir);
    const port = await freePort();
    const configured = 'operator-chosen-setup-token-5f3a9c';
    const child = spawn(process.execPath, [...ENTRY, 'serve'], {
      env: cleanEnv({ HUSH_DATA_DIR: path.join(dir, 'data'), HUSH_PORT: String(port), HUSH_SETUP_TOKEN: configured }),
      cwd: dir,
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d) => {
      out += String(d);
    });
    child.stderr.on('data', (d) => {
      out += String(d);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no setup message in output:\n${out}`)), 20_000);
      child.stdout.on('data', () => {
        if (/not set up yet[\s\S]*\n\n {2}\S+\n\n/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    expect(out).toContain(`  http://127.0.0.1:${port}/setup\n`);
    expect(out).toMatch(/HUSH_SETUP_TOKEN/);
    expect(out).not.toContain('#token=');
    // The configured token still sets Hush up; it never appeared in the output, before or after.
    const base = `http://127.0.0.1:${port}/api/v1`;
    const res = await fetch(`${base}/setup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        token: configured,
        email: 'o@example.com',
        password: 'a long password',
        name: 'O',
        workspaceName: 'W',
      }),
    });
    expect(res.status).toBe(201);
    expect(out).not.toContain(configured);
    expect(out).not.toContain(encodeURIComponent(configured));
  });
});
