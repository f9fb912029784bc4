/**
 * Migration 0006 on both databases: secret references stored with the old
 * path spelling (a `#` inside a JSON key written as is) are rewritten to the
 * current one (`~2`), which is what a save computes now — so an unchanged
 * workflow re-saved is not mistaken for one that moves a secret.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/db/database.js';
import { apiBlockSchema } from '../../src/modules/workflows/block-schema.js';
import { analyzeBlock } from '../../src/runtime/block-fields.js';
import { DATABASES } from '../support/databases.js';
import { addWorkspace, databaseBefore } from '../support/migrated-before.js';

const AT = '2024-01-01T00:00:00.000Z';

describe.each(DATABASES)('migration 0006 (secret reference paths) on $kind', ({ kind, available }) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const databaseBefore0006 = () => databaseBefore(kind, '0006', cleanups);

  it.runIf(available)('rewrites a # inside a JSON key to ~2, as a save computes it now, and nothing else', async () => {
    const database = await databaseBefore0006();
    const block = apiBlockSchema.parse({
      id: 'call',
      type: 'api',
      method: 'POST',
      url: 'https://api.example.com/x',
      headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok}}' }],
      body: { mode: 'json', content: '{"a#b":{"c#":"{{secret:tok}}"},"plain":"{{secret:tok}}"}' },
    });
    await addWorkspace(database, 'ws_one');
    // Written as a Hush before 0006 wrote it: without the columns added since.
    await (database.db as unknown as import('kysely').Kysely<Record<string, Record<string, unknown>>>)
      .insertInto('workflows')
      .values({
        id: 'wf_one',
        workspace_id: 'ws_one',
        name: 'w',
        start_block_id: 'call',
        blocks: JSON.stringify([block]),
        created_at: AT,
        created_by: null,
        updated_at: AT,
        updated_by: null,
      })
      .execute();
    const old = ['headers.0.value', 'body.content/a#b/c#', 'body.content/plain'];
    await database.db
      .insertInto('workflow_secret_refs')
      .values(
        old.map((field) => ({
          workspace_id: 'ws_one',
          workflow_id: 'wf_one',
          block_id: 'call',
          field,
          secret_name_lower: 'tok',
        })),
      )
      .execute();

    const outcome = await migrateToLatest(database.db);
    expect(outcome.error).toBeUndefined();
    const fields = (await database.db.selectFrom('workflow_secret_refs').select('field').execute()).map((r) => r.field);
    const computed = analyzeBlock(block)
      .fields.filter((f) => f.template.secrets.length > 0)
      .map((f) => f.path);
    expect(new Set(fields)).toEqual(new Set(computed));
    expect(new Set(fields)).toEqual(new Set(['headers.0.value', 'body.content/a~2b/c~2', 'body.content/plain']));
  });
});
