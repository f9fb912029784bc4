/**
 * The audit trail on both databases: written with the change it records,
 * hash-chained per workspace, gap-free under concurrency, and any change,
 * deletion, insertion or reordering of a row is caught by verify.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hashEvent } from '../../src/modules/audit/audit-chain.js';
import { verifyChain } from '../../src/modules/audit/audit-service.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';

describe.each(DATABASES)('audit trail on $kind', ({ kind, available }) => {
  let t: TestApp;
  let owner: TestClient;
  let ws: string;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    ({ owner, workspaceId: ws } = await setupOwner(t));
  });
  afterAll(async () => t?.close());

  async function rows() {
    return t.ctx.db.selectFrom('audit_events').selectAll().where('chain', '=', ws).orderBy('seq').execute();
  }

  /** Runs `tamper`, checks verify names `expectBroken`, then restores the trail. */
  async function expectTamperCaught(tamper: () => Promise<void>, expectBroken: (ids: string[]) => string) {
    const before = await rows();
    const head = await t.ctx.db.selectFrom('audit_heads').selectAll().where('chain', '=', ws).executeTakeFirstOrThrow();
    await tamper();
    const verdict = await owner.get(`/api/v1/workspaces/${ws}/audit/verify`);
    expect(verdict.status).toBe(200);
    expect(verdict.body.ok).toBe(false);
    expect(verdict.body.brokenAt).toBe(expectBroken(before.map((r) => r.id)));
    // Restore the original rows exactly.
    await t.ctx.db.deleteFrom('audit_events').where('chain', '=', ws).execute();
    for (const r of before) await t.ctx.db.insertInto('audit_events').values(r).execute();
    await t.ctx.db.updateTable('audit_heads').set({ seq: head.seq, hash: head.hash }).where('chain', '=', ws).execute();
    expect((await owner.get(`/api/v1/workspaces/${ws}/audit/verify`)).body.ok).toBe(true);
  }

  beforeEach(async () => {
    if (!available) return;
    // Give the trail some body: a few real actions.
    for (let i = 0; i < 3; i++) {
      await owner.post(`/api/v1/workspaces/${ws}/invitations`, {
        email: `p${i}-${Date.now()}@example.com`,
        role: 'viewer',
      });
    }
  });

  it.runIf(available)('records each action with a hash over its fields and the previous hash', async () => {
    const list = await rows();
    expect(list.map((r) => r.action).slice(0, 2)).toEqual(['workspace.created', 'member.added']);
    expect(list.map((r) => Number(r.seq))).toEqual(list.map((_, i) => i + 1));
    for (const [i, r] of list.entries()) {
      expect(r.prev_hash).toBe(i === 0 ? '0'.repeat(64) : list[i - 1]?.hash);
      expect(hashEvent({ ...r, seq: Number(r.seq) })).toBe(r.hash);
    }
    const verdict = await owner.get(`/api/v1/workspaces/${ws}/audit/verify`);
    expect(verdict.body).toEqual({ ok: true, checked: list.length });
  });

  it.runIf(available)('audit.csv has a header and one row per event, naming it by seq and id', async () => {
    const list = await rows();
    const csv = await owner.get(`/api/v1/workspaces/${ws}/audit.csv`);
    expect(csv.status, csv.text).toBe(200);
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    const lines = csv.text.split('\r\n').filter(Boolean);
    expect(lines[0]).toBe('seq,id,at,action,actorType,actorId,actorEmail,targetType,targetId,ip,requestId,data,hash');
    expect(lines.slice(1).map((line) => line.split(',').slice(0, 2).join(','))).toEqual(
      list.map((r) => `${r.seq},${r.id}`),
    );
    // A broken chain names the event by id, and the CSV row with that id is the one to look at.
    expect(lines.slice(1).map((line) => line.split(',')[3])).toEqual(list.map((r) => r.action));
  });

  it.runIf(available)('a changed row is caught and named', async () => {
    await expectTamperCaught(
      async () => {
        const target = (await rows())[2];
        await t.ctx.db
          .updateTable('audit_events')
          .set({ data: '{"role":"owner"}' })
          .where('id', '=', target?.id ?? '')
          .execute();
      },
      (ids) => ids[2] ?? '',
    );
  });

  it.runIf(available)('a deleted row is caught at the next event', async () => {
    await expectTamperCaught(
      async () => {
        const target = (await rows())[1];
        await t.ctx.db
          .deleteFrom('audit_events')
          .where('id', '=', target?.id ?? '')
          .execute();
      },
      (ids) => ids[2] ?? '',
    );
  });

  it.runIf(available)('an inserted row is caught', async () => {
    await expectTamperCaught(
      async () => {
        const list = await rows();
        const at = list[1];
        if (!at) throw new Error('fixture too small');
        // Shift later events up by one and slip a forged event in at seq 3.
        for (const r of [...list].reverse()) {
          if (Number(r.seq) >= 3)
            await t.ctx.db
              .updateTable('audit_events')
              .set({ seq: Number(r.seq) + 1 })
              .where('id', '=', r.id)
              .execute();
        }
        const forged = {
          ...at,
          id: 'evt_forged0000000000000000',
          seq: 3,
          prev_hash: at.hash,
          action: 'member.removed',
        };
        await t.ctx.db
          .insertInto('audit_events')
          .values({ ...forged, hash: hashEvent(forged) })
          .execute();
      },
      (ids) => ids[2] ?? '',
    );
  });

  it.runIf(available)('two swapped rows are caught', async () => {
    await expectTamperCaught(
      async () => {
        const list = await rows();
        const a = list[1];
        const b = list[2];
        if (!a || !b) throw new Error('fixture too small');
        await t.ctx.db.updateTable('audit_events').set({ seq: -1 }).where('id', '=', a.id).execute();
        await t.ctx.db
          .updateTable('audit_events')
          .set({ seq: Number(a.seq) })
          .where('id', '=', b.id)
          .execute();
        await t.ctx.db
          .updateTable('audit_events')
          .set({ seq: Number(b.seq) })
          .where('id', '=', a.id)
          .execute();
      },
      (ids) => ids[2] ?? '',
    );
  });

  it.runIf(available)('a truncated tail is caught against the chain head', async () => {
    await expectTamperCaught(
      async () => {
        const list = await rows();
        await t.ctx.db
          .deleteFrom('audit_events')
          .where('id', '=', list.at(-1)?.id ?? '')
          .execute();
      },
      (ids) => ids.at(-2) ?? '',
    );
  });

  it.runIf(available)('a row forged below seq 1 is caught (and listed, so it can be seen)', async () => {
    await expectTamperCaught(
      async () => {
        const [first] = await rows();
        if (!first) throw new Error('fixture too small');
        const forged = { ...first, id: 'evt_forgedzero0000000000', seq: 0, action: 'secret.revealed' };
        const deeper = { ...forged, id: 'evt_forgedminus000000000', seq: -1 };
        await t.ctx.db
          .insertInto('audit_events')
          .values([
            { ...forged, hash: hashEvent(forged) },
            { ...deeper, hash: hashEvent(deeper) },
          ])
          .execute();
        // Paging the list reaches them (cursors below 1 too).
        const seen: string[] = [];
        let query = 'limit=1';
        for (;;) {
          const page = await owner.get(`/api/v1/workspaces/${ws}/audit?${query}`);
          expect(page.status, page.text).toBe(200);
          seen.push(...page.body.items.map((e: { id: string }) => e.id));
          if (!page.body.nextCursor) break;
          query = `limit=1&cursor=${encodeURIComponent(page.body.nextCursor)}`;
        }
        expect(seen.slice(-2)).toEqual([forged.id, deeper.id]);
      },
      // The lowest stored row is the first that breaks the chain.
      () => 'evt_forgedminus000000000',
    );
  });

  it.runIf(available)('an event past the chain head is caught', async () => {
    await expectTamperCaught(
      async () => {
        const last = (await rows()).at(-1);
        if (!last) throw new Error('fixture too small');
        const forged = {
          ...last,
          id: 'evt_forgedpast0000000000',
          seq: Number(last.seq) + 1,
          prev_hash: last.hash,
          action: 'member.removed',
        };
        await t.ctx.db
          .insertInto('audit_events')
          .values({ ...forged, hash: hashEvent(forged) })
          .execute();
      },
      () => 'evt_forgedpast0000000000',
    );
  });

  it.runIf(available)('verify while others write is ok every time (only committed events up to the head)', async () => {
    const writes = Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        owner.post(`/api/v1/workspaces/${ws}/invitations`, {
          email: `live${i}-${Date.now()}@example.com`,
          role: 'viewer',
        }),
      ),
    );
    const verdicts = [];
    for (let i = 0; i < 20; i++) verdicts.push(owner.get(`/api/v1/workspaces/${ws}/audit/verify`));
    const [written, checked] = await Promise.all([writes, Promise.all(verdicts)]);
    expect(written.map((w) => w.status)).toEqual(Array(30).fill(201));
    expect(checked.map((v) => [v.status, v.body.ok, v.body.reason])).toEqual(Array(20).fill([200, true, undefined]));
  });

  it.runIf(available)('a workspace whose whole trail and head were removed does not verify', async () => {
    const before = await rows();
    const head = await t.ctx.db.selectFrom('audit_heads').selectAll().where('chain', '=', ws).executeTakeFirstOrThrow();
    await t.ctx.db.deleteFrom('audit_events').where('chain', '=', ws).execute();
    await t.ctx.db.deleteFrom('audit_heads').where('chain', '=', ws).execute();
    try {
      const verdict = await owner.get(`/api/v1/workspaces/${ws}/audit/verify`);
      expect(verdict.body).toMatchObject({ ok: false, checked: 0 });
    } finally {
      for (const r of before) await t.ctx.db.insertInto('audit_events').values(r).execute();
      await t.ctx.db.insertInto('audit_heads').values(head).execute();
    }
    expect((await owner.get(`/api/v1/workspaces/${ws}/audit/verify`)).body.ok).toBe(true);
  });

  it.runIf(available)('a cursor past the largest seq is a 422, not a 500', async () => {
    for (const seq of [2 ** 31, Number.MAX_SAFE_INTEGER]) {
      const cursor = Buffer.from(JSON.stringify({ seq })).toString('base64url');
      const res = await owner.get(`/api/v1/workspaces/${ws}/audit?cursor=${cursor}`);
      expect(res.status, res.text).toBe(422);
    }
  });

  it.runIf(available)('concurrent writers keep one gap-free chain', async () => {
    const n = 25;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        owner.post(`/api/v1/workspaces/${ws}/invitations`, { email: `burst${i}@example.com`, role: 'operator' }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(n).fill(201));
    const verdict = await verifyChain(t.ctx.db, ws);
    expect(verdict.ok).toBe(true);
    expect(verdict.checked).toBe((await rows()).length);
  });

  it.runIf(available)('a refused action writes no event', async () => {
    const before = (await rows()).length;
    const res = await owner.post(`/api/v1/workspaces/${ws}/roles`, { name: 'bad', permissions: ['secrets.manage'] });
    expect(res.status).toBe(422);
    expect((await rows()).length).toBe(before);
  });
});
