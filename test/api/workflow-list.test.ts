/**
 * The workflow list answers summaries (id, name, start block, block count,
 * revision, times), never blocks, on both databases: a reviewer saved 200
 * workflows of ~2 MB each and one `?limit=200` answer was 396 MB (2.5 GB
 * RSS). The database is not even asked for the blocks; GET …/workflows/{id}
 * still answers a whole workflow.
 */
import type { KyselyPlugin, UnknownRow } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, nowIso } from '../../src/app/ids.js';
import { createWorkflowService } from '../../src/modules/workflows/workflow-service.js';
import { SYSTEM_ROLE_PERMISSIONS } from '../../src/policy/permissions.js';
import { DATABASES } from '../support/databases.js';
import { buildTeam, type Team } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

/** Two blocks of ~950 KB text body each: just under the 2 MiB request limit together. */
function largeBlocks(tag: string) {
  return ['a', 'b'].map((id, i) => ({
    id,
    type: 'api' as const,
    name: `${tag} ${id}`,
    method: 'POST' as const,
    url: 'https://api.example.com/bulk',
    query: [],
    headers: [],
    body: { mode: 'text' as const, content: `${tag}-${id}-`.padEnd(950_000, 'x') },
    timeoutMs: 10_000,
    capture: [],
    onSuccess: i === 0 ? 'b' : null,
    onError: null,
  }));
}

const VIA_API = 3;
const STORED = 27;
const TOTAL = VIA_API + STORED;

describe.each(DATABASES)('the workflow list on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  let ws: string;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    team = await buildTeam(t);
    ws = `/api/v1/workspaces/${team.workspaceId}/workflows`;
    for (let i = 0; i < VIA_API; i++) {
      const res = await team.owner.post(ws, { name: `api ${i}`, startBlockId: 'a', blocks: largeBlocks(`api${i}`) });
      expect(res.status, res.text.slice(0, 500)).toBe(201);
      expect(res.text.length).toBeGreaterThan(1_800_000);
    }
    // The rest straight into the table, as many saves would have left them (~1.9 MB each).
    for (let i = 0; i < STORED; i++) {
      const blocks = largeBlocks(`stored${i}`);
      const now = nowIso();
      await t.ctx.db
        .insertInto('workflows')
        .values({
          id: newId('wf'),
          workspace_id: team.workspaceId,
          name: `stored ${String(i).padStart(2, '0')}`,
          start_block_id: 'a',
          blocks: JSON.stringify(blocks),
          block_count: blocks.length,
          revision: 0,
          created_at: now,
          created_by: null,
          updated_at: now,
          updated_by: null,
        })
        .execute();
    }
  }, 180_000);
  afterAll(async () => t?.close());

  it.runIf(available)(
    `a list of ${TOTAL} workflows of ~1.9 MB each holds no blocks and stays a few KB`,
    async () => {
      const res = await team.clients.viewer.get(`${ws}?limit=200`);
      expect(res.status, res.text.slice(0, 500)).toBe(200);
      expect(res.body.items).toHaveLength(TOTAL);
      expect(res.body.nextCursor).toBeNull();
      // Whole workflows, this answer was ~57 MB.
      expect(res.text.length).toBeLessThan(TOTAL * 400);
      expect(res.text).not.toContain('xxxxxxxx');
      for (const item of res.body.items) {
        expect(Object.keys(item).sort()).toEqual(
          ['blockCount', 'createdAt', 'id', 'name', 'revision', 'startBlockId', 'updatedAt'].sort(),
        );
        expect(item).toMatchObject({ blockCount: 2, startBlockId: 'a', revision: 0 });
      }
      expect(res.body.items.map((i: { name: string }) => i.name)).toEqual([
        ...Array.from({ length: VIA_API }, (_, i) => `api ${i}`),
        ...Array.from({ length: STORED }, (_, i) => `stored ${String(i).padStart(2, '0')}`),
      ]);
    },
    60_000,
  );

  it.runIf(available)('the list never asks the database for blocks', async () => {
    const returned: string[][] = [];
    const recorder: KyselyPlugin = {
      transformQuery: (args) => args.node,
      transformResult: async (args) => {
        for (const row of args.result.rows as UnknownRow[]) returned.push(Object.keys(row));
        return args.result;
      },
    };
    const service = createWorkflowService({ ...t.ctx, db: t.ctx.db.withPlugin(recorder) });
    const actor = {
      userId: team.userIds.viewer,
      workspaceId: team.workspaceId,
      role: 'viewer',
      permissions: SYSTEM_ROLE_PERMISSIONS.viewer,
      epoch: 0,
      seq: 0,
    };
    const page = await service.list(actor, 200);
    expect(page.rows).toHaveLength(TOTAL);
    expect(returned).toHaveLength(TOTAL);
    for (const columns of returned) expect(columns).not.toContain('blocks');
  });

  it.runIf(available)('a summary counts blocks as saved; one workflow still comes whole', async () => {
    const created = await team.owner.post(ws, {
      name: 'small',
      startBlockId: 's1',
      blocks: ['s1', 's2', 's3'].map((id) => ({ id, type: 'set', assignments: [] })),
    });
    expect(created.status, created.text).toBe(201);
    const edited = await team.owner.put(`${ws}/${created.body.id}`, {
      name: 'small',
      startBlockId: 's1',
      blocks: [{ id: 's1', type: 'set', assignments: [] }],
    });
    expect(edited.status, edited.text).toBe(200);
    const list = await team.owner.get(`${ws}?limit=200`);
    expect(list.body.items.find((i: { id: string }) => i.id === created.body.id)).toMatchObject({
      name: 'small',
      blockCount: 1,
      revision: 1,
    });
    const whole = await team.owner.get(`${ws}/${created.body.id}`);
    expect(whole.status).toBe(200);
    expect(whole.body).toMatchObject({ blockCount: 1, revision: 1, blocks: [{ id: 's1', type: 'set' }] });
    const large = list.body.items.find((i: { name: string }) => i.name === 'api 0');
    const one = await team.owner.get(`${ws}/${large.id}`);
    expect(one.body.blocks).toHaveLength(2);
    expect(one.text.length).toBeGreaterThan(1_800_000);
  });
});
