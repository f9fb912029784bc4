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
 * in a write transaction (so two processes cannot both take it) and renewed
 * every few seconds while the job runs. A row left by a process that died is
 * taken over once that process is gone (same host) or its renewal is 30 s
 * old (a container's PID 1, another PID namespace, a reused PID). The
 * database's write lock alone is not enough: a job's work spans many
 * transactions and, for root keys, the key file — two `rotate-root` runs at
 * once could each write the file without the other's new key.
 */
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import { nowIso } from '../app/ids.js';
import type { DatabaseKind, Db } from './database.js';

export type JobOutcome<T> = { ran: true; value: T } | { ran: false };

/** What a running job can ask of its lock: `lost` once another process has taken it over. */
export interface Lease {
  lost: boolean;
  /**
   * Renews the lock now and says whether it is still this job's (before an
   * irreversible step). Inside a transaction pass it as `executor` (SQLite's
   * one connection would wait for that transaction forever).
   */
  confirm(executor?: Db): Promise<boolean>;
}

export async function withJobLock<T>(
  deps: { db: Db; dbKind: DatabaseKind },
  job: string,
  run: (lease: Lease) => Promise<T>,
): Promise<JobOutcome<T>> {
  return deps.dbKind === 'postgres' ? withAdvisoryLock(deps.db, job, run) : withLockRow(deps.db, job, run);
}

async function withAdvisoryLock<T>(db: Db, job: string, run: (lease: Lease) => Promise<T>): Promise<JobOutcome<T>> {
  const key = `hush:${job}`;
  return db.connection().execute(async (conn) => {
    const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtext(${key})) as ok`.execute(conn);
    if (rows[0]?.ok !== true) return { ran: false };
    try {
      // Held by this session until it unlocks or ends: PostgreSQL never hands it to another.
      return { ran: true, value: await run({ lost: false, confirm: async () => true }) };
    } finally {
      await sql`select pg_advisory_unlock(hashtext(${key}))`.execute(conn);
    }
  });
}

/** How often a holder renews its lock row, and how old a renewal may get before the lock counts as abandoned. */
export const LOCK_HEARTBEAT_MS = 5_000;
export const LOCK_STALE_MS = 30_000;

/** Whether process `pid` exists on this machine (EPERM: it does, as another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A lock row still held: renewed within LOCK_STALE_MS, and — when it names
 * this machine — by a process that still exists. The renewal is what counts
 * across PID namespaces and PID reuse (a container's CLI is PID 1 every run).
 */
function held(row: { host: string; pid: number; heartbeat_at: string }, now: number): boolean {
  if (Date.parse(row.heartbeat_at) < now - LOCK_STALE_MS) return false;
  return row.host !== LOCK_HOST || processAlive(row.pid);
}

/**
 * Where PIDs mean the same thing: the host name and the PID namespace (two
 * containers sharing the host's name — `--network host` — see different
 * PIDs). Without /proc, the host name alone.
 */
export const LOCK_HOST = (() => {
  try {
    return `${hostname()} ${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    return hostname();
  }
})();

async function withLockRow<T>(db: Db, job: string, run: (lease: Lease) => Promise<T>): Promise<JobOutcome<T>> {
  // Per call, not per process: a second job of the same name in this process waits its turn too.
  const holder = randomBytes(8).toString('hex');
  const taken = await db.transaction().execute(async (trx) => {
    const current = await trx
      .selectFrom('job_locks')
      .select(['host', 'pid', 'heartbeat_at'])
      .where('job', '=', job)
      .executeTakeFirst();
    if (current && held(current, Date.now())) return false;
    const row = { holder, host: LOCK_HOST, pid: process.pid, acquired_at: nowIso(), heartbeat_at: nowIso() };
    await trx
      .insertInto('job_locks')
      .values({ job, ...row })
      .onConflict((oc) => oc.column('job').doUpdateSet(row))
      .execute();
    return true;
  });
  if (!taken) return { ran: false };
  const renewNow = async (executor: Db = db): Promise<boolean> => {
    const result = await executor
      .updateTable('job_locks')
      .set({ heartbeat_at: nowIso() })
      .where('job', '=', job)
      .where('holder', '=', holder)
      .executeTakeFirst();
    // Taken over (this process stalled past LOCK_STALE_MS): the job is told through `lost`.
    if (Number(result.numUpdatedRows) === 0) lease.lost = true;
    return !lease.lost;
  };
  const lease: Lease = { lost: false, confirm: renewNow };
  const renew = setInterval(() => {
    renewNow().catch(() => {}); // a busy moment: the next renewal comes well before the lock goes stale
  }, LOCK_HEARTBEAT_MS);
  renew.unref();
  try {
    return { ran: true, value: await run(lease) };
  } finally {
    clearInterval(renew);
    await db.deleteFrom('job_locks').where('job', '=', job).where('holder', '=', holder).execute();
  }
}
