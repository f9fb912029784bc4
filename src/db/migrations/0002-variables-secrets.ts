/**
 * Custom variables, secrets and their versions, and the one name space they
 * share per workspace (SPEC §1: unique across custom variables and secrets).
 */
import type { Kysely } from 'kysely';
import { binaryType } from './column-types.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  const bytes = binaryType(db);

  // One row per taken name; inserting a duplicate is the name_taken check.
  await db.schema
    .createTable('variable_names')
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
    .addColumn('name_lower', 'text', (c) => c.notNull())
    .addColumn('owner_kind', 'text', (c) => c.notNull())
    .addColumn('owner_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('variable_names_pk', ['workspace_id', 'name_lower'])
    .execute();

  await db.schema
    .createTable('variables')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('test_value', 'text')
    .addColumn('fallback_value', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by', 'text')
    .execute();
  await db.schema
    .createIndex('variables_ws_name_idx')
    .on('variables')
    .columns(['workspace_id', 'name', 'id'])
    .execute();

  await db.schema
    .createTable('secrets')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('visibility', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('allowed_hosts', 'text', (c) => c.notNull())
    .addColumn('hosts_pinned_at', 'text')
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by', 'text')
    .addColumn('last_used_at', 'text')
    .addColumn('deleted_at', 'text')
    .addColumn('deleted_by', 'text')
    .execute();
  // (workspace, name, id) serves the keyset cursor of the list with no sort step.
  await db.schema.createIndex('secrets_ws_name_idx').on('secrets').columns(['workspace_id', 'name', 'id']).execute();
  await db.schema.createIndex('secrets_deleted_idx').on('secrets').columns(['deleted_at']).execute();

  await db.schema
    .createTable('secret_versions')
    .addColumn('secret_id', 'text', (c) => c.notNull().references('secrets.id').onDelete('cascade'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('workspace_id', 'text', (c) => c.notNull())
    .addColumn('key_version', 'integer', (c) => c.notNull())
    .addColumn('ciphertext', bytes, (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text')
    .addPrimaryKeyConstraint('secret_versions_pk', ['secret_id', 'version'])
    .execute();
  await db.schema
    .createIndex('secret_versions_ws_key_idx')
    .on('secret_versions')
    .columns(['workspace_id', 'key_version'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['secret_versions', 'secrets', 'variables', 'variable_names']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
