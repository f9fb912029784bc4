/**
 * A deleted workspace is purged in chunks of WORKSPACE_PURGE_CHUNK secrets,
 * each its own transaction, then its keys: a workspace of any size is purged
 * without one transaction having to outlast the statement timeout, and a
 * purge stopped half-way is finished by the next sweep.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/app/ids.js';
import { verifyChain } from '../../src/modules/audit/audit-service.js';
import {
  purgeExpiredSecrets,
  purgeExpiredWorkspaces,
  WORKSPACE_PURGE_CHUNK,
} from '../../src/modules/secrets/secret-service.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

const DAY_MS = 86_400_000;
/** Two full chunks and a part of one. */
const SECRETS = 2 * WORKSPACE_PURGE_CHUNK + 137;

for (const { kind, available } of DATABASES) {
  describe.runIf(available)(`workspace purge in chunks (${kind})`, () => {
    let t: TestApp;
    let owner: Awaited<ReturnType<typeof setupOwner>>['owner'];
    beforeAll(async () => {
      t = await startTestApp(kind, { HUSH_DATABASE_TIMEOUT_SECONDS: '1' });
      ({ owner } = await setupOwner(t));
    });
    afterAll(async () => {
      await t?.close();
    });

    /** A workspace with `SECRETS` secrets (one made through the API, the rest copies of its rows, 2 versions each). */
    async function bigWorkspace(name: string): Promise<{ ws: string; secretIds: string[] }> {
      const created = await owner.post('/api/v1/workspaces', { name });
      expect(created.status, created.text).toBe(201);
      const ws = created.body.id as string;
      const first = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
        name: 'seed',
        visibility: 'masked',
        value: 'seed-value-for-the-purge',
      });
      expect(first.status, first.text).toBe(201);
      const template = await t.ctx.db
        .selectFrom('secrets')
        .selectAll()
        .where('id', '=', first.body.id)
        .executeTakeFirstOrThrow();
      const version = await t.ctx.db
        .selectFrom('secret_versions')
        .selectAll()
        .where('secret_id', '=', template.id)
        .executeTakeFirstOrThrow();
      const secretIds = [template.id];
      for (let i = 1; i < SECRETS; i += 200) {
        const rows = Array.from({ length: Math.min(200, SECRETS - i) }, (_, j) => {
          const id = newId('sec');
          secretIds.push(id);
          return { ...template, id, name: `secret_${String(i + j).padStart(5, '0')}`, version: 2 };
        });
        await t.ctx.db.insertInto('secrets').values(rows).execute();
        await t.ctx.db
          .insertInto('secret_versions')
          .values(rows.flatMap((r) => [1, 2].map((v) => ({ ...version, secret_id: r.id, version: v }))))
          .execute();
        await t.ctx.db
          .insertInto('variable_names')
          .values(
            rows.map((r) => ({ workspace_id: ws, name_lower: r.name, owner_kind: 'secret' as const, owner_id: r.id })),
          )
          .execute();
      }
      return { ws, secretIds };
    }

    async function material(ws: string) {
      const count = async (table: 'secrets' | 'secret_versions' | 'workspace_keys') =>
        Number(
          (
            await t.ctx.db
              .selectFrom(table)
              .select((eb) => eb.fn.countAll<string | number>().as('n'))
              .where('workspace_id', '=', ws)
              .executeTakeFirstOrThrow()
          ).n,
        );
      const names = await t.ctx.db
        .selectFrom('variable_names')
        .select((eb) => eb.fn.countAll<string | number>().as('n'))
        .where('workspace_id', '=', ws)
        .where('owner_kind', '=', 'secret')
        .executeTakeFirstOrThrow();
      return {
        secrets: await count('secrets'),
        versions: await count('secret_versions'),
        names: Number(names.n),
        keys: await count('workspace_keys'),
      };
    }

    async function expire(ws: string) {
      expect((await owner.delete(`/api/v1/workspaces/${ws}`)).status).toBe(204);
      const eightDaysAgo = new Date(Date.now() - 8 * DAY_MS).toISOString();
      await t.ctx.db.updateTable('workspaces').set({ deleted_at: eightDaysAgo }).where('id', '=', ws).execute();
    }

    const purgedEvents = (ws: string) =>
      t.ctx.db
        .selectFrom('audit_events')
        .select(['chain', 'data'])
        .where('action', '=', 'workspace.purged')
        .where('target_id', '=', ws)
        .execute();

    it('destroys every secret, version, name and key of a workspace larger than one chunk, and audits the counts', async () => {
      const { ws } = await bigWorkspace('Large');
      const kept = await bigWorkspace('Kept');
      expect(await material(ws)).toEqual({
        secrets: SECRETS,
        versions: 2 * SECRETS - 1,
        names: SECRETS,
        keys: 1,
      });
      await expire(ws);

      expect(await purgeExpiredWorkspaces(t.ctx)).toBe(1);
      expect(await material(ws)).toEqual({ secrets: 0, versions: 0, names: 0, keys: 0 });
      // The workspace that was not deleted keeps everything.
      expect(await material(kept.ws)).toEqual({ secrets: SECRETS, versions: 2 * SECRETS - 1, names: SECRETS, keys: 1 });

      const events = await purgedEvents(ws);
      expect(events.map((e) => e.chain).sort()).toEqual(['system', ws].sort());
      for (const e of events) {
        expect(JSON.parse(e.data)).toEqual({
          secrets: SECRETS,
          versions: 2 * SECRETS - 1,
          keyVersions: 1,
          reason: 'retention_expired',
        });
      }
      expect(await verifyChain(t.ctx.db, ws, { mustExist: true })).toMatchObject({ ok: true });
      expect(await verifyChain(t.ctx.db, 'system')).toMatchObject({ ok: true });
      // Purged once: nothing left for the next sweep.
      expect(await purgeExpiredWorkspaces(t.ctx)).toBe(0);
      expect(await purgedEvents(ws)).toHaveLength(2);
    });

    it('purges every expired deleted secret in one sweep, more than one round of them', async () => {
      const { ws } = await bigWorkspace('Many deleted');
      const eightDaysAgo = new Date(Date.now() - 8 * DAY_MS).toISOString();
      await t.ctx.db
        .updateTable('secrets')
        .set({ deleted_at: eightDaysAgo })
        .where('workspace_id', '=', ws)
        .where('name', '!=', 'seed')
        .execute();
      expect(await purgeExpiredSecrets(t.ctx)).toBe(SECRETS - 1);
      // The live one stays, with its version and name.
      expect(await material(ws)).toEqual({ secrets: 1, versions: 1, names: 1, keys: 1 });
      const purged = await t.ctx.db
        .selectFrom('audit_events')
        .select((eb) => eb.fn.countAll<string | number>().as('n'))
        .where('action', '=', 'secret.purged')
        .where('chain', '=', ws)
        .executeTakeFirstOrThrow();
      expect(Number(purged.n)).toBe(SECRETS - 1);
      expect(await purgeExpiredSecrets(t.ctx)).toBe(0);
    });

    it.runIf(kind === 'postgres')(
      'keeps the chunks it finished when a later one cannot go, and the next sweep finishes the purge',
      async () => {
        const { ws, secretIds } = await bigWorkspace('Interrupted');
        await expire(ws);
        // The last secret in the purge's order (name, id) is in the last chunk: hold its versions.
        const last = await t.ctx.db
          .selectFrom('secrets')
          .select('id')
          .where('workspace_id', '=', ws)
          .orderBy('name', 'desc')
          .orderBy('id', 'desc')
          .executeTakeFirstOrThrow();
        expect(secretIds).toContain(last.id);
        const url = t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '';
        const blocker = new pg.Client({ connectionString: url });
        await blocker.connect();
        try {
          await blocker.query('begin');
          await blocker.query('select version from secret_versions where secret_id = $1 for update', [last.id]);
          // The statement timeout (1 s) ends the chunk that waits for them; the two before it stay done.
          await expect(purgeExpiredWorkspaces(t.ctx)).rejects.toThrow();
          expect(await material(ws)).toEqual({
            secrets: SECRETS - 2 * WORKSPACE_PURGE_CHUNK,
            versions: 2 * (SECRETS - 2 * WORKSPACE_PURGE_CHUNK) - 1, // "seed", last by name, has one
            names: SECRETS - 2 * WORKSPACE_PURGE_CHUNK,
            keys: 1,
          });
          expect(await purgedEvents(ws)).toHaveLength(0);
        } finally {
          await blocker.query('rollback').catch(() => {});
          await blocker.end();
        }
        // Its keys are still there, so the next sweep picks it up and finishes.
        expect(await purgeExpiredWorkspaces(t.ctx)).toBe(1);
        expect(await material(ws)).toEqual({ secrets: 0, versions: 0, names: 0, keys: 0 });
        const events = await purgedEvents(ws);
        expect(events).toHaveLength(2);
        // The counts are what the pass that finished destroyed.
        expect(JSON.parse(events[0]?.data ?? '{}')).toMatchObject({
          secrets: SECRETS - 2 * WORKSPACE_PURGE_CHUNK,
          keyVersions: 1,
        });
      },
    );
  });
}
