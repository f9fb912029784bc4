/**
 * How many secret references one workflow may hold, on both databases: a
 * save past MAX_SECRET_REFS references, or past MAX_SECRET_REF_PATH_CHARS
 * characters of their paths, is 422 `too_many_references` and stores
 * nothing; a workflow at the bound saves whole (its reference rows go in
 * several INSERTs). A workflow saved before the bound, naming one secret in
 * thousands of fields, is still served: its secret's usages read its blocks
 * once, not once per reference (which took memory in proportion to
 * references × document size and ran the server out of it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, nowIso } from '../../src/app/ids.js';
import { MAX_SECRET_REF_PATH_CHARS, MAX_SECRET_REFS } from '../../src/modules/workflows/workflow-service.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';

/** References in the workflow saved before the bound. */
const LEGACY_REFS = 8_000;
/** What reading its usages may add to the process's peak memory (the old read added over 1 GB). */
const USAGES_MEMORY_BUDGET_MB = 200;

function expectProblem(res: Reply, status: number, code: string): void {
  expect(res.status, res.text.slice(0, 300)).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body?.code, res.text.slice(0, 300)).toBe(code);
}

/** One API block whose JSON body is `content`. */
function jsonBodyWorkflow(name: string, content: string) {
  return {
    name,
    startBlockId: 'a',
    blocks: [
      {
        id: 'a',
        type: 'api',
        name: 'many',
        method: 'POST',
        url: 'https://api.example.com/x',
        body: { mode: 'json', content },
      },
    ],
  };
}

/** A JSON array naming the secret `count` times. */
function secretArray(secret: string, count: number): string {
  return JSON.stringify(Array.from({ length: count }, () => `{{secret:${secret}}}`));
}

function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

describe.each(DATABASES)('secret references per workflow on $kind', ({ kind, available }) => {
  let t: TestApp;
  let owner: TestClient;
  let ws: string;
  let secretId: string;
  let api: (path: string) => string;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    ({ owner, workspaceId: ws } = await setupOwner(t));
    api = (path) => `/api/v1/workspaces/${ws}${path}`;
    const secret = await owner.post(api('/secrets'), { name: 'MANY', visibility: 'masked', value: 'many-refs-value' });
    expect(secret.status, secret.text).toBe(201);
    secretId = secret.body.id;
  }, 120_000);
  afterAll(async () => t?.close());

  async function refRows(workflowId?: string): Promise<number> {
    let q = t.ctx.db.selectFrom('workflow_secret_refs').select('block_id').where('workspace_id', '=', ws);
    if (workflowId) q = q.where('workflow_id', '=', workflowId);
    return (await q.execute()).length;
  }

  it.runIf(available)(
    `a workflow of ${MAX_SECRET_REFS} references saves whole; one more is 422 too_many_references, on create and on replace, and stores nothing`,
    async () => {
      const atBound = await owner.post(
        api('/workflows'),
        jsonBodyWorkflow('at the bound', secretArray('MANY', MAX_SECRET_REFS)),
      );
      expect(atBound.status, atBound.text.slice(0, 300)).toBe(201);
      const id = atBound.body.id as string;
      expect(await refRows(id)).toBe(MAX_SECRET_REFS);
      const usages = await owner.get(api(`/secrets/${secretId}/usages?limit=200`));
      expect(usages.status, usages.text.slice(0, 300)).toBe(200);
      expect(usages.body.items).toHaveLength(200);
      expect(usages.body.items[0]).toMatchObject({ workflowId: id, blockId: 'a', blockName: 'many' });

      const workflowsBefore = (await owner.get(api('/workflows'))).body.items.length;
      const refsBefore = await refRows();
      const over = jsonBodyWorkflow('past the bound', secretArray('MANY', MAX_SECRET_REFS + 1));
      expectProblem(await owner.post(api('/workflows'), over), 422, 'too_many_references');
      expectProblem(await owner.put(api(`/workflows/${id}`), over), 422, 'too_many_references');
      // Spread over blocks, the bound is the workflow's.
      const spread = {
        name: 'spread',
        startBlockId: 'a',
        blocks: ['a', 'b'].map((blockId) => ({
          id: blockId,
          type: 'api',
          method: 'POST',
          url: 'https://api.example.com/x',
          body: { mode: 'json', content: secretArray('MANY', MAX_SECRET_REFS / 2 + 1) },
        })),
      };
      expectProblem(await owner.post(api('/workflows'), spread), 422, 'too_many_references');
      expect((await owner.get(api('/workflows'))).body.items.length).toBe(workflowsBefore);
      expect(await refRows()).toBe(refsBefore);
      expect((await owner.get(api(`/workflows/${id}`))).body.name).toBe('at the bound');
    },
    60_000,
  );

  it.runIf(available)(
    `references whose paths total more than ${MAX_SECRET_REF_PATH_CHARS} characters (a long key above each) are 422 too_many_references`,
    async () => {
      // 400 references under a 700-character key: far below the count bound, over the path bound.
      const key = 'k'.repeat(700);
      const content = JSON.stringify({ [key]: JSON.parse(secretArray('MANY', 400)) });
      expect(400 * key.length).toBeGreaterThan(MAX_SECRET_REF_PATH_CHARS);
      const before = await refRows();
      expectProblem(
        await owner.post(api('/workflows'), jsonBodyWorkflow('long paths', content)),
        422,
        'too_many_references',
      );
      expect(await refRows()).toBe(before);
      // The same key above fewer references is fine.
      const fewer = JSON.stringify({ [key]: JSON.parse(secretArray('MANY', 300)) });
      const saved = await owner.post(api('/workflows'), jsonBodyWorkflow('long paths, fewer', fewer));
      expect(saved.status, saved.text.slice(0, 300)).toBe(201);
    },
    60_000,
  );

  it.runIf(available)(
    'a long key above thousands of fields gives a bounded answer: at most 100 warnings or errors listed, their paths cut at 512 characters',
    async () => {
      // 2,000 fields under a 100,000-character key: listed in full, each path repeated the key (200 MB).
      const key = 'k'.repeat(100_000);
      const warned = await owner.post(
        api('/workflows'),
        jsonBodyWorkflow('unknown variables', JSON.stringify({ [key]: Array(2000).fill('{{nowhere}}') })),
      );
      expect(warned.status, warned.text.slice(0, 300)).toBe(201);
      expect(warned.text.length).toBeLessThan(400_000);
      const warnings = warned.body.warnings as { path: string; message: string }[];
      expect(warnings).toHaveLength(101);
      expect(warnings[0]?.path).toMatch(/^body\.blocks\.0\.body\.content\/k{400,}…$/);
      expect(warnings[0]?.path.length).toBe(513);
      expect(warnings.at(-1)).toEqual({ path: 'body.blocks', message: '1900 more unknown variables are not listed' });

      const refused = await owner.post(
        api('/workflows'),
        jsonBodyWorkflow('broken templates', JSON.stringify({ [key]: Array(2000).fill('{{nowhere') })),
      );
      expectProblem(refused, 422, 'validation_failed');
      expect(refused.text.length).toBeLessThan(200_000);
      expect(refused.body.errors).toHaveLength(101);
      expect(refused.body.errors.at(-1)).toEqual({ path: 'body.blocks', message: '1900 more problems are not listed' });
      expect(refused.body.detail.length).toBeLessThan(1_000);
    },
    60_000,
  );

  it.runIf(available)(
    `a workflow saved before the bound, naming a secret ${LEGACY_REFS} times, is still listed in its usages without reading its blocks per reference`,
    async () => {
      const secret = await owner.post(api('/secrets'), {
        name: 'LEGACY',
        visibility: 'masked',
        value: 'legacy-value-1',
      });
      expect(secret.status, secret.text).toBe(201);
      // Written straight into the database, as an older Hush saved it.
      const id = newId('wf');
      const now = nowIso();
      const blocks = jsonBodyWorkflow('legacy', secretArray('LEGACY', LEGACY_REFS)).blocks.map((b) => ({
        ...b,
        name: 'legacy block',
        query: [],
        headers: [],
        timeoutMs: 10_000,
        capture: [],
        onSuccess: null,
        onError: null,
      }));
      await t.ctx.db
        .insertInto('workflows')
        .values({
          id,
          workspace_id: ws,
          name: 'legacy',
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
      for (let start = 0; start < LEGACY_REFS; start += 500) {
        await t.ctx.db
          .insertInto('workflow_secret_refs')
          .values(
            Array.from({ length: Math.min(500, LEGACY_REFS - start) }, (_, i) => ({
              workspace_id: ws,
              workflow_id: id,
              block_id: 'a',
              field: `body.content/${start + i}`,
              secret_name_lower: 'legacy',
            })),
          )
          .execute();
      }

      const peakBefore = peakRssMb();
      const usages = await owner.get(api(`/secrets/${secret.body.id}/usages?limit=1`));
      const grew = peakRssMb() - peakBefore;
      expect(usages.status, usages.text.slice(0, 300)).toBe(200);
      expect(usages.body.items).toEqual([
        expect.objectContaining({ workflowId: id, workflowName: 'legacy', blockId: 'a', blockName: 'legacy block' }),
      ]);
      expect(usages.body.nextCursor).not.toBeNull();
      expect(grew, `peak memory grew by ${grew.toFixed(0)} MB`).toBeLessThan(USAGES_MEMORY_BUDGET_MB);
      // It is served as saved, and deletable.
      expect((await owner.get(api(`/workflows/${id}`))).status).toBe(200);
      expect((await owner.delete(api(`/workflows/${id}`))).status).toBe(204);
      expect(await refRows(id)).toBe(0);
    },
    120_000,
  );

  it.runIf(available)(
    'a JSON body key holding a NUL or an escaped lone surrogate is 422 on save and on Send, never a 500; nothing stored',
    async () => {
      for (const content of [
        '{"a\\u0000b":"{{secret:MANY}}"}',
        '{"\\ud800":"{{secret:MANY}}"}',
        '{"x":{"\\udc00y":"plain"}}',
      ]) {
        const before = await refRows();
        const saved = await owner.post(api('/workflows'), jsonBodyWorkflow('odd keys', content));
        expectProblem(saved, 422, 'validation_failed');
        expect(saved.body.errors?.[0]?.path, content).toBe('body.blocks.0.body.content');
        expect(await refRows()).toBe(before);
        const sent = await owner.post(api('/blocks/send'), { block: jsonBodyWorkflow('x', content).blocks[0] });
        expectProblem(sent, 422, 'validation_failed');
      }
      // The same characters in a value are data: kept and sent as written.
      const fine = await owner.post(api('/workflows'), jsonBodyWorkflow('odd values', '{"k":"a\\u0000b \\ud800"}'));
      expect(fine.status, fine.text).toBe(201);
    },
  );
});
