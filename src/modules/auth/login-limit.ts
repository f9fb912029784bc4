/**
 * The login limit (SECURITY.md: HUSH_LOGIN_LIMIT_PER_MIN per client IP and
 * account per minute) as a route's rate-limit config, for every route that
 * checks an account's password: signing in, and accepting an invitation
 * for an email that already has an account. Each route counts per (IP,
 * normalised email), so a password cannot be guessed through a route the
 * limit does not watch. The email is counted by its hash: what someone typed
 * into the email field may be their password, and the key is stored where
 * the counts are (Redis, shared by every server).
 */
import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../../app/context.js';
import { RateLimitedError } from '../../app/errors.js';
import { hashToken } from '../../app/ids.js';
import { normalizeEmail } from './auth-service.js';

export function loginRateLimit(
  ctx: Pick<AppContext, 'config'>,
  emailOf: (request: FastifyRequest) => Promise<string | undefined> | string | undefined,
) {
  return {
    max: ctx.config.loginLimitPerMin,
    timeWindow: 60_000,
    hook: 'preHandler' as const,
    keyGenerator: async (request: FastifyRequest) => {
      const email = await emailOf(request);
      return `login:${request.ip}:${email === undefined ? '' : hashToken(normalizeEmail(email))}`;
    },
    errorResponseBuilder: (_request: FastifyRequest, context: { ttl: number }) =>
      new RateLimitedError(Math.max(1, Math.ceil(context.ttl / 1000))),
  };
}
