/** HTTP routes for custom roles. */
import { z } from 'zod';
import type { AppContext } from '../../app/context.js';
import {
  type App,
  boundedPaginationQuery,
  idSchema,
  pageInMemory,
  plainText,
  problems,
  workspaceParams,
} from '../../app/http.js';
import { PERMISSIONS, SYSTEM_ROLES, type SystemRole } from '../../policy/permissions.js';
import { auditContextOf } from '../auth/principal.js';
import { resolveActor } from '../workspaces/workspace-access.js';
import { mixesScripts } from './role-names.js';
import { roleSchema } from './role-schemas.js';
import { createRoleService } from './role-service.js';

const roleName = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[\p{L}\p{N} _.-]+$/u, 'may hold letters, digits, spaces, "_", "." and "-"')
  // Their letters imitate each other: "Оwner" with a Cyrillic О would pass for Owner (role-names.ts).
  .refine((name) => !mixesScripts(name), 'must not mix Latin, Greek and Cyrillic letters');
const permissionList = z.array(z.enum(PERMISSIONS)).max(PERMISSIONS.length * 2);
/** A custom role's id, or a system role's (its name, as the list gives it: refused 409 by the changes). */
const roleParams = workspaceParams.extend({ id: z.union([idSchema, z.enum(SYSTEM_ROLES)]) });

export async function roleRoutes(app: App, ctx: AppContext): Promise<void> {
  const service = createRoleService(ctx);

  app.get(
    '/workspaces/:ws/roles',
    {
      schema: {
        tags: ['roles'],
        summary: 'System roles, then custom roles by name (members.read)',
        params: workspaceParams,
        querystring: z.strictObject(boundedPaginationQuery),
        response: {
          200: z.object({ items: z.array(roleSchema), nextCursor: z.string().nullable() }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const roles = await service.list(actor);
      // System roles keep their fixed order; custom roles follow by name (a key that never depends on how many exist).
      return pageInMemory(
        roles,
        (r) => [r.system ? SYSTEM_ROLES.indexOf(r.id as SystemRole) : SYSTEM_ROLES.length, r.name, r.id],
        request.query,
      );
    },
  );

  app.post(
    '/workspaces/:ws/roles',
    {
      schema: {
        tags: ['roles'],
        summary: 'Create a custom role (roles.manage)',
        params: workspaceParams,
        body: z.strictObject({
          name: roleName,
          description: plainText(500).default(''),
          permissions: permissionList,
        }),
        response: { 201: roleSchema, ...problems(401, 403, 404, 409, 422) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      return reply.code(201).send(await service.create(actor, auditContextOf(request), request.body));
    },
  );

  app.patch(
    '/workspaces/:ws/roles/:id',
    {
      schema: {
        tags: ['roles'],
        summary: 'Change a custom role (roles.manage)',
        params: roleParams,
        body: z
          .strictObject({
            name: roleName.optional(),
            description: plainText(500).optional(),
            permissions: permissionList.optional(),
          })
          .refine((b) => Object.keys(b).length > 0, 'send at least one of name, description, permissions'),
        response: { 200: roleSchema, ...problems(401, 403, 404, 409, 422) },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      return service.update(actor, auditContextOf(request), request.params.id, request.body);
    },
  );

  app.delete(
    '/workspaces/:ws/roles/:id',
    {
      schema: {
        tags: ['roles'],
        summary: 'Delete a custom role nobody holds (roles.manage)',
        params: roleParams,
        response: { 204: z.null(), ...problems(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      await service.remove(actor, auditContextOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
}
