/** HTTP routes for workflows, Send request, runs and secret usages. */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { AppContext } from '../../app/context.js';
import { ValidationError } from '../../app/errors.js';
import {
  type App,
  boundedPaginationQuery,
  decodeCursor,
  encodeCursor,
  holdsWellFormedText,
  ILL_FORMED_TEXT,
  idSchema,
  nameIdCursor,
  pageInMemory,
  paginationQuery,
  problems,
  workspaceParams,
} from '../../app/http.js';
import { MAX_VARIABLE_DEPTH, nestsWithin } from '../../runtime/json-path.js';
import { auditContextOf } from '../auth/principal.js';
import { resolveActor } from '../workspaces/workspace-access.js';
import { apiBlockSchema, workflowInputSchema } from './block-schema.js';
import { createRunService, presentRun, presentRunSummary } from './run-service.js';
import {
  errorSchema,
  requestSchema,
  responseSchema,
  runSchema,
  runSummarySchema,
  usageSchema,
  workflowSchema,
  workflowSummarySchema,
} from './workflow-schemas.js';
import {
  createWorkflowService,
  presentWorkflow,
  presentWorkflowSummary,
  type RevisionCondition,
  workflowETag,
} from './workflow-service.js';

const workflowParams = workspaceParams.extend({ id: idSchema });
/** `list_seq` is a 32-bit integer column: a larger number is no cursor this API issued (PostgreSQL refused it: a 500). */
const runCursor = z.object({ seq: z.number().int().nonnegative().max(2_147_483_647) });
const ifMatchHeaders = z.object({ 'if-match': z.string().max(200).optional() });

/**
 * `If-Match` on a workflow: its ETag (`"7"`; the bare revision `7` too), a
 * list of them (any may match), or `*` (any revision — as no header is).
 * A weak tag (`W/"7"`) never matches: RFC 9110 compares If-Match strongly.
 */
export function parseWorkflowIfMatch(header: string | undefined): RevisionCondition {
  if (header === undefined || header.trim() === '*') return undefined;
  const revisions: number[] = [];
  for (const tag of header.split(',').map((t) => t.trim())) {
    if (/^W\//.test(tag)) continue;
    const m = /^"?(\d{1,9})"?$/.exec(tag);
    if (!m?.[1])
      throw new ValidationError('headers.if-match: must be the workflow\'s ETag, e.g. If-Match: "7"', [
        { path: 'headers.if-match', message: "must be the workflow's ETag" },
      ]);
    revisions.push(Number(m[1]));
  }
  return revisions;
}
/** Input values are data of any JSON shape, nested no deeper than stored variables may be. */
const inputVariables = z
  .record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/),
    z
      .unknown()
      .refine((v) => nestsWithin(v), `must not nest deeper than ${MAX_VARIABLE_DEPTH} levels`)
      .refine(holdsWellFormedText, ILL_FORMED_TEXT),
  )
  .default({});

export async function workflowRoutes(app: App, ctx: AppContext): Promise<void> {
  const workflows = createWorkflowService(ctx);
  const runs = createRunService(ctx);

  app.get(
    '/workspaces/:ws/workflows',
    {
      schema: {
        tags: ['workflows'],
        summary: 'Workflows by name, as summaries (workflows.read); GET …/workflows/{id} for the blocks',
        params: workspaceParams,
        querystring: z.strictObject(paginationQuery),
        response: {
          200: z.object({ items: z.array(workflowSummarySchema), nextCursor: z.string().nullable() }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const after = decodeCursor(request.query.cursor, nameIdCursor);
      const page = await workflows.list(actor, request.query.limit, after);
      const last = page.rows.at(-1);
      return {
        items: page.rows.map(presentWorkflowSummary),
        nextCursor: page.hasMore && last ? encodeCursor({ name: last.name, id: last.id }) : null,
      };
    },
  );

  app.post(
    '/workspaces/:ws/workflows',
    {
      schema: {
        tags: ['workflows'],
        summary: 'Create a workflow (workflows.edit; adding a secret reference needs secrets.use)',
        params: workspaceParams,
        body: workflowInputSchema,
        response: { 201: workflowSchema, ...problems(401, 403, 404, 422) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const { row, warnings } = await workflows.create(actor, auditContextOf(request), request.body);
      reply.header('etag', workflowETag(row));
      reply.header('location', `/api/v1/workspaces/${request.params.ws}/workflows/${row.id}`);
      return reply.code(201).send(presentWorkflow(row, warnings));
    },
  );

  app.get(
    '/workspaces/:ws/workflows/:id',
    {
      schema: {
        tags: ['workflows'],
        summary: 'One workflow with its blocks (workflows.read)',
        params: workflowParams,
        response: { 200: workflowSchema, ...problems(401, 403, 404) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const row = await workflows.get(actor, request.params.id);
      reply.header('etag', workflowETag(row));
      return presentWorkflow(row);
    },
  );

  app.put(
    '/workspaces/:ws/workflows/:id',
    {
      schema: {
        tags: ['workflows'],
        summary:
          'Replace name, start block and blocks at once (workflows.edit); If-Match: the ETag ("<revision>") — a save since is 412; without If-Match the last save wins',
        params: workflowParams,
        headers: ifMatchHeaders,
        body: workflowInputSchema,
        response: { 200: workflowSchema, ...problems(401, 403, 404, 412, 422) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const ifMatch = parseWorkflowIfMatch(request.headers['if-match']);
      const { row, warnings } = await workflows.replace(
        actor,
        auditContextOf(request),
        request.params.id,
        request.body,
        ifMatch,
      );
      reply.header('etag', workflowETag(row));
      return presentWorkflow(row, warnings);
    },
  );

  app.delete(
    '/workspaces/:ws/workflows/:id',
    {
      schema: {
        tags: ['workflows'],
        summary: 'Delete a workflow (workflows.edit); If-Match: the ETag ("<revision>") — a save since is 412',
        params: workflowParams,
        headers: ifMatchHeaders,
        response: { 204: z.null(), ...problems(401, 403, 404, 412) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const ifMatch = parseWorkflowIfMatch(request.headers['if-match']);
      await workflows.remove(actor, auditContextOf(request), request.params.id, ifMatch);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/workspaces/:ws/secrets/:id/usages',
    {
      schema: {
        tags: ['secrets'],
        summary: 'Blocks that reference a secret, by workflow (secrets.read)',
        params: workflowParams,
        querystring: z.strictObject(boundedPaginationQuery),
        response: {
          200: z.object({ items: z.array(usageSchema), nextCursor: z.string().nullable() }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      return pageInMemory(
        await workflows.usages(actor, request.params.id),
        // A field path can be as long as a JSON key; its digest keeps the cursor short and the order total.
        (u) => [
          u.workflowName,
          u.workflowId,
          u.blockId,
          createHash('sha256').update(u.field).digest('hex').slice(0, 16),
        ],
        request.query,
      );
    },
  );

  app.post(
    '/workspaces/:ws/blocks/send',
    {
      schema: {
        tags: ['workflows'],
        summary: 'Send request: run one draft API block with test values; everything returned is redacted',
        params: workspaceParams,
        body: z.strictObject({ block: apiBlockSchema, variables: inputVariables }),
        response: {
          200: z.object({
            ok: z.boolean(),
            request: requestSchema,
            response: responseSchema,
            captures: z.record(z.string(), z.unknown()),
            durationMs: z.number(),
            error: errorSchema.optional(),
          }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      return runs.send(actor, auditContextOf(request), request.body.block, request.body.variables);
    },
  );

  app.post(
    '/workspaces/:ws/workflows/:id/runs',
    {
      schema: {
        tags: ['runs'],
        summary: 'Run a workflow (workflows.run); returns the redacted run record',
        params: workflowParams,
        // No body at all (Fastify gives null) is `{}`: every field is optional.
        body: z
          .strictObject({ variables: inputVariables })
          .nullish()
          .transform((body) => body ?? { variables: {} }),
        response: { 201: runSchema, ...problems(401, 403, 404, 422) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const row = await runs.run(actor, auditContextOf(request), request.params.id, request.body.variables);
      reply.header('location', `/api/v1/workspaces/${request.params.ws}/runs/${row.id}`);
      return reply.code(201).send(presentRun(row));
    },
  );

  app.get(
    '/workspaces/:ws/workflows/:id/runs',
    {
      schema: {
        tags: ['runs'],
        summary: "A workflow's runs, newest first, as summaries (workflows.read); GET …/runs/{runId} for the steps",
        params: workflowParams,
        querystring: z.strictObject(paginationQuery),
        response: {
          200: z.object({ items: z.array(runSummarySchema), nextCursor: z.string().nullable() }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const before = decodeCursor(request.query.cursor, runCursor);
      const page = await runs.list(actor, request.params.id, request.query.limit, before?.seq);
      const last = page.rows.at(-1);
      return {
        items: page.rows.map(presentRunSummary),
        nextCursor: page.hasMore && last ? encodeCursor({ seq: Number(last.list_seq) }) : null,
      };
    },
  );

  app.get(
    '/workspaces/:ws/runs/:runId',
    {
      schema: {
        tags: ['runs'],
        summary: 'One run with its redacted steps (workflows.read)',
        params: workspaceParams.extend({ runId: idSchema }),
        response: { 200: runSchema, ...problems(401, 403, 404) },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      return presentRun(await runs.get(actor, request.params.runId));
    },
  );
}
