/**
 * A secret's revision: moved by every change to it (value, description,
 * allowed hosts, pinning, delete, restore), where its version moves with new
 * values only. The ETag and If-Match carry both, so an edit made from a stale
 * copy of a secret's hosts or description is refused (412), not applied over
 * someone else's change.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('secrets')
    .addColumn('revision', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('secrets').dropColumn('revision').execute();
}
