/**
 * The authentication hook for /api/v1: a Bearer API token or the session
 * cookie becomes `request.principal`. Cookie-authenticated state changes must
 * carry X-Hush-Csrf equal to the hush_csrf cookie and bound to the session
 * (double submit, checked in constant time).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError, UnauthenticatedError } from '../../app/errors.js';
import { CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE } from './cookies.js';
import type { SessionStore } from './session-store.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const tokenRefused = () => new UnauthenticatedError('The API token is invalid, revoked or expired.');

/** The API token of a `Bearer` header, if it is one. */
const bearerToken = (authorization: string): string | undefined => /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];

/** Whether the request came with a body, which the client may take as long as it likes to send (as Fastify tells). */
function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export function registerAuthentication(app: FastifyInstance, sessions: SessionStore): void {
  app.decorateRequest('principal', null);
  /** The API token an Authorization header names, resolved now; null when it is none or not valid. */
  const tokenOf = (authorization: string) => {
    const token = bearerToken(authorization);
    return token ? sessions.resolveApiToken(token) : Promise.resolve(null);
  };

  app.addHook('onRequest', async (request) => {
    // The matched route, not the raw URL: `/%61pi/…` routes to the API too.
    if (!(request.routeOptions.url ?? request.url).startsWith('/api/')) return;
    const authorization = request.headers.authorization;
    if (authorization !== undefined) {
      const resolved = await tokenOf(authorization);
      // A credential that is present but wrong is refused outright, even on
      // public routes, so a client learns at once that its token is bad.
      if (!resolved) throw tokenRefused();
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

  // A request's credential is checked (and a token's workspace change epoch read) before
  // its body arrives — which may be long after (a large or slowly sent body). Once the body
  // is in, it is checked again, so the request acts on what holds when it runs: a token
  // revoked or a session signed out meanwhile on any server, a member removed, a secret
  // changed (for a token, at the epoch of now: this server's cache may still hold the old
  // epoch's entries; a session's request reads the epoch in its handler, workspace-access.ts).
  app.addHook('preHandler', async (request) => {
    const principal = request.principal;
    if (!principal || !hasBody(request)) return;
    if (principal.kind === 'token') {
      const resolved = await tokenOf(request.headers.authorization ?? '');
      if (!resolved || resolved.tokenId !== principal.tokenId) throw tokenRefused();
      request.principal = { kind: 'token', ...resolved };
      return;
    }
    const sessionToken = request.cookies[SESSION_COOKIE];
    const session = sessionToken ? await sessions.resolve(sessionToken) : null;
    // Ended meanwhile: the request goes on as one without a session (a public route still answers).
    if (!session || session.sessionHash !== principal.sessionHash) request.principal = null;
  });
}
