/**
 * The databases a benchmark runs against: SQLite (a file in a temp dir,
 * always) and PostgreSQL (a fresh `hush_bench_<random>` database on the
 * server at HUSH_BENCH_PG_ADMIN_URL, dropped WITH (FORCE) afterwards).
 */
import { randomBytes } from 'node:crypto';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { registerCleanup } from './cleanup.js';

export type BenchDatabaseKind = 'sqlite' | 'postgres';

/** The user must be named: the environment may have no USER for libpq defaults. */
export const PG_ADMIN_URL = process.env.HUSH_BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The server's version string, or null when PostgreSQL is not reachable. */
export async function postgresVersion(): Promise<string | null> {
  try {
    return await withAdmin(async (c) => {
      const { rows } = await c.query<{ v: string }>("select current_setting('server_version') as v");
      return rows[0]?.v ?? 'unknown';
    });
  } catch {
    return null;
  }
}

/** The SQLite library version better-sqlite3 was built with. */
export function sqliteVersion(): string {
  const db = new SQLite(':memory:');
  try {
    return String(db.prepare('select sqlite_version() as v').pluck().get());
  } finally {
    db.close();
  }
}

export interface TemporaryPostgres {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A fresh, empty PostgreSQL database, dropped by `drop()` or on interruption. */
export async function createPostgresDatabase(): Promise<TemporaryPostgres> {
  const name = `hush_bench_${randomBytes(6).toString('hex')}`;
  await withAdmin((c) => c.query(`create database ${name}`));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  const drop = registerCleanup(async () => {
    await withAdmin((c) => c.query(`drop database if exists ${name} with (force)`));
  });
  return { name, url: url.toString(), drop };
}
