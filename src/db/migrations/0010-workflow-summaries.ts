/**
 * Two columns on workflows. `block_count`: how many blocks the stored
 * document holds, so the workflow list answers summaries without reading any
 * workflow's blocks (a list of 200 workflows of ~2 MB each answered 396 MB);
 * existing workflows are counted from their stored blocks, in the database.
 * `revision`: moved by every save, the workflow's ETag, so a save made from a
 * stale copy is refused (412) instead of silently undoing someone else's.
 */
import { type Kysely, PostgresAdapter, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('workflows')
    .addColumn('block_count', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('workflows')
    .addColumn('revision', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  await sql`update workflows set block_count = ${postgres ? sql`json_array_length(blocks::json)` : sql`json_array_length(blocks)`}`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('workflows').dropColumn('revision').execute();
  await db.schema.alterTable('workflows').dropColumn('block_count').execute();
}
