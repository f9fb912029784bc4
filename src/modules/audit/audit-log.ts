/**
 * Appends audit events inside the caller's transaction, so an event exists
 * exactly when the change it records does. Events carry metadata only — the
 * callers pass ids, names and counts, never a value, password or token.
 */
import { type Compilable, CompiledQuery, type QueryCreator, type Transaction } from 'kysely';
import { newId, nowIso } from '../../app/ids.js';
import { boundQueryShapes, type DatabaseKind, type Db } from '../../db/database.js';
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
  /** Returns each chain's new head, valid once the transaction commits. */
  many(trx: Transaction<Database>, entries: readonly AuditEntry[]): Promise<Map<string, ChainHead>>;
  /**
   * PostgreSQL only (undefined on SQLite): appends `entries` of one chain,
   * none of which moves the epoch, in a single autocommitted statement that
   * also touches the secrets' `lastUsedAt` — provided the chain's head is
   * still `head` (compare-and-set on its seq and hash). When the head had
   * moved, nothing was appended (the touch may have been) and the answer
   * carries the head as the statement found it, for one more try.
   */
  appendAtHead?(
    db: Db,
    chain: string,
    head: ChainHead,
    entries: readonly AuditEntry[],
    touch: { now: string; secretIds: readonly string[] },
  ): Promise<{ appended: true; head: ChainHead } | { appended: false; current: ChainHead | undefined }>;
};

/** Where a chain ends: its last event's seq and hash. */
export interface ChainHead {
  seq: number;
  hash: string;
}

/** The chain an event goes to: its workspace's, or the system chain. */
export const chainOf = (input: AuditInput): string => input.workspaceId ?? SYSTEM_CHAIN;

/** Whether appending `entries` changes what servers cache (see NO_CHANGE_ACTIONS). */
export function entriesMoveEpoch(entries: readonly AuditEntry[]): boolean {
  return entries.some(({ input }) => !NO_CHANGE_ACTIONS.has(input.action));
}

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

/**
 * The event rows appending `entries` to a chain whose head is (`seq`,
 * `prevHash`): numbered, timestamped and hashed in order; `changes` counts
 * the events that move the epoch.
 */
function chainRows(chain: string, seq: number, prevHash: string, entries: readonly AuditEntry[]) {
  let changes = 0;
  const rows = entries.map(({ ctx, input }): EventRow => {
    seq += 1;
    // Built with its hash field (filled in below): a copy with the hash added costs more than the hash.
    const event: EventRow = {
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
      hash: '',
    };
    prevHash = hashEvent(event);
    event.hash = prevHash;
    if (!NO_CHANGE_ACTIONS.has(input.action)) changes += 1;
    return event;
  });
  return { rows, seq, prevHash, changes };
}

/**
 * PostgreSQL's append at a known head, one statement: the secrets' touch,
 * then the head moved only if it is still where this server last left it,
 * then the events inserted only if it was — from one array per column, so
 * the statement has one shape whatever the batch size.
 *
 * Locks: the secrets' rows first, in id order (`ORDER BY id FOR NO KEY
 * UPDATE`, the lock the UPDATE takes anyway, as the locked path's touch),
 * then the head's — the order of every writer
 * (a secret's change locks its row, then appends). The head's update depends
 * on the touch's row count, so the touch runs to completion before the
 * head's row is locked, by data dependency rather than by whatever order
 * PostgreSQL runs the WITH clauses in. The touch happens only if the head
 * looked right to the statement's snapshot (no lock taken for that), so a
 * compare that fails leaves `lastUsedAt` alone but for a head moved during
 * the statement itself.
 *
 * The statement also answers the head as its snapshot saw it: after a
 * failed compare that is usually where the chain ends now (another server
 * wrote last), worth one more try — unless it is the head just tried (it
 * moved while the statement waited for it).
 */
const APPEND_AT_HEAD_SQL = `with locked as (
  select id from secrets
  where id = any($2::text[]) and exists (select 1 from audit_heads where chain = $5 and seq = $6 and hash = $7)
  order by id for no key update
), touched as (
  update secrets set last_used_at = $1 where id in (select id from locked) returning 1
), moved as (
  update audit_heads set seq = $3, hash = $4
  where chain = $5 and seq = $6 and hash = $7 and (select count(*) from touched) >= 0
  returning 1
), current as (
  select seq, hash from audit_heads where chain = $5
), inserted as (
  insert into audit_events (${EVENT_COLUMNS.join(', ')})
  select * from unnest(${EVENT_COLUMNS.map((c, i) => `$${i + 8}::${c === 'seq' ? 'integer' : 'text'}[]`).join(', ')})
  where exists (select 1 from moved)
  returning 1
)
select (select count(*) from inserted) as inserted, (select seq from current) as seq, (select hash from current) as hash`;

/**
 * The statements of an append, built and compiled once (per row count for
 * the INSERT) instead of once per event: an append is on the path of every
 * reveal, Send and run, and building a query costs more than SQLite takes to
 * run it. Each shape is built from the transaction that first needs it.
 */
export function createAuditWriter(kind: DatabaseKind): AuditWriter {
  /** The chain-head read (one shape). */
  const headReads = boundQueryShapes<'read'>();
  /** Head updates: does the epoch move too. */
  const headUpdates = boundQueryShapes<boolean>();
  /** Event INSERTs by row count. */
  const inserts = boundQueryShapes<number>();
  /** PostgreSQL: the events' INSERT and the head's UPDATE in one statement, by row count and epoch move. */
  const insertsWithHead = boundQueryShapes<string>();

  const readHead = (trx: Transaction<Database>, chain: string) =>
    headReads('read', (slot) => {
      const query = trx.selectFrom('audit_heads').select(['seq', 'hash']).where('chain', '=', slot(0));
      // On PostgreSQL the row lock serialises writers of one chain until commit;
      // SQLite serialises every writer already.
      return kind === 'postgres' ? query.forUpdate() : query;
    })([chain]) as CompiledQuery<{ seq: number | string; hash: string }>;

  /** `UPDATE audit_heads SET seq, hash[, epoch + changes] WHERE chain`, its slots from `at` on. */
  const updateHead = (
    qc: QueryCreator<Database>,
    slot: (index: number) => string,
    at: number,
    movesEpoch: boolean,
  ): Compilable<unknown> =>
    qc
      .updateTable('audit_heads')
      .set((eb) => ({
        seq: slot(at) as unknown as number,
        hash: slot(at + 1),
        ...(movesEpoch ? { epoch: eb('epoch', '+', slot(at + 3) as unknown as number) } : {}),
      }))
      .where('chain', '=', slot(at + 2));

  const headValues = (chain: string, seq: number, hash: string, changes: number) => [seq, hash, chain, changes];

  async function appendToChain(
    trx: Transaction<Database>,
    chain: string,
    entries: readonly AuditEntry[],
  ): Promise<ChainHead> {
    let [head] = (await trx.executeQuery(readHead(trx, chain))).rows;
    if (!head) {
      // The chain's first event (two first writers may race: one insert wins, both then lock it).
      await trx
        .insertInto('audit_heads')
        .values({ chain, seq: 0, hash: GENESIS_HASH })
        .onConflict((oc) => oc.column('chain').doNothing())
        .execute();
      [head] = (await trx.executeQuery(readHead(trx, chain))).rows;
      if (!head) throw new Error(`audit chain ${chain}: no head after inserting it`);
    }

    const { rows, seq, prevHash, changes } = chainRows(chain, Number(head.seq), head.hash, entries);
    const movesEpoch = changes > 0;
    if (kind === 'postgres' && rows.length <= INSERT_CHUNK) {
      // One round trip for the events and the head (a data-modifying WITH; the head is locked already).
      const n = rows.length;
      const statement = insertsWithHead(`${n} ${movesEpoch}`, (slot) =>
        updateHead(
          trx.with('inserted', (db) => db.insertInto('audit_events').values(eventSlots(n, slot))),
          slot,
          n * EVENT_COLUMNS.length,
          movesEpoch,
        ),
      );
      await trx.executeQuery(statement([...eventValues(rows), ...headValues(chain, seq, prevHash, changes)]));
      return { seq, hash: prevHash };
    }
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      const insert = inserts(chunk.length, (slot) =>
        trx.insertInto('audit_events').values(eventSlots(chunk.length, slot)),
      );
      await trx.executeQuery(insert(eventValues(chunk)));
    }
    const update = headUpdates(movesEpoch, (slot) => updateHead(trx, slot, 0, movesEpoch));
    await trx.executeQuery(update(headValues(chain, seq, prevHash, changes)));
    return { seq, hash: prevHash };
  }

  const write = async (trx: Transaction<Database>, ctx: AuditContext, input: AuditInput) => {
    await appendToChain(trx, chainOf(input), [{ ctx, input }]);
  };

  async function appendAtHead(
    db: Db,
    chain: string,
    head: ChainHead,
    entries: readonly AuditEntry[],
    touch: { now: string; secretIds: readonly string[] },
  ) {
    if (entriesMoveEpoch(entries) || entries.length === 0) {
      throw new Error('appendAtHead: takes one or more events that do not move the epoch');
    }
    const { rows, seq, prevHash } = chainRows(chain, head.seq, head.hash, entries);
    const columns = EVENT_COLUMNS.map((column) => rows.map((row) => row[column]));
    const values = [touch.now, touch.secretIds, seq, prevHash, chain, head.seq, head.hash, ...columns];
    const { rows: result } = await db.executeQuery<{
      inserted: number | string;
      seq: number | null;
      hash: string | null;
    }>(CompiledQuery.raw(APPEND_AT_HEAD_SQL, values));
    const answer = result[0];
    if (Number(answer?.inserted) === rows.length) return { appended: true as const, head: { seq, hash: prevHash } };
    const current =
      answer?.seq != null && answer.hash != null ? { seq: Number(answer.seq), hash: answer.hash } : undefined;
    return { appended: false as const, current };
  }

  return Object.assign(write, {
    ...(kind === 'postgres' ? { appendAtHead } : {}),
    async many(trx: Transaction<Database>, entries: readonly AuditEntry[]) {
      const byChain = new Map<string, AuditEntry[]>();
      for (const entry of entries) {
        const chain = chainOf(entry.input);
        const list = byChain.get(chain);
        if (list) list.push(entry);
        else byChain.set(chain, [entry]);
      }
      // A fixed lock order (by chain) so two batches never wait on each other's heads.
      const heads = new Map<string, ChainHead>();
      for (const chain of [...byChain.keys()].sort()) {
        heads.set(chain, await appendToChain(trx, chain, byChain.get(chain) ?? []));
      }
      return heads;
    },
  });
}
