/**
 * A change epoch per audit chain: the audit writer increments it with every
 * audited change of a workspace, and servers validate their caches against
 * it (src/modules/workspaces/workspace-cache.ts).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('audit_heads')
    .addColumn('epoch', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('audit_heads').dropColumn('epoch').execute();
}
