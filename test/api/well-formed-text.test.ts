/**
 * Text that is stored or sent on must be well-formed Unicode, on both
 * databases. A lone UTF-16 surrogate has no UTF-8 form: SQLite stored
 * "a\ud800b" as "a\ufffd\ufffd\ufffdb", PostgreSQL as "a\ufffdb", while the
 * 201 echoed the original. Every such field now answers 422
 * validation_failed naming the field, and nothing is written (the audit
 * trail, which records every change, does not move). Text with real astral
 * characters (a surrogate pair) is still stored and read back exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { type Reply, SETUP_TOKEN, startTestApp, type TestApp, type TestClient } from '../support/harness.js';

const LONE_HIGH = 'a\ud800b';
const LONE_LOW = 'x\udfffy';
/** Well-formed: an astral character (a surrogate pair), an accent, a CJK character. */
const ASTRAL = 'a💥b é 鍵';

function expectIllFormedRefused(res: Reply, path: string): void {
  expect(res.status, res.text).toBe(422);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body.code).toBe('validation_failed');
  expect(res.body.errors, res.text).toContainEqual({
    path,
    message: 'must be valid Unicode text (it holds a lone surrogate)',
  });
  expect(res.body.detail, res.text).toMatch(/lone surrogate/);
}

interface Case {
  what: string;
  send: (c: Ctx) => Promise<Reply>;
  path: string;
}

interface Ctx {
  owner: TestClient;
  ws: string;
  workflowId: string;
  secretId: string;
  variableId: string;
  roleId: string;
  invitationToken: string;
  anonymous: TestClient;
}

/** A workflow of one block that starts there. */
const workflowWith = (block: { id: string }) => ({ name: 'ok', startBlockId: block.id, blocks: [block] });
const setBlock = (extra: Record<string, unknown>) => ({ id: 's1', type: 'set', ...extra });
const apiBlock = (extra: Record<string, unknown>) => ({
  id: 'a1',
  type: 'api',
  method: 'POST',
  url: 'https://api.example.com/x',
  ...extra,
});

const CASES: Case[] = [
  {
    what: 'a new workflow name',
    send: (c) => c.owner.post(`/api/v1/workspaces/${c.ws}/workflows`, { name: LONE_HIGH }),
    path: 'body.name',
  },
  {
    what: 'a workflow renamed',
    send: (c) => c.owner.put(`/api/v1/workspaces/${c.ws}/workflows/${c.workflowId}`, { name: LONE_LOW }),
    path: 'body.name',
  },
  {
    what: 'a block name',
    send: (c) => c.owner.post(`/api/v1/workspaces/${c.ws}/workflows`, workflowWith(setBlock({ name: LONE_HIGH }))),
    path: 'body.blocks.0.name',
  },
  {
    what: 'a set block value',
    send: (c) =>
      c.owner.post(
        `/api/v1/workspaces/${c.ws}/workflows`,
        workflowWith(setBlock({ assignments: [{ variable: 'v', value: LONE_LOW }] })),
      ),
    path: 'body.blocks.0.assignments.0.value',
  },
  {
    what: 'an API block URL',
    send: (c) =>
      c.owner.post(
        `/api/v1/workspaces/${c.ws}/workflows`,
        workflowWith(apiBlock({ url: `https://api.example.com/${LONE_HIGH}` })),
      ),
    path: 'body.blocks.0.url',
  },
  {
    what: 'an API block header value',
    send: (c) =>
      c.owner.post(
        `/api/v1/workspaces/${c.ws}/workflows`,
        workflowWith(apiBlock({ headers: [{ key: 'x-note', value: LONE_LOW }] })),
      ),
    path: 'body.blocks.0.headers.0.value',
  },
  {
    what: 'an API block text body',
    send: (c) =>
      c.owner.post(
        `/api/v1/workspaces/${c.ws}/workflows`,
        workflowWith(apiBlock({ body: { mode: 'text', content: LONE_HIGH } })),
      ),
    path: 'body.blocks.0.body.content',
  },
  {
    what: 'a capture path',
    send: (c) =>
      c.owner.post(
        `/api/v1/workspaces/${c.ws}/workflows`,
        workflowWith(apiBlock({ capture: [{ variable: 'v', path: `$['${LONE_HIGH}']` }] })),
      ),
    path: 'body.blocks.0.capture.0.path',
  },
  {
    what: 'a run input value',
    send: (c) =>
      c.owner.post(`/api/v1/workspaces/${c.ws}/workflows/${c.workflowId}/runs`, {
        variables: { note: { deep: [LONE_HIGH] } },
      }),
    path: 'body.variables.note',
  },
  {
    what: 'a Send request input value',
    send: (c) =>
      c.owner.post(`/api/v1/workspaces/${c.ws}/blocks/send`, { block: apiBlock({}), variables: { note: LONE_LOW } }),
    path: 'body.variables.note',
  },
  {
    what: 'a new secret description',
    send: (c) =>
      c.owner.post(`/api/v1/workspaces/${c.ws}/secrets`, {
        name: 'NEW_SECRET',
        visibility: 'masked',
        value: 'v-0123456789',
        description: LONE_HIGH,
      }),
    path: 'body.description',
  },
  {
    what: "a secret's allowed host",
    send: (c) =>
      c.owner.patch(`/api/v1/workspaces/${c.ws}/secrets/${c.secretId}`, { allowedHosts: [`${LONE_HIGH}.example.com`] }),
    path: 'body.allowedHosts.0',
  },
  {
    what: 'a secret description changed',
    send: (c) => c.owner.patch(`/api/v1/workspaces/${c.ws}/secrets/${c.secretId}`, { description: LONE_LOW }),
    path: 'body.description',
  },
  {
    what: 'a new variable description',
    send: (c) =>
      c.owner.post(`/api/v1/workspaces/${c.ws}/variables`, { name: 'new_var', type: 'text', description: LONE_HIGH }),
    path: 'body.description',
  },
  {
    what: 'a text variable test value',
    send: (c) =>
      c.owner.post(`/api/v1/workspaces/${c.ws}/variables`, { name: 'new_var', type: 'text', testValue: LONE_HIGH }),
    path: 'body.testValue',
  },
  {
    what: 'a map variable fallback value (a key)',
    send: (c) =>
      c.owner.post(`/api/v1/workspaces/${c.ws}/variables`, {
        name: 'new_map',
        type: 'map',
        fallbackValue: { ok: { [LONE_LOW]: 1 } },
      }),
    path: 'body.fallbackValue',
  },
  {
    what: 'a variable test value changed',
    send: (c) => c.owner.patch(`/api/v1/workspaces/${c.ws}/variables/${c.variableId}`, { testValue: LONE_HIGH }),
    path: 'body.testValue',
  },
  {
    what: 'a variable description changed',
    send: (c) => c.owner.patch(`/api/v1/workspaces/${c.ws}/variables/${c.variableId}`, { description: LONE_LOW }),
    path: 'body.description',
  },
  {
    what: 'a new role description',
    send: (c) =>
      c.owner.post(`/api/v1/workspaces/${c.ws}/roles`, { name: 'Auditors', description: LONE_HIGH, permissions: [] }),
    path: 'body.description',
  },
  {
    what: 'a role description changed',
    send: (c) => c.owner.patch(`/api/v1/workspaces/${c.ws}/roles/${c.roleId}`, { description: LONE_LOW }),
    path: 'body.description',
  },
  {
    what: 'an API token name',
    send: (c) => c.owner.post('/api/v1/tokens', { name: LONE_HIGH, workspaceId: c.ws }),
    path: 'body.name',
  },
  {
    what: 'a new workspace name',
    send: (c) => c.owner.post('/api/v1/workspaces', { name: LONE_HIGH }),
    path: 'body.name',
  },
  {
    what: 'a workspace renamed',
    send: (c) => c.owner.patch(`/api/v1/workspaces/${c.ws}`, { name: LONE_LOW }),
    path: 'body.name',
  },
  {
    what: "a new account's name on accepting an invitation",
    send: (c) =>
      c.anonymous.post('/api/v1/invitations/accept', {
        token: c.invitationToken,
        name: LONE_HIGH,
        password: 'correct horse battery staple',
      }),
    path: 'body.name',
  },
  {
    what: 'the first owner name and workspace name at setup',
    send: (c) =>
      c.anonymous.post('/api/v1/setup', {
        token: SETUP_TOKEN,
        email: 'someone@example.com',
        password: 'correct horse battery staple',
        name: LONE_HIGH,
        workspaceName: 'Acme',
      }),
    path: 'body.name',
  },
];

describe.each(DATABASES)('well-formed text on $kind', ({ kind, available }) => {
  let t: TestApp;
  const c = {} as Ctx;

  async function auditCount(): Promise<number> {
    const row = await t.ctx.db
      .selectFrom('audit_events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    const { owner, workspaceId } = await setupOwner(t);
    c.owner = owner;
    c.ws = workspaceId;
    c.anonymous = t.client();
    const base = `/api/v1/workspaces/${workspaceId}`;
    const wf = await owner.post(`${base}/workflows`, { name: 'Original workflow' });
    expect(wf.status, wf.text).toBe(201);
    c.workflowId = wf.body.id;
    const secret = await owner.post(`${base}/secrets`, {
      name: 'EXISTING',
      visibility: 'masked',
      value: 'existing-value-0123',
      description: 'original description',
    });
    expect(secret.status, secret.text).toBe(201);
    c.secretId = secret.body.id;
    const variable = await owner.post(`${base}/variables`, {
      name: 'existing_var',
      type: 'text',
      description: 'original description',
      testValue: 'original',
    });
    expect(variable.status, variable.text).toBe(201);
    c.variableId = variable.body.id;
    const role = await owner.post(`${base}/roles`, {
      name: 'Readers',
      description: 'original description',
      permissions: [],
    });
    expect(role.status, role.text).toBe(201);
    c.roleId = role.body.id;
    const invitation = await owner.post(`${base}/invitations`, { email: 'invitee@example.com', role: 'viewer' });
    expect(invitation.status, invitation.text).toBe(201);
    c.invitationToken = invitation.body.token;
  }, 60_000);
  afterAll(async () => t?.close());

  it.runIf(available).each(CASES)('refuses a lone surrogate in $what: 422, nothing written', async ({ send, path }) => {
    const before = await auditCount();
    expectIllFormedRefused(await send(c), path);
    expect(await auditCount(), 'a refused request wrote nothing').toBe(before);
  });

  it.runIf(available)('what was there before a refused change is still there, unaltered', async () => {
    const base = `/api/v1/workspaces/${c.ws}`;
    expect((await c.owner.get(`${base}/workflows/${c.workflowId}`)).body.name).toBe('Original workflow');
    expect((await c.owner.get(`${base}/secrets/${c.secretId}`)).body.description).toBe('original description');
    const variable = (await c.owner.get(`${base}/variables/${c.variableId}`)).body;
    expect(variable).toMatchObject({ description: 'original description', testValue: 'original' });
    const roles = (await c.owner.get(`${base}/roles`)).body.items as { id: string; description: string }[];
    expect(roles.find((r) => r.id === c.roleId)?.description).toBe('original description');
    expect((await c.owner.get(`${base}`)).body.name).toBe('Acme');
    expect((await c.owner.get(`${base}/workflows`)).body.items).toHaveLength(1);
    const users = await t.ctx.db.selectFrom('users').select('name').execute();
    expect(users.map((u) => u.name)).toEqual(['Olivia Owner']);
  });

  it.runIf(available)('well-formed astral text is stored and read back exactly', async () => {
    const base = `/api/v1/workspaces/${c.ws}`;
    const wf = await c.owner.post(`${base}/workflows`, {
      name: ASTRAL,
      startBlockId: 's1',
      blocks: [setBlock({ name: ASTRAL, assignments: [{ variable: 'v', value: ASTRAL }] })],
    });
    expect(wf.status, wf.text).toBe(201);
    const readWf = (await c.owner.get(`${base}/workflows/${wf.body.id}`)).body;
    expect(readWf.name).toBe(ASTRAL);
    expect(readWf.blocks[0]).toMatchObject({ name: ASTRAL, assignments: [{ variable: 'v', value: ASTRAL }] });
    const secret = await c.owner.post(`${base}/secrets`, {
      name: 'ASTRAL_SECRET',
      visibility: 'masked',
      value: 'astral-value-0123',
      description: ASTRAL,
    });
    expect(secret.status, secret.text).toBe(201);
    expect((await c.owner.get(`${base}/secrets/${secret.body.id}`)).body.description).toBe(ASTRAL);
    const variable = await c.owner.post(`${base}/variables`, {
      name: 'astral_map',
      type: 'map',
      description: ASTRAL,
      testValue: { [ASTRAL]: [ASTRAL] },
    });
    expect(variable.status, variable.text).toBe(201);
    expect((await c.owner.get(`${base}/variables/${variable.body.id}`)).body).toMatchObject({
      description: ASTRAL,
      testValue: { [ASTRAL]: [ASTRAL] },
    });
    const renamed = await c.owner.patch(base, { name: ASTRAL });
    expect(renamed.status, renamed.text).toBe(200);
    expect((await c.owner.get(base)).body.name).toBe(ASTRAL);
  });
});
