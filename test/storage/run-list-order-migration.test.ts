/**
 * Migration 0011 on both databases: existing runs are numbered in their
 * workflow's list in id order, the order they were listed in before.
 */
import type { Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/db/database.js';
import { DATABASES } from '../support/databases.js';
import { addWorkspace, databaseBefore } from '../support/migrated-before.js';

const AT = '2024-01-01T00:00:00.000Z';

describe.each(DATABASES)('migration 0011 (run list order) on $kind', ({ kind, available }) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it.runIf(available)('numbers the existing runs of each workflow in id order', async () => {
    const database = await databaseBefore(kind, '0011', cleanups);
    await addWorkspace(database, 'ws_one');
    const runRow = (id: string, workflowId: string) => ({
      id,
      workspace_id: 'ws_one',
      workflow_id: workflowId,
      kind: 'run',
      status: 'succeeded',
      started_at: AT,
      finished_at: AT,
      started_by: null,
      variables: '{}',
      steps: '[]',
      step_count: 0,
    });
    // Written as an older Hush wrote them: without the column, in no particular order.
    await (database.db as unknown as Kysely<Record<string, Record<string, unknown>>>)
      .insertInto('runs')
      .values([runRow('run_c', 'wf_a'), runRow('run_a', 'wf_a'), runRow('run_b', 'wf_b'), runRow('run_d', 'wf_a')])
      .execute();

    const outcome = await migrateToLatest(database.db);
    expect(outcome.error).toBeUndefined();
    const rows = await database.db.selectFrom('runs').select(['id', 'workflow_id', 'list_seq']).orderBy('id').execute();
    expect(rows.map((r) => [r.id, r.workflow_id, Number(r.list_seq)])).toEqual([
      ['run_a', 'wf_a', 1],
      ['run_b', 'wf_b', 1],
      ['run_c', 'wf_a', 2],
      ['run_d', 'wf_a', 3],
    ]);
  });
});
