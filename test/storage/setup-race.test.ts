/**
 * First-run setup finished by two servers at once (each with its own setup
 * token) on PostgreSQL: exactly one succeeds, the other is told it is done
 * (409) or its token is gone (403) — never a 500 from a deadlock, which two
 * transactions each deleting their own token row and then the other's gave.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { hashToken, nowIso } from '../../src/app/ids.js';
import { DATABASES } from '../support/databases.js';
import { SETUP_TOKEN, startTestApp, type TestApp } from '../support/harness.js';

const pg = DATABASES.find((d) => d.kind === 'postgres');

describe('setup completed by two servers at once', () => {
  const apps: TestApp[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  it.runIf(pg?.available)(
    'one succeeds, the other gets 409 or 403, never a 500 (5 rounds)',
    async () => {
      for (let round = 0; round < 5; round++) {
        const t = await startTestApp('postgres');
        apps.push(t);
        // The second server's own generated token, next to the first one's.
        const other = randomBytes(16).toString('hex');
        await t.ctx.db
          .insertInto('settings')
          .values({ key: `setup_token:${hashToken(other)}`, value: 'pending', updated_at: nowIso() })
          .execute();
        const body = (token: string, n: number) => ({
          token,
          email: `owner${n}@example.com`,
          password: 'correct horse battery staple',
          name: `Owner ${n}`,
          workspaceName: `Acme ${n}`,
        });
        const answers = await Promise.all([
          t.client().post('/api/v1/setup', body(SETUP_TOKEN, 1)),
          t.client().post('/api/v1/setup', body(other, 2)),
        ]);
        const statuses = answers.map((a) => a.status).sort();
        expect(statuses[0], answers.map((a) => a.text).join('\n')).toBe(201);
        expect([403, 409], answers.map((a) => a.text).join('\n')).toContain(statuses[1]);
        expect((await t.ctx.db.selectFrom('users').select('id').execute()).length).toBe(1);
      }
    },
    120_000,
  );

  it.runIf(pg?.available)(
    'setup works where the settings keys sort by a collation that ignores punctuation (ICU en-US)',
    async () => {
      const t = await startTestApp('postgres');
      apps.push(t);
      const icu = await sql<{
        n: number;
      }>`select count(*)::int as n from pg_collation where collname = 'en-US-x-icu'`.execute(t.ctx.db);
      if (icu.rows[0]?.n !== 1) {
        if (process.env.CI === 'true') throw new Error('PostgreSQL has no ICU collation en-US-x-icu');
        return;
      }
      await sql`alter table settings alter column key type text collate "en-US-x-icu"`.execute(t.ctx.db);
      const res = await t.client().post('/api/v1/setup', {
        token: SETUP_TOKEN,
        email: 'owner@example.com',
        password: 'correct horse battery staple',
        name: 'Owner',
        workspaceName: 'Acme',
      });
      expect(res.status, res.text).toBe(201);
    },
  );
});
