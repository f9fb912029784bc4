/**
 * Another process holds SQLite's write lock past the busy timeout (a CLI
 * command, a second server on the same file, an operator's `BEGIN IMMEDIATE`
 * in the sqlite3 shell): requests that must write answer 503, with nothing
 * half-written or leaked, and are served again once the lock is let go. The
 * other process is modelled by a second better-sqlite3 connection to the file.
 */
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/modules/audit/audit-service.js';
import { setupOwner } from '../support/fixtures.js';
import { PASSWORD, type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const VALUE = 'busy-secret-value-3c9e';

describe('SQLite write lock held by another process', () => {
  let t: TestApp;
  let up: Upstream;
  let owner: TestClient;
  let ws: string;
  let locker: SQLite.Database | undefined;

  beforeEach(async () => {
    up = await startUpstream();
    t = await startTestApp('sqlite', { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    let workspaceId: string;
    ({ owner, workspaceId } = await setupOwner(t));
    ws = `/api/v1/workspaces/${workspaceId}`;
  });
  afterEach(async () => {
    locker?.close();
    locker = undefined;
    await t?.close();
    await up?.close();
  });

  const count = async (action: string) =>
    Number(
      (
        await t.ctx.db
          .selectFrom('audit_events')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('action', '=', action)
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('reveal, create, Send, a run and login answer 503 database_busy, never 500; nothing half-written; then served', async () => {
    const created = await owner.post(`${ws}/secrets`, {
      name: 'k',
      visibility: 'masked',
      value: VALUE,
      allowedHosts: ['127.0.0.1'],
    });
    expect(created.status, created.text).toBe(201);
    const reveal = `${ws}/secrets/${created.body.id}/reveal`;
    const block = {
      id: 'call',
      type: 'api',
      method: 'GET',
      url: `${up.url}/ping`,
      headers: [{ key: 'Authorization', value: 'Bearer {{secret:k}}' }],
    };
    const workflow = await owner.post(`${ws}/workflows`, { name: 'wf', startBlockId: 'call', blocks: [block] });
    expect(workflow.status, workflow.text).toBe(201);
    const runs = `${ws}/workflows/${workflow.body.id}/runs`;
    expect((await owner.post(reveal)).body).toEqual({ value: VALUE });
    const before = {
      revealed: await count('secret.revealed'),
      used: await count('secret.used'),
      runs: await count('run.finished'),
      started: await count('run.started'),
      calls: up.received.length,
    };

    locker = new SQLite(path.join(t.dataDir, 'hush.db'));
    locker.exec('BEGIN IMMEDIATE');
    const answers: Record<string, Reply> = {
      reveal: await owner.post(reveal),
      create: await owner.post(`${ws}/secrets`, { name: 'during', visibility: 'masked', value: 'written-while-busy' }),
      send: await owner.post(`${ws}/blocks/send`, { block }),
    };
    // Send records its `secret.used` before the call goes out: that append found the lock held,
    // so nothing was sent.
    expect(up.received.length).toBe(before.calls);
    Object.assign(answers, {
      run: await owner.post(runs, {}),
      login: await t.client().post('/api/v1/auth/login', { email: 'owner@example.com', password: PASSWORD }),
    });
    for (const [name, answer] of Object.entries(answers)) {
      expect(answer.status, `${name}: ${answer.text}`).toBe(503);
      expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(answer.body.code, name).toBe('database_busy');
      expect(answer.headers['retry-after'], name).toBe('5');
      expect(answer.body.requestId).toEqual(expect.any(String));
    }
    for (const text of [...Object.values(answers).map((a) => a.text), ...t.logs]) {
      expect(text).not.toContain(VALUE);
      expect(text).not.toContain(t.dataDir);
    }
    // Reads do not need the write lock (WAL): the server still answers them.
    expect((await owner.get(`${ws}/secrets`)).status).toBe(200);
    locker.exec('ROLLBACK');

    // Nothing of the refused requests was written.
    expect(await count('secret.revealed')).toBe(before.revealed);
    expect(await count('secret.used')).toBe(before.used);
    expect(await count('run.finished')).toBe(before.runs);
    expect(await count('run.started')).toBe(before.started);
    // The run stopped at its first write (run.started), before any call.
    expect(up.received.length).toBe(before.calls);
    const names = (await owner.get(`${ws}/secrets`)).body.items.map((s: { name: string }) => s.name);
    expect(names).toEqual(['k']);

    // Served again, no restart.
    expect((await owner.post(reveal)).body).toEqual({ value: VALUE });
    expect((await owner.post(`${ws}/blocks/send`, { block })).status).toBe(200);
    expect((await owner.post(runs, {})).status).toBe(201);
    expect(
      (await t.client().post('/api/v1/auth/login', { email: 'owner@example.com', password: PASSWORD })).status,
    ).toBe(200);
    expect(await verifyChain(t.ctx.db, ws.split('/').at(-1) as string, { mustExist: true })).toMatchObject({
      ok: true,
    });
    expect(await verifyChain(t.ctx.db, 'system')).toMatchObject({ ok: true });
  }, 120_000);
});
