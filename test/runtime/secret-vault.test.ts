/**
 * The execution's secret vault against a real database: what happens when a
 * secret it loaded changes under it before it is sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/app/errors.js';
import { createSecretVault, MAX_HOST_SECRETS } from '../../src/modules/workflows/secret-vault.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';

const AUDIT = { actorId: null, actorType: 'system', ip: null, requestId: null } as const;

describe.each(DATABASES)('secret vault on $kind', ({ kind, available }) => {
  let t: TestApp;
  let owner: TestClient;
  let workspaceId: string;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    ({ owner, workspaceId } = await setupOwner(t));
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  it.runIf(available)(
    'a secret purged after it was loaded and before it is pinned is secret_unavailable, not a 500',
    async () => {
      const ws = `/api/v1/workspaces/${workspaceId}`;
      const created = await owner.post(`${ws}/secrets`, {
        name: 'unpinned',
        visibility: 'masked',
        value: 'vault-purge-race-value',
      });
      expect(created.status, created.text).toBe(201);
      const vault = createSecretVault(t.ctx, { workspaceId, epoch: await t.ctx.cache.epoch(workspaceId) }, AUDIT, 'x');
      const material = await vault.loadSecret('unpinned');
      expect(material.allowedHosts).toEqual([]);
      expect((await owner.delete(`${ws}/secrets/${created.body.id}?purge=true`)).status).toBe(204);

      const refused = await vault.checkHost(material, '127.0.0.1', 'b').catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(AppError);
      expect(refused).toMatchObject({ status: 422, code: 'secret_unavailable' });
      const pinned = await t.ctx.db.selectFrom('audit_events').select('id').where('action', '=', 'secret.host_pinned');
      expect(await pinned.execute()).toEqual([]);
    },
  );

  it.runIf(available)(
    'a secret deleted (not purged) after it was loaded and before it is pinned is secret_unavailable, and stays unpinned',
    async () => {
      const ws = `/api/v1/workspaces/${workspaceId}`;
      const created = await owner.post(`${ws}/secrets`, {
        name: 'unpinned_deleted',
        visibility: 'masked',
        value: 'vault-delete-race-value',
      });
      expect(created.status, created.text).toBe(201);
      const vault = createSecretVault(t.ctx, { workspaceId, epoch: await t.ctx.cache.epoch(workspaceId) }, AUDIT, 'x');
      const material = await vault.loadSecret('unpinned_deleted');
      expect((await owner.delete(`${ws}/secrets/${created.body.id}`)).status).toBe(204);

      const refused = await vault.checkHost(material, '127.0.0.1', 'b').catch((error: unknown) => error);
      expect(refused).toMatchObject({ status: 422, code: 'secret_unavailable' });
      const row = await t.ctx.db
        .selectFrom('secrets')
        .select(['allowed_hosts', 'hosts_pinned_at'])
        .where('id', '=', created.body.id)
        .executeTakeFirstOrThrow();
      // Restored later, it has no host chosen by a call made after its deletion.
      expect(row).toEqual({ allowed_hosts: '[]', hosts_pinned_at: null });
      const pinned = await t.ctx.db
        .selectFrom('audit_events')
        .select('id')
        .where('action', '=', 'secret.host_pinned')
        .where('target_id', '=', created.body.id);
      expect(await pinned.execute()).toEqual([]);
    },
  );

  it.runIf(available)(
    'secrets bound to a host: at most the most recently used MAX_HOST_SECRETS, and one that cannot be decrypted is left out',
    async () => {
      const ws = `/api/v1/workspaces/${workspaceId}`;
      const ids: string[] = [];
      for (let i = 0; i <= MAX_HOST_SECRETS; i++) {
        const created = await owner.post(`${ws}/secrets`, {
          name: `bound_${i}`,
          visibility: 'masked',
          value: `bound-value-${i}-xxxxxxxx`,
          allowedHosts: ['bound.example'],
        });
        expect(created.status, created.text).toBe(201);
        ids.push(created.body.id);
      }
      // The last one created was used most recently; the first one's stored value is damaged.
      await t.ctx.db
        .updateTable('secrets')
        .set({ last_used_at: new Date().toISOString() })
        .where('id', '=', ids.at(-1) as string)
        .execute();
      const damaged = await t.ctx.db
        .selectFrom('secret_versions')
        .select(['secret_id', 'version', 'ciphertext'])
        .where('secret_id', '=', ids[0] as string)
        .executeTakeFirstOrThrow();
      const bytes = Buffer.from(damaged.ciphertext);
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
      await t.ctx.db
        .updateTable('secret_versions')
        .set({ ciphertext: bytes })
        .where('secret_id', '=', damaged.secret_id)
        .where('version', '=', damaged.version)
        .execute();

      const vault = createSecretVault(t.ctx, { workspaceId, epoch: await t.ctx.cache.epoch(workspaceId) }, AUDIT, 'y');
      const bound = await vault.hostSecrets('bound.example');
      const names = bound.map((m) => m.name);
      expect(names[0]).toBe(`bound_${MAX_HOST_SECRETS}`);
      expect(names).not.toContain('bound_0');
      expect(names.length).toBe(MAX_HOST_SECRETS - 1);
      expect(await vault.hostSecrets('other.example')).toEqual([]);
    },
  );
});
