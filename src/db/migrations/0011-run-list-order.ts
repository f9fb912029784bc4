/**
 * `list_seq`: a run's place in its workflow's list, assigned when its row is
 * inserted (at the run's end) and paged by, instead of the run id, which is
 * taken at the run's start. Paged by id, a slow run finishing between two
 * pages landed above the cursor and no walk ever showed it. Existing runs
 * are numbered in id order, per workflow.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('runs')
    .addColumn('list_seq', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // The same statement on both databases (SQLite has UPDATE … FROM since 3.33).
  await sql`update runs set list_seq = numbered.n
    from (select id, row_number() over (partition by workspace_id, workflow_id order by id) as n from runs) as numbered
    where runs.id = numbered.id`.execute(db);
  await db.schema.dropIndex('runs_workflow_idx').execute();
  await db.schema
    .createIndex('runs_list_idx')
    .on('runs')
    .columns(['workspace_id', 'workflow_id', 'list_seq'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('runs_list_idx').execute();
  await db.schema.createIndex('runs_workflow_idx').on('runs').columns(['workspace_id', 'workflow_id', 'id']).execute();
  await db.schema.alterTable('runs').dropColumn('list_seq').execute();
}
