/** HTTP routes for workspaces. */
import { z } from 'zod';
import type { AppContext } from '../../app/context.js';
import { ForbiddenError } from '../../app/errors.js';
import {
  type App,
  boundedPaginationQuery,
  displayNameSchema,
  pageInMemory,
  problems,
  workspaceParams,
} from '../../app/http.js';
import { auditContextOf, requirePrincipal } from '../auth/principal.js';
import { resolveActor } from './workspace-access.js';
import { createWorkspaceService, presentWorkspace, SECRET_HOST_BINDINGS } from './workspace-service.js';

const workspaceSchema = z.object({
  id: z.string(),
  name: z.string(),
  role: z.string(),
  settings: z.object({ secretHostBinding: z.enum(SECRET_HOST_BINDINGS) }),
  /** The caller's effective permissions here (what the UI may offer). */
  permissions: z.array(z.string()).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export async function workspaceRoutes(app: App, ctx: AppContext): Promise<void> {
  const service = createWorkspaceService(ctx);

  app.get(
    '/workspaces',
    {
      schema: {
        tags: ['workspaces'],
        summary: "The caller's workspaces, oldest first",
        querystring: z.strictObject(boundedPaginationQuery),
        response: {
          200: z.object({
            items: z.array(z.object({ id: z.string(), name: z.string(), role: z.string() })),
            nextCursor: z.string().nullable(),
          }),
          ...problems(401, 422),
        },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const rows = await service.listForUser(
        principal.userId,
        principal.kind === 'token' ? principal.workspaceId : undefined,
      );
      const page = pageInMemory(rows, (r) => [r.created_at, r.id], request.query);
      return { items: page.items.map((r) => ({ id: r.id, name: r.name, role: r.role })), nextCursor: page.nextCursor };
    },
  );

  app.post(
    '/workspaces',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Create a workspace; the caller becomes its owner',
        body: z.strictObject({ name: displayNameSchema }),
        response: { 201: workspaceSchema, ...problems(401, 403, 422) },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      if (principal.kind === 'token')
        throw new ForbiddenError('An API token is scoped to one workspace and cannot create another.');
      const row = await service.create(auditContextOf(request), { name: request.body.name, ownerId: principal.userId });
      reply.header('location', `/api/v1/workspaces/${row.id}`);
      return reply.code(201).send(presentWorkspace(row, 'owner'));
    },
  );

  app.get(
    '/workspaces/:ws',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'One workspace',
        params: workspaceParams,
        response: { 200: workspaceSchema, ...problems(401, 404) },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      return { ...presentWorkspace(await service.get(actor), actor.role), permissions: [...actor.permissions].sort() };
    },
  );

  app.patch(
    '/workspaces/:ws',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Rename a workspace or change its settings (workspace.manage)',
        params: workspaceParams,
        body: z
          .strictObject({
            name: displayNameSchema.optional(),
            settings: z.strictObject({ secretHostBinding: z.enum(SECRET_HOST_BINDINGS).optional() }).optional(),
          })
          .refine(
            (b) => b.name !== undefined || b.settings?.secretHostBinding !== undefined,
            'name or settings is required',
          ),
        response: { 200: workspaceSchema, ...problems(401, 403, 404, 422) },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const row = await service.update(actor, auditContextOf(request), {
        name: request.body.name,
        secretHostBinding: request.body.settings?.secretHostBinding,
      });
      return presentWorkspace(row, actor.role);
    },
  );

  app.delete(
    '/workspaces/:ws',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Delete a workspace (workspace.manage)',
        params: workspaceParams,
        // No options: `?purge=true` (as on a secret) is refused, not taken for an immediate purge.
        querystring: z.strictObject({}),
        response: { 204: z.null(), ...problems(401, 403, 404, 422) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      await service.remove(actor, auditContextOf(request));
      return reply.code(204).send(null);
    },
  );
}
