/** HTTP routes: first-run setup, sign-in, sign-out, and who am I. */
import { z } from 'zod';
import type { AppContext } from '../../app/context.js';
import {
  type App,
  displayNameSchema,
  emailSchema,
  passwordSchema,
  plainText,
  problems,
  userSchema,
} from '../../app/http.js';
import { createWorkspaceService } from '../workspaces/workspace-service.js';
import { type AuthService, presentUser } from './auth-service.js';
import { clearSessionCookies, setSessionCookies } from './cookies.js';
import { loginRateLimit } from './login-limit.js';
import { auditContextOf, requirePrincipal } from './principal.js';

const sessionResponse = z.object({ user: userSchema, csrfToken: z.string() });

export async function authRoutes(app: App, ctx: AppContext, auth: AuthService): Promise<void> {
  const workspaces = createWorkspaceService(ctx);

  app.get(
    '/setup',
    {
      schema: {
        tags: ['auth'],
        summary: 'Whether first-run setup is still needed',
        response: { 200: z.object({ needed: z.boolean() }) },
      },
    },
    async () => ({ needed: await auth.setupNeeded() }),
  );

  app.post(
    '/setup',
    {
      schema: {
        tags: ['auth'],
        summary: 'First-run setup: the first owner and workspace',
        body: z.strictObject({
          token: z.string().min(1).max(512),
          email: emailSchema,
          password: passwordSchema,
          name: displayNameSchema,
          workspaceName: displayNameSchema,
        }),
        response: {
          201: sessionResponse.extend({ workspace: z.object({ id: z.string(), name: z.string() }) }),
          ...problems(403, 409, 422),
        },
      },
    },
    async (request, reply) => {
      const { user, workspace, session } = await auth.setup(auditContextOf(request), request.body);
      setSessionCookies(reply, ctx.config, session.sessionToken, session.csrfToken);
      return reply.code(201).send({
        user: presentUser(user),
        workspace: { id: workspace.id, name: workspace.name },
        csrfToken: session.csrfToken,
      });
    },
  );

  app.post(
    '/auth/login',
    {
      config: {
        rateLimit: loginRateLimit(ctx, (request) => {
          const email = (request.body as { email?: unknown } | undefined)?.email;
          return typeof email === 'string' ? email : undefined;
        }),
      },
      schema: {
        tags: ['auth'],
        summary: 'Sign in; sets the hush_session and hush_csrf cookies',
        body: z.strictObject({
          email: plainText(254).refine((s) => s.length > 0, 'must not be empty'),
          password: z.string().min(1).max(256),
        }),
        response: { 200: sessionResponse, ...problems(401, 422, 429) },
      },
    },
    async (request, reply) => {
      const { user, session } = await auth.login(auditContextOf(request), request.body);
      setSessionCookies(reply, ctx.config, session.sessionToken, session.csrfToken);
      return { user: presentUser(user), csrfToken: session.csrfToken };
    },
  );

  app.post(
    '/auth/logout',
    {
      schema: {
        tags: ['auth'],
        summary: 'Sign out: ends the session, if any, and clears its cookies (also when it had ended already)',
        response: { 204: z.null(), ...problems(403) },
      },
    },
    async (request, reply) => {
      // Idempotent: a session that expired or was ended elsewhere still gets its cookies cleared,
      // so "Sign out" always signs out. A live session's request passed the CSRF check already.
      const principal = request.principal;
      if (principal?.kind === 'session') await auth.logout(auditContextOf(request), principal.sessionHash);
      clearSessionCookies(reply, ctx.config);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/me',
    {
      schema: {
        tags: ['auth'],
        summary: 'The caller and their workspaces with their role in each',
        response: {
          200: z.object({
            user: userSchema,
            workspaces: z.array(z.object({ id: z.string(), name: z.string(), role: z.string(), roleName: z.string() })),
            via: z.enum(['session', 'token']),
          }),
          ...problems(401),
        },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const user = await auth.user(principal.userId);
      const list = await workspaces.listForUser(
        user.id,
        principal.kind === 'token' ? principal.workspaceId : undefined,
      );
      return {
        user: presentUser(user),
        workspaces: list.map((w) => ({ id: w.id, name: w.name, role: w.role, roleName: w.roleName ?? w.role })),
        via: principal.kind,
      };
    },
  );
}
