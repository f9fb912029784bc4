/** Response shapes of the workflows, Send request and runs API (also the UI's types). */
import { z } from 'zod';

export const warningSchema = z.object({ path: z.string(), message: z.string() });
/**
 * A workflow in a list: what it is, never its blocks (a workflow may hold
 * 2 MB of them; GET …/workflows/{id} answers them one workflow at a time).
 */
export const workflowSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  startBlockId: z.string().nullable(),
  blockCount: z.number().int(),
  /** Moved by every save; the ETag is `"<revision>"`, and If-Match takes it back. */
  revision: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export const workflowSchema = workflowSummarySchema.extend({
  blocks: z.array(z.unknown()),
  warnings: z.array(warningSchema).optional(),
});
export const requestSchema = z.object({
  method: z.string(),
  url: z.string(),
  headers: z.record(z.string(), z.string()),
  body: z.string().nullable(),
});
export const responseSchema = z
  .object({ status: z.number(), headers: z.record(z.string(), z.string()), body: z.string() })
  .nullable();
export const errorSchema = z.object({ code: z.string(), message: z.string() });
export const stepSchema = z.object({
  blockId: z.string(),
  type: z.enum(['api', 'set']),
  status: z.enum(['succeeded', 'failed']),
  request: requestSchema.nullable(),
  response: responseSchema,
  captures: z.record(z.string(), z.unknown()),
  error: errorSchema.optional(),
  durationMs: z.number(),
});
/** What a run was: in a list and in a run's own record alike. */
const runHeadSchema = z.object({
  id: z.string(),
  workflowId: z.string().nullable(),
  status: z.enum(['succeeded', 'failed']),
  startedAt: z.string(),
  finishedAt: z.string(),
  startedBy: z.string().nullable(),
});
export const runSchema = runHeadSchema.extend({
  variables: z.record(z.string(), z.unknown()),
  steps: z.array(stepSchema),
});

/** A run in a list: its steps are read one run at a time (GET …/runs/{id}). */
export const runSummarySchema = runHeadSchema.extend({ stepCount: z.number().int() });

export const usageSchema = z.object({
  workflowId: z.string(),
  workflowName: z.string(),
  blockId: z.string(),
  blockName: z.string(),
  field: z.string(),
});
