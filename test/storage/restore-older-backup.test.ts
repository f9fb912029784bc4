/**
 * A backup made by an older Hush (at an older schema) restores at that
 * schema and is then migrated up, so the data migrations since apply to its
 * rows: case-duplicate roles are renamed (0005; the restore used to fail on
 * the unique index), `#` in reference paths is rewritten (0006; it used to
 * be restored silently wrong), run steps are counted (0007).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrations } from '../../src/db/migrations/index.js';
import { createBackup, restoreBackup } from '../../src/modules/backup/backup.js';
import { createSite } from '../support/cli.js';
import { DATABASES } from '../support/databases.js';
import { addWorkspace, databaseBefore } from '../support/migrated-before.js';

const AT = '2024-01-01T00:00:00.000Z';

describe.each(DATABASES)('restoring a backup of an older schema on $kind', ({ kind, available }) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it.runIf(available)('restores at its schema, then migrates: every data migration since applies', async () => {
    // What a Hush at schema 0004 held.
    const old = await databaseBefore(kind, '0005', cleanups);
    const db = old.db as unknown as Kysely<Record<string, Record<string, unknown>>>;
    await addWorkspace(old, 'ws_one');
    for (const [id, name, minute] of [
      ['rol_a', 'Ops', 1],
      ['rol_b', 'OPS', 2],
    ] as const) {
      const at = `2024-01-01T00:0${minute}:00.000Z`;
      await db
        .insertInto('roles')
        .values({
          id,
          workspace_id: 'ws_one',
          name,
          description: '',
          permissions: '[]',
          created_at: at,
          updated_at: at,
        })
        .execute();
    }
    await db
      .insertInto('workflows')
      .values({
        id: 'wf_one',
        workspace_id: 'ws_one',
        name: 'w',
        start_block_id: null,
        blocks: '[]',
        created_at: AT,
        created_by: null,
        updated_at: AT,
        updated_by: null,
      })
      .execute();
    await db
      .insertInto('workflow_secret_refs')
      .values({
        workspace_id: 'ws_one',
        workflow_id: 'wf_one',
        block_id: 'call',
        field: 'body.content/a#b',
        secret_name_lower: 'tok',
      })
      .execute();
    await db
      .insertInto('runs')
      .values({
        id: 'run_one',
        workspace_id: 'ws_one',
        workflow_id: 'wf_one',
        kind: 'run',
        status: 'succeeded',
        started_at: AT,
        finished_at: AT,
        started_by: null,
        variables: '{}',
        steps: JSON.stringify([{}, {}, {}]),
      })
      .execute();
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-old-backup-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'old.backup.gz');
    await createBackup({ db: old.db, dbKind: kind }, file);
    const header = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8').split('\n')[0] ?? '{}');
    expect(header.migrations).toEqual(Object.keys(migrations).filter((m) => m < '0005'));

    const target = await createSite(kind, { HUSH_MASTER_KEY: randomBytes(32).toString('base64') });
    cleanups.push(() => target.cleanup());
    const ctx = await target.open();
    cleanups.push(() => ctx.close());
    await restoreBackup(ctx, file);

    const roles = await ctx.db
      .selectFrom('roles')
      .select(['id', 'name'])
      .where('workspace_id', '=', 'ws_one')
      .execute();
    expect(Object.fromEntries(roles.map((r) => [r.id, r.name]))).toEqual({ rol_a: 'Ops', rol_b: 'OPS 2' });
    const refs = await ctx.db.selectFrom('workflow_secret_refs').select('field').execute();
    expect(refs.map((r) => r.field)).toEqual(['body.content/a~2b']);
    const runs = await ctx.db.selectFrom('runs').select(['id', 'step_count']).execute();
    expect(runs.map((r) => [r.id, Number(r.step_count)])).toEqual([['run_one', 3]]);
    const applied = await ctx.db
      .selectFrom('hush_migrations' as never)
      .select('name' as never)
      .execute();
    expect(applied.map((r) => (r as { name: string }).name)).toEqual(Object.keys(migrations));
  });
});
