/**
 * Workflows: saved as one document of blocks and validated on every save —
 * templates parse, at most one secret per field, no secret outside an API
 * block field, every referenced secret exists, and adding a secret reference
 * needs `secrets.use`. A saved workflow keeps working when its editor later
 * loses `secrets.use`; a missing secret fails at run time instead.
 */
import { sql } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { AppError, ForbiddenError, NotFoundError } from '../../app/errors.js';
import { newId, nowIso } from '../../app/ids.js';
import type { WorkflowsTable } from '../../db/schema.js';
import { authorize, can, type WorkspaceActor } from '../../policy/policy.js';
import { analyzeBlock } from '../../runtime/block-fields.js';
import type { AuditContext } from '../audit/audit-log.js';
import { SYSTEM_VARIABLES } from '../variables/system-variables.js';
import type { Block, WorkflowInput } from './block-schema.js';

type Deps = Pick<AppContext, 'db' | 'audit'>;

export interface SecretRef {
  blockId: string;
  field: string;
  secretName: string;
}

export interface Warning {
  path: string;
  message: string;
}

export function presentWorkflow(row: WorkflowsTable, warnings?: Warning[]) {
  return {
    id: row.id,
    name: row.name,
    startBlockId: row.start_block_id,
    blocks: JSON.parse(row.blocks) as Block[],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ...(warnings ? { warnings } : {}),
  };
}

/** Checks the structure and fields of a block list; returns its secret references and warnings. */
export function validateBlocks(
  blocks: readonly Block[],
  startBlockId: string | null,
  knownVariables: ReadonlySet<string>,
): { refs: SecretRef[]; warnings: Warning[] } {
  const problems: { path: string; code: string; message: string }[] = [];
  const ids = new Set<string>();
  blocks.forEach((b, i) => {
    if (ids.has(b.id))
      problems.push({
        path: `body.blocks.${i}.id`,
        code: 'validation_failed',
        message: `duplicate block id "${b.id}"`,
      });
    ids.add(b.id);
  });
  if (startBlockId !== null && !ids.has(startBlockId)) {
    problems.push({
      path: 'body.startBlockId',
      code: 'validation_failed',
      message: `no block has the id "${startBlockId}"`,
    });
  }
  if (startBlockId === null && blocks.length > 0) {
    problems.push({
      path: 'body.startBlockId',
      code: 'validation_failed',
      message: 'is required when there are blocks',
    });
  }
  const refs: SecretRef[] = [];
  const assigned = new Set<string>(knownVariables);
  for (const b of blocks) {
    if (b.type === 'api') for (const c of b.capture) assigned.add(c.variable);
    else for (const a of b.assignments) assigned.add(a.variable);
  }
  const warnings: Warning[] = [];
  blocks.forEach((b, i) => {
    const routes: [string, string | null][] =
      b.type === 'api'
        ? [
            ['onSuccess', b.onSuccess],
            ['onError', b.onError],
          ]
        : [['onSuccess', b.onSuccess]];
    for (const [key, target] of routes) {
      if (target !== null && !ids.has(target)) {
        problems.push({
          path: `body.blocks.${i}.${key}`,
          code: 'validation_failed',
          message: `no block has the id "${target}"`,
        });
      }
    }
    const { fields, problems: fieldProblems } = analyzeBlock(b, `body.blocks.${i}.`);
    problems.push(...fieldProblems);
    for (const f of fields) {
      for (const name of f.template.secrets)
        refs.push({ blockId: b.id, field: f.path.replace(`body.blocks.${i}.`, ''), secretName: name });
      for (const name of f.template.variables) {
        if (!assigned.has(name))
          warnings.push({
            path: f.path,
            message: `"${name}" is not a known variable; it renders empty unless the run's input sets it`,
          });
      }
    }
  });
  const first = problems[0];
  if (first) {
    throw new AppError(422, first.code, `${first.path}: ${first.message}`, {
      errors: problems.map((p) => ({ path: p.path, message: p.message })),
    });
  }
  return { refs, warnings };
}

export function createWorkflowService(deps: Deps) {
  const { db } = deps;

  async function load(workspaceId: string, id: string): Promise<WorkflowsTable> {
    const row = await db
      .selectFrom('workflows')
      .selectAll()
      .where('id', '=', id)
      .where('workspace_id', '=', workspaceId)
      .executeTakeFirst();
    if (!row) throw new NotFoundError('Workflow');
    return row;
  }

  async function knownVariables(workspaceId: string): Promise<Set<string>> {
    const rows = await db.selectFrom('variables').select('name').where('workspace_id', '=', workspaceId).execute();
    return new Set([...rows.map((r) => r.name), ...SYSTEM_VARIABLES.map((v) => v.name)]);
  }

  /**
   * A new reference must name a secret that exists. One the block already
   * had (in any of its fields, since rows are positional) may name a secret
   * deleted since: the save goes through with a
   * warning, and runs of that block fail with `secret_unavailable` until it
   * is restored (SPEC §2) — so a workflow stays editable after a delete.
   * Without secrets.use a saver may neither add a reference nor change a
   * block that sends a secret in any way (its URL, method, headers…): that
   * would send the secret somewhere new.
   */
  async function checkSecretRefs(
    actor: WorkspaceActor,
    refs: SecretRef[],
    blocks: readonly Block[],
    existing: WorkflowsTable | undefined,
  ): Promise<Warning[]> {
    const key = (r: SecretRef) => `${r.blockId}\u0000${r.field}\u0000${r.secretName.toLowerCase()}`;
    // A kept reference to a deleted secret is the block's, wherever its rows moved (fields are positional).
    const kept = (r: SecretRef) => `${r.blockId}\u0000${r.secretName.toLowerCase()}`;
    const previous = refs.length > 0 && existing ? await previousRefs(existing.id) : [];
    const before = new Set(previous.map(key));
    const keptBefore = new Set(previous.map(kept));
    if (refs.length > 0 && !can(actor, 'secrets.use')) {
      if (refs.some((r) => !before.has(key(r)))) {
        throw new ForbiddenError('Adding a secret to a block needs the permission "secrets.use".');
      }
      const saved = new Map(
        existing ? (JSON.parse(existing.blocks) as Block[]).map((b) => [b.id, JSON.stringify(b)]) : [],
      );
      const sending = new Set(refs.map((r) => r.blockId));
      const changed = blocks.find((b) => sending.has(b.id) && saved.get(b.id) !== JSON.stringify(b));
      if (changed) {
        throw new ForbiddenError(
          `Changing block "${changed.id}", which sends a secret, needs the permission "secrets.use".`,
        );
      }
    }
    const names = [...new Set(refs.map((r) => r.secretName.toLowerCase()))];
    if (names.length === 0) return [];
    const rows = await db
      .selectFrom('secrets')
      .select(sql<string>`lower(name)`.as('n'))
      .where('workspace_id', '=', actor.workspaceId)
      .where('deleted_at', 'is', null)
      .where(sql<boolean>`lower(name) in (${sql.join(names)})`)
      .execute();
    const found = new Set(rows.map((r) => r.n));
    const unavailable = refs.filter((r) => !found.has(r.secretName.toLowerCase()));
    const missing = unavailable.find((r) => !keptBefore.has(kept(r)));
    if (missing) {
      throw new AppError(
        422,
        'secret_unavailable',
        `The secret "${missing.secretName}" does not exist or is deleted.`,
        {
          errors: [
            {
              path: `blocks[id=${missing.blockId}].${missing.field}`,
              message: `no secret named "${missing.secretName}"`,
            },
          ],
        },
      );
    }
    return unavailable.map((r) => ({
      path: `blocks[id=${r.blockId}].${r.field}`,
      message: `the secret "${r.secretName}" does not exist or is deleted: this block fails with secret_unavailable until it is restored`,
    }));
  }

  async function previousRefs(workflowId: string): Promise<SecretRef[]> {
    const rows = await db
      .selectFrom('workflow_secret_refs')
      .selectAll()
      .where('workflow_id', '=', workflowId)
      .execute();
    return rows.map((r) => ({ blockId: r.block_id, field: r.field, secretName: r.secret_name_lower }));
  }

  async function save(actor: WorkspaceActor, audit: AuditContext, input: WorkflowInput, existing?: WorkflowsTable) {
    authorize(actor, 'workflows.edit');
    const { refs, warnings } = validateBlocks(
      input.blocks,
      input.startBlockId,
      await knownVariables(actor.workspaceId),
    );
    warnings.push(...(await checkSecretRefs(actor, refs, input.blocks, existing)));
    const now = nowIso();
    const row: WorkflowsTable = {
      id: existing?.id ?? newId('wf'),
      workspace_id: actor.workspaceId,
      name: input.name,
      start_block_id: input.startBlockId,
      blocks: JSON.stringify(input.blocks),
      created_at: existing?.created_at ?? now,
      created_by: existing?.created_by ?? actor.userId,
      updated_at: now,
      updated_by: actor.userId,
    };
    await db.transaction().execute(async (trx) => {
      if (existing) {
        await trx.updateTable('workflows').set(row).where('id', '=', row.id).execute();
        await trx.deleteFrom('workflow_secret_refs').where('workflow_id', '=', row.id).execute();
      } else {
        await trx.insertInto('workflows').values(row).execute();
      }
      for (const r of refs) {
        await trx
          .insertInto('workflow_secret_refs')
          .values({
            workspace_id: actor.workspaceId,
            workflow_id: row.id,
            block_id: r.blockId,
            field: r.field,
            secret_name_lower: r.secretName.toLowerCase(),
          })
          .execute();
      }
      await deps.audit(trx, audit, {
        workspaceId: actor.workspaceId,
        action: existing ? 'workflow.updated' : 'workflow.created',
        targetType: 'workflow',
        targetId: row.id,
        data: { name: row.name, blocks: input.blocks.length, secretRefs: refs.length },
      });
    });
    return { row, warnings };
  }

  return {
    load,
    knownVariables,

    async list(actor: WorkspaceActor, limit: number, after?: { name: string; id: string }) {
      authorize(actor, 'workflows.read');
      let q = db.selectFrom('workflows').selectAll().where('workspace_id', '=', actor.workspaceId);
      if (after) q = q.where((eb) => eb(eb.refTuple('name', 'id'), '>', eb.tuple(after.name, after.id)));
      const rows = await q
        .orderBy('name')
        .orderBy('id')
        .limit(limit + 1)
        .execute();
      return { rows: rows.slice(0, limit), hasMore: rows.length > limit };
    },

    async get(actor: WorkspaceActor, id: string) {
      authorize(actor, 'workflows.read');
      return load(actor.workspaceId, id);
    },

    create: (actor: WorkspaceActor, audit: AuditContext, input: WorkflowInput) => save(actor, audit, input),

    async replace(actor: WorkspaceActor, audit: AuditContext, id: string, input: WorkflowInput) {
      authorize(actor, 'workflows.edit');
      return save(actor, audit, input, await load(actor.workspaceId, id));
    },

    async remove(actor: WorkspaceActor, audit: AuditContext, id: string) {
      authorize(actor, 'workflows.edit');
      const row = await load(actor.workspaceId, id);
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('workflow_secret_refs').where('workflow_id', '=', id).execute();
        await trx.deleteFrom('workflows').where('id', '=', id).execute();
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'workflow.deleted',
          targetType: 'workflow',
          targetId: id,
          data: { name: row.name },
        });
      });
    },

    /** Blocks that reference a secret (by its name). */
    async usages(actor: WorkspaceActor, secretId: string) {
      authorize(actor, 'secrets.read');
      const secret = await db
        .selectFrom('secrets')
        .select('name')
        .where('id', '=', secretId)
        .where('workspace_id', '=', actor.workspaceId)
        .executeTakeFirst();
      if (!secret) throw new NotFoundError('Secret');
      const rows = await db
        .selectFrom('workflow_secret_refs')
        .innerJoin('workflows', 'workflows.id', 'workflow_secret_refs.workflow_id')
        .select([
          'workflows.id as workflowId',
          'workflows.name as workflowName',
          'workflows.blocks',
          'workflow_secret_refs.block_id as blockId',
          'workflow_secret_refs.field',
        ])
        .where('workflow_secret_refs.workspace_id', '=', actor.workspaceId)
        .where('workflow_secret_refs.secret_name_lower', '=', secret.name.toLowerCase())
        .orderBy('workflows.name')
        .execute();
      return rows.map((r) => {
        const block = (JSON.parse(r.blocks) as Block[]).find((b) => b.id === r.blockId);
        return {
          workflowId: r.workflowId,
          workflowName: r.workflowName,
          blockId: r.blockId,
          blockName: block?.name ?? '',
          field: r.field,
        };
      });
    },
  };
}

export type WorkflowService = ReturnType<typeof createWorkflowService>;
