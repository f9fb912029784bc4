/**
 * The one place a permission is checked. Services call `authorize` first
 * thing; nothing else in Hush decides who may do what.
 */
import { ForbiddenError } from '../app/errors.js';
import { isSystemRole, type Permission, SYSTEM_ROLE_PERMISSIONS, type SystemRole } from './permissions.js';

/** Who is acting inside one workspace, with the permissions their role gives. */
export interface WorkspaceActor {
  userId: string;
  workspaceId: string;
  /** System role key or custom role id. */
  role: string;
  permissions: ReadonlySet<Permission>;
  /** Set when the request came with a personal API token. */
  tokenId?: string | undefined;
  /** The workspace's change epoch this request was authorised at (workspace-cache.ts). */
  epoch: number;
  /** The workspace's audit sequence read with the epoch (workspace-cache.ts). */
  seq: number;
}

export function permissionsOfSystemRole(role: SystemRole): ReadonlySet<Permission> {
  return SYSTEM_ROLE_PERMISSIONS[role];
}

export function can(actor: Pick<WorkspaceActor, 'permissions'>, permission: Permission): boolean {
  return actor.permissions.has(permission);
}

/** Throws 403 `forbidden` unless the actor holds `permission`. */
export function authorize(actor: Pick<WorkspaceActor, 'permissions'>, permission: Permission): void {
  if (!can(actor, permission)) throw new ForbiddenError(`Your role lacks the permission "${permission}".`);
}

/**
 * Whether `actor` may give someone `targetPermissions` (a role to assign or a
 * custom role to define): never more than the actor holds, and owner rights
 * only with `members.manage_owners`.
 */
export function mayGrant(
  actor: Pick<WorkspaceActor, 'permissions'>,
  targetPermissions: ReadonlySet<Permission>,
): boolean {
  for (const p of targetPermissions) if (!actor.permissions.has(p)) return false;
  return true;
}

/** Whether the actor may touch a membership whose role is `role` (owners need manage_owners). */
export function mayManageMemberWithRole(actor: Pick<WorkspaceActor, 'permissions'>, role: string): boolean {
  if (role === 'owner') return can(actor, 'members.manage_owners');
  return can(actor, 'members.manage') || can(actor, 'members.manage_owners');
}

export { isSystemRole };
