/**
 * Rate-limit counts shared by every server on one PostgreSQL database when no
 * Redis is configured (src/app/rate-limit-store.ts): one row per counted key
 * and window. SQLite (one server process) counts in memory and leaves it
 * empty. Not part of backups: counts last a minute.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('rate_limit_counts')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('count', 'integer', (c) => c.notNull())
    /** When the window ends, in ms since the Unix epoch (the database's clock). */
    .addColumn('reset_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('rate_limit_counts').execute();
}
