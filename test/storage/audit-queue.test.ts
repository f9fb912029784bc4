/**
 * The group-commit audit queue (audit-queue.ts) on both databases, and on
 * PostgreSQL its append at a known head: once a server knows where a chain
 * ends, a batch commits in one statement; a head moved by anyone else fails
 * the compare, and the batch tries once more at the head that statement
 * found, then takes the locked path — so two servers
 * appending to one chain at once still leave it gap-free, each event once,
 * and the secrets' `lastUsedAt` is kept either way.
 */
import type { KyselyPlugin } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { type AuditEntry, createAuditWriter } from '../../src/modules/audit/audit-log.js';
import { createAuditQueue } from '../../src/modules/audit/audit-queue.js';
import { verifyChain } from '../../src/modules/audit/audit-service.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';

const SYSTEM = { actorId: null, actorType: 'system', ip: null, requestId: 'req-test' } as const;

/** Counts the statements a Kysely instance runs (transaction control is the driver's, not counted). */
function counting(db: Db): { db: Db; count(): number } {
  let n = 0;
  const plugin: KyselyPlugin = {
    transformQuery: (args) => args.node,
    transformResult: async (args) => {
      n += 1;
      return args.result;
    },
  };
  return { db: db.withPlugin(plugin), count: () => n };
}

describe.each(DATABASES)('audit queue on $kind', ({ kind, available }) => {
  let t: TestApp;
  let ws: string;
  let secretId: string;
  let owner: TestClient;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    const setup = await setupOwner(t);
    owner = setup.owner;
    ws = setup.workspaceId;
    const created = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
      name: 'queued',
      visibility: 'masked',
      value: 'queue-test-value',
    });
    expect(created.status).toBe(201);
    secretId = created.body.id;
  });
  afterAll(async () => t?.close());

  const used = (n: number, tag: string): AuditEntry[] =>
    Array.from({ length: n }, (_, i) => ({
      ctx: SYSTEM,
      input: {
        workspaceId: ws,
        action: 'secret.used',
        targetType: 'secret',
        targetId: secretId,
        data: { name: 'queued', tag: `${tag}-${i}`, note: 'a "quoted", {braced} \\ value' },
      },
    }));

  async function events(tagPrefix: string) {
    const rows = await t.ctx.db
      .selectFrom('audit_events')
      .select(['seq', 'data'])
      .where('chain', '=', ws)
      .where('action', '=', 'secret.used')
      .orderBy('seq')
      .execute();
    return rows
      .map((r) => JSON.parse(r.data) as { tag: string; note: string })
      .filter((d) => d.tag.startsWith(tagPrefix));
  }

  const lastUsedAt = async () =>
    (await t.ctx.db.selectFrom('secrets').select('last_used_at').where('id', '=', secretId).executeTakeFirst())
      ?.last_used_at;

  /** Side connections: `holder` keeps a secret's row locked while `prober` looks at the locks. */
  async function sideConnections() {
    const url = t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '';
    const [holder, prober] = [new pg.Client({ connectionString: url }), new pg.Client({ connectionString: url })];
    await Promise.all([holder.connect(), prober.connect()]);
    return {
      async hold(id: string) {
        await holder.query('begin');
        await holder.query('select id from secrets where id = $1 for update', [id]);
      },
      release: () => holder.query('commit'),
      /** Whether another statement came to wait for a row lock (within 5 s). */
      async blocked() {
        for (let i = 0; i < 250; i++) {
          const { rows } = await prober.query(
            "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database() and pid <> pg_backend_pid()",
          );
          if (rows[0].n > 0) return true;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        return false;
      },
      /** Whether `select … for update nowait` gets its row at once (and lets it go). */
      async lockable(sql: string, id: string) {
        await prober.query('begin');
        try {
          await prober.query(sql, [id]);
          return true;
        } catch (error) {
          if ((error as { code?: string }).code === '55P03') return false;
          throw error;
        } finally {
          await prober.query('rollback');
        }
      },
      async close() {
        await holder.query('rollback').catch(() => {});
        await Promise.all([holder.end(), prober.end()]);
      },
    };
  }

  it.skipIf(!available)('appends each batch whole, in order, with lastUsedAt kept', async () => {
    const { db } = counting(t.ctx.db);
    const queue = createAuditQueue({ db, kind, audit: createAuditWriter(kind) });
    await t.ctx.db.updateTable('secrets').set({ last_used_at: null }).where('id', '=', secretId).execute();
    await Promise.all([
      queue.append(used(3, 'order-a'), { secretsUsed: [secretId] }),
      queue.append(used(2, 'order-b'), { secretsUsed: [secretId] }),
    ]);
    await queue.append(used(4, 'order-c'), { secretsUsed: [secretId] });
    const tags = (await events('order-')).map((d) => d.tag);
    expect(tags).toEqual(['a-0', 'a-1', 'a-2', 'b-0', 'b-1', 'c-0', 'c-1', 'c-2', 'c-3'].map((s) => `order-${s}`));
    expect((await events('order-c'))[0]?.note).toBe('a "quoted", {braced} \\ value');
    expect(await lastUsedAt()).toBeTruthy();
    expect(await verifyChain(t.ctx.db, ws)).toMatchObject({ ok: true });
  });

  if (kind === 'postgres')
    it.skipIf(!available)(
      'commits a batch at a known head in one statement, and tries the head it found when that had moved',
      async () => {
        const counted = counting(t.ctx.db);
        const queue = createAuditQueue({ db: counted.db, kind, audit: createAuditWriter(kind) });
        await queue.append(used(2, 'cas-first'), { secretsUsed: [secretId] }); // learns the head (locked path)

        let before = counted.count();
        await queue.append(used(3, 'cas-known'), { secretsUsed: [secretId] });
        expect(counted.count() - before).toBe(1);

        // Someone else appends (the app's own writer, as a change would): the known head is stale now.
        await t.ctx.db.transaction().execute((trx) =>
          createAuditWriter(kind)(trx, SYSTEM, {
            workspaceId: ws,
            action: 'workspace.renamed',
            data: { tag: 'other' },
          }),
        );
        await t.ctx.db.updateTable('secrets').set({ last_used_at: null }).where('id', '=', secretId).execute();
        before = counted.count();
        await queue.append(used(2, 'cas-moved'), { secretsUsed: [secretId] });
        // The failed compare, then one more at the head that statement found.
        expect(counted.count() - before).toBe(2);
        expect(await lastUsedAt()).toBeTruthy();

        before = counted.count();
        await queue.append(used(1, 'cas-again'), { secretsUsed: [secretId] });
        expect(counted.count() - before).toBe(1);

        expect((await events('cas-')).map((d) => d.tag)).toEqual([
          'cas-first-0',
          'cas-first-1',
          'cas-known-0',
          'cas-known-1',
          'cas-known-2',
          'cas-moved-0',
          'cas-moved-1',
          'cas-again-0',
        ]);
        expect(await verifyChain(t.ctx.db, ws)).toMatchObject({ ok: true });
      },
    );

  if (kind === 'postgres')
    it.skipIf(!available)(
      "appends nothing at a head that is not the chain's (nor touches lastUsedAt), and never to a chain without a head",
      async () => {
        const writer = createAuditWriter(kind);
        await t.ctx.db.updateTable('secrets').set({ last_used_at: null }).where('id', '=', secretId).execute();
        const at = (chain: string, head: { seq: number; hash: string }) =>
          writer.appendAtHead?.(t.ctx.db, chain, head, used(1, 'stale'), {
            now: new Date().toISOString(),
            secretIds: [secretId],
          });
        const real = await t.ctx.db
          .selectFrom('audit_heads')
          .select(['seq', 'hash'])
          .where('chain', '=', ws)
          .executeTakeFirstOrThrow();
        const stale = await at(ws, { seq: Number(real.seq) - 1, hash: real.hash });
        expect(stale).toEqual({ appended: false, current: { seq: Number(real.seq), hash: real.hash } });
        expect(await at('ws_never_written', { seq: 0, hash: '0'.repeat(64) })).toEqual({
          appended: false,
          current: undefined,
        });
        expect(await events('stale')).toEqual([]);
        expect(await lastUsedAt()).toBeNull();
        expect(await verifyChain(t.ctx.db, ws)).toMatchObject({ ok: true });
      },
    );

  it.skipIf(!available)('appends beside changes to the same secret without a deadlock or a lost event', async () => {
    // A secret's update locks its row, then the chain head; an append touches the secret, then
    // the head. Interleaved, they must neither deadlock (PostgreSQL would cancel one) nor lose one.
    const queue = createAuditQueue({ db: t.ctx.db, kind, audit: createAuditWriter(kind) });
    await queue.append(used(1, 'beside-warm'), { secretsUsed: [secretId] });
    const work: Promise<unknown>[] = [];
    for (let round = 0; round < 15; round++) {
      work.push(queue.append(used(2, `beside-${round}`), { secretsUsed: [secretId] }));
      work.push(
        owner.patch(`/api/v1/workspaces/${ws}/secrets/${secretId}`, { description: `round ${round}` }).then((res) => {
          expect(res.status).toBe(200);
        }),
      );
    }
    await Promise.all(work);
    expect(await events('beside-')).toHaveLength(31);
    expect(await verifyChain(t.ctx.db, ws)).toMatchObject({ ok: true });
  });

  if (kind === 'postgres')
    it.skipIf(!available)('locks the secrets before the chain head, as every other writer does', async () => {
      const side = await sideConnections();
      const counted = counting(t.ctx.db);
      const queue = createAuditQueue({ db: counted.db, kind, audit: createAuditWriter(kind) });
      try {
        await queue.append(used(1, 'order-warm'), { secretsUsed: [secretId] }); // the head is known from here on
        await side.hold(secretId);
        const before = counted.count();
        const appended = queue.append(used(1, 'order-held'), { secretsUsed: [secretId] });
        expect(await side.blocked()).toBe(true);
        // Blocked on the secret's row, it must not hold the chain head: another writer can take it at once.
        expect(await side.lockable('select seq from audit_heads where chain = $1 for update nowait', ws)).toBe(true);
        await side.release();
        await appended;
        expect(counted.count() - before).toBe(1); // the one-statement append, not the locked path
        expect((await events('order-held')).map((d) => d.tag)).toEqual(['order-held-0']);
        expect(await verifyChain(t.ctx.db, ws)).toMatchObject({ ok: true });
      } finally {
        await side.close();
      }
    });

  if (kind === 'postgres')
    it.skipIf(!available)(
      'fails a batch whose one-statement append may have committed, rather than appending it twice',
      async () => {
        let loseNext = false;
        const losing: KyselyPlugin = {
          transformQuery: (args) => args.node,
          transformResult: async (args) => {
            // The statement ran (and committed); its answer is "lost" on the way back.
            if (loseNext && JSON.stringify(args.result.rows).includes('"inserted"')) {
              loseNext = false;
              throw new Error('Connection terminated unexpectedly');
            }
            return args.result;
          },
        };
        const queue = createAuditQueue({ db: t.ctx.db.withPlugin(losing), kind, audit: createAuditWriter(kind) });
        await queue.append(used(1, 'lost-warm'), { secretsUsed: [secretId] });
        loseNext = true;
        await expect(queue.append(used(2, 'lost-reply'), { secretsUsed: [secretId] })).rejects.toThrow(
          'Connection terminated unexpectedly',
        );
        expect((await events('lost-reply')).map((d) => d.tag)).toEqual(['lost-reply-0', 'lost-reply-1']);
        // The queue goes on: the head it knew is forgotten, the next batch learns it anew.
        await queue.append(used(1, 'lost-after'), { secretsUsed: [secretId] });
        expect((await events('lost-after')).map((d) => d.tag)).toEqual(['lost-after-0']);
        expect(await verifyChain(t.ctx.db, ws)).toMatchObject({ ok: true });
      },
    );

  if (kind === 'postgres')
    it.skipIf(!available).each(['one statement', 'locked'])(
      'locks the secrets a batch touches in id order (%s path), whatever order they are stored or named in',
      async (path) => {
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) {
          const res = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
            name: `ordered_${path.replace(' ', '_')}_${i}`,
            visibility: 'masked',
            value: `value-${i}`,
          });
          expect(res.status).toBe(201);
          ids.push(res.body.id);
        }
        ids.sort();
        // The lowest id's row moves to the end of the table: stored order is no longer id order.
        await t.ctx.db
          .updateTable('secrets')
          .set({ description: 'moved' })
          .where('id', '=', ids[0] as string)
          .execute();
        const side = await sideConnections();
        const queue = createAuditQueue({ db: t.ctx.db, kind, audit: createAuditWriter(kind) });
        const lockable = (id: string) => side.lockable('select id from secrets where id = $1 for update nowait', id);
        try {
          if (path === 'one statement') await queue.append(used(1, 'ids-warm'), { secretsUsed: [secretId] });
          await side.hold(ids[1] as string);
          const appended = queue.append(used(1, `ids-${path}`), { secretsUsed: [...ids].reverse() });
          expect(await side.blocked()).toBe(true);
          // Waiting on the second id, the append holds the first and nothing after.
          expect(await lockable(ids[0] as string)).toBe(false);
          expect(await lockable(ids[2] as string)).toBe(true);
          expect(await lockable(ids[3] as string)).toBe(true);
          await side.release();
          await appended;
          expect(await events(`ids-${path}`)).toHaveLength(1);
        } finally {
          await side.close();
        }
      },
    );

  it.skipIf(!available)('two servers appending to one chain at once leave it gap-free, each event once', async () => {
    const servers = [0, 1].map(() => createAuditQueue({ db: t.ctx.db, kind, audit: createAuditWriter(kind) }));
    const appends: Promise<void>[] = [];
    for (let round = 0; round < 40; round++) {
      for (const [s, queue] of servers.entries()) {
        appends.push(queue.append(used(1 + (round % 3), `race-${s}-${round}`), { secretsUsed: [secretId] }));
      }
      if (round % 4 === 3) await Promise.all(appends.splice(0));
    }
    await Promise.all(appends);
    const tags = (await events('race-')).map((d) => d.tag);
    const expected = [0, 1].flatMap((s) =>
      Array.from({ length: 40 }, (_, round) =>
        Array.from({ length: 1 + (round % 3) }, (_, i) => `race-${s}-${round}-${i}`),
      ).flat(),
    );
    expect([...tags].sort()).toEqual([...expected].sort());
    // Each server's events keep their order within the chain.
    for (const s of [0, 1]) {
      expect(tags.filter((tag) => tag.startsWith(`race-${s}-`))).toEqual(
        expected.filter((tag) => tag.startsWith(`race-${s}-`)),
      );
    }
    const verdict = await verifyChain(t.ctx.db, ws);
    expect(verdict).toMatchObject({ ok: true });
    const head = await t.ctx.db.selectFrom('audit_heads').select('seq').where('chain', '=', ws).executeTakeFirst();
    expect(Number(head?.seq)).toBe(verdict.checked);
  });
});
