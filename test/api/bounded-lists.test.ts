/**
 * Every list is cursor-paginated (SPEC §4: `?limit=&cursor=` → `{items,
 * nextCursor}`), the naturally small ones too: a user's tokens and
 * workspaces, a workspace's members, roles and invitations, a secret's
 * versions and usages. Walking any of them one item at a time yields the
 * whole list in order, once; a page boundary survives an item removed in
 * between; a cursor the API did not issue is 422.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { buildTeam, type Team } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';

describe.each(DATABASES)('bounded lists on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  let ws: string;
  let secretId: string;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    team = await buildTeam(t);
    ws = `/api/v1/workspaces/${team.workspaceId}`;
    const owner = team.owner;
    for (const name of ['Support', 'Finance', 'Audit']) {
      expect((await owner.post(`${ws}/roles`, { name, permissions: ['workflows.read'] })).status).toBe(201);
    }
    for (const i of [1, 2, 3]) {
      expect((await owner.post(`${ws}/invitations`, { email: `later${i}@example.com`, role: 'viewer' })).status).toBe(
        201,
      );
      expect((await owner.post('/api/v1/workspaces', { name: `Side ${i}` })).status).toBe(201);
      expect(
        (await owner.post('/api/v1/tokens', { name: `t${i}`, workspaceId: team.workspaceId, expiresInDays: 1 })).status,
      ).toBe(201);
    }
    const secret = await owner.post(`${ws}/secrets`, { name: 'paged', visibility: 'masked', value: 'v-1' });
    secretId = secret.body.id;
    for (const value of ['v-2', 'v-3', 'v-4']) {
      expect((await owner.patch(`${ws}/secrets/${secretId}`, { value })).status).toBe(200);
    }
    // A long, non-ASCII workflow name and a long JSON key: their usages' cursors must still round-trip.
    const longKey = 'k'.repeat(150);
    const long = await owner.post(`${ws}/workflows`, {
      name: `Zürich ${'é'.repeat(190)}`,
      startBlockId: 'a',
      blocks: [
        {
          id: 'a',
          type: 'api',
          method: 'POST',
          url: 'https://api.example.com/x',
          body: { mode: 'json', content: `{"${longKey}":"{{secret:paged}}","${longKey}2":"x"}` },
        },
        {
          id: 'b',
          type: 'api',
          method: 'POST',
          url: 'https://api.example.com/y',
          body: { mode: 'json', content: `{"${longKey}":"{{secret:paged}}"}` },
        },
      ],
    });
    expect(long.status, long.text).toBe(201);
    for (const name of ['Beta flow', 'Alpha flow']) {
      const wf = await owner.post(`${ws}/workflows`, {
        name,
        startBlockId: 'a',
        blocks: ['a', 'b'].map((id) => ({
          id,
          type: 'api',
          method: 'GET',
          url: 'https://api.example.com/x',
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:paged}}' }],
        })),
      });
      expect(wf.status, wf.text).toBe(201);
    }
  }, 120_000);
  afterAll(async () => t?.close());

  const lists = () => [
    { name: 'tokens', url: '/api/v1/tokens', min: 3 },
    { name: 'workspaces', url: '/api/v1/workspaces', min: 4 },
    { name: 'members', url: `${ws}/members`, min: 6 },
    { name: 'roles', url: `${ws}/roles`, min: 9 },
    { name: 'invitations', url: `${ws}/invitations`, min: 3 },
    { name: 'versions', url: `${ws}/secrets/${secretId}/versions`, min: 4 },
    { name: 'usages', url: `${ws}/secrets/${secretId}/usages`, min: 6 },
  ];

  async function walk(client: TestClient, url: string, limit: number): Promise<unknown[]> {
    const seen: unknown[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const sep = url.includes('?') ? '&' : '?';
      const res = await client.get(
        `${url}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(res.status, res.text).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(limit);
      seen.push(...res.body.items);
      cursor = res.body.nextCursor;
      if (cursor === null) return seen;
      expect(res.body.items).toHaveLength(limit);
    }
    throw new Error(`${url}: no end after 100 pages`);
  }

  it.runIf(available)('walked one or two at a time, each list is the whole list in order, once', async () => {
    for (const list of lists()) {
      const whole = await team.owner.get(list.url);
      expect(whole.status, whole.text).toBe(200);
      expect(whole.body.nextCursor, list.name).toBeNull();
      expect(whole.body.items.length, list.name).toBeGreaterThanOrEqual(list.min);
      expect(await walk(team.owner, list.url, 1), list.name).toEqual(whole.body.items);
      expect(await walk(team.owner, list.url, 2), list.name).toEqual(whole.body.items);
    }
    // The orders each list promises.
    const versions = (await team.owner.get(`${ws}/secrets/${secretId}/versions`)).body.items;
    expect(versions.map((v: { version: number }) => v.version)).toEqual([4, 3, 2, 1]);
    const roles = (await team.owner.get(`${ws}/roles`)).body.items.map((r: { name: string }) => r.name);
    expect(roles).toEqual(['owner', 'admin', 'editor', 'manager', 'operator', 'viewer', 'Audit', 'Finance', 'Support']);
    const usages = (await team.owner.get(`${ws}/secrets/${secretId}/usages`)).body.items;
    expect(usages.map((u: { workflowName: string }) => u.workflowName.slice(0, 6))).toEqual([
      'Alpha ',
      'Alpha ',
      'Beta f',
      'Beta f',
      'Zürich',
      'Zürich',
    ]);
  });

  it.runIf(available)('a roles page boundary holds when custom roles are added or removed meanwhile', async () => {
    const names = async () => (await team.owner.get(`${ws}/roles`)).body.items.map((r: { name: string }) => r.name);
    const first = await team.owner.get(`${ws}/roles?limit=7`); // the six system roles and "Audit"
    expect(first.body.items.at(-1).name).toBe('Audit');
    const added = await team.owner.post(`${ws}/roles`, { name: 'Zeta', permissions: ['workflows.read'] });
    expect(added.status).toBe(201);
    const afterAdd = await team.owner.get(`${ws}/roles?cursor=${encodeURIComponent(first.body.nextCursor)}`);
    expect(afterAdd.body.items.map((r: { name: string }) => r.name)).toEqual(['Finance', 'Support', 'Zeta']);
    expect((await team.owner.delete(`${ws}/roles/${added.body.id}`)).status).toBe(204);
    const finance = (await team.owner.get(`${ws}/roles`)).body.items.find(
      (r: { name: string }) => r.name === 'Finance',
    );
    expect((await team.owner.delete(`${ws}/roles/${finance.id}`)).status).toBe(204);
    const afterRemove = await team.owner.get(`${ws}/roles?cursor=${encodeURIComponent(first.body.nextCursor)}`);
    expect(afterRemove.body.items.map((r: { name: string }) => r.name)).toEqual(['Support']);
    expect(await names()).toEqual(['owner', 'admin', 'editor', 'manager', 'operator', 'viewer', 'Audit', 'Support']);
  });

  it.runIf(available)('a page boundary holds when the item it ended on is removed', async () => {
    const first = await team.owner.get(`${ws}/invitations?limit=1`);
    expect(first.body.items).toHaveLength(1);
    const all = (await team.owner.get(`${ws}/invitations`)).body.items.map((i: { id: string }) => i.id);
    expect((await team.owner.delete(`${ws}/invitations/${first.body.items[0].id}`)).status).toBe(204);
    const next = await team.owner.get(`${ws}/invitations?cursor=${encodeURIComponent(first.body.nextCursor)}`);
    expect(next.status, next.text).toBe(200);
    expect(next.body.items.map((i: { id: string }) => i.id)).toEqual(all.slice(1));
  });

  it.runIf(available)('a cursor the API did not issue, a bad limit or an unknown parameter is 422', async () => {
    for (const list of lists()) {
      for (const query of [
        'cursor=not-a-cursor',
        `cursor=${Buffer.from('{"a":1}').toString('base64url')}`,
        'limit=0',
        'limit=201',
        'sort=name',
      ]) {
        const res = await team.owner.get(`${list.url}?${query}`);
        expect(res.status, `${list.name} ?${query}: ${res.text}`).toBe(422);
        expect(res.body.code).toBe('validation_failed');
      }
    }
  });
});
