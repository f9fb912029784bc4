/**
 * Job locks on SQLite: which process runs a once-only job (a root-key or
 * workspace-key rotation, the retention sweep) right now. PostgreSQL uses
 * session advisory locks instead and leaves this table empty
 * (src/db/job-lock.ts). Not part of backups: a lock belongs to a process on
 * this machine.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('job_locks')
    .addColumn('job', 'text', (c) => c.primaryKey())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('host', 'text', (c) => c.notNull())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('acquired_at', 'text', (c) => c.notNull())
    .addColumn('heartbeat_at', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('job_locks').execute();
}
