/**
 * Workflows: saved as one document of blocks and validated on every save —
 * templates parse, at most one secret per field, no secret outside an API
 * block field, every referenced secret exists, and adding a secret reference
 * needs `secrets.use`. A saved workflow keeps working when its editor later
 * loses `secrets.use`; a missing secret fails at run time instead.
 *
 * One workflow holds at most MAX_SECRET_REFS secret references, whose paths
 * total at most MAX_SECRET_REF_PATH_CHARS: each is a row of the usages index
 * and an item of a secret's usages. Edits and deletes read and lock the
 * workflow's row inside their transaction, so a save racing a delete is a 404
 * for whichever comes second, never a half-written workflow.
 *
 * Every save moves the workflow's `revision` (its ETag). A save or delete
 * that names the revision it was made from (If-Match) is refused with 412
 * `version_conflict` once someone else has saved since; without one, the
 * last write wins. The list reads summaries (`block_count`, never `blocks`).
 */
import { type Kysely, sql } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { AppError, ForbiddenError, NotFoundError } from '../../app/errors.js';
import { newId, nowIso } from '../../app/ids.js';
import type { Database, WorkflowsTable } from '../../db/schema.js';
import { authorize, can, type WorkspaceActor } from '../../policy/policy.js';
import { analyzeBlock } from '../../runtime/block-fields.js';
import type { AuditContext } from '../audit/audit-log.js';
import { SYSTEM_VARIABLES } from '../variables/system-variables.js';
import type { Block, WorkflowInput } from './block-schema.js';

/** `dbKind` says how to lock a workflow's row (PostgreSQL needs `FOR UPDATE`). */
type Deps = Pick<AppContext, 'db' | 'audit' | 'dbKind'>;

/**
 * Secret references one workflow may hold, and the characters of their field
 * paths together (a JSON body's path repeats every key above the value). Far
 * above what a real workflow needs (100 blocks with a few secrets each);
 * without a bound, one request could make the usages index, and every
 * secret's usages, as large as memory.
 */
export const MAX_SECRET_REFS = 1_000;
export const MAX_SECRET_REF_PATH_CHARS = 256 * 1024;

/** Reference rows per INSERT: 5 parameters each, well below either database's limit. */
const REF_INSERT_CHUNK = 200;

/**
 * Warnings and errors listed for one save, and the characters of a path in
 * them: a path repeats every JSON key above its field, so listing one per
 * field made a 100 KB body answer hundreds of megabytes.
 */
const MAX_LISTED = 100;
const MAX_LISTED_PATH_CHARS = 512;

function listedPath(path: string): string {
  if (path.length <= MAX_LISTED_PATH_CHARS) return path;
  // Not between the two halves of a surrogate pair.
  const end = /[\uD800-\uDBFF]/.test(path.charAt(MAX_LISTED_PATH_CHARS - 1))
    ? MAX_LISTED_PATH_CHARS - 1
    : MAX_LISTED_PATH_CHARS;
  return `${path.slice(0, end)}…`;
}

function tooManyReferences(detail: string): AppError {
  return new AppError(422, 'too_many_references', `A workflow can hold at most ${detail}.`, {
    errors: [{ path: 'body.blocks', message: `at most ${detail}` }],
  });
}

export interface SecretRef {
  blockId: string;
  field: string;
  secretName: string;
}

export interface Warning {
  path: string;
  message: string;
}

/** The columns a workflow list reads: everything but the blocks. */
export const WORKFLOW_SUMMARY_COLUMNS = [
  'id',
  'name',
  'start_block_id',
  'block_count',
  'revision',
  'created_at',
  'updated_at',
] as const satisfies readonly (keyof WorkflowsTable)[];

export type WorkflowSummaryRow = Pick<WorkflowsTable, (typeof WORKFLOW_SUMMARY_COLUMNS)[number]>;

/** A workflow's ETag: its revision, as a strong entity tag. */
export function workflowETag(row: Pick<WorkflowsTable, 'revision'>): string {
  return `"${Number(row.revision)}"`;
}

export function presentWorkflowSummary(row: WorkflowSummaryRow) {
  return {
    id: row.id,
    name: row.name,
    startBlockId: row.start_block_id,
    blockCount: Number(row.block_count),
    revision: Number(row.revision),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function presentWorkflow(row: WorkflowsTable, warnings?: Warning[]) {
  return {
    ...presentWorkflowSummary(row),
    blocks: JSON.parse(row.blocks) as Block[],
    ...(warnings ? { warnings } : {}),
  };
}

/**
 * What If-Match allows: `undefined` for any revision (no header, or `*`),
 * else the revisions a save may be made over — none when every tag given was
 * weak (RFC 9110 compares If-Match strongly: a weak tag never matches).
 */
export type RevisionCondition = readonly number[] | undefined;

function checkRevision(row: Pick<WorkflowsTable, 'revision'>, ifMatch: RevisionCondition): void {
  if (ifMatch !== undefined && !ifMatch.includes(Number(row.revision))) throw workflowChanged();
}

function workflowChanged(): AppError {
  return new AppError(
    412,
    'version_conflict',
    'Someone else saved this workflow since you loaded it; reload it and make your changes again.',
  );
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
  // Names in any case: a run reads `{{COUNT}}` as the variable `count` (run-service VariableMap).
  const assigned = new Set<string>([...knownVariables].map((n) => n.toLowerCase()));
  for (const b of blocks) {
    if (b.type === 'api') for (const c of b.capture) assigned.add(c.variable.toLowerCase());
    else for (const a of b.assignments) assigned.add(a.variable.toLowerCase());
  }
  const warnings: Warning[] = [];
  let unlistedWarnings = 0;
  let refPathChars = 0;
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
    const prefix = `body.blocks.${i}.`;
    for (const f of fields) {
      for (const name of f.template.secrets) {
        // Checked before the path is copied: it can be as long as the body.
        refPathChars += f.path.length - prefix.length;
        if (refs.length >= MAX_SECRET_REFS) throw tooManyReferences(`${MAX_SECRET_REFS} secret references`);
        if (refPathChars > MAX_SECRET_REF_PATH_CHARS)
          throw tooManyReferences(
            `${MAX_SECRET_REF_PATH_CHARS} characters of secret reference paths (JSON keys above each secret count)`,
          );
        refs.push({ blockId: b.id, field: f.path.slice(prefix.length), secretName: name });
      }
      for (const name of f.template.variables) {
        if (assigned.has(name.toLowerCase())) continue;
        if (warnings.length >= MAX_LISTED) unlistedWarnings += 1;
        else
          warnings.push({
            path: listedPath(f.path),
            message: `"${name}" is not a known variable; it renders empty unless the run's input sets it`,
          });
      }
    }
  });
  const first = problems[0];
  if (first) {
    const errors = problems.slice(0, MAX_LISTED).map((p) => ({ path: listedPath(p.path), message: p.message }));
    if (problems.length > MAX_LISTED)
      errors.push({ path: 'body.blocks', message: `${problems.length - MAX_LISTED} more problems are not listed` });
    throw new AppError(422, first.code, `${listedPath(first.path)}: ${first.message}`, { errors });
  }
  if (unlistedWarnings > 0)
    warnings.push({ path: 'body.blocks', message: `${unlistedWarnings} more unknown variables are not listed` });
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

  /**
   * Reads the workflow inside `trx` and locks its row until the transaction
   * ends (`FOR UPDATE` on PostgreSQL; SQLite's transactions hold the write
   * lock from their start). An edit or delete that comes second waits here
   * and then finds the row as the first left it — or gone: 404.
   */
  async function lockWorkflow(trx: Kysely<Database>, workspaceId: string, id: string): Promise<WorkflowsTable> {
    let q = trx.selectFrom('workflows').selectAll().where('id', '=', id).where('workspace_id', '=', workspaceId);
    if (deps.dbKind === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
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
    trx: Kysely<Database>,
    actor: WorkspaceActor,
    refs: SecretRef[],
    blocks: readonly Block[],
    existing: WorkflowsTable | undefined,
  ): Promise<Warning[]> {
    const key = (r: SecretRef) => `${r.blockId}\u0000${r.field}\u0000${r.secretName.toLowerCase()}`;
    // A kept reference to a deleted secret is the block's, wherever its rows moved (fields are positional).
    const kept = (r: SecretRef) => `${r.blockId}\u0000${r.secretName.toLowerCase()}`;
    const previous = refs.length > 0 && existing ? await previousRefs(trx, existing.id) : [];
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
    const rows = await trx
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

  async function previousRefs(trx: Kysely<Database>, workflowId: string): Promise<SecretRef[]> {
    const rows = await trx
      .selectFrom('workflow_secret_refs')
      .selectAll()
      .where('workflow_id', '=', workflowId)
      .execute();
    return rows.map((r) => ({ blockId: r.block_id, field: r.field, secretName: r.secret_name_lower }));
  }

  /**
   * Creates a workflow, or replaces the workflow `id` (read and locked in the
   * same transaction) if its revision is one `ifMatch` allows.
   */
  async function save(
    actor: WorkspaceActor,
    audit: AuditContext,
    input: WorkflowInput,
    id?: string,
    ifMatch?: RevisionCondition,
  ) {
    authorize(actor, 'workflows.edit');
    const { refs, warnings } = validateBlocks(
      input.blocks,
      input.startBlockId,
      await knownVariables(actor.workspaceId),
    );
    const blocks = JSON.stringify(input.blocks);
    return db.transaction().execute(async (trx) => {
      const existing = id === undefined ? undefined : await lockWorkflow(trx, actor.workspaceId, id);
      if (existing) checkRevision(existing, ifMatch);
      warnings.push(...(await checkSecretRefs(trx, actor, refs, input.blocks, existing)));
      const now = nowIso();
      const row: WorkflowsTable = {
        id: existing?.id ?? newId('wf'),
        workspace_id: actor.workspaceId,
        name: input.name,
        start_block_id: input.startBlockId,
        blocks,
        block_count: input.blocks.length,
        revision: existing ? Number(existing.revision) + 1 : 0,
        created_at: existing?.created_at ?? now,
        created_by: existing?.created_by ?? actor.userId,
        updated_at: now,
        updated_by: actor.userId,
      };
      if (existing) {
        // The row is locked; the revision guard keeps a save from ever landing over one it did not read.
        const updated = await trx
          .updateTable('workflows')
          .set(row)
          .where('id', '=', row.id)
          .where('revision', '=', existing.revision)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) throw workflowChanged();
        await trx.deleteFrom('workflow_secret_refs').where('workflow_id', '=', row.id).execute();
      } else {
        await trx.insertInto('workflows').values(row).execute();
      }
      for (let start = 0; start < refs.length; start += REF_INSERT_CHUNK) {
        await trx
          .insertInto('workflow_secret_refs')
          .values(
            refs.slice(start, start + REF_INSERT_CHUNK).map((r) => ({
              workspace_id: actor.workspaceId,
              workflow_id: row.id,
              block_id: r.blockId,
              field: r.field,
              secret_name_lower: r.secretName.toLowerCase(),
            })),
          )
          .execute();
      }
      await deps.audit(trx, audit, {
        workspaceId: actor.workspaceId,
        action: existing ? 'workflow.updated' : 'workflow.created',
        targetType: 'workflow',
        targetId: row.id,
        data: { name: row.name, blocks: input.blocks.length, secretRefs: refs.length },
      });
      return { row, warnings };
    });
  }

  return {
    load,
    knownVariables,

    async list(actor: WorkspaceActor, limit: number, after?: { name: string; id: string }) {
      authorize(actor, 'workflows.read');
      // Summaries only: the blocks of a page of workflows can be hundreds of megabytes.
      let q = db.selectFrom('workflows').select(WORKFLOW_SUMMARY_COLUMNS).where('workspace_id', '=', actor.workspaceId);
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

    async replace(
      actor: WorkspaceActor,
      audit: AuditContext,
      id: string,
      input: WorkflowInput,
      ifMatch?: RevisionCondition,
    ) {
      authorize(actor, 'workflows.edit');
      // An unknown id is a 404, and a stale copy a 412, before the body is judged;
      // the save reads the row again, locked, and checks again.
      checkRevision(await load(actor.workspaceId, id), ifMatch);
      return save(actor, audit, input, id, ifMatch);
    },

    async remove(actor: WorkspaceActor, audit: AuditContext, id: string, ifMatch?: RevisionCondition) {
      authorize(actor, 'workflows.edit');
      await db.transaction().execute(async (trx) => {
        const row = await lockWorkflow(trx, actor.workspaceId, id);
        checkRevision(row, ifMatch);
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

    /**
     * Blocks that reference a secret (by its name). Each workflow's blocks are
     * read and parsed once, for the names of its blocks, however many of its
     * fields name the secret (workflows saved before the reference bound may
     * hold tens of thousands).
     */
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
          'workflow_secret_refs.block_id as blockId',
          'workflow_secret_refs.field',
        ])
        .where('workflow_secret_refs.workspace_id', '=', actor.workspaceId)
        .where('workflow_secret_refs.secret_name_lower', '=', secret.name.toLowerCase())
        .orderBy('workflows.name')
        .execute();
      const blockNames = new Map<string, Map<string, string>>();
      for (const workflowId of new Set(rows.map((r) => r.workflowId))) {
        const workflow = await db
          .selectFrom('workflows')
          .select('blocks')
          .where('id', '=', workflowId)
          .executeTakeFirst();
        // Deleted since the first read: its rows keep an empty block name.
        const names = new Map<string, string>();
        for (const b of workflow ? (JSON.parse(workflow.blocks) as Block[]) : [])
          if (!names.has(b.id)) names.set(b.id, b.name);
        blockNames.set(workflowId, names);
      }
      return rows.map((r) => ({
        workflowId: r.workflowId,
        workflowName: r.workflowName,
        blockId: r.blockId,
        blockName: blockNames.get(r.workflowId)?.get(r.blockId) ?? '',
        field: r.field,
      }));
    },
  };
}

export type WorkflowService = ReturnType<typeof createWorkflowService>;
