/**
 * The retention sweep runs inside `serve`, whose PostgreSQL statements are bounded by
 * HUSH_DATABASE_TIMEOUT_SECONDS. A workspace whose purge cannot finish within it (a row
 * held by another session here; a very large workspace in production) must not stop the
 * sweep from purging the workspaces after it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purgeExpiredWorkspaces } from '../../src/modules/secrets/secret-service.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

const pgAvailable = DATABASES.some((d) => d.kind === 'postgres' && d.available);
const DAY_MS = 86_400_000;

describe.runIf(pgAvailable)('retention sweep under the statement timeout', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp('postgres', { HUSH_DATABASE_TIMEOUT_SECONDS: '1' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('purges the other expired workspaces when one cannot be purged in time', async () => {
    const { owner } = await setupOwner(t);
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
});
