/**
 * The secrets list is served from a page cache validated by the workspace's
 * audit head (src/modules/workspaces/page-cache.ts). These tests warm the
 * cache before every step — the same page asked twice — so a missed
 * invalidation shows up as a stale answer: every change shows at once, a
 * use moves `lastUsedAt` though nothing changed, pages differ by their
 * query, and the permission check runs before the cache is asked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { buildTeam, inviteAndJoin, type Team } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

interface Item {
  id: string;
  name: string;
  description: string;
  version: number;
  lastUsedAt: string | null;
  deletedAt: string | null;
}

describe.each(DATABASES)('the cached secrets list on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  let up: Upstream;
  let ws: string;

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    t = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    team = await buildTeam(t);
    ws = `/api/v1/workspaces/${team.workspaceId}`;
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await up?.close();
  });

  /** The page, asked twice: the second answer comes from the cache and must equal the first. */
  async function page(client: TestClient, query = 'limit=100'): Promise<{ items: Item[]; nextCursor: string | null }> {
    const first = await client.get(`${ws}/secrets?${query}`);
    expect(first.status, first.text).toBe(200);
    const second = await client.get(`${ws}/secrets?${query}`);
    expect(second.status, second.text).toBe(200);
    expect(second.text).toBe(first.text);
    expect(second.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(second.headers['cache-control']).toBe('no-store');
    return first.body;
  }
  const find = async (name: string, query?: string) =>
    (await page(team.owner, query)).items.find((s) => s.name === name) ?? null;

  it.runIf(available)('every change shows on the next request though the page was cached', async () => {
    expect(await find('crm_token')).toBeNull();
    const created = await team.owner.post(`${ws}/secrets`, { name: 'crm_token', visibility: 'masked', value: 'v-1' });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    expect(await find('crm_token')).toMatchObject({ id, version: 1, description: '' });

    expect((await team.owner.patch(`${ws}/secrets/${id}`, { description: 'the CRM' })).status).toBe(200);
    expect(await find('crm_token')).toMatchObject({ version: 1, description: 'the CRM' });
    expect((await team.owner.patch(`${ws}/secrets/${id}`, { value: 'v-2' })).status).toBe(200);
    expect(await find('crm_token')).toMatchObject({ version: 2 });

    expect((await team.owner.delete(`${ws}/secrets/${id}`)).status).toBe(204);
    expect(await find('crm_token')).toBeNull();
    expect(await find('crm_token', 'deleted=true')).toMatchObject({ id, deletedAt: expect.any(String) });
    expect((await team.owner.post(`${ws}/secrets/${id}/restore`)).status).toBe(200);
    expect(await find('crm_token')).toMatchObject({ id, deletedAt: null });
    expect(await find('crm_token', 'deleted=true')).toBeNull();
  });

  it.runIf(available)('a use moves lastUsedAt on the next list, though no change was made', async () => {
    // Bound to the upstream from the start: the use pins nothing, so it is no change (no new epoch).
    const created = await team.owner.post(`${ws}/secrets`, {
      name: 'use_probe',
      visibility: 'masked',
      value: 'u-1',
      allowedHosts: ['127.0.0.1'],
    });
    expect(created.status, created.text).toBe(201);
    expect(await find('use_probe')).toMatchObject({ lastUsedAt: null });
    const sent = await team.clients.editor.post(`${ws}/blocks/send`, {
      block: {
        id: 'call',
        type: 'api',
        method: 'GET',
        url: `${up.url}/ping`,
        headers: [{ key: 'Authorization', value: 'Bearer {{secret:use_probe}}' }],
      },
    });
    expect(sent.status, sent.text).toBe(200);
    expect(up.received.at(-1)?.headers.authorization).toBe('Bearer u-1');
    const used = await find('use_probe');
    expect(typeof used?.lastUsedAt).toBe('string');
  });

  it.runIf(available)('pages differ by limit, cursor and search, and walk the whole list in order', async () => {
    for (const name of ['page_a', 'page_b', 'page_c']) {
      expect((await team.owner.post(`${ws}/secrets`, { name, visibility: 'masked', value: `${name}-v` })).status).toBe(
        201,
      );
    }
    const all = (await page(team.owner)).items.map((s) => s.name);
    expect(all).toEqual([...all].sort());
    const walked: string[] = [];
    let query = 'limit=1';
    for (;;) {
      const p = await page(team.owner, query);
      expect(p.items).toHaveLength(1);
      walked.push(...p.items.map((s) => s.name));
      if (!p.nextCursor) break;
      query = `limit=1&cursor=${encodeURIComponent(p.nextCursor)}`;
    }
    expect(walked).toEqual(all);
    expect((await page(team.owner, 'q=page_')).items.map((s) => s.name)).toEqual(['page_a', 'page_b', 'page_c']);
    expect((await page(team.owner, 'q=page_b')).items.map((s) => s.name)).toEqual(['page_b']);
    // Two queries whose parts meet at a line break are two pages, not one cached for both.
    const first = await page(team.owner, 'limit=1');
    const cursor = encodeURIComponent(first.nextCursor as string);
    const crafted = await page(team.owner, `q=page_&cursor=%21%0A${cursor}`);
    const other = await page(team.owner, `q=page_%0A!&cursor=${cursor}`);
    expect(other.items).toEqual([]);
    expect(crafted.items.length).toBeGreaterThan(0);
  });

  it.runIf(available)(
    'the permission is checked before the cache: refused with the page cached, and at once after a role change',
    async () => {
      const role = await team.owner.post(`${ws}/roles`, { name: 'Runner only', permissions: ['workflows.read'] });
      expect(role.status, role.text).toBe(201);
      const { client: runner } = await inviteAndJoin(
        t,
        team.owner,
        team.workspaceId,
        'runner@example.com',
        role.body.id,
      );
      await page(team.owner);
      const refused = await runner.get(`${ws}/secrets?limit=100`);
      expect(refused.status, refused.text).toBe(403);
      expect(refused.body.code).toBe('forbidden');
      expect(refused.text).not.toContain('crm_token');

      // Given secrets.read, then losing it again: each change holds on the next request.
      const grant = await team.owner.patch(`${ws}/roles/${role.body.id}`, {
        permissions: ['workflows.read', 'secrets.read'],
      });
      expect(grant.status, grant.text).toBe(200);
      expect((await page(runner)).items.map((s) => s.name)).toContain('crm_token');
      const revoke = await team.owner.patch(`${ws}/roles/${role.body.id}`, { permissions: ['workflows.read'] });
      expect(revoke.status, revoke.text).toBe(200);
      expect((await runner.get(`${ws}/secrets?limit=100`)).status).toBe(403);
      // Non-members and anonymous callers learn nothing either.
      expect((await team.outsider.get(`${ws}/secrets?limit=100`)).status).toBe(404);
      expect((await team.anonymous.get(`${ws}/secrets?limit=100`)).status).toBe(401);
    },
  );
});
