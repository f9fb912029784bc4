/**
 * Unwrapped workspace keys leave memory when unused: a workspace nobody uses
 * (deleted, purged by another server, idle) does not keep its keys in every
 * server's memory for ever. Keys in use stay cached.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspaceKeyring } from '../../src/modules/workspaces/workspace-keyring.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

const IDLE_MS = 300;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('workspace keyring idle expiry', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp('sqlite');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('keeps a key while it is used and drops it once unused for the idle time', async () => {
    const { owner } = await setupOwner(t);
    const created = await owner.post('/api/v1/workspaces', { name: 'Keys' });
    expect(created.status, created.text).toBe(201);
    const ws = created.body.id as string;
    const keyring = createWorkspaceKeyring(t.ctx.db, t.ctx.dbKind, t.ctx.rootKeys, 100, IDLE_MS);
    try {
      const dek = Buffer.from(await keyring.dataKey(ws, 1));
      // Without its stored row, only the cache can answer.
      await t.ctx.db.deleteFrom('workspace_keys').where('workspace_id', '=', ws).execute();
      for (let i = 0; i < 8; i++) {
        expect(Buffer.from(await keyring.dataKey(ws, 1)).equals(dek), 'used: still cached').toBe(true);
        await sleep(IDLE_MS / 3);
      }
      await sleep(IDLE_MS * 3);
      await expect(keyring.dataKey(ws, 1), 'unused past the idle time: gone from memory').rejects.toThrow(
        /does not exist/,
      );
    } finally {
      keyring.close();
    }
  });
});
