import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadDotEnv } from './config.js';

function errorOf(env: Record<string, string>): string {
  try {
    loadConfig(env, '/srv');
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('a data directory or key file under /proc, /sys or /dev is refused with one line (creating it hung)', () => {
    expect(() => loadConfig({ HUSH_MASTER_KEY_FILE: '/proc/self/hush.key' })).toThrow(
      'HUSH_MASTER_KEY_FILE: must not be under /proc, /sys or /dev',
    );
    expect(() => loadConfig({ HUSH_DATA_DIR: '/sys/hush' })).toThrow(
      'HUSH_DATA_DIR: must not be under /proc, /sys or /dev',
    );
    expect(() => loadConfig({ HUSH_DATA_DIR: '/procedures/hush' })).not.toThrow();
  });

  it('a .env that cannot be read (a directory) is a ConfigError naming it, not a TypeError', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-env-'));
    try {
      mkdirSync(path.join(dir, '.env'));
      expect(() => loadDotEnv(dir)).toThrow(ConfigError);
      expect(() => loadDotEnv(dir)).toThrow(`${path.join(dir, '.env')}: is not a file`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('defaults to port 8080 on 127.0.0.1 with SQLite and a key file in ./data', () => {
    const c = loadConfig({}, '/srv');
    expect(c.port).toBe(8080);
    expect(c.host).toBe('127.0.0.1');
    expect(c.database).toEqual({ kind: 'sqlite', file: path.join('/srv/data', 'hush.db') });
    expect(c.masterKey).toEqual({ kind: 'file', path: '/srv/data/master.key' });
    expect(c.publicUrl).toBe('http://127.0.0.1:8080');
    expect(c.secureCookies).toBe(false);
    expect(c.loginLimitPerMin).toBe(10);
    expect(c.revealLimitPerMin).toBe(60);
    expect(c.secretRetentionDays).toBe(7);
    expect(c.listCacheBytes).toBe(4 * 1024 * 1024);
    expect(loadConfig({ HUSH_LIST_CACHE_MB: '0' }, '/srv').listCacheBytes).toBe(0);
  });

  it('reads PostgreSQL, an https public URL (secure cookies) and allowed CIDRs', () => {
    const c = loadConfig(
      {
        HUSH_DATABASE_URL: 'postgres://u@db:5432/hush',
        HUSH_PUBLIC_URL: 'https://hush.example.com/',
        HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8, ::1/128',
      },
      '/srv',
    );
    expect(c.database).toEqual({
      kind: 'postgres',
      url: 'postgres://u@db:5432/hush',
      preparedStatements: true,
      timeoutMs: 10_000,
    });
    expect(c.publicUrl).toBe('https://hush.example.com');
    expect(c.secureCookies).toBe(true);
    expect(c.outboundAllow.blockList.check('127.0.0.9', 'ipv4')).toBe(true);
    expect(c.outboundAllow.blockList.check('10.0.0.1', 'ipv4')).toBe(false);
  });

  it('turns prepared PostgreSQL statements off on request (a pooler that cannot keep them)', () => {
    const c = loadConfig({ HUSH_DATABASE_URL: 'postgres://u@db:5432/hush', HUSH_DATABASE_PREPARED: 'false' }, '/srv');
    expect(c.database).toEqual({
      kind: 'postgres',
      url: 'postgres://u@db:5432/hush',
      preparedStatements: false,
      timeoutMs: 10_000,
    });
  });

  it('bounds PostgreSQL statements by HUSH_DATABASE_TIMEOUT_SECONDS; 0 turns the bound off', () => {
    const url = 'postgres://u@db:5432/hush';
    expect(loadConfig({ HUSH_DATABASE_URL: url, HUSH_DATABASE_TIMEOUT_SECONDS: '3' }, '/srv').database).toMatchObject({
      timeoutMs: 3000,
    });
    expect(loadConfig({ HUSH_DATABASE_URL: url, HUSH_DATABASE_TIMEOUT_SECONDS: '0' }, '/srv').database).toMatchObject({
      timeoutMs: 0,
    });
    expect(() => loadConfig({ HUSH_DATABASE_URL: url, HUSH_DATABASE_TIMEOUT_SECONDS: '-1' }, '/srv')).toThrow(
      /^HUSH_DATABASE_TIMEOUT_SECONDS: /,
    );
  });

  it.each([
    [{ HUSH_PORT: 'eighty' }, /^HUSH_PORT: must be a whole number$/],
    [{ HUSH_PORT: '70000' }, /^HUSH_PORT: must be at most 65535$/],
    [{ HUSH_DATABASE_URL: 'mysql://x' }, /^HUSH_DATABASE_URL: /],
    [{ HUSH_PUBLIC_URL: 'hush.example.com' }, /^HUSH_PUBLIC_URL: /],
    [{ HUSH_LOG_LEVEL: 'loud' }, /^HUSH_LOG_LEVEL: must be one of/],
    [{ HUSH_OUTBOUND_ALLOW_CIDRS: '10.0.0.0/33' }, /^HUSH_OUTBOUND_ALLOW_CIDRS: "10.0.0.0\/33"/],
    [{ HUSH_OUTBOUND_ALLOW_CIDRS: 'localhost' }, /^HUSH_OUTBOUND_ALLOW_CIDRS: /],
    [{ HUSH_SETUP_TOKEN: 'short' }, /^HUSH_SETUP_TOKEN: must be at least 16 characters$/],
    [{ HUSH_LOGIN_LIMIT_PER_MIN: '0' }, /^HUSH_LOGIN_LIMIT_PER_MIN: must be at least 1$/],
    [{ HUSH_REVEAL_LIMIT_PER_MIN: '1000001' }, /^HUSH_REVEAL_LIMIT_PER_MIN: must be at most 1000000$/],
    [{ HUSH_MASTER_KEY: 'a', HUSH_MASTER_KEY_FILE: '/k' }, /^HUSH_MASTER_KEY: set either/],
    [{ HUSH_REDIS_URL: 'localhost:6379' }, /^HUSH_REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL$/],
    [{ HUSH_LIST_CACHE_MB: '2048' }, /^HUSH_LIST_CACHE_MB: must be at most 1024$/],
    [{ HUSH_METRICS_TOKEN: 'short' }, /^HUSH_METRICS_TOKEN: must be at least 16 characters$/],
    [{ HUSH_DATABASE_PREPARED: 'off' }, /^HUSH_DATABASE_PREPARED: /],
  ])('refuses %o with one line naming the variable', (env, expected) => {
    const message = errorOf(env);
    expect(message).toMatch(expected);
    expect(message).not.toContain('\n');
  });

  it('HUSH_TRUST_PROXY counts proxies: true is one, a number a chain, false none', () => {
    expect(loadConfig({}, '/srv').trustProxy).toBe(0);
    expect(loadConfig({ HUSH_TRUST_PROXY: 'false' }, '/srv').trustProxy).toBe(0);
    expect(loadConfig({ HUSH_TRUST_PROXY: 'true' }, '/srv').trustProxy).toBe(1);
    expect(loadConfig({ HUSH_TRUST_PROXY: '2' }, '/srv').trustProxy).toBe(2);
    expect(errorOf({ HUSH_TRUST_PROXY: 'yes' })).toContain('HUSH_TRUST_PROXY');
    expect(errorOf({ HUSH_TRUST_PROXY: '11' })).toContain('HUSH_TRUST_PROXY');
  });

  it('never echoes a rejected value that could be a key', () => {
    const message = errorOf({ HUSH_SETUP_TOKEN: 'sekrit' });
    expect(message).not.toContain('sekrit');
  });
});
