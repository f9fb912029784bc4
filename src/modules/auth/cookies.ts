/** The session and CSRF cookies (SPEC §3 "Web and session"). */
import type { FastifyReply } from 'fastify';
import type { Config } from '../../app/config.js';

export const SESSION_COOKIE = 'hush_session';
export const CSRF_COOKIE = 'hush_csrf';
export const CSRF_HEADER = 'x-hush-csrf';

export function setSessionCookies(
  reply: FastifyReply,
  config: Pick<Config, 'secureCookies' | 'sessionAbsoluteMs'>,
  sessionToken: string,
  csrfToken: string,
): void {
  const common = {
    path: '/',
    sameSite: 'lax' as const,
    secure: config.secureCookies,
    maxAge: Math.floor(config.sessionAbsoluteMs / 1000),
  };
  reply.setCookie(SESSION_COOKIE, sessionToken, { ...common, httpOnly: true });
  // Readable by the UI's script, which echoes it in X-Hush-Csrf.
  reply.setCookie(CSRF_COOKIE, csrfToken, { ...common, httpOnly: false });
}

export function clearSessionCookies(reply: FastifyReply, config: Pick<Config, 'secureCookies'>): void {
  const common = { path: '/', sameSite: 'lax' as const, secure: config.secureCookies };
  reply.clearCookie(SESSION_COOKIE, { ...common, httpOnly: true });
  reply.clearCookie(CSRF_COOKIE, common);
}
