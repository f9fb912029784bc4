/**
 * Variables through the HTTP API (SPEC §1, §2, §3), on both databases:
 * system variables are listed first for everyone, custom variables are typed
 * and checked, never hold a `{{secret:…}}` reference, share one name space
 * with secrets, and only roles with variables.manage change them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ROLES } from '../../src/policy/permissions.js';
import { DATABASES } from '../support/databases.js';
import { buildTeam, type Team } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';

const SYSTEM_NAMES = ['$run_id', '$workspace_id', '$env', '$date'];

function expectProblem(res: Reply, status: number, code?: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(typeof res.body?.code, res.text).toBe('string');
  if (code !== undefined) expect(res.body.code, res.text).toBe(code);
}

let counter = 0;
function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${counter}`;
}

interface TypeCase {
  type: string;
  good: unknown[];
  bad: unknown[];
}

const TYPE_CASES: TypeCase[] = [
  { type: 'text', good: ['hello', '', 'multi\nline ünïcode 🔑', '{{name}}'], bad: [42, true, {}, [], ['a']] },
  { type: 'number', good: [0, 3.5, -1, 1e21], bad: ['abc', '42', true, {}, []] },
  { type: 'boolean', good: [true, false], bad: ['yes', 'true', 1, 0, {}] },
  {
    type: 'datetime',
    good: ['2026-01-31T09:00:00Z', '2026-01-31T09:00:00.123+02:00', '2024-02-29T00:00:00Z'],
    bad: ['2026-13-01', '2026-13-01T00:00:00Z', '2026-01-31', 'yesterday', 1_700_000_000_000, '', true],
  },
  { type: 'map', good: [{ a: 1, b: { c: [1, 'x'] } }, {}], bad: [[], 'map', 1, true, [{ a: 1 }]] },
  { type: 'list', good: [[1, 'a', { b: 2 }], []], bad: [{}, 'list', 1, false, { 0: 'a' }] },
];

describe.each(DATABASES)('variables on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  let ws: string;
  let owner: TestClient;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    team = await buildTeam(t);
    ws = team.workspaceId;
    owner = team.owner;
  }, 120_000);
  afterAll(async () => t?.close());

  const variablesUrl = (workspaceId = ws) => `/api/v1/workspaces/${workspaceId}/variables`;
  const variableUrl = (id: string, workspaceId = ws) => `${variablesUrl(workspaceId)}/${id}`;

  async function createVariable(body: Record<string, unknown>, by: TestClient = owner, workspaceId = ws) {
    const res = await by.post(variablesUrl(workspaceId), { name: uniqueName('VAR'), type: 'text', ...body });
    expect(res.status, res.text).toBe(201);
    return res.body as { id: string; name: string; type: string; testValue: unknown; fallbackValue: unknown };
  }

  async function freshWorkspace(name = 'Scratch'): Promise<string> {
    const res = await owner.post('/api/v1/workspaces', { name });
    expect(res.status, res.text).toBe(201);
    return res.body.id as string;
  }

  /** Everything a refused request must leave as it was. */
  async function snapshot() {
    const variables = await t.ctx.db.selectFrom('variables').selectAll().orderBy('id').execute();
    const names = await t.ctx.db.selectFrom('variable_names').selectAll().orderBy('name_lower').execute();
    const audit = (await t.ctx.db.selectFrom('audit_events').select('id').execute()).length;
    return { variables, names, audit };
  }

  describe('listing', () => {
    it.runIf(available)('system variables lead the list, with kind "system", for every role', async () => {
      await createVariable({ name: 'Listed_For_All' });
      for (const role of SYSTEM_ROLES) {
        const res = await team.clients[role].get(variablesUrl());
        expect(res.status, `${role}: ${res.text}`).toBe(200);
        const items = res.body.items as { name: string; kind: string; type: string }[];
        expect(items.slice(0, 4).map((v) => v.name)).toEqual(SYSTEM_NAMES);
        for (const v of items.slice(0, 4)) expect(v.kind).toBe('system');
        expect(items.find((v) => v.name === '$date')?.type).toBe('datetime');
        expect(items.find((v) => v.name === '$env')?.type).toBe('text');
        for (const v of items.slice(4)) expect(v.kind).toBe('custom');
        expect(items.map((v) => v.name)).toContain('Listed_For_All');
      }
      expectProblem(await team.outsider.get(variablesUrl()), 404, 'not_found');
      expectProblem(await team.anonymous.get(variablesUrl()), 401, 'unauthenticated');
    });

    it.runIf(available)(
      'a system variable is read by the id the list gives it; nobody changes or deletes it',
      async () => {
        const listed = await team.clients.viewer.get(`${variablesUrl()}?kind=system`);
        for (const item of listed.body.items as { id: string }[]) {
          for (const role of SYSTEM_ROLES) {
            const one = await team.clients[role].get(variableUrl(item.id));
            expect(one.status, `${role} ${item.id}: ${one.text}`).toBe(200);
            expect(one.body).toEqual(item);
          }
          const before = await snapshot();
          expectProblem(
            await owner.patch(variableUrl(item.id), { description: 'mine now' }),
            409,
            'system_variable_read_only',
          );
          expectProblem(await owner.delete(variableUrl(item.id)), 409, 'system_variable_read_only');
          expectProblem(await team.clients.viewer.patch(variableUrl(item.id), { description: 'x' }), 403, 'forbidden');
          expectProblem(await team.clients.viewer.delete(variableUrl(item.id)), 403, 'forbidden');
          expectProblem(await team.outsider.get(variableUrl(item.id)), 404, 'not_found');
          expect(await snapshot()).toEqual(before);
        }
        // Only the exact names: anything else is not an id.
        expectProblem(await owner.get(variableUrl('$RUN_ID')), 422, 'validation_failed');
        expectProblem(await owner.get(variableUrl('$nothing')), 422, 'validation_failed');
      },
    );

    it.runIf(available)('?kind=custom omits system variables, ?kind=system lists only them', async () => {
      const custom = await owner.get(`${variablesUrl()}?kind=custom&limit=200`);
      expect(custom.status, custom.text).toBe(200);
      expect(custom.body.items.length).toBeGreaterThan(0);
      for (const v of custom.body.items) {
        expect(v.kind).toBe('custom');
        expect(v.name.startsWith('$')).toBe(false);
      }
      const system = await team.clients.viewer.get(`${variablesUrl()}?kind=system`);
      expect(system.status, system.text).toBe(200);
      expect(system.body.items.map((v: { name: string }) => v.name)).toEqual(SYSTEM_NAMES);
      expect(system.body.items.every((v: { kind: string }) => v.kind === 'system')).toBe(true);
      expect(system.body.nextCursor).toBeNull();
      expectProblem(await owner.get(`${variablesUrl()}?kind=secret`), 422, 'validation_failed');
    });

    it.runIf(available)('custom variables are listed by name and walked once each with a cursor', async () => {
      const w = await freshWorkspace();
      const names = ['ECHO', 'ALPHA', 'DELTA', 'BRAVO', 'CHARLIE'];
      for (const name of names) await createVariable({ name }, owner, w);

      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res: Reply = await owner.get(`${variablesUrl(w)}?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        expect(res.status, res.text).toBe(200);
        const items = res.body.items as { name: string; kind: string }[];
        const system = items.filter((v) => v.kind === 'system').map((v) => v.name);
        // The system variables lead the first page only.
        expect(system).toEqual(pages === 0 ? SYSTEM_NAMES : []);
        const customs = items.filter((v) => v.kind === 'custom');
        expect(customs.length).toBeLessThanOrEqual(2);
        seen.push(...customs.map((v) => v.name));
        cursor = res.body.nextCursor;
        pages += 1;
        expect(pages).toBeLessThan(20);
      } while (cursor);
      expect(seen).toEqual([...names].sort());
      expect(pages).toBe(3);

      const customOnly = await owner.get(`${variablesUrl(w)}?kind=custom`);
      expect(customOnly.body.items.map((v: { name: string }) => v.name)).toEqual([...names].sort());

      // ?q= searches names case-insensitively, system ones included; "_" is literal.
      const q = await owner.get(`${variablesUrl(w)}?q=A`);
      expect(q.body.items.map((v: { name: string }) => v.name)).toEqual([
        '$workspace_id',
        '$date',
        ...['ALPHA', 'BRAVO', 'CHARLIE', 'DELTA'],
      ]);
      const env = await owner.get(`${variablesUrl(w)}?q=ENV`);
      expect(env.body.items.map((v: { name: string }) => v.name)).toEqual(['$env']);
      const underscore = await owner.get(`${variablesUrl(w)}?q=_&kind=custom`);
      expect(underscore.body.items).toEqual([]);
    });
  });

  describe('types', () => {
    it.runIf(available).each(TYPE_CASES)(
      'a $type variable takes matching values and refuses mismatches with 422',
      async ({ type, good, bad }) => {
        for (const value of good) {
          const created = await createVariable({ type, testValue: value, fallbackValue: value });
          expect(created.testValue, `${type} ${JSON.stringify(value)}`).toEqual(value);
          expect(created.fallbackValue).toEqual(value);
          const got = await owner.get(variableUrl(created.id));
          expect(got.status, got.text).toBe(200);
          expect(got.body).toMatchObject({ kind: 'custom', type, testValue: value, fallbackValue: value });
        }
        const target = await createVariable({ type });
        const before = await snapshot();
        for (const value of bad) {
          const label = `${type} refuses ${JSON.stringify(value)}`;
          for (const field of ['testValue', 'fallbackValue']) {
            const created = await owner.post(variablesUrl(), { name: uniqueName('BAD'), type, [field]: value });
            expectProblem(created, 422, 'validation_failed');
            expect(created.body.errors?.[0]?.path, label).toBe(`body.${field}`);
            expectProblem(await owner.patch(variableUrl(target.id), { [field]: value }), 422, 'validation_failed');
          }
        }
        expect(await snapshot()).toEqual(before);
      },
    );

    it.runIf(available)('an impossible calendar date is not a datetime', async () => {
      for (const value of ['2026-02-30T09:00:00Z', '2026-02-29T09:00:00Z', '2026-04-31T00:00:00Z']) {
        const res = await owner.post(variablesUrl(), { name: uniqueName('DATE'), type: 'datetime', testValue: value });
        expectProblem(res, 422, 'validation_failed');
      }
    });

    it.runIf(available)('a datetime in the years 0001–0099 is a real date', async () => {
      for (const value of ['0050-06-01T00:00:00Z', '0001-01-01T00:00:00Z', '0004-02-29T12:00:00Z']) {
        const created = await createVariable({ type: 'datetime', testValue: value });
        expect(created.testValue).toBe(value);
      }
      const res = await owner.post(variablesUrl(), {
        name: uniqueName('DATE'),
        type: 'datetime',
        testValue: '0003-02-29T00:00:00Z',
      });
      expectProblem(res, 422, 'validation_failed');
    });

    it.runIf(available)(
      'a number JSON cannot hold (1e400) anywhere inside a value is refused, not stored as null',
      async () => {
        for (const [type, raw] of [
          ['map', '{"a":1e309}'],
          ['list', '[1,-1e400]'],
          ['number', '1e999'],
        ] as const) {
          const res = await owner.post(
            variablesUrl(),
            `{"name":"${uniqueName('INF')}","type":"${type}","testValue":${raw}}`,
            { 'content-type': 'application/json' },
          );
          expectProblem(res, 422, 'validation_failed');
          expect(res.body.errors?.[0]?.path).toBe('body.testValue');
        }
      },
    );

    it.runIf(available)('null clears a value; leaving a field out keeps it', async () => {
      const v = await createVariable({ type: 'number', testValue: 1, fallbackValue: 2 });
      const kept = await owner.patch(variableUrl(v.id), { description: 'described' });
      expect(kept.status, kept.text).toBe(200);
      expect(kept.body).toMatchObject({ testValue: 1, fallbackValue: 2, description: 'described' });
      const cleared = await owner.patch(variableUrl(v.id), { testValue: null });
      expect(cleared.status, cleared.text).toBe(200);
      expect(cleared.body).toMatchObject({ testValue: null, fallbackValue: 2 });
      const both = await owner.patch(variableUrl(v.id), { fallbackValue: null });
      expect(both.body).toMatchObject({ testValue: null, fallbackValue: null });
      const row = await t.ctx.db.selectFrom('variables').selectAll().where('id', '=', v.id).executeTakeFirst();
      expect(row?.test_value).toBeNull();
      expect(row?.fallback_value).toBeNull();
    });

    it.runIf(available)('changing the type re-validates the existing values', async () => {
      const v = await createVariable({ type: 'text', testValue: 'abc', fallbackValue: '12' });
      const before = await snapshot();
      expectProblem(await owner.patch(variableUrl(v.id), { type: 'number' }), 422, 'validation_failed');
      expectProblem(await owner.patch(variableUrl(v.id), { type: 'number', testValue: 5 }), 422, 'validation_failed');
      expectProblem(await owner.patch(variableUrl(v.id), { type: 'list' }), 422, 'validation_failed');
      expect(await snapshot()).toEqual(before);
      expect((await owner.get(variableUrl(v.id))).body).toMatchObject({
        type: 'text',
        testValue: 'abc',
        fallbackValue: '12',
      });

      const changed = await owner.patch(variableUrl(v.id), { type: 'number', testValue: 5, fallbackValue: 12 });
      expect(changed.status, changed.text).toBe(200);
      expect(changed.body).toMatchObject({ type: 'number', testValue: 5, fallbackValue: 12 });
      const empty = await createVariable({ type: 'text' });
      const retyped = await owner.patch(variableUrl(empty.id), { type: 'map' });
      expect(retyped.status, retyped.text).toBe(200);
      expect(retyped.body.type).toBe('map');
    });
  });

  describe('secrets never live in a variable', () => {
    const smuggled: [string, unknown][] = [
      ['text', '{{secret:API_KEY}}'],
      ['text', 'Bearer {{ secret : API_KEY}}'],
      ['text', 'x {{SECRET:api_key}} y'],
      ['text', '{{\tsecret\n:X}}'],
      ['map', { headers: { authorization: '{{secret:X}}' } }],
      ['map', { '{{secret:X}}': 'key holds it' }],
      ['list', ['a', ['b', { c: '{{ secret : X}}' }]]],
      ['list', [[[['{{secret:X}}']]]]],
    ];

    it.runIf(available)('a {{secret:…}} reference in a value is refused with secret_not_allowed_here', async () => {
      const targets: Record<string, string> = {
        text: (await createVariable({ type: 'text', testValue: 'plain' })).id,
        map: (await createVariable({ type: 'map', testValue: { a: 1 } })).id,
        list: (await createVariable({ type: 'list', testValue: [1] })).id,
      };
      const before = await snapshot();
      for (const [type, value] of smuggled) {
        for (const field of ['testValue', 'fallbackValue']) {
          const label = `${field} ${JSON.stringify(value)}`;
          const name = uniqueName('SMUGGLED');
          const created = await owner.post(variablesUrl(), { name, type, [field]: value });
          expectProblem(created, 422, 'secret_not_allowed_here');
          expect(created.body.errors?.[0]?.path, label).toBe(`body.${field}`);
          const patched = await owner.patch(variableUrl(targets[type] as string), { [field]: value });
          expectProblem(patched, 422, 'secret_not_allowed_here');
        }
      }
      expect(await snapshot()).toEqual(before);
      // Ordinary templates are fine.
      await createVariable({ type: 'text', testValue: 'Hello {{name}} from {{$env}}', fallbackValue: '{{secretary}}' });
    });
  });

  describe('names', () => {
    it.runIf(available)('invalid names are refused with 422', async () => {
      const before = await snapshot();
      for (const name of ['1abc', '$x', '$env', 'a-b', 'a'.repeat(65), '', 'a b', 'naïve']) {
        const res = await owner.post(variablesUrl(), { name, type: 'text' });
        expectProblem(res, 422, 'validation_failed');
      }
      const v = await createVariable({});
      const afterCreate = await snapshot();
      for (const name of ['1abc', '$run_id', 'a-b', 'a'.repeat(65)]) {
        expectProblem(await owner.patch(variableUrl(v.id), { name }), 422, 'validation_failed');
      }
      expect(await snapshot()).toEqual(afterCreate);
      expect(before.variables.length + 1).toBe(afterCreate.variables.length);
    });

    it.runIf(available)('a rename works and frees the old name', async () => {
      const v = await createVariable({ name: 'Old_Name', testValue: 'kept' });
      const renamed = await owner.patch(variableUrl(v.id), { name: 'New_Name' });
      expect(renamed.status, renamed.text).toBe(200);
      expect(renamed.body).toMatchObject({ id: v.id, name: 'New_Name', testValue: 'kept' });
      expect((await owner.get(variableUrl(v.id))).body.name).toBe('New_Name');

      // The old name is free for a variable and for a secret.
      await createVariable({ name: 'old_name' });
      expectProblem(await owner.post(variablesUrl(), { name: 'NEW_NAME', type: 'text' }), 409, 'name_taken');
      const reuse = await owner.patch(variableUrl(v.id), { name: 'Third_Name' });
      expect(reuse.status, reuse.text).toBe(200);
      const secret = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
        name: 'New_Name',
        visibility: 'masked',
        value: 'takes-the-freed-name',
      });
      expect(secret.status, secret.text).toBe(201);

      // A change of case only is a rename too.
      const cased = await owner.patch(variableUrl(v.id), { name: 'THIRD_NAME' });
      expect(cased.status, cased.text).toBe(200);
      expect(cased.body.name).toBe('THIRD_NAME');
      expectProblem(await owner.post(variablesUrl(), { name: 'third_name', type: 'text' }), 409, 'name_taken');
    });

    it.runIf(available)(
      "renaming onto a secret's or another variable's name is 409 name_taken and changes nothing",
      async () => {
        const secret = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
          name: 'Secret_Owned',
          visibility: 'restricted',
          value: 'secret-owned-value',
        });
        expect(secret.status, secret.text).toBe(201);
        const deleted = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
          name: 'Secret_Deleted',
          visibility: 'masked',
          value: 'secret-deleted-value',
        });
        expect((await owner.delete(`/api/v1/workspaces/${ws}/secrets/${deleted.body.id}`)).status).toBe(204);
        const other = await createVariable({ name: 'Other_Var' });
        const v = await createVariable({ name: 'Movable' });
        const before = await snapshot();
        for (const name of ['Secret_Owned', 'SECRET_OWNED', 'secret_deleted', 'Other_Var', 'OTHER_VAR']) {
          expectProblem(await owner.patch(variableUrl(v.id), { name }), 409, 'name_taken');
          expectProblem(await owner.post(variablesUrl(), { name, type: 'text' }), 409, 'name_taken');
        }
        expect(await snapshot()).toEqual(before);
        expect((await owner.get(variableUrl(v.id))).body.name).toBe('Movable');
        expect((await owner.get(variableUrl(other.id))).body.name).toBe('Other_Var');
      },
    );
  });

  describe('who may manage variables', () => {
    it.runIf(available)('an editor can create, update and delete variables, and it is audited', async () => {
      const editor = team.clients.editor;
      const created = await createVariable({ type: 'list', testValue: [1] }, editor);
      const updated = await editor.patch(variableUrl(created.id), { testValue: [1, 2], description: 'by editor' });
      expect(updated.status, updated.text).toBe(200);
      expect(updated.body).toMatchObject({ testValue: [1, 2], description: 'by editor' });
      const removed = await editor.delete(variableUrl(created.id));
      expect(removed.status, removed.text).toBe(204);
      expectProblem(await editor.get(variableUrl(created.id)), 404, 'not_found');
      // Its name is free again.
      await createVariable({ name: created.name });

      const events = await t.ctx.db
        .selectFrom('audit_events')
        .selectAll()
        .where('target_id', '=', created.id)
        .orderBy('seq')
        .execute();
      expect(events.map((e) => e.action)).toEqual(['variable.created', 'variable.updated', 'variable.deleted']);
      for (const e of events) expect(e.actor_id).toBe(team.userIds.editor);
    });

    it.runIf(available)('an admin can manage variables', async () => {
      const admin = team.clients.admin;
      const created = await createVariable({ type: 'boolean', testValue: true }, admin);
      expect((await admin.patch(variableUrl(created.id), { testValue: false })).status).toBe(200);
      expect((await admin.delete(variableUrl(created.id))).status).toBe(204);
    });

    it.runIf(available)('manager, operator and viewer can read but not create, update or delete', async () => {
      const v = await createVariable({ type: 'text', testValue: 'readable' });
      for (const role of ['manager', 'operator', 'viewer'] as const) {
        const c = team.clients[role];
        const got = await c.get(variableUrl(v.id));
        expect(got.status, got.text).toBe(200);
        expect(got.body.testValue).toBe('readable');
        expect((await c.get(variablesUrl())).status).toBe(200);

        const before = await snapshot();
        const name = uniqueName(`BY_${role}`);
        expectProblem(await c.post(variablesUrl(), { name, type: 'text' }), 403, 'forbidden');
        expectProblem(await c.patch(variableUrl(v.id), { testValue: 'changed' }), 403, 'forbidden');
        expectProblem(await c.patch(variableUrl(v.id), { name: uniqueName('RENAMED') }), 403, 'forbidden');
        expectProblem(await c.delete(variableUrl(v.id)), 403, 'forbidden');
        expect(await snapshot()).toEqual(before);
      }
      expectProblem(await team.outsider.get(variableUrl(v.id)), 404, 'not_found');
      expectProblem(await team.outsider.patch(variableUrl(v.id), { testValue: 'x' }), 404, 'not_found');
    });

    it.runIf(available)("a variable of workspace A is 404 through workspace B's URL", async () => {
      const v = await createVariable({ testValue: 'stays-in-a' });
      const b = await freshWorkspace('Other');
      const before = await snapshot();
      expectProblem(await owner.get(variableUrl(v.id, b)), 404, 'not_found');
      expectProblem(await owner.patch(variableUrl(v.id, b), { testValue: 'moved' }), 404, 'not_found');
      expectProblem(await owner.delete(variableUrl(v.id, b)), 404, 'not_found');
      expect(await snapshot()).toEqual(before);
      // Names are per workspace.
      await createVariable({ name: v.name }, owner, b);
    });
  });
});
