/**
 * PostgreSQL goes away while servers serve, and comes back. Hush reaches it
 * through a TCP relay on 127.0.0.1 that the tests cut (connections dropped,
 * new ones refused), stall (kept open, nothing passed on) and restore; the
 * shared PostgreSQL itself is never touched.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/modules/audit/audit-service.js';
import { createPostgresDatabase, DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { TcpRelay } from '../support/tcp-relay.js';

const pgAvailable = DATABASES.some((d) => d.kind === 'postgres' && d.available);
/** In the URL Hush is given: must never reach an answer or a log line. */
const PASSWORD_IN_URL = 'url-password-5e1f0c';
const VALUE = 'outage-secret-value-7d2a';

const until = async (check: () => Promise<boolean>, what: string) => {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`never: ${what}`);
};

describe.runIf(pgAvailable)('PostgreSQL going away and coming back', () => {
  let relay: TcpRelay;
  let t: TestApp;
  let drop: () => Promise<void>;
  let owner: TestClient;
  let workspaceId: string;
  let reveal: string;
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);

  /** The test database, reached directly (not through the relay). */
  let directUrl: string;

  const start = async (env: Record<string, string> = {}) => {
    const pgDb = await createPostgresDatabase();
    drop = pgDb.drop;
    directUrl = pgDb.url;
    relay = new TcpRelay('127.0.0.1', 5432);
    await relay.up();
    const url = new URL(pgDb.url);
    url.port = String(relay.port);
    url.password = PASSWORD_IN_URL;
    t = await startTestApp('sqlite', { HUSH_DATABASE_URL: url.toString(), ...env });
    ({ owner, workspaceId } = await setupOwner(t));
    const created = await owner.post(`/api/v1/workspaces/${workspaceId}/secrets`, {
      name: 'k',
      visibility: 'masked',
      value: VALUE,
    });
    expect(created.status, created.text).toBe(201);
    reveal = `/api/v1/workspaces/${workspaceId}/secrets/${created.body.id}/reveal`;
    expect((await owner.post(reveal)).status).toBe(200);
  };

  beforeEach(() => {
    uncaught.length = 0;
    process.on('uncaughtException', onUncaught);
  });
  afterEach(async () => {
    process.off('uncaughtException', onUncaught);
    await relay?.up().catch(() => {});
    await t?.close();
    await relay?.down();
    await drop?.();
  });

  it('a connection lost while a request is using it fails that request; the server does not crash', async () => {
    await start();
    relay.stall();
    const pending = owner.get(`/api/v1/workspaces/${workspaceId}/secrets`);
    await until(async () => relay.held > 0, 'the request reached the database');
    await relay.down();
    const answer = await pending;
    expect(answer.status, answer.text).toBe(503);
    expect(answer.body.code).toBe('database_unavailable');
    // A checked-out pg client whose connection ends emits 'error': with no listener, Node exits.
    expect(uncaught).toEqual([]);
    await relay.up();
    // A connection the cut ended may still sit idle in the pool (its end not yet seen): a
    // request meeting one answers 503 and the pool drops it — at most one per pooled connection.
    let back = await owner.post(reveal);
    for (let i = 0; i < 10 && back.status === 503; i++) {
      expect(back.body.code).toBe('database_unavailable');
      back = await owner.post(reveal);
    }
    expect(back.body).toEqual({ value: VALUE });
  });

  it('while it is unreachable: 503 database_unavailable, nothing half-written or leaked; back: served again', async () => {
    await start();
    await relay.down();
    const secrets = `/api/v1/workspaces/${workspaceId}/secrets`;
    const answers = [
      await owner.get(secrets),
      await owner.post(secrets, { name: 'during', visibility: 'masked', value: 'written-during-outage' }),
      await owner.post(reveal),
    ];
    for (const answer of answers) {
      expect(answer.status, answer.text).toBe(503);
      expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(answer.body.code).toBe('database_unavailable');
      expect(answer.headers['retry-after']).toBe('5');
      expect(answer.body.requestId).toEqual(expect.any(String));
    }
    const ready = await t.client().get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.code).toBe('not_ready');
    for (const text of [...answers.map((a) => a.text), ...t.logs]) {
      expect(text).not.toContain(VALUE);
      expect(text).not.toContain(PASSWORD_IN_URL);
      expect(text).not.toContain(`:${relay.port}`);
    }

    await relay.up();
    expect((await t.client().get('/readyz')).status).toBe(200);
    expect((await owner.post(reveal)).body).toEqual({ value: VALUE });
    const list = await owner.get(secrets);
    expect(list.body.items.map((s: { name: string }) => s.name)).toEqual(['k']);
    expect(await verifyChain(t.ctx.db, workspaceId, { mustExist: true })).toMatchObject({ ok: true });
  });

  /** The bound under test (HUSH_DATABASE_TIMEOUT_SECONDS), and room for a loaded machine. */
  const TIMEOUT_S = 1;
  const MARGIN_MS = 20_000;

  it('a database that stops answering (a silent network): requests answer 503 within the timeout, then recover', async () => {
    await start({ HUSH_DATABASE_TIMEOUT_SECONDS: String(TIMEOUT_S) });
    relay.stall();
    const began = Date.now();
    const [list, ready] = await Promise.all([
      owner.get(`/api/v1/workspaces/${workspaceId}/secrets`),
      t.client().get('/readyz'),
    ]);
    // At most: the statement's timeout, the connection's, and the pool wait behind them.
    expect(Date.now() - began).toBeLessThan(3 * TIMEOUT_S * 1000 + MARGIN_MS);
    expect(list.status, list.text).toBe(503);
    expect(list.body.code).toBe('database_unavailable');
    expect(ready.status).toBe(503);
    relay.resume();
    await until(async () => (await t.client().get('/readyz')).status === 200, 'ready again');
    expect((await owner.post(reveal)).body).toEqual({ value: VALUE });
  }, 60_000);

  it('a row locked by another connection: the request waits at most the timeout; nothing is answered unaudited', async () => {
    await start({ HUSH_DATABASE_TIMEOUT_SECONDS: String(TIMEOUT_S) });
    const locker = new pg.Client({ connectionString: directUrl });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('select * from audit_heads where chain = $1 for update', [workspaceId]);
      const began = Date.now();
      const refused = await owner.post(reveal);
      // The one-statement append, then the locked path: two statements, each bounded.
      expect(Date.now() - began).toBeLessThan(3 * TIMEOUT_S * 1000 + MARGIN_MS);
      expect(refused.status, refused.text).toBe(503);
      expect(refused.body.code).toBe('database_unavailable');
      expect(refused.text).not.toContain(VALUE);
      await locker.query('commit');
    } finally {
      await locker.end();
    }
    expect((await owner.post(reveal)).body).toEqual({ value: VALUE });
    const revealed = await t.ctx.db
      .selectFrom('audit_events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('action', '=', 'secret.revealed')
      .executeTakeFirstOrThrow();
    // The reveal in start() and the one after: the refused one answered no value and left no event.
    expect(Number(revealed.n)).toBe(2);
    expect(await verifyChain(t.ctx.db, workspaceId, { mustExist: true })).toMatchObject({ ok: true });
  }, 60_000);

  it('backends terminated mid-request (pg_terminate_backend): 200 or 503, never 500; the trail stays whole', async () => {
    await start();
    const admin = new pg.Client({ connectionString: directUrl });
    await admin.connect();
    const secrets = `/api/v1/workspaces/${workspaceId}/secrets`;
    const reveals: Promise<{ status: number; text: string }>[] = [];
    const creates: Promise<{ status: number; text: string }>[] = [];
    try {
      for (let round = 0; round < 8; round++) {
        for (let i = 0; i < 4; i++) reveals.push(owner.post(reveal));
        creates.push(owner.post(secrets, { name: `c${round}`, visibility: 'masked', value: `created-${round}-0123` }));
        await new Promise((r) => setTimeout(r, round * 3));
        await admin.query(
          'select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
        );
      }
      const answered = await Promise.all([...reveals, ...creates]);
      for (const a of answered) expect([200, 201, 503], a.text).toContain(a.status);
      expect(uncaught).toEqual([]);
      // Back to normal with no restart.
      await until(async () => (await owner.post(reveal)).status === 200, 'reveals again');
      const revealedOk = (await Promise.all(reveals)).filter((a) => a.status === 200).length + 1;
      const events = await t.ctx.db
        .selectFrom('audit_events')
        .select(['action', 'target_id'])
        .where('workspace_id', '=', workspaceId)
        .execute();
      // No value answered without its event (an event whose answer was lost may be extra).
      expect(events.filter((e) => e.action === 'secret.revealed').length).toBeGreaterThanOrEqual(revealedOk + 1);
      // Every secret stored has its creation event, and every one answered 201 was stored.
      const stored = await t.ctx.db.selectFrom('secrets').select(['id', 'name']).execute();
      const createdIds = new Set(events.filter((e) => e.action === 'secret.created').map((e) => e.target_id));
      for (const secret of stored) expect(createdIds.has(secret.id), secret.name).toBe(true);
      const names = new Set(stored.map((s) => s.name));
      for (const [round, a] of (await Promise.all(creates)).entries())
        if (a.status === 201) expect(names.has(`c${round}`)).toBe(true);
      expect(await verifyChain(t.ctx.db, workspaceId, { mustExist: true })).toMatchObject({ ok: true });
      expect(await verifyChain(t.ctx.db, 'system')).toMatchObject({ ok: true });
    } finally {
      await admin.end();
    }
  }, 60_000);
});
