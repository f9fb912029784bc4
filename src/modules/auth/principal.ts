/**
 * Who is calling: resolved once per request from the session cookie or a
 * personal API token, and the audit context derived from it.
 */
import type { FastifyRequest } from 'fastify';
import { UnauthenticatedError } from '../../app/errors.js';
import type { AuditContext } from '../audit/audit-log.js';

export type Principal =
  | { kind: 'session'; userId: string; sessionHash: string }
  | {
      kind: 'token';
      userId: string;
      tokenId: string;
      workspaceId: string;
      /** The token's workspace change epoch, read once for this request. */
      epoch: number;
      /** The token's workspace audit sequence, read with the epoch. */
      seq: number;
    };

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export function requirePrincipal(request: FastifyRequest): Principal {
  if (!request.principal) throw new UnauthenticatedError();
  return request.principal;
}

export function auditContextOf(request: FastifyRequest): AuditContext {
  const p = request.principal;
  return {
    actorId: p?.userId ?? null,
    actorType: p ? (p.kind === 'token' ? 'token' : 'user') : 'anonymous',
    ip: request.ip ?? null,
    requestId: request.id,
  };
}
