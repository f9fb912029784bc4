/**
 * Appends audit events inside the caller's transaction, so an event exists
 * exactly when the change it records does. Events carry metadata only — the
 * callers pass ids, names and counts, never a value, password or token.
 */
import type { Transaction } from 'kysely';
import { newId, nowIso } from '../../app/ids.js';
import type { DatabaseKind } from '../../db/database.js';
import type { Database } from '../../db/schema.js';
import { GENESIS_HASH, hashEvent, SYSTEM_CHAIN } from './audit-chain.js';

/** Who did it and from where; built once per request. */
export interface AuditContext {
  actorId: string | null;
  actorType: 'user' | 'token' | 'system' | 'anonymous';
  ip: string | null;
  requestId: string | null;
}

export interface AuditInput {
  /** null → the system chain (account-level events such as login). */
  workspaceId: string | null;
  action: string;
  targetType?: string;
  targetId?: string;
  data?: Record<string, string | number | boolean | null | string[]>;
}

/** Must be given a transaction: the chain head lock lasts until its commit. */
export type AuditWriter = (trx: Transaction<Database>, ctx: AuditContext, input: AuditInput) => Promise<void>;

export function createAuditWriter(kind: DatabaseKind): AuditWriter {
  return async (trx, ctx, input) => {
    const chain = input.workspaceId ?? SYSTEM_CHAIN;
    await trx
      .insertInto('audit_heads')
      .values({ chain, seq: 0, hash: GENESIS_HASH })
      .onConflict((oc) => oc.column('chain').doNothing())
      .execute();
    // On PostgreSQL the row lock serialises writers of one chain until commit;
    // SQLite serialises every writer already.
    let headQuery = trx.selectFrom('audit_heads').select(['seq', 'hash']).where('chain', '=', chain);
    if (kind === 'postgres') headQuery = headQuery.forUpdate();
    const head = await headQuery.executeTakeFirstOrThrow();

    const event = {
      id: newId('evt'),
      chain,
      seq: Number(head.seq) + 1,
      at: nowIso(),
      workspace_id: input.workspaceId,
      actor_id: ctx.actorId,
      actor_type: ctx.actorType,
      action: input.action,
      target_type: input.targetType ?? null,
      target_id: input.targetId ?? null,
      ip: ctx.ip,
      request_id: ctx.requestId,
      data: JSON.stringify(input.data ?? {}),
      prev_hash: head.hash,
    };
    const hash = hashEvent(event);
    await trx
      .insertInto('audit_events')
      .values({ ...event, hash })
      .execute();
    await trx.updateTable('audit_heads').set({ seq: event.seq, hash }).where('chain', '=', chain).execute();
  };
}
