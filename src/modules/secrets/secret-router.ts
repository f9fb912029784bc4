/** HTTP routes for secrets. Every secret in a response goes through presentSecret. */
import { z } from 'zod';
import type { AppContext } from '../../app/context.js';
import { RateLimitedError, ValidationError } from '../../app/errors.js';
import {
  type App,
  boundedPaginationQuery,
  decodeCursor,
  encodeCursor,
  idSchema,
  nameIdCursor,
  pageInMemory,
  paginationQuery,
  plainText,
  problems,
  sendSerialized,
  wellFormedString,
  workspaceParams,
} from '../../app/http.js';
import { authorize } from '../../policy/policy.js';
import { auditContextOf } from '../auth/principal.js';
import { variableNameSchema } from '../variables/variable-names.js';
import { createPageCache } from '../workspaces/page-cache.js';
import { resolveActor } from '../workspaces/workspace-access.js';
import { presentSecret, secretSchema } from './secret-presenter.js';
import { createSecretService, MAX_SECRET_BYTES } from './secret-service.js';

const secretParams = workspaceParams.extend({ id: idSchema });
const secretPage = z.object({ items: z.array(secretSchema), nextCursor: z.string().nullable() });
const hostList = z.array(wellFormedString().max(300)).max(20);
const description = plainText(500);
// The byte limit is checked precisely in the service; this bounds parsing.
const value = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_SECRET_BYTES, `must be at most ${MAX_SECRET_BYTES} bytes of UTF-8`);

/** A secret's ETag: its version (new values) and its revision (every change). */
export function secretETag(row: { version: number; revision: number }): string {
  return `"${Number(row.version)}.${Number(row.revision)}"`;
}

/**
 * `If-Match`: the ETag (`"3.7"`, version and revision: any change since is a
 * conflict), or the version alone (`3` or `"3"`, SPEC §4: a new value since
 * is a conflict), or `*` (any). A weak tag never matches (RFC 9110 compares
 * strongly): a conflict.
 */
function parseIfMatch(header: string | undefined): { version: number; revision?: number } | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  if (/^\s*W\//.test(header)) return { version: -1 };
  const m = /^\s*"?(\d{1,9})(?:\.(\d{1,9}))?"?\s*$/.exec(header);
  if (!m?.[1]) {
    throw new ValidationError('headers.if-match: must be the secret\'s ETag or version, e.g. If-Match: "3.7"', [
      { path: 'headers.if-match', message: "must be the secret's ETag or version" },
    ]);
  }
  return m[2] === undefined ? { version: Number(m[1]) } : { version: Number(m[1]), revision: Number(m[2]) };
}

export async function secretRoutes(app: App, ctx: AppContext): Promise<void> {
  const service = createSecretService(ctx);
  const present = (row: Parameters<typeof presentSecret>[0]) => presentSecret(row, ctx.config.secretRetentionDays);
  const pages = createPageCache(ctx.config.listCacheBytes);

  app.get(
    '/workspaces/:ws/secrets',
    {
      schema: {
        tags: ['secrets'],
        summary: 'List secrets by name (secrets.read); ?q= searches names, ?deleted=true lists deleted ones',
        params: workspaceParams,
        querystring: z.strictObject({
          ...paginationQuery,
          q: plainText(64).optional(),
          deleted: z.enum(['true', 'false']).default('false'),
        }),
        response: {
          200: secretPage,
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      authorize(actor, 'secrets.read');
      const { limit, cursor, q, deleted } = request.query;
      const after = decodeCursor(cursor, nameIdCursor);
      // The same page for the same workspace head: served as stored (page-cache.ts).
      // As JSON: `q` and the cursor are free text, and joined by a separator two queries could meet.
      const key = JSON.stringify(['secrets', deleted, limit, q ?? '', cursor ?? '']);
      let body = pages.get(actor.workspaceId, actor, key);
      if (body === undefined) {
        const page = await service.list(actor, { q, deleted: deleted === 'true', limit, after });
        const last = page.rows.at(-1);
        body = Buffer.from(
          JSON.stringify(
            z.encode(secretPage, {
              items: page.rows.map(present),
              nextCursor: page.hasMore && last ? encodeCursor({ name: last.name, id: last.id }) : null,
            }),
          ),
        );
        pages.set(actor.workspaceId, actor, key, body);
      }
      return sendSerialized(reply, body);
    },
  );

  app.post(
    '/workspaces/:ws/secrets',
    {
      schema: {
        tags: ['secrets'],
        summary: 'Create a secret (secrets.manage). The value is never echoed back.',
        params: workspaceParams,
        body: z.strictObject({
          name: variableNameSchema,
          visibility: z.enum(['masked', 'restricted']),
          value,
          description: description.default(''),
          allowedHosts: hostList.default([]),
        }),
        response: { 201: secretSchema.extend({ warnings: z.array(z.string()) }), ...problems(401, 403, 404, 409, 422) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const { row, warnings } = await service.create(actor, auditContextOf(request), request.body);
      reply.header('location', `/api/v1/workspaces/${request.params.ws}/secrets/${row.id}`);
      reply.header('etag', secretETag(row));
      return reply.code(201).send({ ...present(row), warnings });
    },
  );

  app.get(
    '/workspaces/:ws/secrets/:id',
    {
      schema: {
        tags: ['secrets'],
        summary: "A secret's metadata (secrets.read); never its value",
        params: secretParams,
        response: { 200: secretSchema, ...problems(401, 403, 404) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const row = await service.get(actor, request.params.id);
      reply.header('etag', secretETag(row));
      return present(row);
    },
  );

  app.patch(
    '/workspaces/:ws/secrets/:id',
    {
      schema: {
        tags: ['secrets'],
        summary:
          'Replace the value (a new version), description or allowed hosts (secrets.manage); If-Match: the ETag ("<version>.<revision>", any change since is 412) or <version> (a new value since is 412)',
        params: secretParams,
        headers: z.object({ 'if-match': z.string().max(40).optional() }),
        body: z
          .strictObject({
            value: value.optional(),
            description: description.optional(),
            allowedHosts: hostList.optional(),
            name: z.string().max(200).optional(),
            visibility: z.string().max(40).optional(),
          })
          .refine((b) => Object.keys(b).length > 0, 'send at least one of value, description, allowedHosts'),
        response: { 200: secretSchema, ...problems(401, 403, 404, 409, 412, 422) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const ifMatch = parseIfMatch(request.headers['if-match']);
      const row = await service.update(actor, auditContextOf(request), request.params.id, request.body, ifMatch);
      reply.header('etag', secretETag(row));
      return present(row);
    },
  );

  app.delete(
    '/workspaces/:ws/secrets/:id',
    {
      schema: {
        tags: ['secrets'],
        summary:
          'Delete a secret (restorable during the retention window), or ?purge=true to destroy it now (secrets.manage)',
        params: secretParams,
        querystring: z.strictObject({ purge: z.enum(['true', 'false']).default('false') }),
        response: { 204: z.null(), ...problems(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      await service.remove(actor, auditContextOf(request), request.params.id, request.query.purge === 'true');
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/workspaces/:ws/secrets/:id/restore',
    {
      schema: {
        tags: ['secrets'],
        summary: 'Restore a deleted secret within the retention window (secrets.manage)',
        params: secretParams,
        response: { 200: secretSchema, ...problems(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const row = await service.restore(actor, auditContextOf(request), request.params.id);
      reply.header('etag', secretETag(row));
      return present(row);
    },
  );

  app.get(
    '/workspaces/:ws/secrets/:id/versions',
    {
      schema: {
        tags: ['secrets'],
        summary: "Metadata of a secret's versions, newest first (secrets.read); never values",
        params: secretParams,
        querystring: z.strictObject(boundedPaginationQuery),
        response: {
          200: z.object({
            items: z.array(
              z.object({
                version: z.number(),
                keyVersion: z.number(),
                createdAt: z.string(),
                createdBy: z.string().nullable(),
              }),
            ),
            nextCursor: z.string().nullable(),
          }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const rows = await service.versions(actor, request.params.id);
      return pageInMemory(
        rows.map((r) => ({
          version: Number(r.version),
          keyVersion: Number(r.key_version),
          createdAt: r.created_at,
          createdBy: r.created_by,
        })),
        (v) => [-v.version],
        request.query,
      );
    },
  );

  app.post(
    '/workspaces/:ws/secrets/:id/reveal',
    {
      config: {
        rateLimit: {
          max: ctx.config.revealLimitPerMin,
          timeWindow: 60_000,
          hook: 'preHandler',
          keyGenerator: (request) => `reveal:${request.principal?.userId ?? request.ip}`,
          errorResponseBuilder: (_request, context) => new RateLimitedError(Math.max(1, Math.ceil(context.ttl / 1000))),
        },
      },
      schema: {
        tags: ['secrets'],
        summary:
          'Reveal a masked secret (secrets.reveal); restricted secrets are never revealed. Audited and rate limited.',
        params: secretParams,
        response: { 200: z.object({ value: z.string() }), ...problems(401, 403, 404, 409, 429) },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      // The one response that carries a value: built here, from reveal's return.
      return { value: await service.reveal(actor, auditContextOf(request), request.params.id) };
    },
  );
}
