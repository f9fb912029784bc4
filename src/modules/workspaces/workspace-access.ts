/**
 * Turns (principal, workspace id) into a WorkspaceActor: the caller's role
 * and permissions there. Not a member, a deleted workspace, or an API token
 * scoped to another workspace all look the same: 404, so ids do not leak.
 */
import type { FastifyRequest } from 'fastify';
import { NotFoundError } from '../../app/errors.js';
import type { Db } from '../../db/database.js';
import { isPermission, isSystemRole, type Permission } from '../../policy/permissions.js';
import { permissionsOfSystemRole, type WorkspaceActor } from '../../policy/policy.js';
import { requirePrincipal } from '../auth/principal.js';

export async function permissionsOfRole(db: Db, workspaceId: string, role: string): Promise<ReadonlySet<Permission>> {
  if (isSystemRole(role)) return permissionsOfSystemRole(role);
  const row = await db
    .selectFrom('roles')
    .select('permissions')
    .where('id', '=', role)
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
  return parsePermissions(row?.permissions);
}

export function parsePermissions(json: string | undefined): ReadonlySet<Permission> {
  if (!json) return new Set();
  const list: unknown = JSON.parse(json);
  return new Set(
    Array.isArray(list) ? list.filter((p): p is Permission => typeof p === 'string' && isPermission(p)) : [],
  );
}

export async function resolveActor(db: Db, request: FastifyRequest, workspaceId: string): Promise<WorkspaceActor> {
  const principal = requirePrincipal(request);
  if (principal.kind === 'token' && principal.workspaceId !== workspaceId) throw new NotFoundError('Workspace');
  const row = await db
    .selectFrom('members')
    .innerJoin('workspaces', 'workspaces.id', 'members.workspace_id')
    .select(['members.role'])
    .where('members.workspace_id', '=', workspaceId)
    .where('members.user_id', '=', principal.userId)
    .where('workspaces.deleted_at', 'is', null)
    .executeTakeFirst();
  if (!row) throw new NotFoundError('Workspace');
  return {
    userId: principal.userId,
    workspaceId,
    role: row.role,
    permissions: await permissionsOfRole(db, workspaceId, row.role),
    tokenId: principal.kind === 'token' ? principal.tokenId : undefined,
  };
}
