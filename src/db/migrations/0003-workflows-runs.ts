/** Workflows (blocks as one JSON document), their secret references, and runs. */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('workflows')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('start_block_id', 'text')
    .addColumn('blocks', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by', 'text')
    .execute();
  await db.schema
    .createIndex('workflows_ws_name_idx')
    .on('workflows')
    .columns(['workspace_id', 'name', 'id'])
    .execute();

  // One row per (block, field) that references a secret by name: the usages index.
  await db.schema
    .createTable('workflow_secret_refs')
    .addColumn('workspace_id', 'text', (c) => c.notNull())
    .addColumn('workflow_id', 'text', (c) => c.notNull().references('workflows.id').onDelete('cascade'))
    .addColumn('block_id', 'text', (c) => c.notNull())
    .addColumn('field', 'text', (c) => c.notNull())
    .addColumn('secret_name_lower', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('workflow_secret_refs_lookup_idx')
    .on('workflow_secret_refs')
    .columns(['workspace_id', 'secret_name_lower'])
    .execute();
  await db.schema.createIndex('workflow_secret_refs_wf_idx').on('workflow_secret_refs').column('workflow_id').execute();

  await db.schema
    .createTable('runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
    .addColumn('workflow_id', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text', (c) => c.notNull())
    .addColumn('started_by', 'text')
    .addColumn('variables', 'text', (c) => c.notNull())
    .addColumn('steps', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('runs_workflow_idx').on('runs').columns(['workspace_id', 'workflow_id', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['runs', 'workflow_secret_refs', 'workflows'])
    await db.schema.dropTable(table).ifExists().execute();
}
