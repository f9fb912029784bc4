/**
 * A workspace key rotation racing what could retire a key still in use:
 * a secret written on another server while the rotation switches keys
 * (PostgreSQL), and a second rotation that overlaps the first (SQLite has no
 * job lock). After both, every stored version has its key and reads back.
 */

import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createAppContext } from '../../src/app/bootstrap.js';
import { decryptSecretValue } from '../../src/crypto/envelope.js';
import { rotateWorkspaceKey } from '../../src/modules/keys/key-rotation.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

/** Every stored version of the workspace opens with its key, read by a context with nothing cached. */
async function everyVersionOpens(t: TestApp, workspaceId: string): Promise<string[]> {
  const fresh = await createAppContext(t.ctx.config, t.ctx.log);
  try {
    const rows = await fresh.db
      .selectFrom('secret_versions')
      .select(['secret_id', 'version', 'key_version', 'ciphertext'])
      .where('workspace_id', '=', workspaceId)
      .orderBy('secret_id')
      .orderBy('version')
      .execute();
    const values: string[] = [];
    for (const row of rows) {
      const key = await fresh.keyring.dataKey(workspaceId, Number(row.key_version));
      values.push(
        decryptSecretValue(key, Buffer.from(row.ciphertext), {
          workspaceId,
          secretId: row.secret_id,
          version: Number(row.version),
          keyVersion: Number(row.key_version),
        }).toString('utf8'),
      );
    }
    return values;
  } finally {
    await fresh.close();
  }
}

const availableOn = (kind: string) => DATABASES.find((d) => d.kind === kind)?.available ?? false;

/** The workspace's key versions, oldest first. */
async function keyVersions(t: TestApp, workspaceId: string): Promise<number[]> {
  const rows = await t.ctx.db
    .selectFrom('workspace_keys')
    .select('version')
    .where('workspace_id', '=', workspaceId)
    .orderBy('version')
    .execute();
  return rows.map((k) => Number(k.version));
}

describe('key rotation races', () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it.runIf(availableOn('postgres'))(
    'PostgreSQL: a secret written while the rotation switches keys is re-encrypted, never left under a retired key',
    async () => {
      t = await startTestApp('postgres');
      const { owner, workspaceId } = await setupOwner(t);
      const ws = `/api/v1/workspaces/${workspaceId}`;
      const created = await owner.post(`${ws}/secrets`, { name: 'k', visibility: 'masked', value: 'first-value-0123' });
      expect(created.status, created.text).toBe(201);

      // Hold the workspace's audit chain: the write below stops at its audit event, after
      // encrypting and inserting its version — where a busy server's writes wait.
      const holder = new pg.Client({
        connectionString: t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '',
      });
      await holder.connect();
      await holder.query('begin');
      await holder.query('select seq from audit_heads where chain = $1 for update', [workspaceId]);
      const write = owner.patch(`${ws}/secrets/${created.body.id}`, { value: 'second-value-4567' });
      await new Promise((r) => setTimeout(r, 200));
      const rotation = rotateWorkspaceKey(t.ctx, workspaceId);
      await new Promise((r) => setTimeout(r, 500));
      await holder.query('commit');
      await holder.end();

      const [written, rotated] = await Promise.all([write, rotation]);
      expect(written.status, written.text).toBe(200);
      expect(rotated).toMatchObject({ failed: 0, keyVersion: 2 });
      expect(await everyVersionOpens(t, workspaceId)).toEqual(['first-value-0123', 'second-value-4567']);
      expect(await keyVersions(t, workspaceId)).toEqual([2]);
    },
  );

  it.runIf(availableOn('sqlite'))(
    'SQLite: a rotation that overlaps a newer one never retires the newer key versions',
    async () => {
      t = await startTestApp('sqlite');
      const { owner, workspaceId } = await setupOwner(t);
      const ws = `/api/v1/workspaces/${workspaceId}`;
      expect(
        (await owner.post(`${ws}/secrets`, { name: 'k', visibility: 'masked', value: 'overlap-value-01' })).status,
      ).toBe(201);
      const file = path.join(t.dataDir, 'hush.db');
      let newer = false;
      // After the first rotation's re-encryption, a second one (another process) moves to version 3.
      const rotated = await rotateWorkspaceKey(t.ctx, workspaceId, {
        progress: () => {
          if (newer) return;
          newer = true;
          const other = new Database(file);
          try {
            other
              .prepare(
                `insert into workspace_keys (workspace_id, version, root_key_id, wrapped_key, created_at)
                 select workspace_id, 3, root_key_id, wrapped_key, created_at from workspace_keys
                 where workspace_id = ? and version = 2`,
              )
              .run(workspaceId);
            other.prepare('update workspaces set active_key_version = 3 where id = ?').run(workspaceId);
          } finally {
            other.close();
          }
        },
      });
      expect(newer).toBe(true);
      expect(rotated).toMatchObject({ failed: 0, keyVersion: 2 });
      expect(await keyVersions(t, workspaceId)).toEqual([2, 3]);
    },
  );

  for (const { kind, available } of DATABASES)
    it.runIf(available)(
      `${kind}: a rotation stopped after re-encrypting everything is finished by the next run, not followed by another`,
      async () => {
        t = await startTestApp(kind);
        const { owner, workspaceId } = await setupOwner(t);
        const ws = `/api/v1/workspaces/${workspaceId}`;
        expect(
          (await owner.post(`${ws}/secrets`, { name: 'k', visibility: 'masked', value: 'resume-value-01' })).status,
        ).toBe(201);
        // Stops (as a crash would) after its only batch: every row is under version 2, version 1 not retired yet.
        const stopped = await rotateWorkspaceKey(t.ctx, workspaceId, {
          progress: () => {
            throw new Error('stopped');
          },
        }).catch((error: Error) => error.message);
        expect(stopped).toBe('stopped');
        expect(await keyVersions(t, workspaceId)).toEqual([1, 2]);

        const resumed = await rotateWorkspaceKey(t.ctx, workspaceId);
        expect(resumed).toMatchObject({ failed: 0, keyVersion: 2 });
        expect(await keyVersions(t, workspaceId)).toEqual([2]);
        expect(await everyVersionOpens(t, workspaceId)).toEqual(['resume-value-01']);
      },
    );
});
