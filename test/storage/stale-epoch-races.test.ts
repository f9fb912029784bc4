/**
 * Two app contexts (two servers) on one PostgreSQL database, each with its own
 * workspace cache:
 *
 * - a request that is still arriving on one server while the other changes
 *   something acts on the change, never on what the first server's cache held
 *   when the request began;
 * - a secret restored on one server while the other's retention sweep purges
 *   it is either restored (and kept) or purged (and the restore refused).
 */
import { connect, type Socket } from 'node:net';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAppContext } from '../../src/app/bootstrap.js';
import type { AppContext } from '../../src/app/context.js';
import type { App } from '../../src/app/http.js';
import { buildServer } from '../../src/app/server.js';
import { purgeExpiredSecrets } from '../../src/modules/secrets/secret-service.js';
import { DATABASES } from '../support/databases.js';
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import { PASSWORD, startTestApp, type TestApp, TestClient } from '../support/harness.js';
import { until } from '../support/until.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const available = DATABASES.find((d) => d.kind === 'postgres')?.available ?? false;

/** An HTTP/1.1 request written in two parts: headers and the body's first half, then the rest. */
function slowRequest(port: number, path: string, headers: Record<string, string>, body: string) {
  const socket: Socket = connect(port, '127.0.0.1');
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    answer += chunk;
  });
  const ended = new Promise<string>((resolve, reject) => {
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
  const head = [
    `POST ${path} HTTP/1.1`,
    'host: 127.0.0.1',
    'connection: close',
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ].join('\r\n');
  const half = Math.floor(body.length / 2);
  socket.write(`${head}\r\n\r\n${body.slice(0, half)}`);
  return {
    async finish(): Promise<{ status: number; body: string }> {
      socket.write(body.slice(half));
      const text = await ended;
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      return { status, body: text.slice(text.indexOf('\r\n\r\n') + 4) };
    },
  };
}

describe('two servers on one PostgreSQL: stale epochs', () => {
  let t: TestApp;
  let other: { ctx: AppContext & { close(): Promise<void> }; app: App };
  let up: Upstream;
  let port: number;

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    up.handle((_req, res) => res.end('{"ok":true}'));
    t = await startTestApp('postgres', { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8', HUSH_SECRET_RETENTION_DAYS: '1' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as { port: number }).port;
    const ctx = await createAppContext(t.ctx.config, t.ctx.log);
    const app = await buildServer(ctx);
    await app.ready();
    other = { ctx, app };
  }, 120_000);

  afterAll(async () => {
    await other?.app.close();
    await other?.ctx.close();
    await t?.close();
    await up?.close();
  });

  /** The owner (set up by the first test), signed in anew on this server, and their workspace's API path. */
  const signIn = async () => {
    const owner = t.client();
    const login = await owner.post('/api/v1/auth/login', { email: 'owner@example.com', password: PASSWORD });
    expect(login.status, login.text).toBe(200);
    const me = await owner.get('/api/v1/me');
    return { owner, ws: `/api/v1/workspaces/${me.body.workspaces[0].id}` };
  };

  /** `client`'s session, on the other server. */
  const onOther = (client: TestClient) => {
    const moved = new TestClient(other.app);
    for (const [k, v] of client.cookies) moved.cookies.set(k, v);
    return moved;
  };

  it.runIf(available)(
    "an API token request whose body arrives after its member was removed on the other server sends nothing (the server's cache held the member and the secret)",
    async () => {
      const { owner, workspaceId } = await setupOwner(t);
      const ws = `/api/v1/workspaces/${workspaceId}`;
      const editor = await inviteAndJoin(t, owner, workspaceId, 'slow-editor@example.com', 'editor');
      const created = await owner.post(`${ws}/secrets`, {
        name: 'crm_key',
        visibility: 'restricted',
        value: 'crm-value-0123456789',
        allowedHosts: ['127.0.0.1'],
      });
      expect(created.status, created.text).toBe(201);
      const tokens: { id: string; token: string }[] = [];
      for (const name of ['warm', 'slow']) {
        const made = await editor.client.post('/api/v1/tokens', { name, workspaceId, expiresInDays: 1 });
        expect(made.status, made.text).toBe(201);
        tokens.push({ id: made.body.id, token: made.body.token });
      }
      const [warm, slow] = tokens as [{ id: string; token: string }, { id: string; token: string }];
      const send = {
        block: {
          id: 'call',
          type: 'api',
          method: 'GET',
          url: `${up.url}/call`,
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:crm_key}}' }],
        },
      };

      // This server's cache holds the editor's membership and the secret.
      const warmed = t.client();
      warmed.bearer = warm.token;
      const first = await warmed.post(`${ws}/blocks/send`, send);
      expect(first.status, first.text).toBe(200);
      expect(up.received.at(-1)?.headers.authorization).toBe('Bearer crm-value-0123456789');
      const sentBefore = up.received.length;

      // A Send with the other token: its headers are in (the token was checked: its first use is
      // recorded), its body is not yet.
      const request = slowRequest(
        port,
        `${ws}/blocks/send`,
        { authorization: `Bearer ${slow.token}` },
        JSON.stringify(send),
      );
      await until(async () => {
        const row = await t.ctx.db
          .selectFrom('api_tokens')
          .select('last_used_at')
          .where('id', '=', slow.id)
          .executeTakeFirst();
        return row?.last_used_at != null;
      }, 'the slow request was authenticated');

      // The other server removes the editor (their tokens go with the membership).
      const removed = await onOther(owner).delete(`${ws}/members/${editor.userId}`);
      expect(removed.status, removed.text).toBe(204);

      const answer = await request.finish();
      expect(answer.status, answer.body).toBe(401);
      expect(up.received.length, 'the upstream got a call from a removed member').toBe(sentBefore);
    },
    60_000,
  );

  it.runIf(available)(
    'a session request whose body arrives after the session was signed out on the other server is refused',
    async () => {
      const { owner, ws } = await signIn();
      // Last seen two minutes ago: reading the session for the request below records it anew.
      const seen = new Date(Date.now() - 120_000).toISOString();
      await t.ctx.db.updateTable('sessions').set({ last_seen_at: seen }).execute();
      const cookie = [...owner.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      const request = slowRequest(
        port,
        `${ws}/secrets`,
        { cookie, 'x-hush-csrf': owner.cookies.get('hush_csrf') ?? '' },
        JSON.stringify({ name: 'after_sign_out', visibility: 'masked', value: 'written-after-sign-out' }),
      );
      await until(async () => {
        const rows = await t.ctx.db.selectFrom('sessions').select('last_seen_at').execute();
        return rows.some((r) => r.last_seen_at !== seen);
      }, 'the request read its session');
      const out = await onOther(owner).post('/api/v1/auth/logout');
      expect(out.status, out.text).toBe(204);
      const answer = await request.finish();
      expect(answer.status, answer.body).toBe(401);
      const written = await t.ctx.db
        .selectFrom('secrets')
        .select('id')
        .where('name', '=', 'after_sign_out')
        .executeTakeFirst();
      expect(written, 'a signed-out session created a secret').toBeUndefined();
    },
    60_000,
  );

  it.runIf(available)(
    "a secret restored on one server while the other's retention sweep purges it stays restored",
    async () => {
      const { owner, ws } = await signIn();
      const created = await owner.post(`${ws}/secrets`, {
        name: 'almost_expired',
        visibility: 'masked',
        value: 'restore-me-0123456789',
        allowedHosts: ['127.0.0.1'],
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.id as string;
      expect((await owner.delete(`${ws}/secrets/${id}`)).status).toBe(204);
      // Deleted a day less a minute ago: restorable now; a sweep a few minutes on purges it.
      await t.ctx.db
        .updateTable('secrets')
        .set({ deleted_at: new Date(Date.now() - 86_400_000 + 60_000).toISOString() })
        .where('id', '=', id)
        .execute();

      const url = t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '';
      const waiting = async (n: number) => {
        const { rows } = await t.ctx.db.executeQuery<{ n: string }>(
          sql`select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.compile(
            t.ctx.db,
          ),
        );
        return Number(rows[0]?.n) >= n;
      };
      // Someone holds the secret's row (a use being recorded, say): the restore queues behind it…
      const holder = new pg.Client({ connectionString: url });
      await holder.connect();
      try {
        await holder.query('begin');
        await holder.query('select id from secrets where id = $1 for update', [id]);
        const restore = owner.post(`${ws}/secrets/${id}/restore`);
        await until(() => waiting(1), 'the restore waits for the row');
        // …and so does the other server's sweep, which found the secret still deleted.
        const sweep = purgeExpiredSecrets(other.ctx, Date.now() + 5 * 60_000);
        await until(() => waiting(2), 'the sweep waits for the row');
        await holder.query('commit');
        const [restored, purged] = await Promise.all([restore, sweep]);
        expect(restored.status, restored.text).toBe(200);
        expect(purged).toBe(0);
      } finally {
        await holder.end();
      }
      const after = await owner.get(`${ws}/secrets/${id}`);
      expect(after.status, after.text).toBe(200);
      expect(after.body.deletedAt).toBeNull();
      const revealed = await owner.post(`${ws}/secrets/${id}/reveal`);
      expect(revealed.status, revealed.text).toBe(200);
      expect(revealed.body.value).toBe('restore-me-0123456789');
    },
    60_000,
  );
});
