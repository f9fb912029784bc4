/**
 * Audit events that record a read or a use rather than a change —
 * `secret.used` (one per secret per execution, with the secrets' `lastUsedAt`),
 * `secret.revealed`, `run.started`, and `run.finished` with its run record —
 * appended with group commit: each caller
 * waits until its events are committed (a reveal answers only then), but
 * callers arriving in the same turn of the event loop, or while a commit is
 * under way, share the next transaction: one chain-head lock and one commit
 * for many requests instead of one each. On PostgreSQL that is what keeps a
 * busy workspace's chain head from serialising every request.
 */

import { type CompiledQuery, sql, type Transaction } from 'kysely';
import { nowIso } from '../../app/ids.js';
import { boundQueryShapes, type DatabaseKind, type Db, pgDriver } from '../../db/database.js';
import type { Database } from '../../db/schema.js';
import { type AuditEntry, type AuditWriter, type ChainHead, chainOf, entriesMoveEpoch } from './audit-log.js';

export interface QueuedWrites {
  /** Secrets whose `lastUsedAt` becomes now. */
  secretsUsed?: readonly string[];
  /** Inserts that belong with the events (a run record); they run in the batch's transaction. */
  alongside?: (trx: Transaction<Database>) => Promise<void>;
  /**
   * PostgreSQL transaction-level advisory locks `alongside` needs (64-bit keys). The batch
   * takes all of its writes' locks first, in ascending order, before any write and before
   * the chain heads: two batches sharing keys never wait on each other in a circle.
   */
  locks?: readonly bigint[];
}

export interface AuditQueue {
  /** Appends `entries` (and `writes`) in the next shared transaction; resolves once committed. */
  append(entries: readonly AuditEntry[], writes?: QueuedWrites): Promise<void>;
}

interface Batch {
  entries: AuditEntry[];
  secretsUsed: Set<string>;
  alongside: ((trx: Transaction<Database>) => Promise<void>)[];
  locks: Set<bigint>;
  done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

/** Secret ids per UPDATE … WHERE id IN (…). */
const MAX_IDS = 500;
/** Chains whose head a server remembers (forgotten all at once past this; only a round trip is lost). */
const MAX_KNOWN_HEADS = 10_000;
/**
 * SQLSTATEs of a statement refused while it ran, its transaction rolled back: a deadlock or
 * serialization failure (class 40), a constraint (class 23), a lock not had in time (55P03),
 * a cancel or `statement_timeout` (57014: the timeout is off before the commit, and a
 * cancel arriving while the session waits for its next command is ignored). Not the errors that end the session (57P01–57P05, class 08): the
 * server or a pooler sends them whenever the session ends, after a commit too.
 */
const REFUSED_WHILE_RUNNING = /^(?:40[0-9A-Z]{3}|23[0-9A-Z]{3}|55P03|57014)$/;
/** Statements tried at a known head before the locked path: the remembered one, then the one the first found. */
const AT_HEAD_ATTEMPTS = 2;

export function createAuditQueue(deps: { db: Db; kind: DatabaseKind; audit: AuditWriter }): AuditQueue {
  let queue: Batch | undefined;
  let flushing = false;
  /**
   * `UPDATE secrets SET last_used_at … WHERE id IN (n ids)`, compiled once per n. On
   * PostgreSQL the rows are locked in id order first (`FOR NO KEY UPDATE`, the lock the
   * UPDATE takes anyway), as the one-statement append does
   * (`appendAtHead`): two batches touching the same secrets never wait on each other in a circle.
   */
  const touchShapes = boundQueryShapes<number>();
  const touch = (now: string, ids: readonly string[]): CompiledQuery =>
    touchShapes(ids.length, (slot) => {
      const listed = ids.map((_, i) => slot(i + 1));
      return deps.db
        .updateTable('secrets')
        .set({ last_used_at: slot(0) })
        .where(
          'id',
          'in',
          deps.kind === 'postgres'
            ? deps.db.selectFrom('secrets').select('id').where('id', 'in', listed).orderBy('id').forNoKeyUpdate()
            : listed,
        );
    })([now, ...ids]);

  function nextBatch(): Batch {
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { entries: [], secretsUsed: new Set(), alongside: [], locks: new Set(), done, resolve, reject };
  }

  /**
   * PostgreSQL: where this server last left each chain it appended to. A
   * batch of one chain whose head is known commits in one statement (see
   * `appendAtHead`) instead of a transaction of five round trips; a head
   * moved by anyone else (another server, a change) fails the compare, the
   * batch tries once more at the head that statement found, then takes the
   * locked path, which learns the head anew.
   */
  const knownHeads = new Map<string, ChainHead>();
  const remember = (chain: string, head: ChainHead) => {
    if (knownHeads.size >= MAX_KNOWN_HEADS && !knownHeads.has(chain)) knownHeads.clear();
    knownHeads.set(chain, head);
  };

  /**
   * The batch in one statement at its chain's known head, or at the head
   * that statement found if another server had moved it (two statements);
   * false → take the locked path.
   */
  async function appendAtKnownHead(batch: Batch, ids: readonly string[], now: string): Promise<boolean> {
    const appendAtHead = deps.audit.appendAtHead;
    const first = batch.entries[0];
    if (!appendAtHead || !first) return false;
    const chain = chainOf(first.input);
    let head = knownHeads.get(chain);
    if (
      !head ||
      batch.alongside.length > 0 ||
      ids.length > MAX_IDS ||
      batch.entries.some((e) => chainOf(e.input) !== chain) ||
      entriesMoveEpoch(batch.entries)
    ) {
      return false;
    }
    try {
      for (let attempt = 0; attempt < AT_HEAD_ATTEMPTS && head; attempt++) {
        const answer = await appendAtHead(deps.db, chain, head, batch.entries, { now, secretIds: ids });
        if (answer.appended) {
          remember(chain, answer.head);
          return true;
        }
        // The same head again: it moved while the statement waited for it, and the snapshot
        // could not see where to. Only the locked path can tell.
        if (answer.current?.seq === head.seq && answer.current.hash === head.hash) break;
        head = answer.current;
      }
    } catch (error) {
      // PostgreSQL refused the statement while it ran (see REFUSED_WHILE_RUNNING): being one
      // autocommitted statement, it wrote nothing, and the locked path may succeed. Anything
      // else leaves it unknown whether it committed — a lost connection, and errors that end
      // the session (57P01 from pg_terminate_backend, class 08 from a pooler), which may come
      // after the commit, in place of the reply: appending again could record the batch
      // twice, so the batch fails, as it does when a locked path's COMMIT is lost.
      if (!(error instanceof pgDriver().DatabaseError) || !REFUSED_WHILE_RUNNING.test(error.code ?? '')) {
        knownHeads.delete(chain);
        throw error;
      }
    }
    knownHeads.delete(chain);
    return false;
  }

  async function flush(): Promise<void> {
    while (queue) {
      const batch = queue;
      queue = undefined;
      try {
        // Sorted: chunks of a long list lock in the same order in every batch.
        const ids = [...batch.secretsUsed].sort();
        const now = nowIso();
        if (!(await appendAtKnownHead(batch, ids, now))) {
          const heads = await deps.db.transaction().execute(async (trx) => {
            if (deps.kind === 'postgres') {
              for (const key of [...batch.locks].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
                await sql`select pg_advisory_xact_lock(${key.toString()}::bigint)`.execute(trx);
              }
            }
            for (let i = 0; i < ids.length; i += MAX_IDS) {
              await trx.executeQuery(touch(now, ids.slice(i, i + MAX_IDS)));
            }
            for (const write of batch.alongside) await write(trx);
            return deps.audit.many(trx, batch.entries);
          });
          for (const [chain, head] of heads) remember(chain, head);
        }
        batch.resolve();
      } catch (error) {
        batch.reject(error);
      }
    }
    flushing = false;
  }

  return {
    append(entries, writes = {}) {
      const secretsUsed = writes.secretsUsed ?? [];
      if (entries.length === 0 && secretsUsed.length === 0 && !writes.alongside) return Promise.resolve();
      queue ??= nextBatch();
      const batch = queue;
      batch.entries.push(...entries);
      for (const id of secretsUsed) batch.secretsUsed.add(id);
      if (writes.alongside) batch.alongside.push(writes.alongside);
      for (const key of writes.locks ?? []) batch.locks.add(key);
      // The flush starts on the next turn of the event loop, so every caller
      // finishing in this turn joins the same transaction.
      if (!flushing) {
        flushing = true;
        setImmediate(() => void flush());
      }
      return batch.done;
    },
  };
}
