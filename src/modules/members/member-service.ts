/**
 * Membership: invitations (a one-time token and URL, stored hashed), members,
 * role changes and removal. Rules: only `members.manage_owners` touches an
 * owner or makes one; nobody assigns a role with more permissions than they
 * hold; a workspace always keeps at least one owner. Whatever hands out a
 * role (role change, invitation, acceptance) holds the workspace lock
 * (`lockWorkspace`) and checks the role under it; deleting a custom role takes
 * the same lock, so it cannot slip in between. A role change, an invitation, a
 * removal and a revocation judge the caller under that lock too
 * (`lockWorkspaceAs`): a caller demoted or removed meanwhile does nothing
 * their membership no longer allows.
 */
import { sql, type Transaction } from 'kysely';
import type { AppContext } from '../../app/context.js';
import {
  AppError,
  ConflictError,
  ForbiddenError,
  NotFoundError,
  UnauthenticatedError,
  ValidationError,
} from '../../app/errors.js';
import { hashToken, newId, newToken, nowIso } from '../../app/ids.js';
import { isUniqueViolation } from '../../db/database.js';
import type { Database, InvitationsTable } from '../../db/schema.js';
import { isSystemRole } from '../../policy/permissions.js';
import { authorize, mayGrant, mayManageMemberWithRole, type WorkspaceActor } from '../../policy/policy.js';
import type { AuditContext } from '../audit/audit-log.js';
import { normalizeEmail } from '../auth/auth-service.js';
import type { SessionStore } from '../auth/session-store.js';
import { memberAccess, permissionsOfRole } from '../workspaces/workspace-access.js';
import { lockWorkspace, lockWorkspaceAs } from '../workspaces/workspace-service.js';

const INVITATION_TTL_MS = 7 * 86_400_000;

type Deps = Pick<AppContext, 'db' | 'dbKind' | 'audit' | 'passwords' | 'config'> & { sessions: SessionStore };

/** Deletes the workspace's pending invitations of `emailNormalized`; their ids. */
async function revokePendingInvitations(
  trx: Transaction<Database>,
  workspaceId: string,
  emailNormalized: string,
): Promise<string[]> {
  const rows = await trx
    .deleteFrom('invitations')
    .where('workspace_id', '=', workspaceId)
    .where('email_normalized', '=', emailNormalized)
    .where('accepted_at', 'is', null)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

export function createMemberService(deps: Deps) {
  const { db } = deps;

  /**
   * The role must exist here, and the actor must be allowed to hand it out.
   * Run inside the transaction that assigns it, with the actor `lockWorkspaceAs` returned.
   */
  async function checkAssignable(trx: Transaction<Database>, actor: WorkspaceActor, role: string): Promise<void> {
    if (!isSystemRole(role)) {
      const exists = await trx
        .selectFrom('roles')
        .select('id')
        .where('id', '=', role)
        .where('workspace_id', '=', actor.workspaceId)
        .executeTakeFirst();
      if (!exists)
        throw new ValidationError('body.role: no such role in this workspace', [
          { path: 'body.role', message: 'no such role in this workspace' },
        ]);
    }
    if (!mayManageMemberWithRole(actor, role)) throw new ForbiddenError('Only an owner can make someone an owner.');
    if (!mayGrant(actor, await permissionsOfRole(trx, actor.workspaceId, role))) {
      throw new ForbiddenError('You cannot give a role with permissions you do not have yourself.');
    }
  }

  async function ownerCount(trx: Transaction<Database>, workspaceId: string): Promise<number> {
    const row = await trx
      .selectFrom('members')
      .select(sql<number>`count(*)`.as('n'))
      .where('workspace_id', '=', workspaceId)
      .where('role', '=', 'owner')
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async function loadMember(trx: Transaction<Database>, workspaceId: string, userId: string) {
    const row = await trx
      .selectFrom('members')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (!row) throw new NotFoundError('Member');
    return row;
  }

  return {
    async list(actor: WorkspaceActor) {
      authorize(actor, 'members.read');
      return db
        .selectFrom('members')
        .innerJoin('users', 'users.id', 'members.user_id')
        .leftJoin('roles', 'roles.id', 'members.role')
        .select([
          'users.id as userId',
          'users.email',
          'users.name',
          'members.role',
          'roles.name as roleName',
          'members.created_at as joinedAt',
        ])
        .where('members.workspace_id', '=', actor.workspaceId)
        .orderBy('users.email_normalized')
        .execute();
    },

    async invite(actor: WorkspaceActor, audit: AuditContext, input: { email: string; role: string }) {
      authorize(actor, 'members.manage');
      const emailNormalized = normalizeEmail(input.email);
      const token = newToken();
      const now = Date.now();
      const row: InvitationsTable = {
        id: newId('inv'),
        workspace_id: actor.workspaceId,
        email: input.email.trim(),
        email_normalized: emailNormalized,
        role: input.role,
        token_hash: hashToken(token),
        invited_by: actor.userId,
        created_at: nowIso(now),
        expires_at: nowIso(now + INVITATION_TTL_MS),
        accepted_at: null,
        accepted_by: null,
      };
      await db.transaction().execute(async (trx) => {
        // What the inviter may hand out now, not when the request came: a demotion or removal takes this lock.
        const inviter = await lockWorkspaceAs(trx, deps.dbKind, actor);
        authorize(inviter, 'members.manage');
        await checkAssignable(trx, inviter, input.role);
        const already = await trx
          .selectFrom('members')
          .innerJoin('users', 'users.id', 'members.user_id')
          .select('users.id')
          .where('members.workspace_id', '=', actor.workspaceId)
          .where('users.email_normalized', '=', emailNormalized)
          .executeTakeFirst();
        if (already) throw new ConflictError('already_member', 'That person is already a member of this workspace.');
        await trx.insertInto('invitations').values(row).execute();
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'invitation.created',
          targetType: 'invitation',
          targetId: row.id,
          data: { email: emailNormalized, role: input.role, expiresAt: row.expires_at },
        });
      });
      return { invitation: row, token, url: `${deps.config.publicUrl}/invite#token=${token}` };
    },

    async listInvitations(actor: WorkspaceActor) {
      authorize(actor, 'members.manage');
      // With who invited (for the Members page): a left join, so an invitation never vanishes with its inviter.
      return db
        .selectFrom('invitations')
        .leftJoin('users', 'users.id', 'invitations.invited_by')
        .selectAll('invitations')
        .select(['users.email as invited_by_email', 'users.name as invited_by_name'])
        .where('invitations.workspace_id', '=', actor.workspaceId)
        .where('invitations.accepted_at', 'is', null)
        .where('invitations.expires_at', '>', nowIso())
        .orderBy('invitations.created_at', 'desc')
        .execute();
    },

    async revokeInvitation(actor: WorkspaceActor, audit: AuditContext, id: string) {
      authorize(actor, 'members.manage');
      await db.transaction().execute(async (trx) => {
        // Judged by what the caller holds now: a demotion or removal committed meanwhile is seen.
        const revoker = await lockWorkspaceAs(trx, deps.dbKind, actor);
        authorize(revoker, 'members.manage');
        const row = await trx
          .deleteFrom('invitations')
          .where('id', '=', id)
          .where('workspace_id', '=', actor.workspaceId)
          .where('accepted_at', 'is', null)
          .returning(['id', 'email_normalized', 'role'])
          .executeTakeFirst();
        if (!row) throw new NotFoundError('Invitation');
        if (!mayManageMemberWithRole(revoker, row.role))
          throw new ForbiddenError('Only an owner can revoke an owner invitation.');
        // As for removing a member: never over a role with permissions the actor does not hold.
        if (!mayGrant(revoker, await permissionsOfRole(trx, actor.workspaceId, row.role)))
          throw new ForbiddenError('That invitation grants permissions you do not have yourself.');
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'invitation.revoked',
          targetType: 'invitation',
          targetId: row.id,
          data: { email: row.email_normalized, role: row.role },
        });
      });
    },

    /**
     * Accepts an invitation: a new account is created from `name` and
     * `password`; an existing account must prove itself with its password.
     */
    async accept(audit: AuditContext, input: { token: string; name?: string | undefined; password: string }) {
      const invitation = await db
        .selectFrom('invitations')
        .selectAll()
        .where('token_hash', '=', hashToken(input.token))
        .executeTakeFirst();
      const gone = () => new AppError(404, 'invitation_invalid', 'The invitation is unknown, expired or already used.');
      if (!invitation || invitation.accepted_at !== null || invitation.expires_at <= nowIso()) throw gone();
      const existing = await db
        .selectFrom('users')
        .selectAll()
        .where('email_normalized', '=', invitation.email_normalized)
        .executeTakeFirst();
      // Whoever holds a token — the inviter too — must not learn from the answer whether the
      // email has an account: an existing account's wrong password and a new account's missing
      // name or short password get the same 401, after the same password-hash work.
      const refused = () =>
        new UnauthenticatedError(
          'Enter the password of the account this email already has; for a new account, your name and a password of at least 10 characters.',
        );
      let passwordHash: string | undefined;
      if (existing) {
        if (!(await deps.passwords.verify(existing.password_hash, input.password))) throw refused();
      } else if (!input.name || input.password.length < 10) {
        await deps.passwords.verifyDummy(input.password);
        throw refused();
      } else {
        passwordHash = await deps.passwords.hash(input.password);
      }
      const result = await db.transaction().execute(async (trx) => {
        await lockWorkspace(trx, deps.dbKind, invitation.workspace_id);
        const claimed = await trx
          .updateTable('invitations')
          .set({ accepted_at: nowIso() })
          .where('id', '=', invitation.id)
          .where('accepted_at', 'is', null)
          .returning('id')
          .executeTakeFirst();
        if (!claimed) throw gone();
        const now = nowIso();
        let userId = existing?.id;
        // The inviter must still be allowed to grant this role today.
        const inviter = await memberAccess(trx, invitation.workspace_id, invitation.invited_by);
        if (
          !inviter ||
          !mayManageMemberWithRole(inviter, invitation.role) ||
          !mayGrant(inviter, await permissionsOfRole(trx, invitation.workspace_id, invitation.role))
        ) {
          throw gone();
        }
        if (!userId) {
          userId = newId('usr');
          try {
            await trx
              .insertInto('users')
              .values({
                id: userId,
                email: invitation.email,
                email_normalized: invitation.email_normalized,
                name: input.name ?? invitation.email,
                password_hash: passwordHash ?? '',
                created_at: now,
                updated_at: now,
              })
              .execute();
          } catch (error) {
            if (!isUniqueViolation(error)) throw error;
            throw new ConflictError(
              'account_exists',
              "An account with this email was created meanwhile: accept again, with that account's password.",
            );
          }
        }
        const member = await trx
          .selectFrom('members')
          .select('role')
          .where('workspace_id', '=', invitation.workspace_id)
          .where('user_id', '=', userId)
          .executeTakeFirst();
        if (member) throw new ConflictError('already_member', 'You are already a member of this workspace.');
        await trx
          .insertInto('members')
          .values({
            workspace_id: invitation.workspace_id,
            user_id: userId,
            role: invitation.role,
            created_at: now,
            updated_at: now,
          })
          .execute();
        await trx.updateTable('invitations').set({ accepted_by: userId }).where('id', '=', invitation.id).execute();
        // Any other invitation of this email to this workspace is used up with this one: kept,
        // it would let them back in after a removal.
        const superseded = await revokePendingInvitations(trx, invitation.workspace_id, invitation.email_normalized);
        const ctx = { ...audit, actorId: userId, actorType: 'user' as const };
        await deps.audit(trx, ctx, {
          workspaceId: invitation.workspace_id,
          action: 'invitation.accepted',
          targetType: 'invitation',
          targetId: invitation.id,
          data: {
            email: invitation.email_normalized,
            newAccount: !existing,
            ...(superseded.length > 0 ? { revokedInvitations: superseded } : {}),
          },
        });
        await deps.audit(trx, ctx, {
          workspaceId: invitation.workspace_id,
          action: 'member.added',
          targetType: 'user',
          targetId: userId,
          data: { role: invitation.role },
        });
        return { userId, workspaceId: invitation.workspace_id, role: invitation.role };
      });
      const user = await db
        .selectFrom('users')
        .select(['id', 'email', 'name'])
        .where('id', '=', result.userId)
        .executeTakeFirstOrThrow();
      const session = await deps.sessions.create(result.userId);
      return { ...result, user, session };
    },

    async changeRole(actor: WorkspaceActor, audit: AuditContext, userId: string, role: string) {
      authorize(actor, 'members.manage');
      await db.transaction().execute(async (trx) => {
        // What the caller may do now, not when the request came: a demotion or removal takes this lock.
        const changer = await lockWorkspaceAs(trx, deps.dbKind, actor);
        authorize(changer, 'members.manage');
        await checkAssignable(trx, changer, role);
        const member = await loadMember(trx, actor.workspaceId, userId);
        if (!mayManageMemberWithRole(changer, member.role))
          throw new ForbiddenError('Only an owner can change an owner.');
        if (!mayGrant(changer, await permissionsOfRole(trx, actor.workspaceId, member.role))) {
          throw new ForbiddenError('That member has permissions you do not have yourself.');
        }
        if (member.role === role) return;
        if (member.role === 'owner' && (await ownerCount(trx, actor.workspaceId)) <= 1) {
          throw new ConflictError(
            'last_owner',
            'A workspace must keep at least one owner; make someone else owner first.',
          );
        }
        await trx
          .updateTable('members')
          .set({ role, updated_at: nowIso() })
          .where('workspace_id', '=', actor.workspaceId)
          .where('user_id', '=', userId)
          .execute();
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'member.role_changed',
          targetType: 'user',
          targetId: userId,
          data: { from: member.role, to: role },
        });
      });
    },

    /** Removes a member; anyone may remove themselves (leave). */
    async remove(actor: WorkspaceActor, audit: AuditContext, userId: string) {
      const leaving = userId === actor.userId;
      if (!leaving) authorize(actor, 'members.manage');
      await db.transaction().execute(async (trx) => {
        // Leaving needs no permission, only the membership, read below under the lock. Removing
        // someone else is judged by what the caller may do now, not when the request came: a
        // demotion or removal takes this lock.
        let remover = actor;
        if (leaving) await lockWorkspace(trx, deps.dbKind, actor.workspaceId);
        else {
          remover = await lockWorkspaceAs(trx, deps.dbKind, actor);
          authorize(remover, 'members.manage');
        }
        const member = await loadMember(trx, actor.workspaceId, userId);
        if (!leaving) {
          if (!mayManageMemberWithRole(remover, member.role))
            throw new ForbiddenError('Only an owner can remove an owner.');
          if (!mayGrant(remover, await permissionsOfRole(trx, actor.workspaceId, member.role))) {
            throw new ForbiddenError('That member has permissions you do not have yourself.');
          }
        }
        if (member.role === 'owner' && (await ownerCount(trx, actor.workspaceId)) <= 1) {
          throw new ConflictError(
            'last_owner',
            'A workspace must keep at least one owner; make someone else owner first.',
          );
        }
        await trx
          .deleteFrom('members')
          .where('workspace_id', '=', actor.workspaceId)
          .where('user_id', '=', userId)
          .execute();
        await trx
          .deleteFrom('api_tokens')
          .where('workspace_id', '=', actor.workspaceId)
          .where('user_id', '=', userId)
          .execute();
        // An invitation of theirs still pending would let them straight back in.
        const user = await trx
          .selectFrom('users')
          .select('email_normalized')
          .where('id', '=', userId)
          .executeTakeFirst();
        const revoked = user ? await revokePendingInvitations(trx, actor.workspaceId, user.email_normalized) : [];
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: leaving ? 'member.left' : 'member.removed',
          targetType: 'user',
          targetId: userId,
          data: { role: member.role, ...(revoked.length > 0 ? { revokedInvitations: revoked } : {}) },
        });
      });
    },
  };
}

export type MemberService = ReturnType<typeof createMemberService>;
