/**
 * The permission matrix, generated from the policy table: every workspace
 * route (foundation, variables, secrets, workflows and runs) × the six system roles, plus a signed-in
 * non-member (404) and an anonymous caller (401), on both databases.
 * An allowed call must succeed (2xx) against a target prepared for it; a
 * refused one must be 403 `forbidden` and change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, nowIso } from '../../src/app/ids.js';
import { type Permission, SYSTEM_ROLE_PERMISSIONS, SYSTEM_ROLES } from '../../src/policy/permissions.js';
import { DATABASES } from '../support/databases.js';
import { buildTeam, insertMember, type Team } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

interface Prepared {
  url: string;
  body?: unknown;
}

interface RouteCase {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  route: string;
  /** The permission the route needs; null = any member. */
  permission: Permission | null;
  /** Builds a fresh target (as the owner / directly in the DB) and the request. */
  prepare(t: TestApp, team: Team, ws: string): Promise<Prepared>;
}

async function createRole(team: Team, ws: string): Promise<string> {
  const res = await team.owner.post(`/api/v1/workspaces/${ws}/roles`, {
    name: `r${Math.random()}`.slice(0, 20),
    permissions: ['workflows.read'],
  });
  expect(res.status, res.text).toBe(201);
  return res.body.id;
}

/** A second workspace with the same people in the same roles, safe to delete. */
async function cloneWorkspace(t: TestApp, team: Team): Promise<string> {
  const res = await team.owner.post('/api/v1/workspaces', { name: 'Disposable' });
  const ws = res.body.id as string;
  const now = nowIso();
  for (const role of SYSTEM_ROLES) {
    if (role === 'owner') continue;
    await t.ctx.db
      .insertInto('members')
      .values({ workspace_id: ws, user_id: team.userIds[role], role, created_at: now, updated_at: now })
      .execute();
  }
  return ws;
}

let counter = 0;
const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${counter++}`;

async function createSecret(team: Team, ws: string, opts: { deleted?: boolean } = {}): Promise<string> {
  const res = await team.owner.post(`/api/v1/workspaces/${ws}/secrets`, {
    name: uniqueName('s'),
    visibility: 'masked',
    value: 'matrix-secret-value',
  });
  expect(res.status, res.text).toBe(201);
  if (opts.deleted)
    expect((await team.owner.delete(`/api/v1/workspaces/${ws}/secrets/${res.body.id}`)).status).toBe(204);
  return res.body.id;
}

async function createVariable(team: Team, ws: string): Promise<string> {
  const res = await team.owner.post(`/api/v1/workspaces/${ws}/variables`, { name: uniqueName('v'), type: 'text' });
  expect(res.status, res.text).toBe(201);
  return res.body.id;
}

/** A workflow with a single Set block: runs without any network. */
const setWorkflow = () => ({
  name: uniqueName('wf'),
  startBlockId: 'set',
  blocks: [{ id: 'set', type: 'set', assignments: [{ variable: 'greeting', value: 'hello' }] }],
});

async function createWorkflow(team: Team, ws: string): Promise<string> {
  const res = await team.owner.post(`/api/v1/workspaces/${ws}/workflows`, setWorkflow());
  expect(res.status, res.text).toBe(201);
  return res.body.id;
}

async function createRun(team: Team, ws: string): Promise<string> {
  const res = await team.owner.post(`/api/v1/workspaces/${ws}/workflows/${await createWorkflow(team, ws)}/runs`, {});
  expect(res.status, res.text).toBe(201);
  return res.body.id;
}

/** The upstream "Send request" calls in the matrix (started per database in beforeAll). */
let upstream: Upstream | undefined;

const CASES: RouteCase[] = [
  // Workflows and runs (issue 4)
  {
    method: 'GET',
    route: '/workspaces/:ws/workflows',
    permission: 'workflows.read',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/workflows` }),
  },
  {
    method: 'POST',
    route: '/workspaces/:ws/workflows',
    permission: 'workflows.edit',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/workflows`, body: setWorkflow() }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/workflows/:id',
    permission: 'workflows.read',
    prepare: async (_t, team, ws) => ({ url: `/api/v1/workspaces/${ws}/workflows/${await createWorkflow(team, ws)}` }),
  },
  {
    method: 'PUT',
    route: '/workspaces/:ws/workflows/:id',
    permission: 'workflows.edit',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/workflows/${await createWorkflow(team, ws)}`,
      body: setWorkflow(),
    }),
  },
  {
    method: 'DELETE',
    route: '/workspaces/:ws/workflows/:id',
    permission: 'workflows.edit',
    prepare: async (_t, team, ws) => ({ url: `/api/v1/workspaces/${ws}/workflows/${await createWorkflow(team, ws)}` }),
  },
  {
    method: 'POST',
    route: '/workspaces/:ws/workflows/:id/runs',
    permission: 'workflows.run',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/workflows/${await createWorkflow(team, ws)}/runs`,
      body: { variables: { who: 'matrix' } },
    }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/workflows/:id/runs',
    permission: 'workflows.read',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/workflows/${await createWorkflow(team, ws)}/runs`,
    }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/runs/:runId',
    permission: 'workflows.read',
    prepare: async (_t, team, ws) => ({ url: `/api/v1/workspaces/${ws}/runs/${await createRun(team, ws)}` }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/secrets/:id/usages',
    permission: 'secrets.read',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/secrets/${await createSecret(team, ws)}/usages`,
    }),
  },
  {
    method: 'POST',
    route: '/workspaces/:ws/blocks/send',
    permission: 'workflows.edit',
    prepare: async (_t, _team, ws) => ({
      url: `/api/v1/workspaces/${ws}/blocks/send`,
      body: {
        block: { id: 'probe', type: 'api', method: 'GET', url: `${upstream?.url}/matrix` },
        variables: {},
      },
    }),
  },
  // Variables (issue 3)
  {
    method: 'GET',
    route: '/workspaces/:ws/variables',
    permission: 'variables.read',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/variables` }),
  },
  {
    method: 'POST',
    route: '/workspaces/:ws/variables',
    permission: 'variables.manage',
    prepare: async (_t, _team, ws) => ({
      url: `/api/v1/workspaces/${ws}/variables`,
      body: { name: uniqueName('v'), type: 'number', testValue: 1 },
    }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/variables/:id',
    permission: 'variables.read',
    prepare: async (_t, team, ws) => ({ url: `/api/v1/workspaces/${ws}/variables/${await createVariable(team, ws)}` }),
  },
  {
    method: 'PATCH',
    route: '/workspaces/:ws/variables/:id',
    permission: 'variables.manage',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/variables/${await createVariable(team, ws)}`,
      body: { description: 'd' },
    }),
  },
  {
    method: 'DELETE',
    route: '/workspaces/:ws/variables/:id',
    permission: 'variables.manage',
    prepare: async (_t, team, ws) => ({ url: `/api/v1/workspaces/${ws}/variables/${await createVariable(team, ws)}` }),
  },
  // Secrets (issue 3)
  {
    method: 'GET',
    route: '/workspaces/:ws/secrets',
    permission: 'secrets.read',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/secrets` }),
  },
  {
    method: 'POST',
    route: '/workspaces/:ws/secrets',
    permission: 'secrets.manage',
    prepare: async (_t, _team, ws) => ({
      url: `/api/v1/workspaces/${ws}/secrets`,
      body: { name: uniqueName('s'), visibility: 'restricted', value: 'matrix-created-value' },
    }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/secrets/:id',
    permission: 'secrets.read',
    prepare: async (_t, team, ws) => ({ url: `/api/v1/workspaces/${ws}/secrets/${await createSecret(team, ws)}` }),
  },
  {
    method: 'PATCH',
    route: '/workspaces/:ws/secrets/:id',
    permission: 'secrets.manage',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/secrets/${await createSecret(team, ws)}`,
      body: { value: 'matrix-new-value' },
    }),
  },
  {
    method: 'DELETE',
    route: '/workspaces/:ws/secrets/:id',
    permission: 'secrets.manage',
    prepare: async (_t, team, ws) => ({ url: `/api/v1/workspaces/${ws}/secrets/${await createSecret(team, ws)}` }),
  },
  {
    method: 'DELETE',
    route: '/workspaces/:ws/secrets/:id?purge=true',
    permission: 'secrets.manage',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/secrets/${await createSecret(team, ws, { deleted: true })}?purge=true`,
    }),
  },
  {
    method: 'POST',
    route: '/workspaces/:ws/secrets/:id/restore',
    permission: 'secrets.manage',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/secrets/${await createSecret(team, ws, { deleted: true })}/restore`,
    }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/secrets/:id/versions',
    permission: 'secrets.read',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/secrets/${await createSecret(team, ws)}/versions`,
    }),
  },
  {
    method: 'POST',
    route: '/workspaces/:ws/secrets/:id/reveal',
    permission: 'secrets.reveal',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/secrets/${await createSecret(team, ws)}/reveal`,
    }),
  },
  // Foundation (issue 2)
  {
    method: 'GET',
    route: '/workspaces/:ws',
    permission: null,
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}` }),
  },
  {
    method: 'PATCH',
    route: '/workspaces/:ws',
    permission: 'workspace.manage',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}`, body: { name: 'Renamed' } }),
  },
  {
    method: 'DELETE',
    route: '/workspaces/:ws',
    permission: 'workspace.manage',
    prepare: async (t, team) => ({ url: `/api/v1/workspaces/${await cloneWorkspace(t, team)}` }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/members',
    permission: 'members.read',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/members` }),
  },
  {
    method: 'PATCH',
    route: '/workspaces/:ws/members/:userId',
    permission: 'members.manage',
    prepare: async (t, _team, ws) => ({
      url: `/api/v1/workspaces/${ws}/members/${await insertMember(t, ws, 'viewer')}`,
      body: { role: 'operator' },
    }),
  },
  {
    method: 'DELETE',
    route: '/workspaces/:ws/members/:userId',
    permission: 'members.manage',
    prepare: async (t, _team, ws) => ({
      url: `/api/v1/workspaces/${ws}/members/${await insertMember(t, ws, 'viewer')}`,
    }),
  },
  {
    method: 'POST',
    route: '/workspaces/:ws/invitations',
    permission: 'members.manage',
    prepare: async (_t, _team, ws) => ({
      url: `/api/v1/workspaces/${ws}/invitations`,
      body: { email: `${newId('x')}@example.com`, role: 'viewer' },
    }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/invitations',
    permission: 'members.manage',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/invitations` }),
  },
  {
    method: 'DELETE',
    route: '/workspaces/:ws/invitations/:id',
    permission: 'members.manage',
    prepare: async (_t, team, ws) => {
      const inv = await team.owner.post(`/api/v1/workspaces/${ws}/invitations`, {
        email: `${newId('x')}@example.com`,
        role: 'viewer',
      });
      return { url: `/api/v1/workspaces/${ws}/invitations/${inv.body.id}` };
    },
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/roles',
    permission: 'members.read',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/roles` }),
  },
  {
    method: 'POST',
    route: '/workspaces/:ws/roles',
    permission: 'roles.manage',
    prepare: async (_t, _team, ws) => ({
      url: `/api/v1/workspaces/${ws}/roles`,
      body: { name: `role ${newId('r')}`.slice(0, 30), permissions: ['variables.read'] },
    }),
  },
  {
    method: 'PATCH',
    route: '/workspaces/:ws/roles/:id',
    permission: 'roles.manage',
    prepare: async (_t, team, ws) => ({
      url: `/api/v1/workspaces/${ws}/roles/${await createRole(team, ws)}`,
      body: { description: 'changed' },
    }),
  },
  {
    method: 'DELETE',
    route: '/workspaces/:ws/roles/:id',
    permission: 'roles.manage',
    prepare: async (_t, team, ws) => ({ url: `/api/v1/workspaces/${ws}/roles/${await createRole(team, ws)}` }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/audit',
    permission: 'audit.read',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/audit` }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/audit.csv',
    permission: 'audit.read',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/audit.csv` }),
  },
  {
    method: 'GET',
    route: '/workspaces/:ws/audit/verify',
    permission: 'audit.read',
    prepare: async (_t, _team, ws) => ({ url: `/api/v1/workspaces/${ws}/audit/verify` }),
  },
  {
    method: 'POST',
    route: '/tokens',
    permission: null,
    prepare: async (_t, _team, ws) => ({
      url: '/api/v1/tokens',
      body: { name: 'ci', workspaceId: ws, expiresInDays: 1 },
    }),
  },
];

type Caller = (typeof SYSTEM_ROLES)[number] | 'non-member' | 'anonymous';
const CALLERS: Caller[] = [...SYSTEM_ROLES, 'non-member', 'anonymous'];

function expectedStatus(c: RouteCase, caller: Caller): 'ok' | 403 | 404 | 401 {
  if (caller === 'anonymous') return 401;
  if (caller === 'non-member') return 404;
  if (c.permission === null) return 'ok';
  return SYSTEM_ROLE_PERMISSIONS[caller].has(c.permission) ? 'ok' : 403;
}

function clientFor(team: Team, caller: Caller): TestClient {
  if (caller === 'anonymous') return team.anonymous;
  if (caller === 'non-member') return team.outsider;
  return team.clients[caller];
}

describe.each(DATABASES)('permission matrix on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  beforeAll(async () => {
    if (!available) return;
    upstream = await startUpstream();
    // Send request in the matrix calls a real upstream on loopback.
    t = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    team = await buildTeam(t);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await upstream?.close();
  });

  const rows = CASES.flatMap((c) => CALLERS.map((caller) => ({ c, caller, expected: expectedStatus(c, caller) })));
  it.runIf(available).each(rows)('$c.method $c.route as $caller → $expected', async ({ c, caller, expected }) => {
    const prepared = await c.prepare(t, team, team.workspaceId);
    const auditBefore = await t.ctx.db.selectFrom('audit_events').select('id').execute();
    const res = await clientFor(team, caller).request(c.method, prepared.url, prepared.body);
    if (expected === 'ok') {
      expect(res.status, res.text).toBeGreaterThanOrEqual(200);
      expect(res.status, res.text).toBeLessThan(300);
      return;
    }
    expect(res.status, res.text).toBe(expected);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.code).toBe({ 401: 'unauthenticated', 403: 'forbidden', 404: 'not_found' }[expected]);
    // A refusal writes nothing.
    const auditAfter = await t.ctx.db.selectFrom('audit_events').select('id').execute();
    expect(auditAfter.length).toBe(auditBefore.length);
  });
});
