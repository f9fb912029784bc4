/**
 * Jobs that must run once across every server and CLI sharing a database —
 * the retention sweep, key rotations — take a PostgreSQL session advisory
 * lock named after the job, held on one pooled connection while the job
 * runs (released at the end, or by PostgreSQL if the process dies). A job
 * whose lock is taken elsewhere does not run: the caller decides whether
 * that is "skip" (the sweep) or an error (the CLI).
 *
 * SQLite needs none: one machine, and every writer already serialises on
 * the database's write lock (BEGIN IMMEDIATE), so a duplicate job is only
 * repeated, guarded work.
 */
import { sql } from 'kysely';
import type { DatabaseKind, Db } from './database.js';

export type JobOutcome<T> = { ran: true; value: T } | { ran: false };

export async function withJobLock<T>(
  deps: { db: Db; dbKind: DatabaseKind },
  job: string,
  run: () => Promise<T>,
): Promise<JobOutcome<T>> {
  if (deps.dbKind !== 'postgres') return { ran: true, value: await run() };
  const key = `hush:${job}`;
  return deps.db.connection().execute(async (conn) => {
    const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtext(${key})) as ok`.execute(conn);
    if (rows[0]?.ok !== true) return { ran: false };
    try {
      return { ran: true, value: await run() };
    } finally {
      await sql`select pg_advisory_unlock(hashtext(${key}))`.execute(conn);
    }
  });
}
