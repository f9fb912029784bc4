/**
 * Migration 0007 on both databases: existing runs get their number of steps
 * counted from their stored records (a run list reads only that column).
 */
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/db/database.js';
import { DATABASES } from '../support/databases.js';
import { addWorkspace, databaseBefore } from '../support/migrated-before.js';

const AT = '2024-01-01T00:00:00.000Z';

describe.each(DATABASES)('migration 0007 (run step counts) on $kind', ({ kind, available }) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it.runIf(available)('counts the steps each existing run recorded', async () => {
    const database = await databaseBefore(kind, '0007', cleanups);
    await addWorkspace(database, 'ws_one');
    const step = { blockId: 'b', type: 'set', status: 'succeeded', request: null, response: null, captures: {} };
    const runs = [0, 1, 3].map((n) => ({
      id: `run_${n}`,
      workspace_id: 'ws_one',
      workflow_id: 'wf_one',
      kind: 'run' as const,
      status: 'succeeded' as const,
      started_at: AT,
      finished_at: AT,
      started_by: null,
      variables: '{}',
      steps: JSON.stringify(Array.from({ length: n }, () => step)),
    }));
    // Written as an older Hush wrote them: without the column.
    await (database.db as unknown as import('kysely').Kysely<Record<string, Record<string, unknown>>>)
      .insertInto('runs')
      .values(runs)
      .execute();

    const outcome = await migrateToLatest(database.db);
    expect(outcome.error).toBeUndefined();
    const counted = await database.db.selectFrom('runs').select(['id', 'step_count']).orderBy('id').execute();
    expect(counted.map((r) => [r.id, Number(r.step_count)])).toEqual([
      ['run_0', 0],
      ['run_1', 1],
      ['run_3', 3],
    ]);
  });

  it.runIf(available)(
    'a migration that fails half-way leaves the schema as it was (no column without its record); the next start migrates',
    async () => {
      const database = await databaseBefore(kind, '0007', cleanups);
      await addWorkspace(database, 'ws_one');
      await (database.db as unknown as import('kysely').Kysely<Record<string, Record<string, unknown>>>)
        .insertInto('runs')
        .values({
          id: 'run_1',
          workspace_id: 'ws_one',
          workflow_id: 'wf_one',
          kind: 'run',
          status: 'succeeded',
          started_at: AT,
          finished_at: AT,
          started_by: null,
          variables: '{}',
          steps: '[]',
        })
        .execute();
      // 0007 adds its column, then its UPDATE of the runs is refused (as a kill would stop it).
      if (kind === 'postgres') {
        await sql`create function refuse() returns trigger language plpgsql as $$ begin raise exception 'refused'; end $$`.execute(
          database.db,
        );
        await sql`create trigger no_update before update on runs for each row execute function refuse()`.execute(
          database.db,
        );
      } else {
        await sql`create trigger no_update before update on runs begin select raise(abort, 'refused'); end`.execute(
          database.db,
        );
      }
      const failed = await migrateToLatest(database.db);
      expect(String(failed.error)).toMatch(/refused/);
      const columns = async () =>
        (await database.db.introspection.getTables()).find((t) => t.name === 'runs')?.columns.map((c) => c.name) ?? [];
      expect(await columns()).not.toContain('step_count');
      const recorded = await sql<{ name: string }>`select name from hush_migrations order by name`.execute(database.db);
      expect(recorded.rows.map((r) => r.name).at(-1)).toBe('0006-secret-ref-paths');

      await sql`drop trigger no_update${kind === 'postgres' ? sql` on runs` : sql``}`.execute(database.db);
      const again = await migrateToLatest(database.db);
      expect(again.error).toBeUndefined();
      expect(await columns()).toContain('step_count');
    },
  );
});
