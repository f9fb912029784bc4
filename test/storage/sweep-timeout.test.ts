/**
 * The retention sweep runs inside `serve`, whose PostgreSQL statements are bounded by
 * HUSH_DATABASE_TIMEOUT_SECONDS. A workspace whose purge cannot finish within it (a row
 * held by another session here; a very large workspace in production) must not stop the
 * sweep from purging the workspaces after it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  purgeExpiredSecrets,
  purgeExpiredWorkspaces,
  startSecretRetentionSweep,
} from '../../src/modules/secrets/secret-service.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

const pgAvailable = DATABASES.some((d) => d.kind === 'postgres' && d.available);
const DAY_MS = 86_400_000;

describe.runIf(pgAvailable)('retention sweep under the statement timeout', () => {
  let t: TestApp;
  let owner: Awaited<ReturnType<typeof setupOwner>>['owner'];
  beforeAll(async () => {
    t = await startTestApp('postgres', { HUSH_DATABASE_TIMEOUT_SECONDS: '1' });
    ({ owner } = await setupOwner(t));
  });
  afterAll(async () => {
    await t?.close();
  });

  it('purges the other expired workspaces when one cannot be purged in time', async () => {
    const ids: string[] = [];
    for (const name of ['One', 'Two']) {
      const res = await owner.post('/api/v1/workspaces', { name });
      expect(res.status, res.text).toBe(201);
      ids.push(res.body.id as string);
    }
    ids.sort();
    const [held, other] = ids as [string, string];
    const eightDaysAgo = new Date(Date.now() - 8 * DAY_MS).toISOString();
    await t.ctx.db.updateTable('workspaces').set({ deleted_at: eightDaysAgo }).where('id', 'in', ids).execute();

    const url = t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '';
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      // Another session (a key rotation's last step, a long transaction) holds the first one's row.
      await blocker.query('begin');
      await blocker.query('select id from workspaces where id = $1 for update', [held]);
      await purgeExpiredWorkspaces(t.ctx).catch(() => 0);
      const keys = await t.ctx.db
        .selectFrom('workspace_keys')
        .select('workspace_id')
        .where('workspace_id', '=', other)
        .execute();
      expect(keys, 'the second expired workspace was purged').toHaveLength(0);
    } finally {
      await blocker.query('rollback').catch(() => {});
      await blocker.end();
    }
  });
  it('a deleted secret held by another session stops neither the other secrets nor the workspaces', async () => {
    const created = await owner.post('/api/v1/workspaces', { name: 'Secrets' });
    expect(created.status, created.text).toBe(201);
    const ws = created.body.id as string;
    const secretIds: string[] = [];
    for (const name of ['held_one', 'purged_two', 'purged_three']) {
      const res = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
        name,
        visibility: 'masked',
        value: `value-of-${name}`,
      });
      expect(res.status, res.text).toBe(201);
      secretIds.push(res.body.id as string);
      expect((await owner.delete(`/api/v1/workspaces/${ws}/secrets/${res.body.id}`)).status).toBe(204);
    }
    const doomed = await owner.post('/api/v1/workspaces', { name: 'Doomed too' });
    expect(doomed.status, doomed.text).toBe(201);
    expect((await owner.delete(`/api/v1/workspaces/${doomed.body.id}`)).status).toBe(204);
    const eightDaysAgo = new Date(Date.now() - 8 * DAY_MS).toISOString();
    // The held one is the oldest: the first the sweep tries.
    await t.ctx.db
      .updateTable('secrets')
      .set({ deleted_at: new Date(Date.now() - 9 * DAY_MS).toISOString() })
      .where('id', '=', secretIds[0] as string)
      .execute();
    await t.ctx.db
      .updateTable('secrets')
      .set({ deleted_at: eightDaysAgo })
      .where('id', 'in', secretIds.slice(1))
      .execute();
    await t.ctx.db
      .updateTable('workspaces')
      .set({ deleted_at: eightDaysAgo })
      .where('id', '=', doomed.body.id)
      .execute();

    const url = t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '';
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    const left = async () =>
      (await t.ctx.db.selectFrom('secrets').select('id').where('id', 'in', secretIds).orderBy('id').execute()).map(
        (r) => r.id,
      );
    try {
      await blocker.query('begin');
      await blocker.query('select id from secrets where id = $1 for update', [secretIds[0]]);
      const stop = startSecretRetentionSweep(t.ctx, 3_600_000);
      try {
        await expect.poll(left, { timeout: 10_000 }).toEqual([secretIds[0]]);
        await expect
          .poll(
            async () =>
              (
                await t.ctx.db
                  .selectFrom('workspace_keys')
                  .select('version')
                  .where('workspace_id', '=', doomed.body.id)
                  .execute()
              ).length,
            { timeout: 10_000 },
          )
          .toBe(0);
      } finally {
        stop();
      }
    } finally {
      await blocker.query('rollback').catch(() => {});
      await blocker.end();
    }
  });

  it('stops after three items in a row fail instead of waiting out the timeout on each, and the next sweep goes on', async () => {
    const created = await owner.post('/api/v1/workspaces', { name: 'Held rows' });
    expect(created.status, created.text).toBe(201);
    const ws = created.body.id as string;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
        name: `held_${i}`,
        visibility: 'masked',
        value: `value-of-held-${i}`,
      });
      expect(res.status, res.text).toBe(201);
      ids.push(res.body.id as string);
      expect((await owner.delete(`/api/v1/workspaces/${ws}/secrets/${res.body.id}`)).status).toBe(204);
      // Oldest first: held_0 is the first the sweep tries, held_4 the last.
      await t.ctx.db
        .updateTable('secrets')
        .set({ deleted_at: new Date(Date.now() - (20 - i) * DAY_MS).toISOString() })
        .where('id', '=', res.body.id)
        .execute();
    }
    const left = async () =>
      (await t.ctx.db.selectFrom('secrets').select('id').where('id', 'in', ids).execute()).length;
    const url = t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '';
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('select id from secrets where id = any($1) for update', [ids.slice(0, 3)]);
      await expect(purgeExpiredSecrets(t.ctx)).rejects.toThrow();
      // Three in a row failed: it stopped there, held_3 and held_4 wait for the next sweep.
      expect(await left()).toBe(5);
    } finally {
      await blocker.query('rollback').catch(() => {});
      await blocker.end();
    }
    expect(await purgeExpiredSecrets(t.ctx)).toBeGreaterThanOrEqual(5);
    expect(await left()).toBe(0);
  });
});
