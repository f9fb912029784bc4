/** HTTP routes for variables: system (read-only) and custom. */
import { z } from 'zod';
import type { AppContext } from '../../app/context.js';
import {
  type App,
  decodeCursor,
  encodeCursor,
  holdsWellFormedText,
  ILL_FORMED_TEXT,
  idSchema,
  nameIdCursor,
  paginationQuery,
  plainText,
  problems,
  workspaceParams,
} from '../../app/http.js';
import { auditContextOf } from '../auth/principal.js';
import { resolveActor } from '../workspaces/workspace-access.js';
import { SYSTEM_VARIABLES } from './system-variables.js';
import { variableNameSchema } from './variable-names.js';
import { variableSchema } from './variable-schemas.js';
import { createVariableService, presentVariable } from './variable-service.js';
import { VARIABLE_TYPES } from './variable-types.js';

/** A value of any JSON shape (the service checks it against the type); its strings and keys are well-formed. */
const jsonValue = z.unknown().refine(holdsWellFormedText, ILL_FORMED_TEXT).optional();
const description = plainText(500);
/** A custom variable's id, or a system variable's name (the id the list gives it). */
const variableParams = workspaceParams.extend({ id: z.union([idSchema, z.enum(SYSTEM_VARIABLES.map((v) => v.name))]) });

export async function variableRoutes(app: App, ctx: AppContext): Promise<void> {
  const service = createVariableService(ctx);

  app.get(
    '/workspaces/:ws/variables',
    {
      schema: {
        tags: ['variables'],
        summary: 'System variables (first page) and custom variables by name (variables.read); ?q= searches names',
        params: workspaceParams,
        querystring: z.strictObject({
          ...paginationQuery,
          q: plainText(64).optional(),
          kind: z.enum(['all', 'system', 'custom']).default('all'),
        }),
        response: {
          200: z.object({ items: z.array(variableSchema), nextCursor: z.string().nullable() }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const { limit, cursor, q, kind } = request.query;
      const after = decodeCursor(cursor, nameIdCursor);
      // System variables are few and fixed: they lead the first page.
      const system = kind === 'custom' || after ? [] : service.systemVariables(actor, q);
      if (kind === 'system') return { items: system, nextCursor: null };
      const page = await service.list(actor, { q, limit, after });
      const last = page.rows.at(-1);
      return {
        items: [...system, ...page.rows.map(presentVariable)],
        nextCursor: page.hasMore && last ? encodeCursor({ name: last.name, id: last.id }) : null,
      };
    },
  );

  app.post(
    '/workspaces/:ws/variables',
    {
      schema: {
        tags: ['variables'],
        summary: 'Create a custom variable (variables.manage)',
        params: workspaceParams,
        body: z.strictObject({
          name: variableNameSchema,
          type: z.enum(VARIABLE_TYPES),
          description: description.default(''),
          testValue: jsonValue,
          fallbackValue: jsonValue,
        }),
        response: { 201: variableSchema, ...problems(401, 403, 404, 409, 422) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const row = await service.create(actor, auditContextOf(request), request.body);
      reply.header('location', `/api/v1/workspaces/${request.params.ws}/variables/${row.id}`);
      return reply.code(201).send(presentVariable(row));
    },
  );

  app.get(
    '/workspaces/:ws/variables/:id',
    {
      schema: {
        tags: ['variables'],
        summary: 'One variable: custom, or system by its name (variables.read)',
        params: variableParams,
        response: { 200: variableSchema, ...problems(401, 403, 404) },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      return (
        service.systemVariable(actor, request.params.id) ?? presentVariable(await service.get(actor, request.params.id))
      );
    },
  );

  app.patch(
    '/workspaces/:ws/variables/:id',
    {
      schema: {
        tags: ['variables'],
        summary: 'Change a custom variable (variables.manage)',
        params: variableParams,
        body: z
          .strictObject({
            name: variableNameSchema.optional(),
            type: z.enum(VARIABLE_TYPES).optional(),
            description: description.optional(),
            testValue: jsonValue,
            fallbackValue: jsonValue,
          })
          .refine((b) => Object.keys(b).length > 0, 'send at least one field'),
        response: { 200: variableSchema, ...problems(401, 403, 404, 409, 422) },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      return presentVariable(await service.update(actor, auditContextOf(request), request.params.id, request.body));
    },
  );

  app.delete(
    '/workspaces/:ws/variables/:id',
    {
      schema: {
        tags: ['variables'],
        summary: 'Delete a custom variable (variables.manage)',
        params: variableParams,
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
