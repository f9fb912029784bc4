/**
 * The authentication hook for /api/v1: a Bearer API token or the session
 * cookie becomes `request.principal`. Cookie-authenticated state changes must
 * carry X-Hush-Csrf equal to the hush_csrf cookie and bound to the session
 * (double submit, checked in constant time).
 */
import type { FastifyInstance } from 'fastify';
import { AppError, UnauthenticatedError } from '../../app/errors.js';
import { CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE } from './cookies.js';
import type { SessionStore } from './session-store.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function registerAuthentication(app: FastifyInstance, sessions: SessionStore): void {
  app.decorateRequest('principal', null);

  app.addHook('onRequest', async (request) => {
    // The matched route, not the raw URL: `/%61pi/…` routes to the API too.
    if (!(request.routeOptions.url ?? request.url).startsWith('/api/')) return;
    const authorization = request.headers.authorization;
    if (authorization !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      const resolved = match?.[1] ? await sessions.resolveApiToken(match[1]) : null;
      // A credential that is present but wrong is refused outright, even on
      // public routes, so a client learns at once that its token is bad.
      if (!resolved) throw new UnauthenticatedError('The API token is invalid, revoked or expired.');
      request.principal = { kind: 'token', ...resolved };
      return;
    }
    const sessionToken = request.cookies[SESSION_COOKIE];
    if (!sessionToken) return;
    const session = await sessions.resolve(sessionToken);
    if (!session) return;
    if (!SAFE_METHODS.has(request.method)) {
      const header = request.headers[CSRF_HEADER];
      const cookie = request.cookies[CSRF_COOKIE];
      const presented = typeof header === 'string' ? header : '';
      if (
        !presented ||
        cookie === undefined ||
        presented !== cookie ||
        !sessions.csrfMatches(session.csrfHash, presented)
      ) {
        throw new AppError(
          403,
          'csrf_failed',
          'Missing or wrong X-Hush-Csrf header for a cookie-authenticated request.',
        );
      }
    }
    request.principal = { kind: 'session', userId: session.userId, sessionHash: session.sessionHash };
  });
}
