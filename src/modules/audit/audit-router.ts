/** HTTP routes for the audit trail: list, CSV export, chain verification. */
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { AppContext } from '../../app/context.js';
import {
  type App,
  decodeCursor,
  encodeCursor,
  idSchema,
  paginationQuery,
  problems,
  workspaceParams,
} from '../../app/http.js';
import { resolveActor } from '../workspaces/workspace-access.js';
import { createAuditService, type presentAuditEvent } from './audit-service.js';

// Any stored seq (a forged row below 1 is listed too, and its page must go on), within the column's range.
const auditCursor = z.object({ seq: z.number().int().min(-2_147_483_648).max(2_147_483_647) });
const filterQuery = {
  action: z
    .string()
    .max(100)
    .regex(/^[a-z_.*]+$/, 'is not an action name')
    .optional(),
  actorId: idSchema.optional(),
  targetId: idSchema.optional(),
  since: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-01-31T10:00:00Z' }).optional(),
  until: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-01-31T10:00:00Z' }).optional(),
};

const eventSchema = z.object({
  id: z.string(),
  seq: z.number(),
  at: z.string(),
  actorId: z.string().nullable(),
  actorType: z.string(),
  actorEmail: z.string().nullable(),
  action: z.string(),
  targetType: z.string().nullable(),
  targetId: z.string().nullable(),
  ip: z.string().nullable(),
  requestId: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  hash: z.string(),
});

export const CSV_COLUMNS = [
  'seq',
  'id',
  'at',
  'action',
  'actorType',
  'actorId',
  'actorEmail',
  'targetType',
  'targetId',
  'ip',
  'requestId',
  'data',
  'hash',
] as const;

/** RFC 4180 field, defused against spreadsheet formula injection. */
function csvField(value: unknown): string {
  let text =
    value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function auditCsvLine(event: ReturnType<typeof presentAuditEvent>): string {
  return `${CSV_COLUMNS.map((c) => csvField(event[c])).join(',')}\r\n`;
}

export async function auditRoutes(app: App, ctx: AppContext): Promise<void> {
  const service = createAuditService(ctx);

  app.get(
    '/workspaces/:ws/audit',
    {
      schema: {
        tags: ['audit'],
        summary: 'Audit events, newest first (audit.read)',
        params: workspaceParams,
        querystring: z.strictObject({ ...paginationQuery, ...filterQuery }),
        response: {
          200: z.object({ items: z.array(eventSchema), nextCursor: z.string().nullable() }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const { limit, cursor, ...filter } = request.query;
      const before = decodeCursor(cursor, auditCursor);
      const page = await service.list(actor, filter, limit, before?.seq);
      return { items: page.items, nextCursor: page.nextSeq === undefined ? null : encodeCursor({ seq: page.nextSeq }) };
    },
  );

  app.get(
    '/workspaces/:ws/audit.csv',
    {
      schema: {
        tags: ['audit'],
        summary: 'Audit events as CSV, oldest first (audit.read)',
        params: workspaceParams,
        querystring: z.strictObject(filterQuery),
        produces: ['text/csv'],
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const events = service.export(actor, request.query);
      // Pull the first event before answering so a refusal is still a problem+json.
      const first = await events.next();
      async function* lines() {
        yield `${CSV_COLUMNS.join(',')}\r\n`;
        if (!first.done) yield auditCsvLine(first.value);
        for await (const e of events) yield auditCsvLine(e);
      }
      reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="hush-audit-${actor.workspaceId}.csv"`);
      return reply.send(Readable.from(lines()));
    },
  );

  app.get(
    '/workspaces/:ws/audit/verify',
    {
      schema: {
        tags: ['audit'],
        summary: "Verify the workspace's hash chain (audit.read)",
        params: workspaceParams,
        response: {
          200: z.object({
            ok: z.boolean(),
            checked: z.number(),
            brokenAt: z.string().optional(),
            reason: z.string().optional(),
          }),
          ...problems(401, 403, 404),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      return service.verify(actor);
    },
  );
}
