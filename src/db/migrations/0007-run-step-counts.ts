/**
 * A run's number of steps in a column of its own, so a list of runs reads
 * summaries without loading any run's record (a record may hold up to
 * 32 MiB of steps: 50 of them in one page took gigabytes). Existing runs are
 * counted from their stored steps, in the database.
 */
import { type Kysely, PostgresAdapter, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('runs')
    .addColumn('step_count', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  await sql`update runs set step_count = ${postgres ? sql`json_array_length(steps::json)` : sql`json_array_length(steps)`}`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('runs').dropColumn('step_count').execute();
}
