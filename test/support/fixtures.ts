/** Builds the people tests need, through the public API. */
import { expect } from 'vitest';
import { newId, nowIso } from '../../src/app/ids.js';
import { SYSTEM_ROLES, type SystemRole } from '../../src/policy/permissions.js';
import { PASSWORD, SETUP_TOKEN, type TestApp, type TestClient } from './harness.js';

export interface Team {
  workspaceId: string;
  owner: TestClient;
  ownerId: string;
  /** A signed-in client per system role (owner included). */
  clients: Record<SystemRole, TestClient>;
  userIds: Record<SystemRole, string>;
  /** Signed in, but a member of another workspace only. */
  outsider: TestClient;
  anonymous: TestClient;
}

export async function setupOwner(t: TestApp, email = 'owner@example.com') {
  const owner = t.client();
  const res = await owner.post('/api/v1/setup', {
    token: SETUP_TOKEN,
    email,
    password: PASSWORD,
    name: 'Olivia Owner',
    workspaceName: 'Acme',
  });
  expect(res.status, res.text).toBe(201);
  return { owner, workspaceId: res.body.workspace.id as string, ownerId: res.body.user.id as string };
}

/** Invites `email` with `role` as `inviter` and accepts as a new account. */
export async function inviteAndJoin(t: TestApp, inviter: TestClient, workspaceId: string, email: string, role: string) {
  const inv = await inviter.post(`/api/v1/workspaces/${workspaceId}/invitations`, { email, role });
  expect(inv.status, inv.text).toBe(201);
  const member = t.client();
  const accepted = await member.post('/api/v1/invitations/accept', {
    token: inv.body.token,
    name: email,
    password: PASSWORD,
  });
  expect(accepted.status, accepted.text).toBe(201);
  return { client: member, userId: accepted.body.user.id as string };
}

export async function buildTeam(t: TestApp): Promise<Team> {
  const { owner, workspaceId, ownerId } = await setupOwner(t);
  const clients = { owner } as Record<SystemRole, TestClient>;
  const userIds = { owner: ownerId } as Record<SystemRole, string>;
  for (const role of SYSTEM_ROLES) {
    if (role === 'owner') continue;
    const joined = await inviteAndJoin(t, owner, workspaceId, `${role}@example.com`, role);
    clients[role] = joined.client;
    userIds[role] = joined.userId;
  }
  // The outsider owns a workspace of their own and is no member of this one.
  const outsiderInvite = await inviteAndJoin(t, owner, workspaceId, 'outsider@example.com', 'viewer');
  const own = await outsiderInvite.client.post('/api/v1/workspaces', { name: 'Elsewhere' });
  expect(own.status).toBe(201);
  const left = await outsiderInvite.client.delete(`/api/v1/workspaces/${workspaceId}/members/${outsiderInvite.userId}`);
  expect(left.status, left.text).toBe(204);
  return { workspaceId, owner, ownerId, clients, userIds, outsider: outsiderInvite.client, anonymous: t.client() };
}

/**
 * A member with `role` written straight into the database (a bare user, no
 * password): for tests that need many members or a role the API would refuse.
 */
export async function insertMember(t: TestApp, ws: string, role: string): Promise<string> {
  const id = newId('usr');
  const now = nowIso();
  await t.ctx.db
    .insertInto('users')
    .values({
      id,
      email: `${id}@example.com`,
      email_normalized: `${id}@example.com`,
      name: id,
      password_hash: 'x',
      created_at: now,
      updated_at: now,
    })
    .execute();
  await t.ctx.db
    .insertInto('members')
    .values({ workspace_id: ws, user_id: id, role, created_at: now, updated_at: now })
    .execute();
  return id;
}

/**
 * An API block as the editor saves it — every field the schema knows, a GET of
 * `url` with nothing else — with `extra` over it (headers, capture, routes…).
 */
export function apiBlock(id: string, url: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    type: 'api',
    name: '',
    method: 'GET',
    url,
    query: [],
    headers: [],
    body: { mode: 'none' },
    timeoutMs: 10_000,
    capture: [],
    onSuccess: null,
    onError: null,
    ...extra,
  };
}
