/**
 * Edits racing each other on both databases, in-process: on PostgreSQL every
 * request of a round runs in its own pooled connection, so transactions truly
 * overlap; on SQLite they interleave at every await. Whatever the order, the
 * loser gets a problem with a stable code (never a 500) and the stored state
 * stays whole:
 *
 * - a workflow PUT racing its DELETE (and another PUT): 200 or 404
 *   `not_found`, no reference row left behind, nothing audited after the delete;
 * - two renames of one variable, and a rename racing its delete: the name
 *   registry holds exactly the variable's current name (or nothing once it
 *   is deleted) — no name left taken by nobody;
 * - a custom role deleted while a member is given it and an invitation names
 *   it: either the role survives, or nobody holds it (409 `role_in_use`, 422
 *   for the vanished role);
 * - role names differing only in case, created or renamed concurrently: one wins,
 *   the rest 409 `name_taken`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { insertMember, setupOwner } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';

const ROUNDS = 24;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** "200 200 404:not_found", for assertion messages. */
function statuses(replies: Reply[]): string {
  return replies.map((r) => `${r.status}${r.body?.code ? `:${r.body.code}` : ''}`).join(' ');
}

/** Fails on any 5xx, showing the round's replies. */
function expectNoServerError(replies: Reply[], label: string): void {
  const broken = replies.filter((r) => r.status >= 500);
  expect(
    broken.map((r) => r.text.slice(0, 300)),
    `${label}: ${statuses(replies)}`,
  ).toEqual([]);
}

function expectOneOf(reply: Reply, allowed: string[], label: string): void {
  const got = `${reply.status}${reply.body?.code ? `:${reply.body.code}` : ''}`;
  expect(allowed, `${label}: ${got} ${reply.text.slice(0, 200)}`).toContain(got);
  if (reply.status >= 400) expect(reply.headers['content-type']).toMatch(/^application\/problem\+json/);
}

describe.each(DATABASES)('edit races on $kind', ({ kind, available }) => {
  let t: TestApp;
  let owner: TestClient;
  let ws: string;
  let api: (path: string) => string;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    ({ owner, workspaceId: ws } = await setupOwner(t));
    api = (path) => `/api/v1/workspaces/${ws}${path}`;
    const secret = await owner.post(api('/secrets'), {
      name: 'RACE_SECRET',
      visibility: 'masked',
      value: 'race-value-1',
    });
    expect(secret.status, secret.text).toBe(201);
  }, 120_000);
  afterAll(async () => t?.close());

  const workflow = (label: string) => ({
    name: `race ${label}`,
    startBlockId: 'a',
    blocks: [
      {
        id: 'a',
        type: 'api',
        method: 'GET',
        url: 'https://api.example.com/x',
        headers: [{ key: 'Authorization', value: 'Bearer {{secret:RACE_SECRET}}' }],
      },
    ],
  });

  it.runIf(available)(
    `a workflow PUT racing its DELETE and another PUT, ${ROUNDS} rounds: 200 or 404 not_found, never a 500; no reference outlives the workflow`,
    async () => {
      const tally = new Map<string, number>();
      for (let round = 0; round < ROUNDS; round++) {
        const created = await owner.post(api('/workflows'), workflow(`${round}`));
        expect(created.status, created.text).toBe(201);
        const id = created.body.id as string;
        const replies = await Promise.all([
          owner.put(api(`/workflows/${id}`), workflow(`${round} first`)),
          sleep(round % 4).then(() => owner.delete(api(`/workflows/${id}`))),
          sleep(round % 3).then(() => owner.put(api(`/workflows/${id}`), workflow(`${round} second`))),
        ]);
        expectNoServerError(replies, `round ${round}`);
        for (const r of replies) tally.set(`${r.status}`, (tally.get(`${r.status}`) ?? 0) + 1);
        const [put1, del, put2] = replies as [Reply, Reply, Reply];
        expect(del.status, del.text).toBe(204);
        expectOneOf(put1, ['200', '404:not_found'], `round ${round} first PUT`);
        expectOneOf(put2, ['200', '404:not_found'], `round ${round} second PUT`);

        expect((await owner.get(api(`/workflows/${id}`))).status).toBe(404);
        const refs = await t.ctx.db
          .selectFrom('workflow_secret_refs')
          .select('block_id')
          .where('workflow_id', '=', id)
          .execute();
        expect(refs, `round ${round}: references of a deleted workflow`).toEqual([]);
        // The trail tells what happened: nothing was saved after the delete.
        const events = await t.ctx.db
          .selectFrom('audit_events')
          .select('action')
          .where('chain', '=', ws)
          .where('target_id', '=', id)
          .orderBy('seq')
          .execute();
        const actions = events.map((e) => e.action);
        expect(actions.at(-1), `round ${round}: ${actions.join(', ')}`).toBe('workflow.deleted');
        expect(actions.filter((a) => a === 'workflow.updated')).toHaveLength(
          [put1, put2].filter((r) => r.status === 200).length,
        );
      }
      // Both outcomes happened, or the race proved little.
      expect(tally.get('404') ?? 0, JSON.stringify([...tally])).toBeGreaterThan(0);
    },
    120_000,
  );

  async function registryOf(variableId: string): Promise<string[]> {
    const rows = await t.ctx.db
      .selectFrom('variable_names')
      .select('name_lower')
      .where('workspace_id', '=', ws)
      .where('owner_id', '=', variableId)
      .execute();
    return rows.map((r) => r.name_lower);
  }

  it.runIf(available)(
    `two renames of one variable, ${ROUNDS} rounds: both apply in turn, and only the final name stays taken`,
    async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const base = `RN_${round}`;
        const v = await owner.post(api('/variables'), { name: base, type: 'text' });
        expect(v.status, v.text).toBe(201);
        const id = v.body.id as string;
        const replies = await Promise.all([
          owner.patch(api(`/variables/${id}`), { name: `${base}_Y` }),
          sleep(round % 3).then(() => owner.patch(api(`/variables/${id}`), { name: `${base}_Z` })),
        ]);
        expectNoServerError(replies, `round ${round}`);
        for (const r of replies) expectOneOf(r, ['200'], `round ${round}`);
        const now = (await owner.get(api(`/variables/${id}`))).body.name as string;
        expect([`${base}_Y`, `${base}_Z`]).toContain(now);
        expect(await registryOf(id), `round ${round}: names held by the variable "${now}"`).toEqual([
          now.toLowerCase(),
        ]);
        // The names it no longer has are free.
        for (const name of [base, `${base}_Y`, `${base}_Z`].filter((n) => n !== now)) {
          const again = await owner.post(api('/variables'), { name, type: 'text' });
          expect(again.status, `round ${round}: "${name}" ${again.text}`).toBe(201);
        }
      }
    },
    120_000,
  );

  it.runIf(available)(
    `a variable rename racing its delete, ${ROUNDS} rounds: 200 or 404 not_found, never a 500; no name outlives the variable`,
    async () => {
      let renamesLost = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const base = `RD_${round}`;
        const v = await owner.post(api('/variables'), { name: base, type: 'text' });
        expect(v.status, v.text).toBe(201);
        const id = v.body.id as string;
        const replies = await Promise.all([
          owner.patch(api(`/variables/${id}`), { name: `${base}_Y` }),
          sleep(round % 3).then(() => owner.delete(api(`/variables/${id}`))),
        ]);
        expectNoServerError(replies, `round ${round}`);
        const [rename, del] = replies as [Reply, Reply];
        expectOneOf(rename, ['200', '404:not_found'], `round ${round} rename`);
        expect(del.status, del.text).toBe(204);
        if (rename.status === 404) renamesLost += 1;
        expect(await registryOf(id), `round ${round}: names held by a deleted variable`).toEqual([]);
        for (const name of [base, `${base}_Y`]) {
          const again = await owner.post(api('/variables'), { name, type: 'text' });
          expect(again.status, `round ${round}: "${name}" ${again.text}`).toBe(201);
        }
      }
      expect(renamesLost).toBeGreaterThan(0);
    },
    120_000,
  );

  it.runIf(available)(
    `a custom role deleted while a member is given it and an invitation names it, ${ROUNDS} rounds: nobody is left holding a deleted role`,
    async () => {
      const memberId = await insertMember(t, ws, 'viewer');
      const outcomes = new Map<string, number>();
      for (let round = 0; round < ROUNDS; round++) {
        const role = await owner.post(api('/roles'), { name: `racing role ${round}`, permissions: ['workflows.read'] });
        expect(role.status, role.text).toBe(201);
        const roleId = role.body.id as string;
        const replies = await Promise.all([
          sleep(round % 3).then(() => owner.patch(api(`/members/${memberId}`), { role: roleId })),
          sleep(round % 2).then(() =>
            owner.post(api('/invitations'), { email: `race-${round}@example.com`, role: roleId }),
          ),
          sleep(round % 4).then(() => owner.delete(api(`/roles/${roleId}`))),
        ]);
        expectNoServerError(replies, `round ${round}`);
        const [assign, invite, del] = replies as [Reply, Reply, Reply];
        expectOneOf(assign, ['204', '422:validation_failed'], `round ${round} member role change`);
        expectOneOf(invite, ['201', '422:validation_failed'], `round ${round} invitation`);
        expectOneOf(del, ['204', '409:role_in_use'], `round ${round} role delete`);
        const key = `${assign.status}/${invite.status}/${del.status}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

        const roleLeft = await t.ctx.db.selectFrom('roles').select('id').where('id', '=', roleId).executeTakeFirst();
        const holders = await t.ctx.db.selectFrom('members').select('user_id').where('role', '=', roleId).execute();
        const invited = await t.ctx.db
          .selectFrom('invitations')
          .select('id')
          .where('role', '=', roleId)
          .where('accepted_at', 'is', null)
          .execute();
        if (!roleLeft) {
          expect(holders, `round ${round}: members holding a deleted role (${key})`).toEqual([]);
          expect(invited, `round ${round}: invitations naming a deleted role (${key})`).toEqual([]);
        }
        // What the API acknowledged is what is stored.
        expect(del.status === 204).toBe(!roleLeft);
        expect(holders.length).toBe(assign.status === 204 ? 1 : 0);
        expect(invited.length).toBe(invite.status === 201 ? 1 : 0);
        // Back to a clean slate for the next round.
        const reset = await owner.patch(api(`/members/${memberId}`), { role: 'viewer' });
        expect(reset.status, reset.text).toBe(204);
        if (invite.status === 201) {
          const revoked = await owner.delete(api(`/invitations/${invite.body.id}`));
          expect(revoked.status, revoked.text).toBe(204);
        }
      }
      // The delete won sometimes and lost sometimes.
      const keys = [...outcomes.keys()];
      expect(
        keys.some((k) => k.endsWith('/204')),
        JSON.stringify([...outcomes]),
      ).toBe(true);
      expect(
        keys.some((k) => k.endsWith('/409')),
        JSON.stringify([...outcomes]),
      ).toBe(true);
    },
    120_000,
  );

  it.runIf(available)(
    `role names differing only in case, created concurrently, ${ROUNDS} rounds: one 201, the rest 409 name_taken`,
    async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const base = `Case Race ${round}`;
        const replies = await Promise.all(
          [base, base.toUpperCase(), base.toLowerCase()].map((name, i) =>
            sleep(i % 2).then(() => owner.post(api('/roles'), { name, permissions: [] })),
          ),
        );
        expectNoServerError(replies, `round ${round}`);
        expect(
          replies.filter((r) => r.status === 201),
          `round ${round}: ${statuses(replies)}`,
        ).toHaveLength(1);
        for (const r of replies.filter((x) => x.status !== 201)) expectOneOf(r, ['409:name_taken'], `round ${round}`);
        const rows = await t.ctx.db.selectFrom('roles').select('name').where('workspace_id', '=', ws).execute();
        expect(rows.filter((r) => r.name.toLowerCase() === base.toLowerCase())).toHaveLength(1);
      }
    },
    120_000,
  );

  it.runIf(available)(
    `two roles renamed concurrently to names differing only in case, ${ROUNDS} rounds: one 200, the other 409 name_taken`,
    async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const ids: string[] = [];
        for (const side of ['a', 'b']) {
          const r = await owner.post(api('/roles'), { name: `rename source ${round} ${side}`, permissions: [] });
          expect(r.status, r.text).toBe(201);
          ids.push(r.body.id);
        }
        const target = `Renamed Race ${round}`;
        const replies = await Promise.all(
          ids.map((id, i) =>
            sleep(i % 2).then(() =>
              owner.patch(api(`/roles/${id}`), { name: i ? target.toUpperCase() : target.toLowerCase() }),
            ),
          ),
        );
        expectNoServerError(replies, `round ${round}`);
        expect(
          replies.filter((r) => r.status === 200),
          `round ${round}: ${statuses(replies)}`,
        ).toHaveLength(1);
        for (const r of replies.filter((x) => x.status !== 200)) expectOneOf(r, ['409:name_taken'], `round ${round}`);
        const rows = await t.ctx.db.selectFrom('roles').select('name').where('workspace_id', '=', ws).execute();
        expect(rows.filter((r) => r.name.toLowerCase() === target.toLowerCase())).toHaveLength(1);
      }
    },
    120_000,
  );
});
