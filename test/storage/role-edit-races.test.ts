/**
 * A custom role created, edited or deleted, or a membership or invitation
 * changed, while its author's own membership changes, on PostgreSQL, where
 * the two transactions truly overlap. The Owner's change (a demotion, a
 * removal, an edit of the same role) is run by the service itself, paused
 * after its audit append — its last step before commit, holding the workspace
 * lock and the audit chain's head. The request sent meanwhile was authorised
 * against the membership as it was before; it must be judged by what its
 * author may do once the change has committed, or a demoted Admin grants what
 * they no longer hold:
 *
 * - an Admin demoted (to a role that still manages roles) cannot add to a
 *   role, create a role with, or delete a role holding, a permission the new
 *   role lacks: 403 `forbidden`;
 * - an Admin removed cannot edit a role at all: 404, as for any non-member;
 * - an edit by an Admin racing an Owner's edit of the same role cannot take
 *   away a permission the Owner has just added and the Admin lacks;
 * - an Admin demoted (to a role that still manages members) cannot give a
 *   member, invite with, or revoke an invitation of, a role holding a
 *   permission the new role lacks, nor, demoted to Viewer, remove a member:
 *   403 `forbidden`; removed, they cannot remove a member or revoke an
 *   invitation: 404.
 *
 * Each time the role, membership or invitation stays as it was and nothing is
 * audited for the refused request. (Accepting an invitation already re-checks
 * its inviter under the lock; a case here keeps it so.)
 *
 * PostgreSQL only: on SQLite every write transaction (BEGIN IMMEDIATE) runs
 * alone, and a second writer in this process would block its event loop.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditWriter } from '../../src/modules/audit/audit-log.js';
import { createSessionStore } from '../../src/modules/auth/session-store.js';
import { createMemberService } from '../../src/modules/members/member-service.js';
import { createRoleService } from '../../src/modules/roles/role-service.js';
import { type Permission, SYSTEM_ROLE_PERMISSIONS } from '../../src/policy/permissions.js';
import type { WorkspaceActor } from '../../src/policy/policy.js';
import { DATABASES } from '../support/databases.js';
import { insertMember, inviteAndJoin, setupOwner } from '../support/fixtures.js';
import { PASSWORD, type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { until } from '../support/until.js';

const available = DATABASES.find((d) => d.kind === 'postgres')?.available ?? false;

/**
 * An audit writer that, once it has appended the first event, keeps its
 * transaction open until `release()`: the change it records is written and
 * holds its locks, but has not committed.
 */
function pausingAudit(audit: AuditWriter) {
  let appended!: () => void;
  let release!: () => void;
  const isAppended = new Promise<void>((r) => {
    appended = r;
  });
  const released = new Promise<void>((r) => {
    release = r;
  });
  let paused = false;
  const writer: AuditWriter = Object.assign(async (...args: Parameters<AuditWriter>) => {
    await audit(...args);
    if (paused) return;
    paused = true;
    appended();
    await released;
  }, audit);
  return { audit: writer, appended: isAppended, release };
}

describe('role and membership changes racing a change of their author on postgres', () => {
  let t: TestApp;
  let owner: TestClient;
  let ownerId: string;
  let ws: string;
  let keeperRole: string;
  let memberKeeperRole: string;
  let seq = 0;
  const api = (path: string) => `/api/v1/workspaces/${ws}${path}`;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp('postgres');
    ({ owner, workspaceId: ws, ownerId } = await setupOwner(t));
    // What the Admin is demoted to: still manages roles, but holds no secrets.* permission.
    const keeper = await owner.post(api('/roles'), {
      name: 'Role keeper',
      permissions: ['roles.manage', 'members.read', 'workflows.read'],
    });
    expect(keeper.status, keeper.text).toBe(201);
    keeperRole = keeper.body.id;
    // What the Admin is demoted to for membership changes: still manages members, but holds no secrets.* permission.
    const memberKeeper = await owner.post(api('/roles'), {
      name: 'Member keeper',
      permissions: ['members.manage', 'members.read', 'variables.read', 'workflows.read', 'workflows.run'],
    });
    expect(memberKeeper.status, memberKeeper.text).toBe(201);
    memberKeeperRole = memberKeeper.body.id;
  }, 120_000);
  afterAll(async () => t?.close());

  const ownerActor = (): WorkspaceActor => ({
    userId: ownerId,
    workspaceId: ws,
    role: 'owner',
    permissions: SYSTEM_ROLE_PERMISSIONS.owner,
    epoch: 0,
    seq: 0,
  });
  const ownerAudit = () => ({ actorId: ownerId, actorType: 'user' as const, ip: null, requestId: null });
  const memberService = (audit: AuditWriter) =>
    createMemberService({ ...t.ctx, audit, sessions: createSessionStore(t.ctx.db, t.ctx.config, t.ctx.cache) });
  const roleService = (audit: AuditWriter) => createRoleService({ ...t.ctx, audit });

  /** A fresh Admin, signed in. */
  async function newAdmin() {
    seq += 1;
    return inviteAndJoin(t, owner, ws, `admin-${seq}@example.com`, 'admin');
  }

  async function newRole(permissions: Permission[]): Promise<string> {
    seq += 1;
    const role = await owner.post(api('/roles'), { name: `racing role ${seq}`, permissions });
    expect(role.status, role.text).toBe(201);
    return role.body.id;
  }

  async function waitingForLocks(): Promise<number> {
    const { rows } = await t.ctx.db.executeQuery<{ n: string }>(
      sql`select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.compile(
        t.ctx.db,
      ),
    );
    return Number(rows[0]?.n);
  }

  /**
   * Runs `change` (given a pausing audit writer) up to just before its commit,
   * sends `request` then, and lets the change commit once the request waits
   * for a lock (or has already been answered).
   */
  async function duringCommit(
    change: (audit: AuditWriter) => Promise<unknown>,
    request: () => Promise<Reply>,
  ): Promise<Reply> {
    const pause = pausingAudit(t.ctx.audit);
    const changing = change(pause.audit);
    await Promise.race([
      pause.appended,
      changing.then(() => {
        throw new Error('the change committed without pausing');
      }),
    ]);
    let answered = false;
    const replying = request().finally(() => {
      answered = true;
    });
    await until(async () => answered || (await waitingForLocks()) >= 1, 'the request waits for a lock');
    pause.release();
    await changing;
    return replying;
  }

  async function permissionsOf(roleId: string): Promise<string[]> {
    const row = await t.ctx.db.selectFrom('roles').select('permissions').where('id', '=', roleId).executeTakeFirst();
    return row ? (JSON.parse(row.permissions) as string[]) : [];
  }

  async function actionsOn(targetId: string): Promise<string[]> {
    const rows = await t.ctx.db
      .selectFrom('audit_events')
      .select('action')
      .where('chain', '=', ws)
      .where('target_id', '=', targetId)
      .orderBy('seq')
      .execute();
    return rows.map((r) => r.action);
  }

  /** A pending invitation sent by the Owner; its id. */
  async function pendingInvitation(role: string): Promise<string> {
    seq += 1;
    const inv = await owner.post(api('/invitations'), { email: `pending-${seq}@example.com`, role });
    expect(inv.status, inv.text).toBe(201);
    return inv.body.id;
  }

  async function invitationEvents(email: string): Promise<string[]> {
    const rows = await t.ctx.db
      .selectFrom('audit_events')
      .select(['action', 'data'])
      .where('chain', '=', ws)
      .where('target_type', '=', 'invitation')
      .orderBy('seq')
      .execute();
    return rows.filter((r) => r.data.includes(email)).map((r) => r.action);
  }

  async function roleOf(userId: string): Promise<string | undefined> {
    const row = await t.ctx.db
      .selectFrom('members')
      .select('role')
      .where('workspace_id', '=', ws)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row?.role;
  }

  it.runIf(available)(
    'an Admin demoted meanwhile cannot add to a role a permission the new role lacks: 403, the role unchanged, nothing audited',
    async () => {
      const admin = await newAdmin();
      const roleId = await newRole(['workflows.read']);
      const edit = await duringCommit(
        (audit) => memberService(audit).changeRole(ownerActor(), ownerAudit(), admin.userId, keeperRole),
        () => admin.client.patch(api(`/roles/${roleId}`), { permissions: ['workflows.read', 'secrets.reveal'] }),
      );
      expect(await roleOf(admin.userId)).toBe(keeperRole);
      expect(edit.status, edit.text).toBe(403);
      expect(edit.body.code).toBe('forbidden');
      expect(await permissionsOf(roleId)).toEqual(['workflows.read']);
      expect(await actionsOn(roleId)).toEqual(['role.created']);
      // What the demoted Admin still holds, they may still grant.
      const allowed = await admin.client.patch(api(`/roles/${roleId}`), { permissions: ['members.read'] });
      expect(allowed.status, allowed.text).toBe(200);
    },
    60_000,
  );

  it.runIf(available)(
    'an Admin demoted meanwhile cannot create a role with a permission the new role lacks: 403, no role, nothing audited',
    async () => {
      const admin = await newAdmin();
      const name = `created while demoted ${seq}`;
      const create = await duringCommit(
        (audit) => memberService(audit).changeRole(ownerActor(), ownerAudit(), admin.userId, keeperRole),
        () => admin.client.post(api('/roles'), { name, permissions: ['secrets.reveal'] }),
      );
      expect(await roleOf(admin.userId)).toBe(keeperRole);
      expect(create.status, create.text).toBe(403);
      expect(create.body.code).toBe('forbidden');
      const rows = await t.ctx.db.selectFrom('roles').select('id').where('name', '=', name).execute();
      expect(rows).toEqual([]);
      const created = await t.ctx.db
        .selectFrom('audit_events')
        .select('data')
        .where('chain', '=', ws)
        .where('action', '=', 'role.created')
        .execute();
      expect(created.filter((e) => e.data.includes(name))).toEqual([]);
    },
    60_000,
  );

  it.runIf(available)(
    'an Admin demoted meanwhile cannot delete a role holding a permission the new role lacks: 403, the role kept',
    async () => {
      const admin = await newAdmin();
      const roleId = await newRole(['workflows.read', 'secrets.reveal']);
      const del = await duringCommit(
        (audit) => memberService(audit).changeRole(ownerActor(), ownerAudit(), admin.userId, keeperRole),
        () => admin.client.delete(api(`/roles/${roleId}`)),
      );
      expect(del.status, del.text).toBe(403);
      expect(await permissionsOf(roleId)).toEqual(['workflows.read', 'secrets.reveal']);
      expect(await actionsOn(roleId)).toEqual(['role.created']);
    },
    60_000,
  );

  it.runIf(available)(
    'an Admin removed meanwhile cannot edit a role: 404 as for any non-member, the role unchanged, nothing audited',
    async () => {
      const admin = await newAdmin();
      const roleId = await newRole(['workflows.read']);
      const edit = await duringCommit(
        (audit) => memberService(audit).remove(ownerActor(), ownerAudit(), admin.userId),
        () => admin.client.patch(api(`/roles/${roleId}`), { permissions: ['workflows.read', 'secrets.reveal'] }),
      );
      expect(await roleOf(admin.userId)).toBeUndefined();
      expect(edit.status, edit.text).toBe(404);
      expect(await permissionsOf(roleId)).toEqual(['workflows.read']);
      expect(await actionsOn(roleId)).toEqual(['role.created']);
    },
    60_000,
  );

  it.runIf(available)(
    "an Admin's edit racing an Owner's edit of the same role cannot take away the permission the Owner added and the Admin lacks",
    async () => {
      const admin = await newAdmin();
      const roleId = await newRole(['workflows.read']);
      const edit = await duringCommit(
        (audit) =>
          roleService(audit).update(ownerActor(), ownerAudit(), roleId, {
            permissions: ['workflows.read', 'workspace.manage'],
          }),
        () => admin.client.patch(api(`/roles/${roleId}`), { permissions: ['workflows.read', 'secrets.read'] }),
      );
      expect(edit.status, edit.text).toBe(403);
      expect(edit.body.code).toBe('forbidden');
      expect(await permissionsOf(roleId)).toEqual(['workflows.read', 'workspace.manage']);
      expect(await actionsOn(roleId)).toEqual(['role.created', 'role.updated']);
    },
    60_000,
  );

  it.runIf(available)(
    "an Admin demoted meanwhile cannot give a member a role with a permission the new role lacks: 403, the member's role unchanged, nothing audited",
    async () => {
      const admin = await newAdmin();
      const target = await insertMember(t, ws, 'viewer');
      const change = await duringCommit(
        (audit) => memberService(audit).changeRole(ownerActor(), ownerAudit(), admin.userId, memberKeeperRole),
        () => admin.client.patch(api(`/members/${target}`), { role: 'editor' }),
      );
      expect(await roleOf(admin.userId)).toBe(memberKeeperRole);
      expect(change.status, change.text).toBe(403);
      expect(change.body.code).toBe('forbidden');
      expect(await roleOf(target)).toBe('viewer');
      expect(await actionsOn(target)).toEqual([]);
      // What the demoted Admin still holds, they may still grant.
      const allowed = await admin.client.patch(api(`/members/${target}`), { role: 'manager' });
      expect(allowed.status, allowed.text).toBe(204);
    },
    60_000,
  );

  it.runIf(available)(
    'an Admin removed meanwhile cannot remove a member: 404 as for any non-member, the member stays, nothing audited',
    async () => {
      const admin = await newAdmin();
      const target = await insertMember(t, ws, 'viewer');
      const removal = await duringCommit(
        (audit) => memberService(audit).remove(ownerActor(), ownerAudit(), admin.userId),
        () => admin.client.delete(api(`/members/${target}`)),
      );
      expect(await roleOf(admin.userId)).toBeUndefined();
      expect(removal.status, removal.text).toBe(404);
      expect(await roleOf(target)).toBe('viewer');
      expect(await actionsOn(target)).toEqual([]);
    },
    60_000,
  );

  it.runIf(available)(
    'an Admin demoted to Viewer meanwhile cannot remove a member: 403, the member stays, nothing audited',
    async () => {
      const admin = await newAdmin();
      const target = await insertMember(t, ws, 'viewer');
      const removal = await duringCommit(
        (audit) => memberService(audit).changeRole(ownerActor(), ownerAudit(), admin.userId, 'viewer'),
        () => admin.client.delete(api(`/members/${target}`)),
      );
      expect(await roleOf(admin.userId)).toBe('viewer');
      expect(removal.status, removal.text).toBe(403);
      expect(removal.body.code).toBe('forbidden');
      expect(await roleOf(target)).toBe('viewer');
      expect(await actionsOn(target)).toEqual([]);
    },
    60_000,
  );

  it.runIf(available)(
    'an Admin demoted meanwhile cannot invite with a role holding a permission the new role lacks: 403, no invitation, nothing audited',
    async () => {
      const admin = await newAdmin();
      const email = `invited-while-demoted-${seq}@example.com`;
      const invite = await duringCommit(
        (audit) => memberService(audit).changeRole(ownerActor(), ownerAudit(), admin.userId, memberKeeperRole),
        () => admin.client.post(api('/invitations'), { email, role: 'editor' }),
      );
      expect(await roleOf(admin.userId)).toBe(memberKeeperRole);
      expect(invite.status, invite.text).toBe(403);
      expect(invite.body.code).toBe('forbidden');
      const rows = await t.ctx.db
        .selectFrom('invitations')
        .select('id')
        .where('email_normalized', '=', email)
        .execute();
      expect(rows).toEqual([]);
      expect(await invitationEvents(email)).toEqual([]);
      // What the demoted Admin still holds, they may still hand out.
      const allowed = await admin.client.post(api('/invitations'), { email, role: 'manager' });
      expect(allowed.status, allowed.text).toBe(201);
    },
    60_000,
  );

  it.runIf(available)(
    'an Admin demoted meanwhile cannot revoke an invitation holding a permission the new role lacks: 403, the invitation kept, nothing audited',
    async () => {
      const admin = await newAdmin();
      const invitationId = await pendingInvitation('editor');
      const revoke = await duringCommit(
        (audit) => memberService(audit).changeRole(ownerActor(), ownerAudit(), admin.userId, memberKeeperRole),
        () => admin.client.delete(api(`/invitations/${invitationId}`)),
      );
      expect(await roleOf(admin.userId)).toBe(memberKeeperRole);
      expect(revoke.status, revoke.text).toBe(403);
      expect(revoke.body.code).toBe('forbidden');
      const rows = await t.ctx.db.selectFrom('invitations').select('id').where('id', '=', invitationId).execute();
      expect(rows).toEqual([{ id: invitationId }]);
      expect(await actionsOn(invitationId)).toEqual(['invitation.created']);
    },
    60_000,
  );

  it.runIf(available)(
    'an Admin removed meanwhile cannot revoke an invitation: 404 as for any non-member, the invitation kept, nothing audited',
    async () => {
      const admin = await newAdmin();
      const invitationId = await pendingInvitation('viewer');
      const revoke = await duringCommit(
        (audit) => memberService(audit).remove(ownerActor(), ownerAudit(), admin.userId),
        () => admin.client.delete(api(`/invitations/${invitationId}`)),
      );
      expect(await roleOf(admin.userId)).toBeUndefined();
      expect(revoke.status, revoke.text).toBe(404);
      const rows = await t.ctx.db.selectFrom('invitations').select('id').where('id', '=', invitationId).execute();
      expect(rows).toEqual([{ id: invitationId }]);
      expect(await actionsOn(invitationId)).toEqual(['invitation.created']);
    },
    60_000,
  );

  it.runIf(available)(
    'an invitation whose inviting Admin is demoted meanwhile cannot be accepted for a role the new role lacks: 404, no member',
    async () => {
      const admin = await newAdmin();
      seq += 1;
      const email = `accepting-${seq}@example.com`;
      const inv = await admin.client.post(api('/invitations'), { email, role: 'editor' });
      expect(inv.status, inv.text).toBe(201);
      const accept = await duringCommit(
        (audit) => memberService(audit).changeRole(ownerActor(), ownerAudit(), admin.userId, memberKeeperRole),
        () => t.client().post('/api/v1/invitations/accept', { token: inv.body.token, name: email, password: PASSWORD }),
      );
      expect(accept.status, accept.text).toBe(404);
      expect(accept.body.code).toBe('invitation_invalid');
      const users = await t.ctx.db.selectFrom('users').select('id').where('email_normalized', '=', email).execute();
      expect(users).toEqual([]);
      expect(await invitationEvents(email)).toEqual(['invitation.created']);
    },
    60_000,
  );
});
