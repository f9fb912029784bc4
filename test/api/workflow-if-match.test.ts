/**
 * Workflow saves are conditional, like secret edits, on both databases:
 * every save moves the workflow's revision, GET/POST/PUT answer it as
 * `ETag: "<revision>"`, and a PUT or DELETE with an If-Match that is not the
 * current revision (or is weak) is 412 `version_conflict` with nothing
 * changed. `*` and no If-Match save whatever the revision (last write wins).
 * Before, two editors saving from the same copy both got 200 and the second
 * silently dropped the first's blocks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { buildTeam, type Team } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp } from '../support/harness.js';

function setBlocks(...ids: string[]) {
  return ids.map((id, i) => ({
    id,
    type: 'set',
    name: id,
    assignments: [{ variable: `v_${id}`, value: id }],
    onSuccess: ids[i + 1] ?? null,
  }));
}

function workflowBody(name: string, ...ids: string[]) {
  return { name, startBlockId: ids[0] ?? null, blocks: setBlocks(...ids) };
}

function expectConflict(res: Reply): void {
  expect(res.status, res.text).toBe(412);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body.code).toBe('version_conflict');
}

const blockIds = (res: Reply) => (res.body.blocks as { id: string }[]).map((b) => b.id);

describe.each(DATABASES)('conditional workflow saves on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  let ws: string;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    team = await buildTeam(t);
    ws = `/api/v1/workspaces/${team.workspaceId}/workflows`;
  }, 120_000);
  afterAll(async () => t?.close());

  async function create(name: string, ...ids: string[]): Promise<{ id: string; etag: string }> {
    const res = await team.owner.post(ws, workflowBody(name, ...ids));
    expect(res.status, res.text).toBe(201);
    return { id: res.body.id, etag: String(res.headers.etag) };
  }

  it.runIf(available)('GET, POST and PUT answer the revision as a strong ETag; every save moves it', async () => {
    const created = await team.owner.post(ws, workflowBody('tagged', 'a'));
    expect(created.status, created.text).toBe(201);
    expect(created.headers.etag).toBe('"0"');
    expect(created.body.revision).toBe(0);
    const url = `${ws}/${created.body.id}`;
    const got = await team.clients.viewer.get(url);
    expect(got.headers.etag).toBe('"0"');
    for (const revision of [1, 2]) {
      const saved = await team.owner.put(url, workflowBody('tagged', 'a', `b${revision}`));
      expect(saved.status, saved.text).toBe(200);
      expect(saved.headers.etag).toBe(`"${revision}"`);
      expect(saved.body.revision).toBe(revision);
    }
    expect((await team.owner.get(url)).headers.etag).toBe('"2"');
  });

  it.runIf(available)(
    "two saves from the same copy: the second is 412 version_conflict and the first's blocks stay",
    async () => {
      const { id } = await create('shared', 'start');
      const url = `${ws}/${id}`;
      // Both editors open the workflow at the same revision.
      const copyA = await team.clients.editor.get(url);
      const copyB = await team.owner.get(url);
      expect(copyA.headers.etag).toBe(copyB.headers.etag);

      const first = await team.clients.editor.put(url, workflowBody('shared', 'start', 'from_a'), {
        'if-match': String(copyA.headers.etag),
      });
      expect(first.status, first.text).toBe(200);
      const second = await team.owner.put(url, workflowBody('shared', 'start', 'from_b'), {
        'if-match': String(copyB.headers.etag),
      });
      expectConflict(second);

      const now = await team.owner.get(url);
      expect(blockIds(now)).toEqual(['start', 'from_a']);
      expect(now.headers.etag).toBe(first.headers.etag);
      expect(now.body.updatedAt).toBe(first.body.updatedAt);
      // Reloaded, the second editor can save over the first's work knowingly.
      const retried = await team.owner.put(url, workflowBody('shared', 'start', 'from_a', 'from_b'), {
        'if-match': String(now.headers.etag),
      });
      expect(retried.status, retried.text).toBe(200);
      expect(blockIds(await team.owner.get(url))).toEqual(['start', 'from_a', 'from_b']);
    },
  );

  it.runIf(available)('two saves from the same copy at once: exactly one wins', async () => {
    const { id, etag } = await create('race', 'start');
    const url = `${ws}/${id}`;
    const answers = await Promise.all(
      ['one', 'two', 'three'].map((tag) =>
        team.owner.put(url, workflowBody('race', 'start', tag), { 'if-match': etag }),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, 412, 412]);
    const winner = answers.find((a) => a.status === 200) as Reply;
    const now = await team.owner.get(url);
    expect(blockIds(now)).toEqual(blockIds(winner));
    expect(now.body.revision).toBe(1);
  });

  it.runIf(available)(
    'a stale If-Match is refused on PUT and DELETE and changes nothing (the secret references included)',
    async () => {
      const secret = await team.owner.post(`/api/v1/workspaces/${team.workspaceId}/secrets`, {
        name: 'stale_check_token',
        visibility: 'masked',
        value: 'stale-check-value-123',
      });
      expect(secret.status, secret.text).toBe(201);
      const { id, etag: stale } = await create('stale', 'start');
      const url = `${ws}/${id}`;
      const withSecret = {
        name: 'stale',
        startBlockId: 'call',
        blocks: [
          {
            id: 'call',
            type: 'api',
            method: 'GET',
            url: 'https://api.example.com/x',
            headers: [{ key: 'Authorization', value: 'Bearer {{secret:stale_check_token}}' }],
          },
        ],
      };
      const saved = await team.owner.put(url, withSecret);
      expect(saved.status, saved.text).toBe(200);

      expectConflict(await team.owner.put(url, workflowBody('renamed from stale', 'other'), { 'if-match': stale }));
      expectConflict(await team.owner.delete(url, { 'if-match': stale }));
      const now = await team.owner.get(url);
      expect(now.status).toBe(200);
      expect(now.body).toMatchObject({ name: 'stale', revision: 1 });
      expect(blockIds(now)).toEqual(['call']);
      const usages = await team.owner.get(`/api/v1/workspaces/${team.workspaceId}/secrets/${secret.body.id}/usages`);
      expect(usages.body.items).toEqual([expect.objectContaining({ workflowId: id, blockId: 'call' })]);

      // The current tag deletes it.
      const deleted = await team.owner.delete(url, { 'if-match': String(now.headers.etag) });
      expect(deleted.status, deleted.text).toBe(204);
      expect((await team.owner.get(url)).status).toBe(404);
    },
  );

  it.runIf(available)(
    'If-Match * or none saves whatever the revision (last write wins); a weak tag never matches',
    async () => {
      const { id } = await create('lenient', 'start');
      const url = `${ws}/${id}`;
      const any = await team.owner.put(url, workflowBody('lenient', 'start', 'star'), { 'if-match': '*' });
      expect(any.status, any.text).toBe(200);
      const none = await team.owner.put(url, workflowBody('lenient', 'start', 'none'));
      expect(none.status, none.text).toBe(200);
      expect(none.body.revision).toBe(2);
      // A list matches if any of its tags does; the bare revision is the tag too.
      const listed = await team.owner.put(url, workflowBody('lenient', 'start', 'listed'), { 'if-match': '"7", "2"' });
      expect(listed.status, listed.text).toBe(200);
      const bare = await team.owner.put(url, workflowBody('lenient', 'start', 'bare'), { 'if-match': '3' });
      expect(bare.status, bare.text).toBe(200);
      // Weak comparison is not allowed for If-Match (RFC 9110): even the current revision, weak, is refused.
      expectConflict(await team.owner.put(url, workflowBody('lenient', 'weak'), { 'if-match': 'W/"4"' }));
      expectConflict(await team.owner.delete(url, { 'if-match': 'W/"4"' }));
      expect(blockIds(await team.owner.get(url))).toEqual(['start', 'bare']);
    },
  );

  it.runIf(available)('a malformed If-Match is 422; a viewer with a stale tag is 403, not 412', async () => {
    const { id, etag } = await create('checked', 'start');
    const url = `${ws}/${id}`;
    for (const header of ['"abc"', 'etag', '"1.2"', '*, "0"']) {
      const res = await team.owner.put(url, workflowBody('checked', 'x'), { 'if-match': header });
      expect(res.status, `${header}: ${res.text}`).toBe(422);
      expect(res.body.code).toBe('validation_failed');
    }
    expect((await team.owner.put(url, workflowBody('checked', 'start', 'next'))).status).toBe(200);
    const refused = await team.clients.viewer.put(url, workflowBody('checked', 'x'), { 'if-match': etag });
    expect(refused.status, refused.text).toBe(403);
    expect(blockIds(await team.owner.get(url))).toEqual(['start', 'next']);
  });
});
