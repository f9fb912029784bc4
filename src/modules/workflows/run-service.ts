/**
 * Executions: "Send request" (one draft API block with test values, $env =
 * TEST) and runs of a saved workflow ($env = PRODUCTION) with their step
 * records. Everything recorded or returned was redacted with every secret
 * the execution loaded; run records hold no value.
 */
import { hash } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { AppError, ForbiddenError, NotFoundError, ValidationError } from '../../app/errors.js';
import { newId, nowIso } from '../../app/ids.js';
import type { Database, RunsTable } from '../../db/schema.js';
import { authorize, can, type WorkspaceActor } from '../../policy/policy.js';
import { analyzeBlock, type BlockAnalysis } from '../../runtime/block-fields.js';
import { type ApiStepResult, executeApiBlock } from '../../runtime/executor.js';
import { setOwn } from '../../runtime/json-path.js';
import { Redactor } from '../../runtime/redactor.js';
import {
  charge,
  parseTemplate,
  renderBudget,
  renderedSize,
  renderTemplate,
  resolvePath,
  soleVariable,
} from '../../runtime/templates.js';
import type { AuditContext } from '../audit/audit-log.js';
import {
  asVariableType,
  decodeVariableValue,
  typeMismatchError,
  type VariableType,
} from '../variables/variable-types.js';
import { membershipAt, tokenLiveUntil } from '../workspaces/workspace-access.js';
import type { ApiBlock, Block, SetBlock } from './block-schema.js';
import { createSecretVault, type SecretVault } from './secret-vault.js';
import { createWorkflowService } from './workflow-service.js';

export const MAX_STEPS_PER_RUN = 100;
/**
 * The most characters a run's steps may record (bodies sent and received,
 * captured and set values): a run past it stops with `run_too_large`, so a
 * loop of big answers cannot build a record no one can store or read.
 */
export const MAX_RUN_RECORD_CHARS = 32 * 1024 * 1024;

/** About how many characters a step adds to its run's record. */
function recordedSize(step: StepRecord): number {
  return (
    (step.request?.body?.length ?? 0) +
    (step.request?.url.length ?? 0) +
    headersSize(step.request?.headers) +
    (step.response?.body.length ?? 0) +
    headersSize(step.response?.headers) +
    JSON.stringify(step.captures).length
  );
}

/** Characters of a header record (a header may carry a value as big as a body). */
function headersSize(headers: Record<string, string> | undefined): number {
  let size = 0;
  for (const key in headers) size += key.length + (headers[key] as string).length;
  return size;
}

type Deps = Pick<AppContext, 'db' | 'dbKind' | 'audit' | 'auditQueue' | 'keyring' | 'outbound' | 'cache' | 'config'>;

interface VariableRow {
  name: string;
  type: VariableType;
  test_value: string | null;
  fallback_value: string | null;
}

/** An execution's variables, and the types of those the workspace declares (by name). */
interface Variables {
  vars: Map<string, unknown>;
  types: Map<string, VariableType>;
}

/**
 * An execution's variables by name regardless of case, as the workspace's
 * names are unique (`COUNT` is the variable `count`): a Set Values block, a
 * capture or input naming one in another case sets that variable (checked
 * against its type), never a second one beside it. Listed under the first
 * spelling set — a declared variable's own.
 */
export class VariableMap extends Map<string, unknown> {
  private readonly spelled = new Map<string, string>();

  private keyOf(name: string): string {
    return this.spelled.get(name.toLowerCase()) ?? name;
  }

  override get(name: string): unknown {
    return super.get(this.keyOf(name));
  }

  override has(name: string): boolean {
    return super.has(this.keyOf(name));
  }

  override set(name: string, value: unknown): this {
    // Map's constructor calls set before the field above exists.
    if (this.spelled === undefined) return super.set(name, value);
    const key = this.keyOf(name);
    if (key === name) this.spelled.set(name.toLowerCase(), name);
    return super.set(key, value);
  }

  override delete(name: string): boolean {
    const key = this.keyOf(name);
    this.spelled.delete(name.toLowerCase());
    return super.delete(key);
  }

  override clear(): void {
    this.spelled.clear();
    super.clear();
  }
}

/** `value` as `name`'s declared type (any value for an undeclared name; names in any case), or why not. */
function asDeclared(
  types: Map<string, VariableType>,
  name: string,
  value: unknown,
): { value: unknown } | { error: { code: string; message: string } } {
  const type = types.get(name.toLowerCase());
  if (type === undefined) return { value };
  return asVariableType(type, value) ?? { error: typeMismatchError(name, type) };
}

export interface StepRecord {
  blockId: string;
  type: 'api' | 'set';
  status: 'succeeded' | 'failed';
  request: ApiStepResult['request'] | null;
  response: ApiStepResult['response'];
  captures: Record<string, unknown>;
  error?: { code: string; message: string };
  durationMs: number;
}

const SUMMARY_COLUMNS = [
  'id',
  'workflow_id',
  'status',
  'started_at',
  'finished_at',
  'started_by',
  'step_count',
] as const satisfies readonly (keyof RunsTable)[];
type RunHeadRow = Pick<RunsTable, 'id' | 'workflow_id' | 'status' | 'started_at' | 'finished_at' | 'started_by'>;

/** What a run was. */
function presentRunHead(row: RunHeadRow) {
  return {
    id: row.id,
    workflowId: row.workflow_id,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    startedBy: row.started_by,
  };
}

/** A failed step with no request or response recorded (refused before sending, stopped, or a fault of Hush's own). */
function failedWithoutRecord(block: Block, error: { code: string; message: string }, started?: number): StepRecord {
  return {
    blockId: block.id,
    type: block.type,
    status: 'failed',
    request: null,
    response: null,
    captures: {},
    error,
    durationMs: started === undefined ? 0 : Math.round((performance.now() - started) * 10) / 10,
  };
}

/** A run in a list: what it was, never its record (GET …/runs/{id} has that). */
export function presentRunSummary(row: Pick<RunsTable, (typeof SUMMARY_COLUMNS)[number]>) {
  return { ...presentRunHead(row), stepCount: Number(row.step_count) };
}

export function presentRun(row: RunsTable) {
  return {
    ...presentRunHead(row),
    variables: JSON.parse(row.variables) as Record<string, unknown>,
    steps: JSON.parse(row.steps) as StepRecord[],
  };
}

function systemVariables(
  runId: string,
  workspaceId: string,
  env: 'TEST' | 'PRODUCTION',
  startedAt: string,
): [string, unknown][] {
  return [
    ['$run_id', runId],
    ['$workspace_id', workspaceId],
    ['$env', env],
    ['$date', startedAt],
  ];
}

/**
 * The PostgreSQL advisory lock under which a workflow's finished runs take
 * their `list_seq` (see insertRun): one per workflow, so runs of different
 * workflows — other workspaces, other servers — record side by side.
 */
export function runListLock(workspaceId: string, workflowId: string | null): bigint {
  return hash('sha256', `hush:run-list:${workspaceId}:${workflowId ?? ''}`, 'buffer').readBigInt64BE(0);
}

/**
 * Inserts a finished run with the next `list_seq` of its workflow. The list
 * pages by that number, not by the run id (taken at the start: a slow run
 * finishing between two pages would land above the cursor and never be
 * listed). The rows must commit in `list_seq` order for a cursor never to
 * pass one still to come: SQLite's write lock does that; on PostgreSQL the
 * workflow's `runListLock`, which the audit queue takes (with the batch's
 * other locks, in order, before the audit heads) and holds until commit.
 */
async function insertRun(trx: Transaction<Database>, row: RunsTable): Promise<void> {
  await trx
    .insertInto('runs')
    .values({
      ...row,
      list_seq: (eb) =>
        eb
          .selectFrom('runs')
          .select(sql<number>`coalesce(max(list_seq), 0) + 1`.as('next'))
          .where('workspace_id', '=', row.workspace_id)
          .where((w) =>
            row.workflow_id === null ? w('workflow_id', 'is', null) : w('workflow_id', '=', row.workflow_id),
          ),
    })
    .execute();
}

export function createRunService(deps: Deps) {
  const { db } = deps;
  const workflows = createWorkflowService(deps);

  /**
   * Custom variables' test (Send) or fallback (run) values, then the caller's
   * overrides: one for a declared variable (its name in any case) takes the
   * variable's type (422 `validation_failed` when it cannot).
   */
  async function initialVariables(
    actor: WorkspaceActor,
    which: 'test' | 'fallback',
    overrides: Record<string, unknown>,
  ): Promise<Variables> {
    const rows = await deps.cache.get<VariableRow[]>(actor.workspaceId, actor.epoch, 'variables:typed', () =>
      db
        .selectFrom('variables')
        .select(['name', 'type', 'test_value', 'fallback_value'])
        .where('workspace_id', '=', actor.workspaceId)
        .$narrowType<{ type: VariableType }>()
        .execute(),
    );
    const vars = new VariableMap();
    /** Declared types by lower-cased name. */
    const types = new Map<string, VariableType>();
    for (const r of rows) {
      vars.set(r.name, decodeVariableValue(which === 'test' ? r.test_value : r.fallback_value));
      types.set(r.name.toLowerCase(), r.type);
    }
    // Input is data: it is stored as is and never parsed as a template.
    for (const [key, v] of Object.entries(overrides)) {
      if (key.startsWith('$')) continue;
      const typed = asDeclared(types, key, v);
      if ('error' in typed)
        throw new ValidationError(`body.variables.${key}: ${typed.error.message}`, [
          { path: `body.variables.${key}`, message: typed.error.message },
        ]);
      vars.set(key, typed.value);
    }
    return { vars, types };
  }

  /** Runs one API block with the execution's secrets, recording which go where before they are sent. */
  async function execute(
    block: ApiBlock,
    { vars, types }: Variables,
    vault: SecretVault,
    analysis?: BlockAnalysis,
  ): Promise<ApiStepResult> {
    const result = await executeApiBlock(
      block,
      {
        variables: vars,
        asDeclared: types.size > 0 ? (name, value) => asDeclared(types, name, value) : undefined,
        loadSecret: (name) => vault.loadSecret(name),
        checkHost: (secret, host, blockId, pin) => vault.checkHost(secret, host, blockId, pin),
        hostSecrets: (host) => vault.hostSecrets(host),
        client: deps.outbound,
        earlierSecrets: () => vault.loaded(),
        recordUse: (sent) => vault.recordUse(sent, block.id),
      },
      analysis,
    );
    return result;
  }

  async function runApiStep(
    block: ApiBlock,
    vars: Variables,
    vault: SecretVault,
    deadline: number,
  ): Promise<StepRecord> {
    const started = performance.now();
    // The block's own timeout, or what is left of the run's, whichever ends first.
    const left = Math.max(1, Math.floor(deadline - started));
    try {
      const result = await execute(left < block.timeoutMs ? { ...block, timeoutMs: left } : block, vars, vault);
      return {
        blockId: block.id,
        type: 'api',
        status: result.ok ? 'succeeded' : 'failed',
        request: result.request,
        response: result.response,
        captures: result.captures,
        ...(result.error ? { error: result.error } : {}),
        durationMs: result.durationMs,
      };
    } catch (error) {
      if (!(error instanceof AppError) || error.status >= 500) throw error;
      return failedWithoutRecord(block, { code: error.code, message: error.message }, started);
    }
  }

  function runSetStep(block: SetBlock, { vars, types }: Variables, redactLoaded: () => Redactor): StepRecord {
    const started = performance.now();
    const captures: Record<string, unknown> = {};
    const record = (status: StepRecord['status'], error?: StepRecord['error']): StepRecord => ({
      blockId: block.id,
      type: 'set',
      status,
      request: null,
      response: null,
      captures,
      ...(error ? { error } : {}),
      durationMs: Math.round((performance.now() - started) * 10) / 10,
    });
    // All the block's values together are bounded like an API block's fields.
    const budget = renderBudget();
    try {
      for (const a of block.assignments) {
        const template = parseTemplate(a.value);
        const sole = soleVariable(template);
        let value: unknown;
        if (sole) {
          // A copy costs no memory here, but the run record writes it out once more.
          value = resolvePath(vars.get(sole.name), sole.path) ?? null;
          charge(budget, renderedSize(value));
        } else
          value = renderTemplate(template, {
            variable: (n) => vars.get(n),
            secret: () => {
              throw new AppError(422, 'secret_not_allowed_here', 'A Set Values block cannot use a secret.');
            },
            budget,
          });
        const typed = asDeclared(types, a.variable, value);
        if ('error' in typed) return record('failed', typed.error);
        // A map or list decoded from text holds what its escapes spelled: redacted like a capture.
        const stored =
          typed.value !== value && typeof typed.value === 'object' && typed.value !== null
            ? redactLoaded().redactDeep(typed.value)
            : typed.value;
        vars.set(a.variable, stored);
        setOwn(captures, a.variable, stored);
      }
    } catch (error) {
      if (!(error instanceof AppError) || error.status >= 500) throw error;
      return record('failed', { code: error.code, message: error.message });
    }
    return record('succeeded');
  }

  /** Redacts what a record holds with every secret the execution loaded. */
  function finalRedactor(vault: SecretVault): Redactor {
    return new Redactor(vault.loaded().map((s) => ({ name: s.name, value: s.value })));
  }

  return {
    async send(actor: WorkspaceActor, audit: AuditContext, block: ApiBlock, overrides: Record<string, unknown>) {
      authorize(actor, 'workflows.edit');
      const analysis = analyzeBlock(block);
      const { problems, fields } = analysis;
      const first = problems[0];
      if (first)
        throw new AppError(422, first.code, `block.${first.path}: ${first.message}`, {
          errors: problems.map((p) => ({ path: `body.block.${p.path}`, message: p.message })),
        });
      if (fields.some((f) => f.template.secrets.length > 0) && !can(actor, 'secrets.use')) {
        throw new ForbiddenError('Sending a block that uses a secret needs the permission "secrets.use".');
      }
      const runId = newId('run');
      const startedAt = nowIso();
      const vars = await initialVariables(actor, 'test', overrides);
      for (const [k, v] of systemVariables(runId, actor.workspaceId, 'TEST', startedAt)) vars.vars.set(k, v);
      const vault = createSecretVault(deps, actor, audit, runId, { mayPin: can(actor, 'secrets.use') });
      const result = await execute(block, vars, vault, analysis);
      return {
        ok: result.ok,
        request: result.request,
        response: result.response,
        captures: result.captures,
        durationMs: result.durationMs,
        ...(result.error ? { error: result.error } : {}),
      };
    },

    async run(actor: WorkspaceActor, audit: AuditContext, workflowId: string, overrides: Record<string, unknown>) {
      authorize(actor, 'workflows.run');
      const workflow = await workflows.load(actor.workspaceId, workflowId);
      const blocks = new Map((JSON.parse(workflow.blocks) as Block[]).map((b) => [b.id, b]));
      const runId = newId('run');
      const startedAt = nowIso();
      const vars = await initialVariables(actor, 'fallback', overrides);
      for (const [k, v] of systemVariables(runId, actor.workspaceId, 'PRODUCTION', startedAt)) vars.vars.set(k, v);
      const vault = createSecretVault(deps, actor, audit, runId, {
        mayPin: can(actor, 'secrets.use'),
        // A run's later steps send only while its starter may still run it (a removal, a new
        // role, a revoked token or a deleted workspace on any server stops it there).
        recheck: async (epoch) => {
          const member = await membershipAt(deps, actor.workspaceId, actor.userId, epoch);
          if (!member) return null;
          const now: WorkspaceActor = { ...actor, role: member.role, permissions: member.permissions, epoch };
          if (!can(now, 'workflows.run')) return null;
          // A token's expiry moves no epoch: the answer holds until then.
          const until = actor.tokenId ? await tokenLiveUntil(deps, actor.workspaceId, actor.tokenId, epoch) : Infinity;
          if (until === null) return null;
          return { mayPin: can(now, 'secrets.use'), until };
        },
      });
      await deps.auditQueue.append([
        {
          ctx: audit,
          input: {
            workspaceId: actor.workspaceId,
            action: 'run.started',
            targetType: 'run',
            targetId: runId,
            data: { workflowId },
          },
        },
      ]);

      const steps: StepRecord[] = [];
      const deadline = performance.now() + deps.config.runTimeoutMs;
      let status: 'succeeded' | 'failed' = 'succeeded';
      let next = workflow.start_block_id;
      let recorded = 0;
      let failure: { error: unknown } | undefined;
      while (next !== null) {
        const block = blocks.get(next);
        if (!block) {
          status = 'failed';
          break;
        }
        const stop =
          steps.length >= MAX_STEPS_PER_RUN
            ? { code: 'too_many_steps', message: `A run stops after ${MAX_STEPS_PER_RUN} steps.` }
            : performance.now() >= deadline
              ? { code: 'run_timeout', message: `A run stops after ${deps.config.runTimeoutMs / 1000} s.` }
              : recorded > MAX_RUN_RECORD_CHARS
                ? {
                    code: 'run_too_large',
                    message: `A run stops once its steps have recorded ${MAX_RUN_RECORD_CHARS} characters.`,
                  }
                : undefined;
        if (stop) {
          steps.push(failedWithoutRecord(block, stop));
          status = 'failed';
          break;
        }
        let step: StepRecord;
        try {
          if (steps.length > 0) vault.nextStep();
          step =
            block.type === 'api'
              ? await runApiStep(block, vars, vault, deadline)
              : runSetStep(block, vars, () => finalRedactor(vault));
        } catch (error) {
          // A fault of Hush's own (a bug, the database gone): the run is still recorded and
          // finished — an earlier step may have sent a secret — then the error goes on (a 500).
          steps.push(
            failedWithoutRecord(block, {
              code: 'internal_error',
              message: 'The step failed on the server; nothing after it ran.',
            }),
          );
          status = 'failed';
          failure = { error };
          break;
        }
        steps.push(step);
        recorded += recordedSize(step);
        if (step.error?.code === 'access_revoked') {
          // Its starter lost access: no route on from here (an error route would only fail again).
          status = 'failed';
          break;
        }
        if (step.status === 'succeeded') next = block.onSuccess;
        else if (block.type === 'api' && block.onError !== null) next = block.onError;
        else {
          status = 'failed';
          next = null;
        }
      }

      const redactor = finalRedactor(vault);
      const variables: Record<string, unknown> = {};
      for (const [k, v] of vars.vars) setOwn(variables, k, v);
      const row: RunsTable = {
        id: runId,
        workspace_id: actor.workspaceId,
        workflow_id: workflowId,
        kind: 'run',
        status,
        started_at: startedAt,
        finished_at: nowIso(),
        started_by: actor.userId,
        variables: JSON.stringify(redactor.redactDeep(variables)),
        steps: JSON.stringify(redactor.redactDeep(steps)),
        step_count: steps.length,
      };
      await deps.auditQueue.append(
        [
          {
            ctx: audit,
            input: {
              workspaceId: actor.workspaceId,
              action: 'run.finished',
              targetType: 'run',
              targetId: runId,
              data: { workflowId, status, steps: steps.length },
            },
          },
        ],
        {
          alongside: (trx) => insertRun(trx, row),
          locks: [runListLock(row.workspace_id, row.workflow_id)],
        },
      );
      if (failure) throw failure.error;
      return row;
    },

    /** Newest first by `list_seq` (see insertRun); `beforeSeq` is the last seen run's. */
    async list(actor: WorkspaceActor, workflowId: string, limit: number, beforeSeq?: number) {
      authorize(actor, 'workflows.read');
      let q = db
        .selectFrom('runs')
        .select([...SUMMARY_COLUMNS, 'list_seq'])
        .where('workspace_id', '=', actor.workspaceId)
        .where('workflow_id', '=', workflowId);
      if (beforeSeq !== undefined) q = q.where('list_seq', '<', beforeSeq);
      const rows = await q
        .orderBy('list_seq', 'desc')
        .limit(limit + 1)
        .execute();
      // A deleted workflow's runs stay listable; an id naming neither a workflow nor a run is a 404.
      if (rows.length === 0 && beforeSeq === undefined) await workflows.load(actor.workspaceId, workflowId);
      return { rows: rows.slice(0, limit), hasMore: rows.length > limit };
    },

    async get(actor: WorkspaceActor, runId: string) {
      authorize(actor, 'workflows.read');
      const row = await db
        .selectFrom('runs')
        .selectAll()
        .where('id', '=', runId)
        .where('workspace_id', '=', actor.workspaceId)
        .executeTakeFirst();
      if (!row) throw new NotFoundError('Run');
      return row;
    },
  };
}
