/**
 * Custom variables: typed, with an optional test value (Send request) and
 * fallback value (a run's initial value), sharing the workspace name space
 * with secrets. An update or delete reads the variable's row locked, before
 * it touches the name registry: two edits of one variable queue, so each
 * renames from the name the other left, and a rename after a delete is a 404.
 */
import type { Transaction } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { AppError, NotFoundError } from '../../app/errors.js';
import { newId, nowIso } from '../../app/ids.js';
import type { Database, VariablesTable } from '../../db/schema.js';
import { nameContains } from '../../db/search.js';
import { authorize, type WorkspaceActor } from '../../policy/policy.js';
import type { AuditContext } from '../audit/audit-log.js';
import { SYSTEM_VARIABLES, systemVariableNamed } from './system-variables.js';
import { claimName, releaseName } from './variable-names.js';
import { decodeVariableValue, encodeVariableValue, type VariableType } from './variable-types.js';

type Deps = Pick<AppContext, 'db' | 'dbKind' | 'audit'>;

export interface VariableInput {
  name: string;
  type: VariableType;
  description: string;
  testValue?: unknown;
  fallbackValue?: unknown;
}

export function presentVariable(row: VariablesTable) {
  return {
    id: row.id,
    kind: 'custom' as const,
    name: row.name,
    type: row.type as VariableType,
    description: row.description,
    testValue: decodeVariableValue(row.test_value),
    fallbackValue: decodeVariableValue(row.fallback_value),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function createVariableService(deps: Deps) {
  const { db } = deps;

  async function load(workspaceId: string, id: string, executor: AppContext['db'] = db): Promise<VariablesTable> {
    const row = await executor
      .selectFrom('variables')
      .selectAll()
      .where('id', '=', id)
      .where('workspace_id', '=', workspaceId)
      .executeTakeFirst();
    if (!row) throw new NotFoundError('Variable');
    return row;
  }

  /**
   * `load` inside `trx`, holding the row until the transaction ends
   * (`FOR UPDATE` on PostgreSQL; a SQLite transaction holds the write lock
   * from its start). Always the variable's row first, then its names: one
   * order for every writer, so none waits on another in a circle.
   */
  async function loadLocked(trx: Transaction<Database>, workspaceId: string, id: string): Promise<VariablesTable> {
    let q = trx.selectFrom('variables').selectAll().where('id', '=', id).where('workspace_id', '=', workspaceId);
    if (deps.dbKind === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw new NotFoundError('Variable');
    return row;
  }

  return {
    async list(
      actor: WorkspaceActor,
      query: { q?: string | undefined; limit: number; after?: { name: string; id: string } | undefined },
    ) {
      authorize(actor, 'variables.read');
      let q = db.selectFrom('variables').selectAll().where('workspace_id', '=', actor.workspaceId);
      if (query.q) q = q.where(nameContains(query.q));
      const after = query.after;
      if (after) q = q.where((eb) => eb(eb.refTuple('name', 'id'), '>', eb.tuple(after.name, after.id)));
      const rows = await q
        .orderBy('name')
        .orderBy('id')
        .limit(query.limit + 1)
        .execute();
      return { rows: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
    },

    /** The read-only system variables, optionally filtered by name. */
    systemVariables(actor: WorkspaceActor, q?: string) {
      authorize(actor, 'variables.read');
      const needle = q?.toLowerCase();
      return SYSTEM_VARIABLES.filter((v) => !needle || v.name.toLowerCase().includes(needle)).map(presentSystem);
    },

    /** One system variable by the id the list gives it (its name), or undefined for any other id. */
    systemVariable(actor: WorkspaceActor, id: string) {
      const variable = systemVariableNamed(id);
      if (!variable) return undefined;
      authorize(actor, 'variables.read');
      return presentSystem(variable);
    },

    async get(actor: WorkspaceActor, id: string) {
      authorize(actor, 'variables.read');
      return load(actor.workspaceId, id);
    },

    async create(actor: WorkspaceActor, audit: AuditContext, input: VariableInput) {
      authorize(actor, 'variables.manage');
      const now = nowIso();
      const row: VariablesTable = {
        id: newId('var'),
        workspace_id: actor.workspaceId,
        name: input.name,
        type: input.type,
        description: input.description,
        test_value: encodeVariableValue(input.type, input.testValue, 'body.testValue'),
        fallback_value: encodeVariableValue(input.type, input.fallbackValue, 'body.fallbackValue'),
        created_at: now,
        created_by: actor.userId,
        updated_at: now,
        updated_by: actor.userId,
      };
      await db.transaction().execute(async (trx) => {
        await claimName(trx, actor.workspaceId, input.name, { kind: 'variable', id: row.id });
        await trx.insertInto('variables').values(row).execute();
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'variable.created',
          targetType: 'variable',
          targetId: row.id,
          data: { name: row.name, type: row.type },
        });
      });
      return row;
    },

    async update(actor: WorkspaceActor, audit: AuditContext, id: string, patch: Partial<VariableInput>) {
      authorize(actor, 'variables.manage');
      refuseSystem(id);
      return db.transaction().execute(async (trx) => {
        const current = await loadLocked(trx, actor.workspaceId, id);
        const type = patch.type ?? (current.type as VariableType);
        const testValue = 'testValue' in patch ? patch.testValue : decodeVariableValue(current.test_value);
        const fallbackValue =
          'fallbackValue' in patch ? patch.fallbackValue : decodeVariableValue(current.fallback_value);
        const set: Partial<VariablesTable> = {
          type,
          test_value: encodeVariableValue(type, testValue, 'body.testValue'),
          fallback_value: encodeVariableValue(type, fallbackValue, 'body.fallbackValue'),
          updated_at: nowIso(),
          updated_by: actor.userId,
        };
        if (patch.description !== undefined) set.description = patch.description;
        if (patch.name !== undefined && patch.name !== current.name) {
          if (patch.name.toLowerCase() !== current.name.toLowerCase()) {
            await claimName(trx, actor.workspaceId, patch.name, { kind: 'variable', id });
            await releaseName(trx, actor.workspaceId, current.name);
          }
          set.name = patch.name;
        }
        await trx.updateTable('variables').set(set).where('id', '=', id).execute();
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'variable.updated',
          targetType: 'variable',
          targetId: id,
          data: { name: set.name ?? current.name, fields: Object.keys(patch) },
        });
        return load(actor.workspaceId, id, trx);
      });
    },

    async remove(actor: WorkspaceActor, audit: AuditContext, id: string) {
      authorize(actor, 'variables.manage');
      refuseSystem(id);
      await db.transaction().execute(async (trx) => {
        const current = await loadLocked(trx, actor.workspaceId, id);
        await trx.deleteFrom('variables').where('id', '=', id).execute();
        await releaseName(trx, actor.workspaceId, current.name);
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'variable.deleted',
          targetType: 'variable',
          targetId: id,
          data: { name: current.name },
        });
      });
    },
  };
}

function presentSystem(v: (typeof SYSTEM_VARIABLES)[number]) {
  return {
    id: v.name,
    kind: 'system' as const,
    name: v.name,
    type: v.type,
    description: v.description,
    testValue: null,
    fallbackValue: null,
    createdAt: null,
    updatedAt: null,
  };
}

/** System variables are read-only: changing one is refused for everyone (after the permission check). */
function refuseSystem(id: string): void {
  if (systemVariableNamed(id)) {
    throw new AppError(
      409,
      'system_variable_read_only',
      `${id} is a system variable: it cannot be changed or deleted.`,
    );
  }
}
