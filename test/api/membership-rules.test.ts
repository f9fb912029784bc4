/**
 * The rules of membership (SPEC §2), their negative side, on both databases:
 * owners are only touched by owners, a workspace keeps an owner, custom roles
 * never exceed their author nor hold the ungrantable permissions,
 * invitations are single-use, expiring, revocable and stored hashed, and the
 * audit trail records all of it without a password or token in it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import { PASSWORD, type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';

const PAST = '2000-01-01T00:00:00.000Z';

function expectProblem(res: Reply, status: number, code: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body?.code, res.text).toBe(code);
}

let counter = 0;
function uniqueEmail(label: string): string {
  counter += 1;
  return `${label}-${counter}-${Date.now().toString(36)}@example.com`;
}

describe.each(DATABASES)('membership rules on $kind', ({ kind, available }) => {
  let t: TestApp;
  let owner: TestClient;
  let ownerId: string;
  let ws: string;
  let admin: TestClient;
  let adminId: string;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    ({ owner, workspaceId: ws, ownerId } = await setupOwner(t));
    ({ client: admin, userId: adminId } = await inviteAndJoin(t, owner, ws, 'admin@example.com', 'admin'));
  }, 120_000);
  afterAll(async () => t?.close());

  async function membersOf(workspaceId: string) {
    const rows = await t.ctx.db
      .selectFrom('members')
      .select(['user_id', 'role'])
      .where('workspace_id', '=', workspaceId)
      .orderBy('user_id')
      .execute();
    return rows;
  }

  async function roleOf(workspaceId: string, userId: string): Promise<string | undefined> {
    const row = await t.ctx.db
      .selectFrom('members')
      .select('role')
      .where('workspace_id', '=', workspaceId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row?.role;
  }

  async function invitationCount(workspaceId: string): Promise<number> {
    const rows = await t.ctx.db
      .selectFrom('invitations')
      .select('id')
      .where('workspace_id', '=', workspaceId)
      .execute();
    return rows.length;
  }

  /** A fresh workspace owned by `owner` alone, so tests do not disturb each other. */
  async function freshWorkspace(name: string): Promise<string> {
    const res = await owner.post('/api/v1/workspaces', { name });
    expect(res.status, res.text).toBe(201);
    return res.body.id as string;
  }

  async function createRole(by: TestClient, workspaceId: string, name: string, permissions: string[]) {
    const res = await by.post(`/api/v1/workspaces/${workspaceId}/roles`, { name, permissions });
    expect(res.status, res.text).toBe(201);
    return res.body.id as string;
  }

  describe('owners are managed by owners only', () => {
    it.runIf(available)("an admin cannot invite an owner, change an owner's role or remove an owner", async () => {
      const secondOwner = await inviteAndJoin(t, owner, ws, uniqueEmail('owner2'), 'owner');
      const viewer = await inviteAndJoin(t, owner, ws, uniqueEmail('viewer'), 'viewer');
      const members = await membersOf(ws);
      const invitations = await invitationCount(ws);

      expectProblem(
        await admin.post(`/api/v1/workspaces/${ws}/invitations`, {
          email: uniqueEmail('would-be-owner'),
          role: 'owner',
        }),
        403,
        'forbidden',
      );
      for (const target of [ownerId, secondOwner.userId]) {
        for (const role of ['viewer', 'admin', 'owner']) {
          expectProblem(await admin.patch(`/api/v1/workspaces/${ws}/members/${target}`, { role }), 403, 'forbidden');
        }
        expectProblem(await admin.delete(`/api/v1/workspaces/${ws}/members/${target}`), 403, 'forbidden');
      }
      // Nor can an admin make someone an owner.
      expectProblem(
        await admin.patch(`/api/v1/workspaces/${ws}/members/${viewer.userId}`, { role: 'owner' }),
        403,
        'forbidden',
      );
      // Nor promote themselves.
      expectProblem(
        await admin.patch(`/api/v1/workspaces/${ws}/members/${adminId}`, { role: 'owner' }),
        403,
        'forbidden',
      );
      expect(await membersOf(ws)).toEqual(members);
      expect(await invitationCount(ws)).toBe(invitations);

      // An owner can do each of these.
      const inv = await owner.post(`/api/v1/workspaces/${ws}/invitations`, {
        email: uniqueEmail('owner3'),
        role: 'owner',
      });
      expect(inv.status, inv.text).toBe(201);
      const promote = await owner.patch(`/api/v1/workspaces/${ws}/members/${viewer.userId}`, { role: 'owner' });
      expect(promote.status, promote.text).toBe(204);
      const demote = await owner.patch(`/api/v1/workspaces/${ws}/members/${viewer.userId}`, { role: 'viewer' });
      expect(demote.status, demote.text).toBe(204);
      const remove = await owner.delete(`/api/v1/workspaces/${ws}/members/${secondOwner.userId}`);
      expect(remove.status, remove.text).toBe(204);
      expect(await roleOf(ws, secondOwner.userId)).toBeUndefined();
      expect(await roleOf(ws, viewer.userId)).toBe('viewer');
    });

    it.runIf(available)('an admin cannot revoke an owner invitation', async () => {
      const inv = await owner.post(`/api/v1/workspaces/${ws}/invitations`, {
        email: uniqueEmail('pending-owner'),
        role: 'owner',
      });
      expect(inv.status, inv.text).toBe(201);
      expectProblem(await admin.delete(`/api/v1/workspaces/${ws}/invitations/${inv.body.id}`), 403, 'forbidden');
      const still = await t.ctx.db.selectFrom('invitations').select('id').where('id', '=', inv.body.id).execute();
      expect(still).toHaveLength(1);
    });
  });

  describe('a workspace keeps an owner', () => {
    it.runIf(available)(
      'the last owner can neither leave nor be demoted; with a second owner they can leave',
      async () => {
        const solo = await freshWorkspace('Solo');
        expectProblem(await owner.delete(`/api/v1/workspaces/${solo}/members/${ownerId}`), 409, 'last_owner');
        for (const role of ['admin', 'viewer']) {
          expectProblem(
            await owner.patch(`/api/v1/workspaces/${solo}/members/${ownerId}`, { role }),
            409,
            'last_owner',
          );
        }
        expect(await roleOf(solo, ownerId)).toBe('owner');

        const second = await inviteAndJoin(t, owner, solo, uniqueEmail('heir'), 'owner');
        const left = await owner.delete(`/api/v1/workspaces/${solo}/members/${ownerId}`);
        expect(left.status, left.text).toBe(204);
        expect(await roleOf(solo, ownerId)).toBeUndefined();

        // Now the heir is the last owner, with the same protection.
        expectProblem(
          await second.client.delete(`/api/v1/workspaces/${solo}/members/${second.userId}`),
          409,
          'last_owner',
        );
        expectProblem(
          await second.client.patch(`/api/v1/workspaces/${solo}/members/${second.userId}`, { role: 'admin' }),
          409,
          'last_owner',
        );
        expect(await membersOf(solo)).toEqual([{ user_id: second.userId, role: 'owner' }]);
      },
    );
  });

  describe('custom roles', () => {
    it.runIf(available)('a custom role can never hold secrets.manage or members.manage_owners', async () => {
      const before = await t.ctx.db.selectFrom('roles').select('id').where('workspace_id', '=', ws).execute();
      for (const permissions of [
        ['secrets.manage'],
        ['members.manage_owners'],
        ['variables.read', 'secrets.manage'],
        ['members.read', 'members.manage_owners', 'secrets.manage'],
      ]) {
        const res = await owner.post(`/api/v1/workspaces/${ws}/roles`, { name: 'Too strong', permissions });
        expectProblem(res, 422, 'permission_not_grantable');
      }
      // Nor can an existing role be edited into holding them.
      const id = await createRole(owner, ws, 'Harmless', ['variables.read']);
      expectProblem(
        await owner.patch(`/api/v1/workspaces/${ws}/roles/${id}`, {
          permissions: ['variables.read', 'secrets.manage'],
        }),
        422,
        'permission_not_grantable',
      );
      const row = await t.ctx.db.selectFrom('roles').select('permissions').where('id', '=', id).executeTakeFirst();
      expect(JSON.parse(row?.permissions ?? '[]')).toEqual(['variables.read']);
      const after = await t.ctx.db.selectFrom('roles').select('id').where('workspace_id', '=', ws).execute();
      expect(after.length).toBe(before.length + 1);
    });

    it.runIf(available)('an admin cannot create a role with a permission the admin lacks', async () => {
      const before = await t.ctx.db.selectFrom('roles').select('id').where('workspace_id', '=', ws).execute();
      expectProblem(
        await admin.post(`/api/v1/workspaces/${ws}/roles`, { name: 'Landlord', permissions: ['workspace.manage'] }),
        403,
        'forbidden',
      );
      expectProblem(
        await admin.post(`/api/v1/workspaces/${ws}/roles`, {
          name: 'Landlord',
          permissions: ['audit.read', 'workspace.manage'],
        }),
        403,
        'forbidden',
      );
      const after = await t.ctx.db.selectFrom('roles').select('id').where('workspace_id', '=', ws).execute();
      expect(after.length).toBe(before.length);
      // Nor edit one into it.
      const id = await createRole(admin, ws, 'Admin made', ['audit.read']);
      expectProblem(
        await admin.patch(`/api/v1/workspaces/${ws}/roles/${id}`, { permissions: ['audit.read', 'workspace.manage'] }),
        403,
        'forbidden',
      );
    });

    it.runIf(available)('a custom role cannot take the name of a system role', async () => {
      for (const name of ['Admin', 'owner', 'VIEWER', ' Editor ']) {
        expectProblem(
          await owner.post(`/api/v1/workspaces/${ws}/roles`, { name, permissions: ['variables.read'] }),
          409,
          'name_taken',
        );
      }
      const id = await createRole(owner, ws, 'Renamable', ['variables.read']);
      expectProblem(await owner.patch(`/api/v1/workspaces/${ws}/roles/${id}`, { name: 'Manager' }), 409, 'name_taken');
      // Nor the name of another custom role.
      expectProblem(
        await owner.post(`/api/v1/workspaces/${ws}/roles`, { name: 'Renamable', permissions: [] }),
        409,
        'name_taken',
      );
    });

    it.runIf(available)(
      'a custom role name cannot imitate a system role or another role (fullwidth, dotless i, mixed scripts)',
      async () => {
        const roles = `/api/v1/workspaces/${ws}/roles`;
        const create = (name: string) => owner.post(roles, { name, permissions: ['variables.read'] });
        // Read as a system role's name: fullwidth letters, a dotless i.
        for (const name of ['ｏｗｎｅｒ', 'ＶＩＥＷＥＲ', 'Admın'])
          expectProblem(await create(name), 409, 'name_taken');
        // Latin with a Cyrillic or Greek lookalike letter: refused whatever it imitates.
        for (const name of ['\u041ewner', '\u039fps team', 'Rel\u0435ase']) {
          const res = await create(name);
          expectProblem(res, 422, 'validation_failed');
          expect(res.body.errors[0]?.path).toBe('body.name');
        }
        // One custom role per reading: "Ops" and "Ｏｐｓ" cannot both exist, by create or rename.
        await createRole(owner, ws, 'Ops', ['variables.read']);
        expectProblem(await create('Ｏｐｓ'), 409, 'name_taken');
        const other = await createRole(owner, ws, 'Other ops', ['variables.read']);
        expectProblem(await owner.patch(`${roles}/${other}`, { name: 'ＯＰＳ' }), 409, 'name_taken');
        expectProblem(await owner.patch(`${roles}/${other}`, { name: 'ｅｄｉｔｏｒ' }), 409, 'name_taken');
        // Other scripts on their own, or beside Latin, are names like any other.
        for (const name of ['Операторы', 'Ομάδα', 'Dev 開発']) expect((await create(name)).status).toBe(201);
      },
    );

    it.runIf(available)(
      'a member whose custom role holds only audit.read reads the audit log and nothing more',
      async () => {
        const auditor = await createRole(owner, ws, 'Auditor', ['audit.read']);
        const member = await inviteAndJoin(t, owner, ws, uniqueEmail('auditor'), auditor);
        const audit = await member.client.get(`/api/v1/workspaces/${ws}/audit`);
        expect(audit.status, audit.text).toBe(200);
        expect(audit.body.items.length).toBeGreaterThan(0);
        expect((await member.client.get(`/api/v1/workspaces/${ws}/audit/verify`)).status).toBe(200);
        expectProblem(await member.client.get(`/api/v1/workspaces/${ws}/members`), 403, 'forbidden');
        expectProblem(await member.client.get(`/api/v1/workspaces/${ws}/roles`), 403, 'forbidden');
        expectProblem(
          await member.client.post(`/api/v1/workspaces/${ws}/invitations`, { email: uniqueEmail('x'), role: 'viewer' }),
          403,
          'forbidden',
        );
        expectProblem(await member.client.patch(`/api/v1/workspaces/${ws}`, { name: 'Mine' }), 403, 'forbidden');
      },
    );

    it.runIf(available)(
      'a member whose custom role holds members.manage cannot invite an admin or owner, but can invite a viewer',
      async () => {
        const recruiter = await createRole(owner, ws, 'Recruiter', [
          'members.manage',
          'members.read',
          'variables.read',
          'workflows.read',
        ]);
        const member = await inviteAndJoin(t, owner, ws, uniqueEmail('recruiter'), recruiter);
        const before = await invitationCount(ws);
        for (const role of ['admin', 'editor', 'owner']) {
          expectProblem(
            await member.client.post(`/api/v1/workspaces/${ws}/invitations`, { email: uniqueEmail('hire'), role }),
            403,
            'forbidden',
          );
        }
        expect(await invitationCount(ws)).toBe(before);
        const viewer = await member.client.post(`/api/v1/workspaces/${ws}/invitations`, {
          email: uniqueEmail('hire'),
          role: 'viewer',
        });
        expect(viewer.status, viewer.text).toBe(201);

        // Nor may they raise someone above themselves, or touch someone who outranks them.
        const joined = await inviteAndJoin(t, member.client, ws, uniqueEmail('junior'), 'viewer');
        expectProblem(
          await member.client.patch(`/api/v1/workspaces/${ws}/members/${joined.userId}`, { role: 'admin' }),
          403,
          'forbidden',
        );
        expectProblem(
          await member.client.patch(`/api/v1/workspaces/${ws}/members/${adminId}`, { role: 'viewer' }),
          403,
          'forbidden',
        );
        expectProblem(await member.client.delete(`/api/v1/workspaces/${ws}/members/${adminId}`), 403, 'forbidden');
        expect(await roleOf(ws, joined.userId)).toBe('viewer');
        expect(await roleOf(ws, adminId)).toBe('admin');
      },
    );

    it.runIf(available)('a custom role of another workspace cannot be assigned', async () => {
      const elsewhere = await freshWorkspace('Role source');
      const foreign = await createRole(owner, elsewhere, 'Foreign', ['variables.read']);
      const before = await invitationCount(ws);
      expectProblem(
        await owner.post(`/api/v1/workspaces/${ws}/invitations`, { email: uniqueEmail('foreign'), role: foreign }),
        422,
        'validation_failed',
      );
      expect(await invitationCount(ws)).toBe(before);
      const viewer = await inviteAndJoin(t, owner, ws, uniqueEmail('target'), 'viewer');
      expectProblem(
        await owner.patch(`/api/v1/workspaces/${ws}/members/${viewer.userId}`, { role: foreign }),
        422,
        'validation_failed',
      );
      expectProblem(
        await owner.patch(`/api/v1/workspaces/${ws}/members/${viewer.userId}`, { role: 'superuser' }),
        422,
        'validation_failed',
      );
      expect(await roleOf(ws, viewer.userId)).toBe('viewer');
    });

    it.runIf(available)('a custom role still held by a member or a pending invitation cannot be deleted', async () => {
      const held = await createRole(owner, ws, 'Held', ['variables.read']);
      const member = await inviteAndJoin(t, owner, ws, uniqueEmail('holder'), held);
      expectProblem(await owner.delete(`/api/v1/workspaces/${ws}/roles/${held}`), 409, 'role_in_use');
      expect(await roleOf(ws, member.userId)).toBe(held);

      const pending = await createRole(owner, ws, 'Pending', ['variables.read']);
      const inv = await owner.post(`/api/v1/workspaces/${ws}/invitations`, { email: uniqueEmail('p'), role: pending });
      expect(inv.status, inv.text).toBe(201);
      expectProblem(await owner.delete(`/api/v1/workspaces/${ws}/roles/${pending}`), 409, 'role_in_use');

      const roles = await owner.get(`/api/v1/workspaces/${ws}/roles`);
      const ids = roles.body.items.map((r: { id: string }) => r.id);
      expect(ids).toContain(held);
      expect(ids).toContain(pending);

      // Once nobody holds it, it can go.
      const moved = await owner.patch(`/api/v1/workspaces/${ws}/members/${member.userId}`, { role: 'viewer' });
      expect(moved.status, moved.text).toBe(204);
      const gone = await owner.delete(`/api/v1/workspaces/${ws}/roles/${held}`);
      expect(gone.status, gone.text).toBe(204);
    });
  });

  describe('invitations', () => {
    async function invite(email: string, role = 'viewer', workspaceId = ws) {
      const res = await owner.post(`/api/v1/workspaces/${workspaceId}/invitations`, { email, role });
      expect(res.status, res.text).toBe(201);
      return { id: res.body.id as string, token: res.body.token as string, url: res.body.url as string };
    }

    it.runIf(available)('an invitation can be accepted only once', async () => {
      const { token } = await invite(uniqueEmail('once'));
      const first = await t.client().post('/api/v1/invitations/accept', { token, name: 'Once', password: PASSWORD });
      expect(first.status, first.text).toBe(201);
      const again = t.client();
      const second = await again.post('/api/v1/invitations/accept', { token, name: 'Twice', password: PASSWORD });
      expectProblem(second, 404, 'invitation_invalid');
      expect(again.cookies.has('hush_session')).toBe(false);
    });

    it.runIf(available)('an expired invitation is refused', async () => {
      const email = uniqueEmail('late');
      const { id, token } = await invite(email);
      await t.ctx.db.updateTable('invitations').set({ expires_at: PAST }).where('id', '=', id).execute();
      const res = await t.client().post('/api/v1/invitations/accept', { token, name: 'Late', password: PASSWORD });
      expectProblem(res, 404, 'invitation_invalid');
      const user = await t.ctx.db.selectFrom('users').select('id').where('email_normalized', '=', email).execute();
      expect(user).toEqual([]);
      // And it is no longer listed as pending.
      const list = await owner.get(`/api/v1/workspaces/${ws}/invitations`);
      expect(list.body.items.map((i: { id: string }) => i.id)).not.toContain(id);
    });

    it.runIf(available)('pending invitations are listed newest first with who invited, never a token', async () => {
      const older = await invite(uniqueEmail('listed-older'), 'editor');
      const byAdmin = await admin.post(`/api/v1/workspaces/${ws}/invitations`, {
        email: uniqueEmail('listed-newer'),
        role: 'viewer',
      });
      expect(byAdmin.status, byAdmin.text).toBe(201);
      const list = await owner.get(`/api/v1/workspaces/${ws}/invitations`);
      expect(list.status, list.text).toBe(200);
      const items = list.body.items as { id: string; invitedBy: unknown }[];
      const ids = items.map((i) => i.id);
      expect(ids.indexOf(byAdmin.body.id)).toBeLessThan(ids.indexOf(older.id));
      expect(items.find((i) => i.id === byAdmin.body.id)?.invitedBy).toEqual({
        userId: adminId,
        email: 'admin@example.com',
        name: 'admin@example.com',
      });
      expect(items.find((i) => i.id === older.id)?.invitedBy).toMatchObject({ userId: ownerId });
      expect(list.text).not.toContain(older.token);
      expect(list.text).not.toContain('token');
    });

    it.runIf(available)('a revoked invitation is refused', async () => {
      const email = uniqueEmail('revoked');
      const { id, token } = await invite(email);
      const revoke = await owner.delete(`/api/v1/workspaces/${ws}/invitations/${id}`);
      expect(revoke.status, revoke.text).toBe(204);
      const res = await t.client().post('/api/v1/invitations/accept', { token, name: 'Nope', password: PASSWORD });
      expectProblem(res, 404, 'invitation_invalid');
      const user = await t.ctx.db.selectFrom('users').select('id').where('email_normalized', '=', email).execute();
      expect(user).toEqual([]);
    });

    it.runIf(available)(
      'a second pending invitation is used up by accepting the first, and a removal revokes what is pending',
      async () => {
        const email = uniqueEmail('twice');
        const first = await invite(email, 'editor');
        const spare = await invite(email, 'editor');
        const joined = t.client();
        const accepted = await joined.post('/api/v1/invitations/accept', {
          token: first.token,
          name: 'Twice',
          password: PASSWORD,
        });
        expect(accepted.status, accepted.text).toBe(201);
        const userId = accepted.body.user.id as string;
        expect((await owner.delete(`/api/v1/workspaces/${ws}/members/${userId}`)).status).toBe(204);
        // The spare link does not let them back in, nor revive their session.
        expectProblem(
          await t.client().post('/api/v1/invitations/accept', { token: spare.token, password: PASSWORD }),
          404,
          'invitation_invalid',
        );
        expect(await roleOf(ws, userId)).toBeUndefined();
        expect((await joined.get(`/api/v1/workspaces/${ws}`)).status).toBe(404);

        // Invited again after the removal, then removed while that invitation is pending: revoked.
        const again = await invite(email, 'viewer');
        const back = await t.client().post('/api/v1/invitations/accept', { token: again.token, password: PASSWORD });
        expect(back.status, back.text).toBe(201);
        const pending = await invite(email.toUpperCase(), 'viewer').catch(() => undefined);
        expect(pending).toBeUndefined(); // a member cannot be invited: nothing pending to revoke here
        const later = await t.ctx.db
          .insertInto('invitations')
          .values({
            id: `inv_${Date.now().toString(36)}pending`,
            workspace_id: ws,
            email,
            email_normalized: email,
            role: 'viewer',
            token_hash: 'x'.repeat(64),
            invited_by: ownerId,
            created_at: new Date().toISOString(),
            expires_at: new Date(Date.now() + 86_400_000).toISOString(),
            accepted_at: null,
            accepted_by: null,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        expect((await owner.delete(`/api/v1/workspaces/${ws}/members/${userId}`)).status).toBe(204);
        const left = await t.ctx.db.selectFrom('invitations').select('id').where('id', '=', later.id).execute();
        expect(left).toEqual([]);
      },
    );

    it.runIf(available)('an existing member cannot be invited again', async () => {
      const before = await invitationCount(ws);
      for (const email of ['admin@example.com', 'ADMIN@Example.com', 'owner@example.com']) {
        expectProblem(
          await owner.post(`/api/v1/workspaces/${ws}/invitations`, { email, role: 'viewer' }),
          409,
          'already_member',
        );
      }
      expect(await invitationCount(ws)).toBe(before);
    });

    it.runIf(available)(
      'accepting tells nobody whether the email has an account: the same 401 until a password is checked',
      async () => {
        const known = uniqueEmail('known');
        await inviteAndJoin(t, owner, ws, known, 'viewer');
        const other = await freshWorkspace('Probe');
        const forKnown = await invite(known, 'viewer', other);
        const forUnknown = await invite(uniqueEmail('unknown'), 'viewer', other);
        const attempts = [
          { password: 'a wrong but long password' }, // no name
          { name: 'Probe', password: 'short' },
          { password: 'x' },
        ];
        for (const body of attempts) {
          const a = await t.client().post('/api/v1/invitations/accept', { token: forKnown.token, ...body });
          const b = await t.client().post('/api/v1/invitations/accept', { token: forUnknown.token, ...body });
          expectProblem(a, 401, 'unauthenticated');
          expectProblem(b, 401, 'unauthenticated');
          expect(b.body, JSON.stringify(body)).toEqual(a.body);
        }
        // Both invitations are still open: a new account with a name and a long enough password joins.
        const joined = await t.client().post('/api/v1/invitations/accept', {
          token: forUnknown.token,
          name: 'New Person',
          password: PASSWORD,
        });
        expect(joined.status, joined.text).toBe(201);
      },
    );

    it.runIf(available)(
      'an existing account accepting an invitation must give its own password, and keeps it',
      async () => {
        const email = uniqueEmail('existing');
        const member = await inviteAndJoin(t, owner, ws, email, 'viewer');
        const other = await freshWorkspace('Second home');
        const { token } = await invite(email, 'operator', other);
        const wrongPassword = 'a brand new password 123';

        const wrong = t.client();
        const refused = await wrong.post('/api/v1/invitations/accept', {
          token,
          name: 'Hijack',
          password: wrongPassword,
        });
        expectProblem(refused, 401, 'unauthenticated');
        expect(wrong.cookies.has('hush_session')).toBe(false);
        expect(await roleOf(other, member.userId)).toBeUndefined();

        const right = await t.client().post('/api/v1/invitations/accept', {
          token,
          name: 'Renamed By Invite',
          password: PASSWORD,
        });
        expect(right.status, right.text).toBe(201);
        expect(right.body.user.id).toBe(member.userId);
        expect(await roleOf(other, member.userId)).toBe('operator');
        expect(await roleOf(ws, member.userId)).toBe('viewer');

        // The account keeps its password: the old one works, the one tried at accept does not.
        const oldLogin = await t.client().post('/api/v1/auth/login', { email, password: PASSWORD });
        expect(oldLogin.status, oldLogin.text).toBe(200);
        expectProblem(
          await t.client().post('/api/v1/auth/login', { email, password: wrongPassword }),
          401,
          'unauthenticated',
        );
        const users = await t.ctx.db.selectFrom('users').select('id').where('email_normalized', '=', email).execute();
        expect(users).toEqual([{ id: member.userId }]);
      },
    );

    it.runIf(available)('the invitation token is not stored in plain text', async () => {
      const { id, token, url } = await invite(uniqueEmail('hashed'));
      expect(url).toContain(token);
      const rows = await t.ctx.db.selectFrom('invitations').selectAll().execute();
      const row = rows.find((r) => r.id === id);
      expect(row).toBeDefined();
      expect(row?.token_hash).not.toBe(token);
      expect(JSON.stringify(rows)).not.toContain(token);
      const list = await owner.get(`/api/v1/workspaces/${ws}/invitations`);
      expect(list.text).not.toContain(token);
      const audit = await t.ctx.db.selectFrom('audit_events').selectAll().execute();
      expect(JSON.stringify(audit)).not.toContain(token);
    });
  });

  describe('under concurrency', () => {
    it.runIf(available)('one invitation accepted several times at once admits exactly one account', async () => {
      const email = uniqueEmail('race');
      const inv = await owner.post(`/api/v1/workspaces/${ws}/invitations`, { email, role: 'viewer' });
      expect(inv.status, inv.text).toBe(201);
      const results = await Promise.all(
        [1, 2, 3].map(() =>
          t.client().post('/api/v1/invitations/accept', { token: inv.body.token, name: 'Racer', password: PASSWORD }),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(statuses, results.map((r) => r.text).join('\n')).toEqual([201, 404, 404]);
      const users = await t.ctx.db.selectFrom('users').select('id').where('email_normalized', '=', email).execute();
      expect(users).toHaveLength(1);
    });

    it.runIf(available)('two owners demoting each other at once leave an owner', async () => {
      const w = await freshWorkspace('Duel');
      const other = await inviteAndJoin(t, owner, w, uniqueEmail('duelist'), 'owner');
      const results = await Promise.all([
        owner.patch(`/api/v1/workspaces/${w}/members/${other.userId}`, { role: 'viewer' }),
        other.client.patch(`/api/v1/workspaces/${w}/members/${ownerId}`, { role: 'viewer' }),
      ]);
      for (const r of results) expect([204, 403, 409], r.text).toContain(r.status);
      const owners = (await membersOf(w)).filter((m) => m.role === 'owner');
      expect(owners).toHaveLength(1);
    });

    it.runIf(available)('two owners leaving at once leave an owner', async () => {
      const w = await freshWorkspace('Exodus');
      const other = await inviteAndJoin(t, owner, w, uniqueEmail('leaver'), 'owner');
      const results = await Promise.all([
        owner.delete(`/api/v1/workspaces/${w}/members/${ownerId}`),
        other.client.delete(`/api/v1/workspaces/${w}/members/${other.userId}`),
      ]);
      const statuses = results.map((r) => r.status).sort();
      expect(statuses, results.map((r) => r.text).join('\n')).toEqual([204, 409]);
      const owners = (await membersOf(w)).filter((m) => m.role === 'owner');
      expect(owners).toHaveLength(1);
    });

    it.runIf(available)(
      'two invitations for one new email accepted at once never fail with a 5xx, and both can be used',
      async () => {
        const email = uniqueEmail('twin');
        const other = await freshWorkspace('Twin');
        const tokens: string[] = [];
        for (const w of [ws, other]) {
          const inv = await owner.post(`/api/v1/workspaces/${w}/invitations`, { email, role: 'viewer' });
          expect(inv.status, inv.text).toBe(201);
          tokens.push(inv.body.token);
        }
        const results = await Promise.all(
          tokens.map((token) =>
            t.client().post('/api/v1/invitations/accept', { token, name: 'Twin', password: PASSWORD }),
          ),
        );
        for (const r of results) {
          expect(r.status, r.text).toBeLessThan(500);
        }
        expect(results.filter((r) => r.status === 201).length).toBeGreaterThanOrEqual(1);
        // Whichever lost the race can be accepted now, by the account that exists.
        for (const [i, r] of results.entries()) {
          if (r.status === 201) continue;
          const retry = await t
            .client()
            .post('/api/v1/invitations/accept', { token: tokens[i], name: 'Twin', password: PASSWORD });
          expect(retry.status, retry.text).toBe(201);
        }
        const users = await t.ctx.db.selectFrom('users').select('id').where('email_normalized', '=', email).execute();
        expect(users).toHaveLength(1);
        const userId = users[0]?.id as string;
        expect(await roleOf(ws, userId)).toBe('viewer');
        expect(await roleOf(other, userId)).toBe('viewer');
      },
    );
  });

  describe('audit trail', () => {
    it.runIf(available)('these actions are audited, and no audit event holds a password or token', async () => {
      const seen = new Set(
        (await t.ctx.db.selectFrom('audit_events').select('id').execute()).map((r) => r.id as string),
      );
      const used: string[] = [PASSWORD];

      const wrongPassword = 'not the password, surely';
      used.push(wrongPassword);
      const failed = await t
        .client()
        .post('/api/v1/auth/login', { email: 'owner@example.com', password: wrongPassword });
      expectProblem(failed, 401, 'unauthenticated');

      const session = t.client();
      const signedIn = await session.post('/api/v1/auth/login', { email: 'owner@example.com', password: PASSWORD });
      expect(signedIn.status, signedIn.text).toBe(200);
      used.push(session.cookies.get('hush_session') as string, session.cookies.get('hush_csrf') as string);

      const email = uniqueEmail('audited');
      const inv = await session.post(`/api/v1/workspaces/${ws}/invitations`, { email, role: 'viewer' });
      expect(inv.status, inv.text).toBe(201);
      used.push(inv.body.token);
      const newPassword = 'audited member password';
      used.push(newPassword);
      const joined = t.client();
      const accepted = await joined.post('/api/v1/invitations/accept', {
        token: inv.body.token,
        name: 'Audited',
        password: newPassword,
      });
      expect(accepted.status, accepted.text).toBe(201);
      const memberId = accepted.body.user.id as string;
      used.push(joined.cookies.get('hush_session') as string);

      const changed = await session.patch(`/api/v1/workspaces/${ws}/members/${memberId}`, { role: 'operator' });
      expect(changed.status, changed.text).toBe(204);

      const role = await session.post(`/api/v1/workspaces/${ws}/roles`, {
        name: 'Audited role',
        permissions: ['variables.read'],
      });
      expect(role.status, role.text).toBe(201);

      const token = await session.post('/api/v1/tokens', { name: 'audited', workspaceId: ws, expiresInDays: 1 });
      expect(token.status, token.text).toBe(201);
      used.push(token.body.token);

      const out = await session.post('/api/v1/auth/logout');
      expect(out.status, out.text).toBe(204);

      const events = (await t.ctx.db.selectFrom('audit_events').selectAll().execute()).filter((e) => !seen.has(e.id));
      const byAction = (action: string) => events.filter((e) => e.action === action);

      for (const action of [
        'auth.login_failed',
        'auth.login',
        'invitation.created',
        'invitation.accepted',
        'member.role_changed',
        'role.created',
        'token.created',
        'auth.logout',
      ]) {
        expect(byAction(action).length, `${action} in ${events.map((e) => e.action).join(', ')}`).toBeGreaterThan(0);
      }
      const roleChange = byAction('member.role_changed')[0];
      expect(roleChange?.workspace_id).toBe(ws);
      expect(roleChange?.actor_id).toBe(ownerId);
      expect(roleChange?.target_id).toBe(memberId);
      expect(JSON.parse(roleChange?.data ?? '{}')).toMatchObject({ from: 'viewer', to: 'operator' });
      expect(byAction('auth.logout')[0]?.actor_id).toBe(ownerId);
      expect(byAction('token.created')[0]?.target_id).toBe(token.body.id);
      expect(byAction('role.created')[0]?.target_id).toBe(role.body.id);

      // No audit event anywhere, nor any log line, holds a password or a token.
      const all = await t.ctx.db.selectFrom('audit_events').selectAll().execute();
      const auditText = JSON.stringify(all);
      const logText = t.logs.join('\n');
      for (const value of used) {
        expect(value.length).toBeGreaterThan(8);
        expect(auditText.includes(value), `audit holds a used credential (${value.slice(0, 4)}…)`).toBe(false);
        expect(logText.includes(value), `log holds a used credential (${value.slice(0, 4)}…)`).toBe(false);
      }
      // Nor one of the hashes stored in place of the tokens.
      const hashes = [
        ...(await t.ctx.db.selectFrom('api_tokens').select('token_hash').execute()).map((r) => r.token_hash),
        ...(await t.ctx.db.selectFrom('invitations').select('token_hash').execute()).map((r) => r.token_hash),
      ];
      for (const h of hashes) expect(auditText.includes(h)).toBe(false);
    });
  });
});
