/** HTTP routes for members and invitations. */
import { z } from 'zod';
import type { AppContext } from '../../app/context.js';
import {
  type App,
  boundedPaginationQuery,
  displayNameSchema,
  emailSchema,
  idSchema,
  pageInMemory,
  plainText,
  problems,
  userSchema,
  workspaceParams,
} from '../../app/http.js';
import { hashToken } from '../../app/ids.js';
import { setSessionCookies } from '../auth/cookies.js';
import { loginRateLimit } from '../auth/login-limit.js';
import { auditContextOf } from '../auth/principal.js';
import type { SessionStore } from '../auth/session-store.js';
import { resolveActor } from '../workspaces/workspace-access.js';
import { invitationSchema, memberSchema, pendingInvitationSchema } from './member-schemas.js';
import { createMemberService } from './member-service.js';

const roleRef = plainText(64).refine((s) => s.length > 0, 'must not be empty');
const memberParams = workspaceParams.extend({ userId: idSchema });

export async function memberRoutes(app: App, ctx: AppContext, sessions: SessionStore): Promise<void> {
  const service = createMemberService({ ...ctx, sessions });

  app.get(
    '/workspaces/:ws/members',
    {
      schema: {
        tags: ['members'],
        summary: 'Members and their roles, by email (members.read)',
        params: workspaceParams,
        querystring: z.strictObject(boundedPaginationQuery),
        response: {
          200: z.object({ items: z.array(memberSchema), nextCursor: z.string().nullable() }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const rows = await service.list(actor);
      return pageInMemory(
        rows.map((r) => ({ ...r, roleName: r.roleName ?? r.role })),
        (m) => [m.email.toLowerCase(), m.userId],
        request.query,
      );
    },
  );

  app.patch(
    '/workspaces/:ws/members/:userId',
    {
      schema: {
        tags: ['members'],
        summary: "Change a member's role (members.manage; owners need members.manage_owners)",
        params: memberParams,
        body: z.strictObject({ role: roleRef }),
        response: { 204: z.null(), ...problems(401, 403, 404, 409, 422) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      await service.changeRole(actor, auditContextOf(request), request.params.userId, request.body.role);
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/workspaces/:ws/members/:userId',
    {
      schema: {
        tags: ['members'],
        summary: 'Remove a member, or leave (yourself)',
        params: memberParams,
        response: { 204: z.null(), ...problems(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      await service.remove(actor, auditContextOf(request), request.params.userId);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/workspaces/:ws/invitations',
    {
      schema: {
        tags: ['members'],
        summary: 'Invite someone by email with a role (members.manage); returns a one-time token and URL',
        params: workspaceParams,
        body: z.strictObject({ email: emailSchema, role: roleRef }),
        response: {
          201: invitationSchema.extend({ token: z.string(), url: z.string() }),
          ...problems(401, 403, 404, 409, 422),
        },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const { invitation, token, url } = await service.invite(actor, auditContextOf(request), request.body);
      return reply.code(201).send({
        id: invitation.id,
        email: invitation.email,
        role: invitation.role,
        createdAt: invitation.created_at,
        expiresAt: invitation.expires_at,
        token,
        url,
      });
    },
  );

  app.get(
    '/workspaces/:ws/invitations',
    {
      schema: {
        tags: ['members'],
        summary: 'Pending invitations, newest first, with who invited (members.manage)',
        params: workspaceParams,
        querystring: z.strictObject(boundedPaginationQuery),
        response: {
          200: z.object({ items: z.array(pendingInvitationSchema), nextCursor: z.string().nullable() }),
          ...problems(401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      const rows = await service.listInvitations(actor);
      return pageInMemory(
        rows.map((r) => ({
          id: r.id,
          email: r.email,
          role: r.role,
          createdAt: r.created_at,
          expiresAt: r.expires_at,
          invitedBy:
            r.invited_by_email === null
              ? null
              : { userId: r.invited_by, email: r.invited_by_email, name: r.invited_by_name ?? '' },
        })),
        (i) => [-Date.parse(i.createdAt), i.id],
        request.query,
      );
    },
  );

  app.delete(
    '/workspaces/:ws/invitations/:id',
    {
      schema: {
        tags: ['members'],
        summary: 'Revoke a pending invitation (members.manage)',
        params: workspaceParams.extend({ id: idSchema }),
        response: { 204: z.null(), ...problems(401, 403, 404) },
      },
    },
    async (request, reply) => {
      const actor = await resolveActor(ctx, request, request.params.ws);
      await service.revokeInvitation(actor, auditContextOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/invitations/accept',
    {
      // Accepting for an existing account checks its password: the login limit of that account applies.
      config: {
        rateLimit: loginRateLimit(ctx, async (request) => {
          const token = (request.body as { token?: unknown } | undefined)?.token;
          if (typeof token !== 'string') return undefined;
          const invitation = await ctx.db
            .selectFrom('invitations')
            .select('email_normalized')
            .where('token_hash', '=', hashToken(token))
            .executeTakeFirst();
          return invitation?.email_normalized;
        }),
      },
      schema: {
        tags: ['members'],
        summary: 'Accept an invitation: creates the account (or checks its password) and signs in',
        body: z.strictObject({
          token: z.string().min(1).max(512),
          name: displayNameSchema.optional(),
          password: z.string().min(1).max(256),
        }),
        response: {
          201: z.object({ user: userSchema, workspaceId: z.string(), role: z.string(), csrfToken: z.string() }),
          ...problems(401, 404, 409, 422),
        },
      },
    },
    async (request, reply) => {
      const result = await service.accept(auditContextOf(request), request.body);
      setSessionCookies(reply, ctx.config, result.session.sessionToken, result.session.csrfToken);
      return reply.code(201).send({
        user: result.user,
        workspaceId: result.workspaceId,
        role: result.role,
        csrfToken: result.session.csrfToken,
      });
    },
  );
}
