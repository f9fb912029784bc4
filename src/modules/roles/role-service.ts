/**
 * Custom roles: named permission sets defined per workspace. They can never
 * hold `secrets.manage` or `members.manage_owners`, and a caller can only
 * grant permissions they hold themselves. Names are unique by how they read
 * (role-names.ts: case, fullwidth and other compatibility forms; unique
 * indexes on `name_key` and `lower(name)` settle concurrent creates), and
 * none may read as a system role's. A create, edit or delete holds the
 * workspace lock, as every assignment of a role does (members, invitations),
 * and checks the role and the caller's own permissions under it: a role is
 * never deleted while being handed out, and a caller demoted or removed
 * meanwhile grants nothing they no longer hold.
 */
import { sql } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { AppError, ConflictError, NotFoundError } from '../../app/errors.js';
import { newId, nowIso } from '../../app/ids.js';
import { isUniqueViolation } from '../../db/database.js';
import type { RolesTable } from '../../db/schema.js';
import {
  isSystemRole,
  NEVER_GRANTABLE_TO_CUSTOM_ROLES,
  type Permission,
  SYSTEM_ROLE_PERMISSIONS,
  SYSTEM_ROLES,
} from '../../policy/permissions.js';
import { authorize, mayGrant, type WorkspaceActor } from '../../policy/policy.js';
import type { AuditContext } from '../audit/audit-log.js';
import { parsePermissions } from '../workspaces/workspace-access.js';
import { lockWorkspaceAs } from '../workspaces/workspace-service.js';
import { roleNameKey } from './role-names.js';

type Deps = Pick<AppContext, 'db' | 'dbKind' | 'audit'>;

export interface RoleView {
  id: string;
  name: string;
  description: string;
  system: boolean;
  permissions: Permission[];
}

export function presentRole(row: RolesTable): RoleView {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    system: false,
    permissions: [...parsePermissions(row.permissions)],
  };
}

export function systemRoleViews(): RoleView[] {
  return SYSTEM_ROLES.map((role) => ({
    id: role,
    name: role,
    description: `System role "${role}"`,
    system: true,
    permissions: [...SYSTEM_ROLE_PERMISSIONS[role]],
  }));
}

function checkGrantable(actor: WorkspaceActor, permissions: Permission[]): void {
  const forbidden = permissions.filter((p) => NEVER_GRANTABLE_TO_CUSTOM_ROLES.includes(p));
  if (forbidden.length > 0) {
    throw new AppError(422, 'permission_not_grantable', `A custom role can never hold ${forbidden.join(', ')}.`, {
      errors: [{ path: 'body.permissions', message: `not grantable: ${forbidden.join(', ')}` }],
    });
  }
  if (!mayGrant(actor, new Set(permissions))) {
    throw new AppError(403, 'forbidden', 'A custom role cannot hold permissions you do not have yourself.');
  }
}

/** A name that reads like a system role's ("ｏｗｎｅｒ", "Admın") is taken. */
function checkName(name: string): void {
  if ((SYSTEM_ROLES as readonly string[]).includes(roleNameKey(name))) {
    throw new ConflictError('name_taken', `"${name}" is the name of a system role.`);
  }
}

/**
 * Role names are unique per workspace by how they read (`roleNameKey`: case,
 * fullwidth and other compatibility forms), in the database — its unique
 * index on `name_key` (and the older one on `lower(name)`) settles
 * concurrent writers; this check only gives the usual case its message first.
 */
async function checkNameFree(db: Deps['db'], workspaceId: string, name: string, exceptId?: string): Promise<void> {
  let q = db
    .selectFrom('roles')
    .select('id')
    .where('workspace_id', '=', workspaceId)
    .where((eb) =>
      eb.or([eb('name_key', '=', roleNameKey(name)), eb(sql<string>`lower(name)`, '=', sql<string>`lower(${name})`)]),
    );
  if (exceptId) q = q.where('id', '!=', exceptId);
  if (await q.executeTakeFirst()) throw new ConflictError('name_taken', `A role named "${name}" already exists.`);
}

/** The six system roles are fixed: 409 `system_role_read_only` for whoever may manage roles. */
function refuseSystemRole(id: string): void {
  if (isSystemRole(id)) {
    throw new AppError(409, 'system_role_read_only', `${id} is a system role: it cannot be changed or deleted.`);
  }
}

export function createRoleService(deps: Deps) {
  const { db } = deps;

  async function load(workspaceId: string, id: string, executor: Deps['db'] = db): Promise<RolesTable> {
    const row = await executor
      .selectFrom('roles')
      .selectAll()
      .where('id', '=', id)
      .where('workspace_id', '=', workspaceId)
      .executeTakeFirst();
    if (!row) throw new NotFoundError('Role');
    return row;
  }

  return {
    async list(actor: WorkspaceActor): Promise<RoleView[]> {
      authorize(actor, 'members.read');
      const rows = await db
        .selectFrom('roles')
        .selectAll()
        .where('workspace_id', '=', actor.workspaceId)
        .orderBy('name')
        .execute();
      return [...systemRoleViews(), ...rows.map(presentRole)];
    },

    async create(
      actor: WorkspaceActor,
      audit: AuditContext,
      input: { name: string; description: string; permissions: Permission[] },
    ) {
      authorize(actor, 'roles.manage');
      checkName(input.name);
      const permissions = [...new Set(input.permissions)];
      const now = nowIso();
      const row: RolesTable = {
        id: newId('rol'),
        workspace_id: actor.workspaceId,
        name: input.name,
        name_key: roleNameKey(input.name),
        description: input.description,
        permissions: JSON.stringify(permissions),
        created_at: now,
        updated_at: now,
      };
      try {
        await db.transaction().execute(async (trx) => {
          // Under the lock a demotion or removal takes: what the caller holds now, not when the request came.
          const creator = await lockWorkspaceAs(trx, deps.dbKind, actor);
          authorize(creator, 'roles.manage');
          await checkNameFree(trx, actor.workspaceId, input.name);
          checkGrantable(creator, permissions);
          await trx.insertInto('roles').values(row).execute();
          await deps.audit(trx, audit, {
            workspaceId: actor.workspaceId,
            action: 'role.created',
            targetType: 'role',
            targetId: row.id,
            data: { name: row.name, permissions },
          });
        });
      } catch (error) {
        if (isUniqueViolation(error))
          throw new ConflictError('name_taken', `A role named "${input.name}" already exists.`);
        throw error;
      }
      return presentRole(row);
    },

    async update(
      actor: WorkspaceActor,
      audit: AuditContext,
      id: string,
      patch: { name?: string | undefined; description?: string | undefined; permissions?: Permission[] | undefined },
    ) {
      authorize(actor, 'roles.manage');
      refuseSystemRole(id);
      const permissions = patch.permissions ? [...new Set(patch.permissions)] : undefined;
      const set: Partial<RolesTable> = { updated_at: nowIso() };
      if (patch.name !== undefined) {
        set.name = patch.name;
        set.name_key = roleNameKey(patch.name);
      }
      if (patch.description !== undefined) set.description = patch.description;
      if (permissions) set.permissions = JSON.stringify(permissions);
      try {
        return await db.transaction().execute(async (trx) => {
          // Under the lock a demotion, a removal or another edit of the role takes: the caller's
          // permissions and the role as they are now, not as the request found them.
          const editor = await lockWorkspaceAs(trx, deps.dbKind, actor);
          authorize(editor, 'roles.manage');
          const current = await load(actor.workspaceId, id, trx);
          // Editing a role changes what its members can do: the editor must hold
          // everything the role had and everything it will have.
          checkGrantable(editor, [...parsePermissions(current.permissions)]);
          if (permissions) checkGrantable(editor, permissions);
          if (patch.name !== undefined) {
            checkName(patch.name);
            await checkNameFree(trx, actor.workspaceId, patch.name, id);
          }
          await trx.updateTable('roles').set(set).where('id', '=', id).execute();
          await deps.audit(trx, audit, {
            workspaceId: actor.workspaceId,
            action: 'role.updated',
            targetType: 'role',
            targetId: id,
            data: { name: set.name ?? current.name, ...(permissions ? { permissions } : {}) },
          });
          return presentRole(await load(actor.workspaceId, id, trx));
        });
      } catch (error) {
        if (isUniqueViolation(error))
          throw new ConflictError('name_taken', `A role named "${patch.name}" already exists.`);
        throw error;
      }
    },

    async remove(actor: WorkspaceActor, audit: AuditContext, id: string) {
      authorize(actor, 'roles.manage');
      refuseSystemRole(id);
      await db.transaction().execute(async (trx) => {
        // Assignments take the same lock and check the role exists under it:
        // either they see it deleted, or this sees them holding it.
        const remover = await lockWorkspaceAs(trx, deps.dbKind, actor);
        authorize(remover, 'roles.manage');
        const current = await load(actor.workspaceId, id, trx);
        checkGrantable(remover, [...parsePermissions(current.permissions)]);
        const inUse = await trx
          .selectFrom('members')
          .select('user_id')
          .where('workspace_id', '=', actor.workspaceId)
          .where('role', '=', id)
          .executeTakeFirst();
        const invited = await trx
          .selectFrom('invitations')
          .select('id')
          .where('workspace_id', '=', actor.workspaceId)
          .where('role', '=', id)
          .where('accepted_at', 'is', null)
          .where('expires_at', '>', nowIso())
          .executeTakeFirst();
        if (inUse || invited) {
          throw new ConflictError(
            'role_in_use',
            'Members or pending invitations still have this role; change them first.',
          );
        }
        // Expired invitations of the role (never listed, never to be accepted) go with it.
        await trx
          .deleteFrom('invitations')
          .where('workspace_id', '=', actor.workspaceId)
          .where('role', '=', id)
          .where('accepted_at', 'is', null)
          .execute();
        await trx.deleteFrom('roles').where('id', '=', id).execute();
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'role.deleted',
          targetType: 'role',
          targetId: id,
          data: { name: current.name },
        });
      });
    },
  };
}
