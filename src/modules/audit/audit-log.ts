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

/**
 * Actions that change nothing a server caches (reads, uses, runs, sign-ins).
 * Every other action increments its workspace's change epoch, which
 * invalidates every server's cached tokens, roles, variables and secrets of
 * that workspace (workspace-cache.ts) — a new action invalidates by default.
 */
const NO_CHANGE_ACTIONS: ReadonlySet<string> = new Set([
  'secret.used',
  'secret.revealed',
  'run.started',
  'run.finished',
  'auth.login',
  'auth.login_failed',
  'auth.logout',
]);

/** One event to append: who, and what. */
export interface AuditEntry {
  ctx: AuditContext;
  input: AuditInput;
}

/**
 * Appends events inside the caller's transaction. Must be given a
 * transaction: the chain head lock lasts until its commit. `many` appends
 * several at once (group commit): each chain's head is locked, read and
 * updated once, and the events go in multi-row inserts.
 */
export type AuditWriter = ((trx: Transaction<Database>, ctx: AuditContext, input: AuditInput) => Promise<void>) & {
  many(trx: Transaction<Database>, entries: readonly AuditEntry[]): Promise<void>;
};

/** Rows per multi-row INSERT (15 columns each; well under either database's parameter limit). */
const INSERT_CHUNK = 200;

export function createAuditWriter(kind: DatabaseKind): AuditWriter {
  async function appendToChain(trx: Transaction<Database>, chain: string, entries: readonly AuditEntry[]) {
    // On PostgreSQL the row lock serialises writers of one chain until commit;
    // SQLite serialises every writer already.
    let headQuery = trx.selectFrom('audit_heads').select(['seq', 'hash']).where('chain', '=', chain);
    if (kind === 'postgres') headQuery = headQuery.forUpdate();
    let head = await headQuery.executeTakeFirst();
    if (!head) {
      // The chain's first event (two first writers may race: one insert wins, both then lock it).
      await trx
        .insertInto('audit_heads')
        .values({ chain, seq: 0, hash: GENESIS_HASH })
        .onConflict((oc) => oc.column('chain').doNothing())
        .execute();
      head = await headQuery.executeTakeFirstOrThrow();
    }

    let seq = Number(head.seq);
    let prevHash = head.hash;
    let changes = 0;
    const rows = entries.map(({ ctx, input }) => {
      seq += 1;
      const event = {
        id: newId('evt'),
        chain,
        seq,
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
        prev_hash: prevHash,
      };
      prevHash = hashEvent(event);
      if (!NO_CHANGE_ACTIONS.has(input.action)) changes += 1;
      return { ...event, hash: prevHash };
    });
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await trx
        .insertInto('audit_events')
        .values(rows.slice(i, i + INSERT_CHUNK))
        .execute();
    }
    await trx
      .updateTable('audit_heads')
      .set((eb) => ({ seq, hash: prevHash, ...(changes > 0 ? { epoch: eb('epoch', '+', changes) } : {}) }))
      .where('chain', '=', chain)
      .execute();
  }

  const write = (trx: Transaction<Database>, ctx: AuditContext, input: AuditInput) =>
    appendToChain(trx, input.workspaceId ?? SYSTEM_CHAIN, [{ ctx, input }]);

  return Object.assign(write, {
    async many(trx: Transaction<Database>, entries: readonly AuditEntry[]) {
      const byChain = new Map<string, AuditEntry[]>();
      for (const entry of entries) {
        const chain = entry.input.workspaceId ?? SYSTEM_CHAIN;
        const list = byChain.get(chain);
        if (list) list.push(entry);
        else byChain.set(chain, [entry]);
      }
      // A fixed lock order (by chain) so two batches never wait on each other's heads.
      for (const chain of [...byChain.keys()].sort()) await appendToChain(trx, chain, byChain.get(chain) ?? []);
    },
  });
}
