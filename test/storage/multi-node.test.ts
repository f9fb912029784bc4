/**
 * Two `hush serve` processes on one PostgreSQL and one Redis (SPEC §6,
 * issue 7): whatever one server changes, the very next request on the other
 * sees — a secret's new value, its deletion, restoration and new allowed
 * hosts (no stale value is ever sent outbound), a member's removal or a
 * role's lost permission, a revoked token — and a rate limit counted on one
 * holds on the other. Both servers cache tokens, memberships and secrets
 * (workspace-cache.ts), and each pair of requests warms the other server's
 * cache first, so a missed invalidation shows up as a stale answer.
 * Also: the jobs that must run once (retention sweep, key rotations) take a
 * PostgreSQL advisory lock, and a second runner is refused or skips.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withJobLock } from '../../src/db/job-lock.js';
import {
  type ApiReply,
  createSite,
  createToken,
  HushClient,
  type HushServer,
  type HushSite,
  killStartedProcesses,
  type Owner,
  PASSWORD,
  runHush,
  setUp,
  startServer,
  tokenClient,
} from '../support/cli.js';
import { DATABASES } from '../support/databases.js';
import { REDIS_URL, redisUp } from '../support/redis.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const pgAvailable = DATABASES.find((d) => d.kind === 'postgres')?.available ?? false;
if (process.env.CI === 'true' && !redisUp) throw new Error(`Redis is required under CI=true (${REDIS_URL})`);
const available = pgAvailable && redisUp;
if (!available) console.warn('NOTICE: multi-node tests SKIPPED (PostgreSQL and Redis are needed)');

const REVEAL_LIMIT = 4;

describe('two servers on one PostgreSQL', () => {
  let site: HushSite;
  let a: HushServer;
  let b: HushServer;
  let owner: Owner;
  let up: Upstream;
  let other: Upstream;
  let ws: string;
  /** The editor's sessions on each server, and its API tokens for each. */
  let editorA: HushClient;
  let editorB: HushClient;
  let editorUserId: string;

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    other = await startUpstream('127.0.0.2');
    up.handle((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ got: req.headers.authorization ?? null }));
    });
    site = await createSite('postgres', {
      HUSH_REDIS_URL: REDIS_URL,
      HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8',
      HUSH_REVEAL_LIMIT_PER_MIN: String(REVEAL_LIMIT),
    });
    a = await startServer(site.env);
    owner = await setUp(a);
    b = await startServer(site.env);
    ws = `/workspaces/${owner.workspaceId}`;

    const invite = await owner.session.post(`${ws}/invitations`, { email: 'editor@example.com', role: 'editor' });
    expect(invite.status, invite.text).toBe(201);
    editorA = new HushClient(`${a.origin}/api/v1`);
    const accepted = await editorA.post('/invitations/accept', {
      token: invite.body.token,
      name: 'Ed Editor',
      password: PASSWORD,
    });
    expect(accepted.status, accepted.text).toBe(201);
    editorUserId = accepted.body.user.id;
    editorB = editorA.at(b.origin);
  }, 120_000);

  afterAll(async () => {
    killStartedProcesses();
    await up?.close();
    await other?.close();
    await site?.cleanup();
  });

  const ownerOn = (server: HushServer) => owner.api.at(server.origin);
  const block = (secret: string, url = `${up.url}/call`) => ({
    block: {
      id: 'call',
      type: 'api',
      method: 'GET',
      url,
      headers: [{ key: 'Authorization', value: `Bearer {{secret:${secret}}}` }],
    },
  });
  /** Sends the block through `client` and returns the reply and what the upstream received for it. */
  async function send(client: HushClient, secret: string, target: Upstream = up) {
    const before = target.received.length;
    const reply = await client.post(`${ws}/blocks/send`, block(secret, `${target.url}/call`));
    return { reply, received: target.received.slice(before).map((r) => r.headers.authorization) };
  }
  const expectCode = (reply: ApiReply, status: number, code: string) => {
    expect(reply.status, reply.text).toBe(status);
    expect(reply.body?.code, reply.text).toBe(code);
  };

  it.runIf(available)(
    'a secret updated on either server is sent in its new version by the next request on the other',
    async () => {
      const created = await ownerOn(a).post(`${ws}/secrets`, {
        name: 'crm_token',
        visibility: 'restricted',
        value: 'value-0',
        allowedHosts: ['127.0.0.1'],
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.id as string;
      for (let i = 1; i <= 20; i++) {
        const [writer, reader] = i % 2 === 1 ? [a, b] : [b, a];
        // The reader's cache holds the previous version.
        const warm = await send(ownerOn(reader), 'crm_token');
        expect(warm.received).toEqual([`Bearer value-${i - 1}`]);
        const updated = await ownerOn(writer).patch(`${ws}/secrets/${id}`, { value: `value-${i}` });
        expect(updated.status, updated.text).toBe(200);
        const next = await send(ownerOn(reader), 'crm_token');
        expect(next.reply.status, next.reply.text).toBe(200);
        expect(next.received, `round ${i}: ${writer.origin} wrote, ${reader.origin} sent`).toEqual([
          `Bearer value-${i}`,
        ]);
        expect(next.reply.text).not.toContain(`value-${i}`);
      }
    },
  );

  it.runIf(available)(
    'deleted, restored and re-bound on one server: the other refuses or sends accordingly, at once',
    async () => {
      const created = await ownerOn(a).post(`${ws}/secrets`, {
        name: 'erp_key',
        visibility: 'masked',
        value: 'erp-value-1',
        allowedHosts: ['127.0.0.1'],
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.id as string;
      expect((await send(ownerOn(b), 'erp_key')).received).toEqual(['Bearer erp-value-1']);

      expect((await ownerOn(a).request('DELETE', `${ws}/secrets/${id}`)).status).toBe(204);
      const afterDelete = await send(ownerOn(b), 'erp_key');
      expectCode(afterDelete.reply, 422, 'secret_unavailable');
      expect(afterDelete.received).toEqual([]);

      expect((await ownerOn(a).post(`${ws}/secrets/${id}/restore`)).status).toBe(200);
      expect((await send(ownerOn(b), 'erp_key')).received).toEqual(['Bearer erp-value-1']);

      // Allowed hosts moved to 127.0.0.2 on A: B no longer sends it to 127.0.0.1, and does send it there.
      const rebound = await ownerOn(a).patch(`${ws}/secrets/${id}`, { allowedHosts: ['127.0.0.2'] });
      expect(rebound.status, rebound.text).toBe(200);
      const refused = await send(ownerOn(b), 'erp_key');
      expectCode(refused.reply, 403, 'host_not_allowed');
      expect(refused.received).toEqual([]);
      expect((await send(ownerOn(b), 'erp_key', other)).received).toEqual(['Bearer erp-value-1']);
    },
  );

  it.runIf(available)(
    "a role's lost permission and a member's removal on one server hold on the other at once",
    async () => {
      const role = await owner.session.post(`${ws}/roles`, {
        name: 'Sender',
        permissions: ['workflows.read', 'workflows.edit', 'secrets.read', 'secrets.use', 'variables.read'],
      });
      expect(role.status, role.text).toBe(201);
      expect((await owner.session.patch(`${ws}/members/${editorUserId}`, { role: role.body.id })).status).toBe(204);
      await ownerOn(a).post(`${ws}/secrets`, {
        name: 'sender_key',
        visibility: 'masked',
        value: 'sender-value',
        allowedHosts: ['127.0.0.1'],
      });
      const editorToken = await createToken(editorA, owner.workspaceId);
      const tokenOnB = tokenClient(b.origin, editorToken);
      expect((await send(tokenOnB, 'sender_key')).received).toEqual(['Bearer sender-value']);
      expect((await send(editorB, 'sender_key')).received).toEqual(['Bearer sender-value']);

      // The role loses secrets.use on A: B refuses the next Send, by token and by session.
      const narrowed = await owner.session.patch(`${ws}/roles/${role.body.id}`, {
        permissions: ['workflows.read', 'workflows.edit', 'secrets.read', 'variables.read'],
      });
      expect(narrowed.status, narrowed.text).toBe(200);
      for (const client of [tokenOnB, editorB]) {
        const refused = await send(client, 'sender_key');
        expectCode(refused.reply, 403, 'forbidden');
        expect(refused.received).toEqual([]);
      }
      expect((await tokenOnB.get(`${ws}/secrets`)).status).toBe(200);

      // Removed on A: B answers 404 (not a member) to the session and 401 to the token (deleted with the membership).
      expect((await owner.session.request('DELETE', `${ws}/members/${editorUserId}`)).status).toBe(204);
      expectCode(await editorB.get(`${ws}/secrets`), 404, 'not_found');
      expectCode(await tokenOnB.get(`${ws}/secrets`), 401, 'unauthenticated');
      const afterRemoval = await send(tokenOnB, 'sender_key');
      expect(afterRemoval.reply.status).toBe(401);
      expect(afterRemoval.received).toEqual([]);
    },
  );

  it.runIf(available)(
    'a reveal on one server answers the value and state the other just wrote, never a cached older one',
    async () => {
      // A member of its own (the reveal limit is per user): four reveals, all on B, each after a write on A.
      const invite = await owner.session.post(`${ws}/invitations`, { email: 'revealer@example.com', role: 'admin' });
      expect(invite.status, invite.text).toBe(201);
      const revealerA = new HushClient(`${a.origin}/api/v1`);
      const joined = await revealerA.post('/invitations/accept', {
        token: invite.body.token,
        name: 'Rita Revealer',
        password: PASSWORD,
      });
      expect(joined.status, joined.text).toBe(201);
      const revealerB = revealerA.at(b.origin);

      const created = await revealerA.post(`${ws}/secrets`, {
        name: 'reveal_probe',
        visibility: 'masked',
        value: 'r-0',
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.id as string;
      const reveal = () => revealerB.post(`${ws}/secrets/${id}/reveal`);
      expect((await reveal()).body).toEqual({ value: 'r-0' });
      expect((await revealerA.patch(`${ws}/secrets/${id}`, { value: 'r-1' })).status).toBe(200);
      expect((await reveal()).body).toEqual({ value: 'r-1' });
      expect((await revealerA.request('DELETE', `${ws}/secrets/${id}`)).status).toBe(204);
      expectCode(await reveal(), 409, 'secret_deleted');
      expect((await revealerA.post(`${ws}/secrets/${id}/restore`)).status).toBe(200);
      expect((await revealerA.patch(`${ws}/secrets/${id}`, { value: 'r-2' })).status).toBe(200);
      expect((await reveal()).body).toEqual({ value: 'r-2' });
    },
  );

  it.runIf(available)(
    'a secrets list cached on one server shows every change and use made through the other at once',
    async () => {
      const list = async (server: HushServer) => {
        const page = await ownerOn(server).get(`${ws}/secrets?limit=100`);
        expect(page.status, page.text).toBe(200);
        return page.body.items.find((s: { name: string }) => s.name === 'list_probe') ?? null;
      };
      const created = await ownerOn(a).post(`${ws}/secrets`, {
        name: 'list_probe',
        visibility: 'masked',
        value: 'probe-value',
        allowedHosts: ['127.0.0.1'],
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.id as string;
      // Twice on A, so its page is cached for the current head.
      expect((await list(a))?.lastUsedAt).toBeNull();
      expect((await list(a))?.version).toBe(1);

      expect((await ownerOn(b).patch(`${ws}/secrets/${id}`, { description: 'moved on B' })).status).toBe(200);
      expect(await list(a)).toMatchObject({ description: 'moved on B', version: 1, lastUsedAt: null });

      // A use on B (no change epoch, only the audit sequence moves) shows as lastUsedAt on A.
      expect((await send(ownerOn(b), 'list_probe')).received).toEqual(['Bearer probe-value']);
      const used = await list(a);
      expect(typeof used?.lastUsedAt).toBe('string');

      expect((await ownerOn(b).request('DELETE', `${ws}/secrets/${id}`)).status).toBe(204);
      expect(await list(a)).toBeNull();
      const deleted = await ownerOn(a).get(`${ws}/secrets?deleted=true`);
      expect(deleted.body.items.map((s: { id: string }) => s.id)).toContain(id);
      expect((await ownerOn(b).post(`${ws}/secrets/${id}/restore`)).status).toBe(200);
      expect((await list(a))?.deletedAt).toBeNull();
    },
  );

  it.runIf(available)('a token revoked on one server is refused by the other at once', async () => {
    const ids = async () => ((await owner.session.get('/tokens')).body.items as { id: string }[]).map((t) => t.id);
    const before = await ids();
    const token = await createToken(owner.session, owner.workspaceId);
    const id = (await ids()).find((t) => !before.includes(t));
    const onB = tokenClient(b.origin, token);
    expect((await onB.get(`${ws}/secrets`)).status).toBe(200);
    expect((await owner.session.request('DELETE', `/tokens/${id}`)).status).toBe(204);
    expectCode(await onB.get(`${ws}/secrets`), 401, 'unauthenticated');
  });

  it.runIf(available)('the reveal limit counted on one server holds on the other', async () => {
    const created = await ownerOn(a).post(`${ws}/secrets`, { name: 'reveal_me', visibility: 'masked', value: 'rv' });
    expect(created.status, created.text).toBe(201);
    const url = `${ws}/secrets/${created.body.id}/reveal`;
    for (let i = 0; i < REVEAL_LIMIT; i++) {
      const r = await (i % 2 === 0 ? owner.session : owner.session.at(b.origin)).post(url);
      expect(r.status, r.text).toBe(200);
    }
    expectCode(await owner.session.at(b.origin).post(url), 429, 'rate_limited');
    expectCode(await owner.session.post(url), 429, 'rate_limited');
  });

  it.runIf(available)('a key rotation holds an advisory lock: a second one is refused, the sweep skips', async () => {
    const holder = new pg.Client({ connectionString: site.pgUrl });
    await holder.connect();
    try {
      const key = `hush:workspace-key:${owner.workspaceId}`;
      await holder.query('select pg_advisory_lock(hashtext($1))', [key]);
      const before = await holder.query('select active_key_version from workspaces where id = $1', [owner.workspaceId]);
      const busy = await runHush(['keys', 'rotate-workspace', owner.workspaceId], site.env);
      expect(busy.code, busy.stderr).toBe(1);
      expect(busy.stderr).toMatch(/^hush: workspace .* another `hush keys rotate-workspace` is re-encrypting it/m);
      const after = await holder.query('select active_key_version from workspaces where id = $1', [owner.workspaceId]);
      expect(after.rows).toEqual(before.rows);
      await holder.query('select pg_advisory_unlock(hashtext($1))', [key]);

      const ran = await runHush(['keys', 'rotate-workspace', owner.workspaceId], site.env);
      expect(ran.code, ran.stderr).toBe(0);
      const rotated = await holder.query('select active_key_version from workspaces where id = $1', [
        owner.workspaceId,
      ]);
      expect(Number(rotated.rows[0].active_key_version)).toBe(Number(before.rows[0].active_key_version) + 1);
      // Both servers still send the secrets (re-encrypted under the new key).
      expect((await send(ownerOn(a), 'crm_token')).received).toEqual(['Bearer value-20']);
      expect((await send(ownerOn(b), 'crm_token')).received).toEqual(['Bearer value-20']);

      const keyFile = readFileSync(path.join(site.dataDir, 'master.key'), 'utf8');
      await holder.query('select pg_advisory_lock(hashtext($1))', ['hush:root-keys']);
      const rootBusy = await runHush(['keys', 'rotate-root'], site.env);
      expect(rootBusy.code, rootBusy.stderr).toBe(1);
      expect(rootBusy.stderr).toMatch(/another `hush keys rotate-root` or `retire-root` is running/);
      expect(readFileSync(path.join(site.dataDir, 'master.key'), 'utf8')).toBe(keyFile);

      // The retention sweep: a server that finds the lock taken skips its round.
      await holder.query('select pg_advisory_lock(hashtext($1))', ['hush:secret-retention-sweep']);
      const ctx = await site.open();
      try {
        let called = 0;
        const skipped = await withJobLock(ctx, 'secret-retention-sweep', async () => ++called);
        expect({ skipped, called }).toEqual({ skipped: { ran: false }, called: 0 });
        await holder.query('select pg_advisory_unlock(hashtext($1))', ['hush:secret-retention-sweep']);
        expect(await withJobLock(ctx, 'secret-retention-sweep', async () => ++called)).toEqual({ ran: true, value: 1 });
      } finally {
        await ctx.close();
      }
    } finally {
      await holder.end();
    }
  });
});
