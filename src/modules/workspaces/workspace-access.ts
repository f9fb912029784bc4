/**
 * Turns (principal, workspace id) into a WorkspaceActor: the caller's role
 * and permissions there. Not a member, a deleted workspace, or an API token
 * scoped to another workspace all look the same: 404, so ids do not leak.
 */
import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../../app/context.js';
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

interface Membership {
  role: string;
  permissions: ReadonlySet<Permission>;
}

/** A user's role and permissions in a live workspace at `epoch` (from the workspace cache), or null. */
export function membershipAt(
  { db, cache }: Pick<AppContext, 'db' | 'cache'>,
  workspaceId: string,
  userId: string,
  epoch: number,
): Promise<Membership | null> {
  return cache.get<Membership | null>(workspaceId, epoch, `member:${userId}`, async () => {
    const row = await db
      .selectFrom('members')
      .innerJoin('workspaces', 'workspaces.id', 'members.workspace_id')
      .select(['members.role'])
      .where('members.workspace_id', '=', workspaceId)
      .where('members.user_id', '=', userId)
      .where('workspaces.deleted_at', 'is', null)
      .executeTakeFirst();
    return row ? { role: row.role, permissions: await permissionsOfRole(db, workspaceId, row.role) } : null;
  });
}

/**
 * A member's role and permissions as stored now, or null for no member:
 * read uncached, inside the transaction of a caller holding the workspace lock.
 */
export async function memberAccess(db: Db, workspaceId: string, userId: string): Promise<Membership | null> {
  const row = await db
    .selectFrom('members')
    .select('role')
    .where('workspace_id', '=', workspaceId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row ? { role: row.role, permissions: await permissionsOfRole(db, workspaceId, row.role) } : null;
}

/**
 * When API token `tokenId` of the workspace expires (ms since the epoch), as
 * of the workspace's change `epoch`; null when it is gone or has expired.
 */
export async function tokenLiveUntil(
  { db, cache }: Pick<AppContext, 'db' | 'cache'>,
  workspaceId: string,
  tokenId: string,
  epoch: number,
): Promise<number | null> {
  const expiresAt = await cache.get<string | null>(workspaceId, epoch, `token-id:${tokenId}`, async () => {
    const row = await db
      .selectFrom('api_tokens')
      .select('expires_at')
      .where('id', '=', tokenId)
      .where('workspace_id', '=', workspaceId)
      .executeTakeFirst();
    return row?.expires_at ?? null;
  });
  const until = expiresAt === null ? Number.NaN : Date.parse(expiresAt);
  return until > Date.now() ? until : null;
}

/**
 * The caller's role and permissions in the workspace, from the workspace
 * cache validated by the change epoch (read here, or already read for an
 * API token of this workspace): a removed member or an edited role is
 * refused on the next request, on every server.
 */
export async function resolveActor(
  ctx: Pick<AppContext, 'db' | 'cache'>,
  request: FastifyRequest,
  workspaceId: string,
): Promise<WorkspaceActor> {
  const principal = requirePrincipal(request);
  if (principal.kind === 'token' && principal.workspaceId !== workspaceId) throw new NotFoundError('Workspace');
  const { cache } = ctx;
  const { epoch, seq } = principal.kind === 'token' ? principal : await cache.head(workspaceId);
  const membership = await membershipAt(ctx, workspaceId, principal.userId, epoch);
  if (!membership) throw new NotFoundError('Workspace');
  return {
    userId: principal.userId,
    workspaceId,
    role: membership.role,
    permissions: membership.permissions,
    tokenId: principal.kind === 'token' ? principal.tokenId : undefined,
    epoch,
    seq,
  };
}
