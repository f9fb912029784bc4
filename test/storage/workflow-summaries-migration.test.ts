/**
 * Migration 0010 on both databases: existing workflows get their number of
 * blocks counted from their stored documents (the workflow list reads only
 * that column) and revision 0 (their first ETag); a backup made before it
 * restores with its workflows counted the same way.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { createLocalKeyProvider, generateRootKey } from '../../src/crypto/root-keys.js';
import { migrateToLatest } from '../../src/db/database.js';
import { createBackup, restoreBackup } from '../../src/modules/backup/backup.js';
import { DATABASES } from '../support/databases.js';
import { addWorkspace, databaseBefore } from '../support/migrated-before.js';

const AT = '2024-01-01T00:00:00.000Z';

/** Workflows with 0, 1 and 3 blocks, as a Hush before 0010 stored them (no count, no revision). */
function oldWorkflows() {
  const block = (id: string) => ({ id, type: 'set', name: id, assignments: [], onSuccess: null });
  return [0, 1, 3].map((n) => ({
    id: `wf_${n}`,
    workspace_id: 'ws_one',
    name: `with ${n}`,
    start_block_id: n === 0 ? null : 'b0',
    blocks: JSON.stringify(Array.from({ length: n }, (_, i) => block(`b${i}`))),
    created_at: AT,
    created_by: null,
    updated_at: AT,
    updated_by: null,
  }));
}

describe.each(DATABASES)('migration 0010 (workflow summaries) on $kind', ({ kind, available }) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function databaseWithOldWorkflows() {
    const database = await databaseBefore(kind, '0010', cleanups);
    await addWorkspace(database, 'ws_one');
    await (database.db as unknown as Kysely<Record<string, Record<string, unknown>>>)
      .insertInto('workflows')
      .values(oldWorkflows())
      .execute();
    return database;
  }

  it.runIf(available)('counts the blocks each existing workflow holds and starts its revision at 0', async () => {
    const database = await databaseWithOldWorkflows();
    const outcome = await migrateToLatest(database.db);
    expect(outcome.error).toBeUndefined();
    const rows = await database.db
      .selectFrom('workflows')
      .select(['id', 'block_count', 'revision'])
      .orderBy('id')
      .execute();
    expect(rows.map((r) => [r.id, Number(r.block_count), Number(r.revision)])).toEqual([
      ['wf_0', 0, 0],
      ['wf_1', 1, 0],
      ['wf_3', 3, 0],
    ]);
  });

  it.runIf(available)('a backup made before 0010 restores with its workflows counted', async () => {
    const source = await databaseWithOldWorkflows();
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-backup-0010-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'before-0010.gz');
    await createBackup({ db: source.db, dbKind: kind }, file);

    // Every migration, 0010 included.
    const target = await databaseBefore(kind, '9999', cleanups);
    const rootKeys = createLocalKeyProvider('test', [generateRootKey()]);
    await restoreBackup({ db: target.db, dbKind: kind, rootKeys }, file);
    const rows = await target.db
      .selectFrom('workflows')
      .select(['id', 'block_count', 'revision', 'blocks'])
      .orderBy('id')
      .execute();
    expect(rows.map((r) => [r.id, Number(r.block_count), Number(r.revision)])).toEqual([
      ['wf_0', 0, 0],
      ['wf_1', 1, 0],
      ['wf_3', 3, 0],
    ]);
    expect(rows.map((r) => r.blocks)).toEqual(oldWorkflows().map((w) => w.blocks));
  });
});
