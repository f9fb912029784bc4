/**
 * Secret storage on both databases: a ciphertext is bound to its row (moving
 * it fails loudly instead of revealing another value), and optimistic
 * concurrency lets exactly one of several racing writers win.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';

describe.each(DATABASES)('secret storage on $kind', ({ kind, available }) => {
  let t: TestApp;
  let owner: TestClient;
  let ws: string;
  let n = 0;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    ({ owner, workspaceId: ws } = await setupOwner(t));
  });
  afterAll(async () => t?.close());

  async function createSecret(value: string, workspaceId = ws): Promise<string> {
    const res = await owner.post(`/api/v1/workspaces/${workspaceId}/secrets`, {
      name: `s${n++}`,
      visibility: 'masked',
      value,
    });
    expect(res.status, res.text).toBe(201);
    return res.body.id;
  }

  async function ciphertextOf(secretId: string, version = 1): Promise<Buffer> {
    const row = await t.ctx.db
      .selectFrom('secret_versions')
      .select('ciphertext')
      .where('secret_id', '=', secretId)
      .where('version', '=', version)
      .executeTakeFirstOrThrow();
    return Buffer.from(row.ciphertext);
  }

  async function plant(secretId: string, version: number, ciphertext: Buffer): Promise<void> {
    await t.ctx.db
      .updateTable('secret_versions')
      .set({ ciphertext })
      .where('secret_id', '=', secretId)
      .where('version', '=', version)
      .execute();
  }

  function expectDecryptFailure(
    res: { status: number; body: { code: string; detail: string }; text: string },
    otherValue: string,
  ) {
    expect(res.status).toBe(500);
    expect(res.body.code).toBe('decrypt_failed');
    expect(res.body.detail).toMatch(/failed authentication/);
    expect(res.text).not.toContain(otherValue);
  }

  it.runIf(available)(
    "a ciphertext moved to another secret's row fails to reveal, never showing the other value",
    async () => {
      const a = await createSecret('value-of-secret-a');
      const b = await createSecret('value-of-secret-b');
      await plant(b, 1, await ciphertextOf(a));
      expectDecryptFailure(await owner.post(`/api/v1/workspaces/${ws}/secrets/${b}/reveal`), 'value-of-secret-a');
      // The untouched secret still reveals.
      expect((await owner.post(`/api/v1/workspaces/${ws}/secrets/${a}/reveal`)).body).toEqual({
        value: 'value-of-secret-a',
      });
    },
  );

  it.runIf(available)('a ciphertext moved to another version of the same secret fails', async () => {
    const a = await createSecret('first-value');
    expect((await owner.patch(`/api/v1/workspaces/${ws}/secrets/${a}`, { value: 'second-value' })).status).toBe(200);
    await plant(a, 2, await ciphertextOf(a, 1));
    expectDecryptFailure(await owner.post(`/api/v1/workspaces/${ws}/secrets/${a}/reveal`), 'first-value');
  });

  it.runIf(available)('a ciphertext moved to a secret of another workspace fails', async () => {
    const other = await owner.post('/api/v1/workspaces', { name: 'Other' });
    const a = await createSecret('home-workspace-value');
    const c = await createSecret('other-workspace-value', other.body.id);
    await plant(c, 1, await ciphertextOf(a));
    expectDecryptFailure(
      await owner.post(`/api/v1/workspaces/${other.body.id}/secrets/${c}/reveal`),
      'home-workspace-value',
    );
  });

  it.runIf(available)('a flipped byte in a stored ciphertext fails', async () => {
    const a = await createSecret('tamper-me');
    const blob = await ciphertextOf(a);
    blob[blob.length - 20] = (blob[blob.length - 20] ?? 0) ^ 1;
    await plant(a, 1, blob);
    expectDecryptFailure(await owner.post(`/api/v1/workspaces/${ws}/secrets/${a}/reveal`), 'tamper-me');
  });

  it.runIf(available)('of concurrent updates with the same If-Match exactly one wins', async () => {
    const a = await createSecret('v1');
    const writers = 12;
    const results = await Promise.all(
      Array.from({ length: writers }, (_, i) =>
        owner.patch(`/api/v1/workspaces/${ws}/secrets/${a}`, { value: `writer-${i}` }, { 'if-match': '1' }),
      ),
    );
    const won = results.filter((r) => r.status === 200);
    expect(won).toHaveLength(1);
    expect(results.filter((r) => r.status === 412).map((r) => r.body.code)).toEqual(
      Array(writers - 1).fill('version_conflict'),
    );
    const winner = results.indexOf(won[0] as (typeof results)[number]);
    expect((await owner.get(`/api/v1/workspaces/${ws}/secrets/${a}`)).body.version).toBe(2);
    expect((await owner.post(`/api/v1/workspaces/${ws}/secrets/${a}/reveal`)).body).toEqual({
      value: `writer-${winner}`,
    });
    const versions = await owner.get(`/api/v1/workspaces/${ws}/secrets/${a}/versions`);
    expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([2, 1]);
  });

  it.runIf(available)('of concurrent creates with one name exactly one succeeds', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        owner.post(`/api/v1/workspaces/${ws}/secrets`, {
          name: i % 2 ? 'Race_Name' : 'race_name',
          visibility: 'masked',
          value: `v${i}`,
        }),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409).map((r) => r.body.code)).toEqual(Array(7).fill('name_taken'));
    const rows = await t.ctx.db
      .selectFrom('secrets')
      .select('id')
      .where('workspace_id', '=', ws)
      .where('name', 'in', ['Race_Name', 'race_name'])
      .execute();
    expect(rows).toHaveLength(1);
  });
});
