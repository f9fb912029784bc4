/**
 * Personal API tokens: `hush_…` bearer tokens scoped to one workspace, with
 * an expiry, stored as sha256 hashes. A token acts with its creator's
 * current permissions in that workspace, never more. Tokens are managed from
 * a signed-in session only, so a leaked token cannot mint more tokens.
 */

import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../../app/context.js';
import { ForbiddenError, NotFoundError } from '../../app/errors.js';
import { type App, boundedPaginationQuery, idSchema, pageInMemory, plainText, problems } from '../../app/http.js';
import { hashToken, newId, newToken, nowIso } from '../../app/ids.js';
import type { ApiTokensTable } from '../../db/schema.js';
import { auditContextOf, requirePrincipal } from '../auth/principal.js';
import { API_TOKEN_PREFIX } from '../auth/session-store.js';
import { resolveActor } from '../workspaces/workspace-access.js';
import { lockWorkspace } from '../workspaces/workspace-service.js';

const tokenSchema = z.object({
  id: z.string(),
  name: z.string(),
  workspaceId: z.string(),
  hint: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  lastUsedAt: z.string().nullable(),
});

function presentToken(row: ApiTokensTable) {
  return {
    id: row.id,
    name: row.name,
    workspaceId: row.workspace_id,
    hint: `${API_TOKEN_PREFIX}${row.token_hint}…`,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
  };
}

function requireSessionUser(request: FastifyRequest): string {
  const principal = requirePrincipal(request);
  if (principal.kind !== 'session')
    throw new ForbiddenError('API tokens are managed from a signed-in session, not with a token.');
  return principal.userId;
}

export async function tokenRoutes(app: App, ctx: AppContext): Promise<void> {
  const { db } = ctx;

  app.post(
    '/tokens',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Create a personal API token (shown once)',
        body: z.strictObject({
          name: plainText(100).refine((s) => s.length > 0, 'must not be empty'),
          workspaceId: idSchema,
          expiresInDays: z.number().int().min(1).max(365).default(30),
        }),
        response: { 201: tokenSchema.extend({ token: z.string() }), ...problems(401, 403, 404, 422) },
      },
    },
    async (request, reply) => {
      const userId = requireSessionUser(request);
      await resolveActor(ctx, request, request.body.workspaceId);
      const token = newToken(API_TOKEN_PREFIX);
      const now = Date.now();
      const row: ApiTokensTable = {
        id: newId('tok'),
        user_id: userId,
        workspace_id: request.body.workspaceId,
        name: request.body.name,
        token_hash: hashToken(token),
        token_hint: token.slice(API_TOKEN_PREFIX.length, API_TOKEN_PREFIX.length + 4),
        created_at: nowIso(now),
        expires_at: nowIso(now + request.body.expiresInDays * 86_400_000),
        last_used_at: null,
      };
      await db.transaction().execute(async (trx) => {
        // Under the workspace lock a removal also takes, the membership checked again: a token
        // made while its user is being removed would survive the removal's token sweep.
        await lockWorkspace(trx, ctx.dbKind, row.workspace_id);
        const member = await trx
          .selectFrom('members')
          .select('user_id')
          .where('workspace_id', '=', row.workspace_id)
          .where('user_id', '=', userId)
          .executeTakeFirst();
        if (!member) throw new NotFoundError('Workspace');
        await trx.insertInto('api_tokens').values(row).execute();
        await ctx.audit(trx, auditContextOf(request), {
          workspaceId: row.workspace_id,
          action: 'token.created',
          targetType: 'token',
          targetId: row.id,
          data: { name: row.name, expiresAt: row.expires_at },
        });
      });
      return reply.code(201).send({ ...presentToken(row), token });
    },
  );

  app.get(
    '/tokens',
    {
      schema: {
        tags: ['tokens'],
        summary: "List the caller's API tokens, newest first (never the token itself)",
        querystring: z.strictObject(boundedPaginationQuery),
        response: {
          200: z.object({ items: z.array(tokenSchema), nextCursor: z.string().nullable() }),
          ...problems(401, 403, 422),
        },
      },
    },
    async (request) => {
      const userId = requireSessionUser(request);
      const rows = await db
        .selectFrom('api_tokens')
        .selectAll()
        .where('user_id', '=', userId)
        .orderBy('created_at', 'desc')
        .execute();
      return pageInMemory(rows.map(presentToken), (t) => [-Date.parse(t.createdAt), t.id], request.query);
    },
  );

  app.delete(
    '/tokens/:id',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Revoke an API token',
        params: z.strictObject({ id: idSchema }),
        response: { 204: z.null(), ...problems(401, 403, 404) },
      },
    },
    async (request, reply) => {
      const userId = requireSessionUser(request);
      await db.transaction().execute(async (trx) => {
        const row = await trx
          .deleteFrom('api_tokens')
          .where('id', '=', request.params.id)
          .where('user_id', '=', userId)
          .returning(['id', 'workspace_id', 'name'])
          .executeTakeFirst();
        if (!row) throw new NotFoundError('Token');
        await ctx.audit(trx, auditContextOf(request), {
          workspaceId: row.workspace_id,
          action: 'token.revoked',
          targetType: 'token',
          targetId: row.id,
          data: { name: row.name },
        });
      });
      return reply.code(204).send(null);
    },
  );
}
