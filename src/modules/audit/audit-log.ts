/**
 * Appends audit events inside the caller's transaction, so an event exists
 * exactly when the change it records does. Events carry metadata only — the
 * callers pass ids, names and counts, never a value, password or token.
 */
import type { CompiledQuery, Transaction } from 'kysely';
import { newId, nowIso } from '../../app/ids.js';
import { boundQuery, type DatabaseKind } from '../../db/database.js';
import type { Database } from '../../db/schema.js';
import { type ChainedEvent, GENESIS_HASH, hashEvent, SYSTEM_CHAIN } from './audit-chain.js';

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

/** The columns of an event row, in the order the bound INSERT takes them. */
const EVENT_COLUMNS = [
  'id',
  'chain',
  'seq',
  'at',
  'workspace_id',
  'actor_id',
  'actor_type',
  'action',
  'target_type',
  'target_id',
  'ip',
  'request_id',
  'data',
  'prev_hash',
  'hash',
] as const;

type EventRow = ChainedEvent & { hash: string };

/** `n` event rows of stand-ins, row by row in EVENT_COLUMNS order (slots 0 … 15n − 1). */
function eventSlots(n: number, slot: (index: number) => string): EventRow[] {
  return Array.from({ length: n }, (_, r) =>
    Object.fromEntries(EVENT_COLUMNS.map((column, c) => [column, slot(r * EVENT_COLUMNS.length + c)])),
  ) as unknown as EventRow[];
}

/** The rows' values in the order of `eventSlots`. */
function eventValues(rows: readonly EventRow[]): unknown[] {
  const values: unknown[] = [];
  for (const row of rows) for (const column of EVENT_COLUMNS) values.push(row[column]);
  return values;
}
type Bound<Row = unknown> = (values: readonly unknown[]) => CompiledQuery<Row>;

/**
 * The statements of an append, built and compiled once (per row count for
 * the INSERT) instead of once per event: an append is on the path of every
 * reveal, Send and run, and building a query costs more than SQLite takes to
 * run it. Built from the first transaction seen (its dialect's SQL).
 */
interface AppendStatements {
  head: Bound<{ seq: number | string; hash: string }>;
  setHead: Bound;
  setHeadAndEpoch: Bound;
  insert: Map<number, Bound>;
  /** PostgreSQL: events and head in one statement, by row count (negative: the epoch moves too). */
  insertAndSetHead: Map<number, Bound>;
}

function appendStatements(trx: Transaction<Database>, kind: DatabaseKind): AppendStatements {
  return {
    head: boundQuery((slot) => {
      const query = trx.selectFrom('audit_heads').select(['seq', 'hash']).where('chain', '=', slot(0));
      // On PostgreSQL the row lock serialises writers of one chain until commit;
      // SQLite serialises every writer already.
      return kind === 'postgres' ? query.forUpdate() : query;
    }),
    setHead: boundQuery((slot) =>
      trx
        .updateTable('audit_heads')
        .set({ seq: slot(0) as unknown as number, hash: slot(1) })
        .where('chain', '=', slot(2)),
    ),
    setHeadAndEpoch: boundQuery((slot) =>
      trx
        .updateTable('audit_heads')
        .set((eb) => ({
          seq: slot(0) as unknown as number,
          hash: slot(1),
          epoch: eb('epoch', '+', slot(3) as unknown as number),
        }))
        .where('chain', '=', slot(2)),
    ),
    insert: new Map(),
    insertAndSetHead: new Map(),
  };
}

export function createAuditWriter(kind: DatabaseKind): AuditWriter {
  let statements: AppendStatements | undefined;

  function insertRows(trx: Transaction<Database>, rows: readonly EventRow[]): CompiledQuery {
    const shapes = (statements as AppendStatements).insert;
    let insert = shapes.get(rows.length);
    if (!insert) {
      const n = rows.length;
      insert = boundQuery((slot) => trx.insertInto('audit_events').values(eventSlots(n, slot)));
      shapes.set(n, insert);
    }
    return insert(eventValues(rows));
  }

  /** PostgreSQL: `WITH … INSERT` the events, `UPDATE` the chain head, in one statement (per row count). */
  function insertAndSetHead(
    trx: Transaction<Database>,
    rows: readonly EventRow[],
    seq: number,
    hash: string,
    changes: number,
  ): CompiledQuery {
    const shapes = (statements as AppendStatements).insertAndSetHead;
    const key = changes > 0 ? -rows.length : rows.length;
    let statement = shapes.get(key);
    if (!statement) {
      const n = rows.length;
      const at = n * EVENT_COLUMNS.length; // the head's slots follow the rows'
      statement = boundQuery((slot) =>
        trx
          .with('inserted', (db) => db.insertInto('audit_events').values(eventSlots(n, slot)))
          .updateTable('audit_heads')
          .set((eb) => ({
            seq: slot(at) as unknown as number,
            hash: slot(at + 1),
            ...(changes > 0 ? { epoch: eb('epoch', '+', slot(at + 3) as unknown as number) } : {}),
          }))
          .where('chain', '=', slot(at + 2)),
      );
      shapes.set(key, statement);
    }
    const values = eventValues(rows);
    values.push(seq, hash, (rows[0] as EventRow).chain, changes);
    return statement(values);
  }

  async function appendToChain(trx: Transaction<Database>, chain: string, entries: readonly AuditEntry[]) {
    statements ??= appendStatements(trx, kind);
    let [head] = (await trx.executeQuery(statements.head([chain]))).rows;
    if (!head) {
      // The chain's first event (two first writers may race: one insert wins, both then lock it).
      await trx
        .insertInto('audit_heads')
        .values({ chain, seq: 0, hash: GENESIS_HASH })
        .onConflict((oc) => oc.column('chain').doNothing())
        .execute();
      [head] = (await trx.executeQuery(statements.head([chain]))).rows;
      if (!head) throw new Error(`audit chain ${chain}: no head after inserting it`);
    }

    let seq = Number(head.seq);
    let prevHash = head.hash;
    let changes = 0;
    const rows = entries.map(({ ctx, input }): EventRow => {
      seq += 1;
      const event: ChainedEvent = {
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
    if (kind === 'postgres' && rows.length <= INSERT_CHUNK) {
      // One round trip for the events and the head (a data-modifying WITH; the head is locked already).
      await trx.executeQuery(insertAndSetHead(trx, rows, seq, prevHash, changes));
      return;
    }
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await trx.executeQuery(insertRows(trx, rows.slice(i, i + INSERT_CHUNK)));
    }
    await trx.executeQuery(
      changes > 0
        ? statements.setHeadAndEpoch([seq, prevHash, chain, changes])
        : statements.setHead([seq, prevHash, chain]),
    );
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
