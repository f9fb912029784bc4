/**
 * Workspaces: create (with its first data key and owner), read, rename,
 * settings, delete. Deletion is soft: the workspace vanishes from every API
 * at once; once HUSH_SECRET_RETENTION_DAYS have passed the retention sweep
 * destroys its secrets and keys (purgeExpiredWorkspaces in secret-service).
 */
import type { Transaction } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { NotFoundError } from '../../app/errors.js';
import { newId, nowIso } from '../../app/ids.js';
import type { Database, WorkspacesTable } from '../../db/schema.js';
import { authorize, type WorkspaceActor } from '../../policy/policy.js';
import type { AuditContext } from '../audit/audit-log.js';
import { memberAccess } from './workspace-access.js';

export const SECRET_HOST_BINDINGS = ['pin-on-first-use', 'required', 'off'] as const;
export type SecretHostBinding = (typeof SECRET_HOST_BINDINGS)[number];

export type WorkspaceRow = WorkspacesTable;

type Deps = Pick<AppContext, 'db' | 'dbKind' | 'audit' | 'keyring'>;

/** Creates a workspace, its key version 1 and the owner membership, inside `trx`. */
export async function insertWorkspace(
  deps: Pick<AppContext, 'audit' | 'keyring'>,
  trx: Transaction<Database>,
  audit: AuditContext,
  input: { name: string; ownerId: string },
): Promise<WorkspaceRow> {
  const now = nowIso();
  const row: WorkspaceRow = {
    id: newId('ws'),
    name: input.name,
    secret_host_binding: 'pin-on-first-use',
    active_key_version: 1,
    created_at: now,
    updated_at: now,
    deleted_at: null,
  };
  await trx.insertInto('workspaces').values(row).execute();
  await deps.keyring.createKey(trx, row.id, 1);
  await trx
    .insertInto('members')
    .values({ workspace_id: row.id, user_id: input.ownerId, role: 'owner', created_at: now, updated_at: now })
    .execute();
  await deps.audit(trx, audit, {
    workspaceId: row.id,
    action: 'workspace.created',
    targetType: 'workspace',
    targetId: row.id,
    data: { name: row.name },
  });
  await deps.audit(trx, audit, {
    workspaceId: row.id,
    action: 'member.added',
    targetType: 'user',
    targetId: input.ownerId,
    data: { role: 'owner' },
  });
  return row;
}

/** Locks the workspace row until commit (PostgreSQL), serialising membership changes. */
export async function lockWorkspace(trx: Transaction<Database>, kind: AppContext['dbKind'], workspaceId: string) {
  let q = trx.selectFrom('workspaces').select('id').where('id', '=', workspaceId).where('deleted_at', 'is', null);
  if (kind === 'postgres') q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new NotFoundError('Workspace');
}

/**
 * `lockWorkspace`, then the actor as the database has them now: their role
 * and its permissions read under the lock, not as the request found them. A
 * demotion or removal that committed since the request was authorised is
 * seen, one still running is waited for; no longer a member is 404, as
 * `resolveActor` answers. For a change checked against the caller's own
 * permissions (defining or assigning a role, removing a member, revoking an
 * invitation: "never more than you hold").
 */
export async function lockWorkspaceAs(
  trx: Transaction<Database>,
  kind: AppContext['dbKind'],
  actor: WorkspaceActor,
): Promise<WorkspaceActor> {
  await lockWorkspace(trx, kind, actor.workspaceId);
  const member = await memberAccess(trx, actor.workspaceId, actor.userId);
  if (!member) throw new NotFoundError('Workspace');
  return { ...actor, ...member };
}

export function createWorkspaceService(deps: Deps) {
  const { db } = deps;

  async function load(id: string): Promise<WorkspaceRow> {
    const row = await db
      .selectFrom('workspaces')
      .selectAll()
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    if (!row) throw new NotFoundError('Workspace');
    return row;
  }

  return {
    async create(audit: AuditContext, input: { name: string; ownerId: string }) {
      return db.transaction().execute((trx) => insertWorkspace(deps, trx, audit, input));
    },

    async listForUser(userId: string, onlyWorkspaceId?: string) {
      let q = db
        .selectFrom('members')
        .innerJoin('workspaces', 'workspaces.id', 'members.workspace_id')
        .leftJoin('roles', 'roles.id', 'members.role')
        .select(['workspaces.id', 'workspaces.name', 'members.role', 'roles.name as roleName', 'workspaces.created_at'])
        .where('members.user_id', '=', userId)
        .where('workspaces.deleted_at', 'is', null)
        .orderBy('workspaces.created_at')
        .orderBy('workspaces.id');
      if (onlyWorkspaceId) q = q.where('workspaces.id', '=', onlyWorkspaceId);
      return q.execute();
    },

    async get(actor: WorkspaceActor) {
      return load(actor.workspaceId);
    },

    async update(
      actor: WorkspaceActor,
      audit: AuditContext,
      patch: { name?: string | undefined; secretHostBinding?: SecretHostBinding | undefined },
    ) {
      authorize(actor, 'workspace.manage');
      return db.transaction().execute(async (trx) => {
        await lockWorkspace(trx, deps.dbKind, actor.workspaceId);
        const set: Partial<WorkspaceRow> = { updated_at: nowIso() };
        if (patch.name !== undefined) set.name = patch.name;
        if (patch.secretHostBinding !== undefined) set.secret_host_binding = patch.secretHostBinding;
        await trx.updateTable('workspaces').set(set).where('id', '=', actor.workspaceId).execute();
        const changed = Object.keys(patch).filter((k) => patch[k as keyof typeof patch] !== undefined);
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'workspace.updated',
          targetType: 'workspace',
          targetId: actor.workspaceId,
          data: {
            fields: changed,
            ...(patch.name !== undefined ? { name: patch.name } : {}),
            ...(patch.secretHostBinding ? { secretHostBinding: patch.secretHostBinding } : {}),
          },
        });
        return trx.selectFrom('workspaces').selectAll().where('id', '=', actor.workspaceId).executeTakeFirstOrThrow();
      });
    },

    async remove(actor: WorkspaceActor, audit: AuditContext) {
      authorize(actor, 'workspace.manage');
      await db.transaction().execute(async (trx) => {
        await lockWorkspace(trx, deps.dbKind, actor.workspaceId);
        const now = nowIso();
        await trx
          .updateTable('workspaces')
          .set({ deleted_at: now, updated_at: now })
          .where('id', '=', actor.workspaceId)
          .execute();
        await trx.deleteFrom('api_tokens').where('workspace_id', '=', actor.workspaceId).execute();
        await trx.deleteFrom('invitations').where('workspace_id', '=', actor.workspaceId).execute();
        const event = { action: 'workspace.deleted', targetType: 'workspace', targetId: actor.workspaceId };
        await deps.audit(trx, audit, { workspaceId: actor.workspaceId, ...event });
        await deps.audit(trx, audit, { workspaceId: null, ...event });
      });
    },
  };
}

export type WorkspaceService = ReturnType<typeof createWorkspaceService>;

export function presentWorkspace(row: WorkspaceRow, role: string) {
  return {
    id: row.id,
    name: row.name,
    role,
    settings: { secretHostBinding: row.secret_host_binding as SecretHostBinding },
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
