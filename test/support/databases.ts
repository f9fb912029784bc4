/**
 * The databases every storage test runs against: SQLite always, PostgreSQL
 * when reachable. Under CI=true an unreachable PostgreSQL is a failure, not
 * a skip; elsewhere the skip is announced on stderr.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export type DatabaseKindUnderTest = 'sqlite' | 'postgres';

const ADMIN_URL = process.env.HUSH_TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

const pgUp = await postgresReachable();
if (!pgUp) {
  if (process.env.CI === 'true') {
    throw new Error(`PostgreSQL is not reachable at ${ADMIN_URL}; under CI=true the PostgreSQL tests are mandatory.`);
  }
  process.stderr.write(
    `\n[hush tests] NOTICE: PostgreSQL not reachable at ${ADMIN_URL}: PostgreSQL runs are SKIPPED.\n`,
  );
}

/** The kinds to run, each with a flag saying whether it can run here. */
export const DATABASES: { kind: DatabaseKindUnderTest; available: boolean }[] = [
  { kind: 'sqlite', available: true },
  { kind: 'postgres', available: pgUp },
];

/** A fresh, empty PostgreSQL database; `drop()` removes it. */
export async function createPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `hush_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}
