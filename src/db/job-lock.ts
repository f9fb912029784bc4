/**
 * Jobs that must run once across every server and CLI sharing a database —
 * the retention sweep, key rotations — run under a lock named after the
 * job. A job whose lock is taken elsewhere does not run: the caller decides
 * whether that is "skip" (the sweep) or an error (the CLI).
 *
 * PostgreSQL: a session advisory lock, held on one pooled connection while
 * the job runs (released at the end, or by PostgreSQL if the process dies).
 *
 * SQLite (one machine): a `job_locks` row naming the holding process, taken
 * in a write transaction (so two processes cannot both take it). A row left
 * by a process that died is taken over once that process is gone. The
 * database's write lock alone is not enough: a job's work spans many
 * transactions and, for root keys, the key file — two `rotate-root` runs at
 * once could each write the file without the other's new key.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { nowIso } from '../app/ids.js';
import type { DatabaseKind, Db } from './database.js';

export type JobOutcome<T> = { ran: true; value: T } | { ran: false };

export async function withJobLock<T>(
  deps: { db: Db; dbKind: DatabaseKind },
  job: string,
  run: () => Promise<T>,
): Promise<JobOutcome<T>> {
  return deps.dbKind === 'postgres' ? withAdvisoryLock(deps.db, job, run) : withLockRow(deps.db, job, run);
}

async function withAdvisoryLock<T>(db: Db, job: string, run: () => Promise<T>): Promise<JobOutcome<T>> {
  const key = `hush:${job}`;
  return db.connection().execute(async (conn) => {
    const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtext(${key})) as ok`.execute(conn);
    if (rows[0]?.ok !== true) return { ran: false };
    try {
      return { ran: true, value: await run() };
    } finally {
      await sql`select pg_advisory_unlock(hashtext(${key}))`.execute(conn);
    }
  });
}

/** Whether process `pid` exists on this machine (EPERM: it does, as another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function withLockRow<T>(db: Db, job: string, run: () => Promise<T>): Promise<JobOutcome<T>> {
  // Per call, not per process: a second job of the same name in this process waits its turn too.
  const holder = randomBytes(8).toString('hex');
  const taken = await db.transaction().execute(async (trx) => {
    const current = await trx
      .selectFrom('job_locks')
      .select(['holder', 'pid'])
      .where('job', '=', job)
      .executeTakeFirst();
    // Held by a live process (this one included, under another call): not ours to take.
    if (current && processAlive(current.pid)) return false;
    await trx
      .insertInto('job_locks')
      .values({ job, holder, pid: process.pid, acquired_at: nowIso() })
      .onConflict((oc) => oc.column('job').doUpdateSet({ holder, pid: process.pid, acquired_at: nowIso() }))
      .execute();
    return true;
  });
  if (!taken) return { ran: false };
  try {
    return { ran: true, value: await run() };
  } finally {
    await db.deleteFrom('job_locks').where('job', '=', job).where('holder', '=', holder).execute();
  }
}
