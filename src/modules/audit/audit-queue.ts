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

import type { CompiledQuery, Transaction } from 'kysely';
import { nowIso } from '../../app/ids.js';
import { boundQueryShapes, type Db } from '../../db/database.js';
import type { Database } from '../../db/schema.js';
import type { AuditEntry, AuditWriter } from './audit-log.js';

export interface QueuedWrites {
  /** Secrets whose `lastUsedAt` becomes now. */
  secretsUsed?: readonly string[];
  /** Inserts that belong with the events (a run record); they run in the batch's transaction. */
  alongside?: (trx: Transaction<Database>) => Promise<void>;
}

export interface AuditQueue {
  /** Appends `entries` (and `writes`) in the next shared transaction; resolves once committed. */
  append(entries: readonly AuditEntry[], writes?: QueuedWrites): Promise<void>;
}

interface Batch {
  entries: AuditEntry[];
  secretsUsed: Set<string>;
  alongside: ((trx: Transaction<Database>) => Promise<void>)[];
  done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

/** Secret ids per UPDATE … WHERE id IN (…). */
const MAX_IDS = 500;

export function createAuditQueue(deps: { db: Db; audit: AuditWriter }): AuditQueue {
  let queue: Batch | undefined;
  let flushing = false;
  /** `UPDATE secrets SET last_used_at … WHERE id IN (n ids)`, compiled once per n. */
  const touchShapes = boundQueryShapes<number>();
  const touch = (now: string, ids: readonly string[]): CompiledQuery =>
    touchShapes(ids.length, (slot) =>
      deps.db
        .updateTable('secrets')
        .set({ last_used_at: slot(0) })
        .where(
          'id',
          'in',
          ids.map((_, i) => slot(i + 1)),
        ),
    )([now, ...ids]);

  function nextBatch(): Batch {
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { entries: [], secretsUsed: new Set(), alongside: [], done, resolve, reject };
  }

  async function flush(): Promise<void> {
    while (queue) {
      const batch = queue;
      queue = undefined;
      try {
        await deps.db.transaction().execute(async (trx) => {
          const ids = [...batch.secretsUsed];
          const now = nowIso();
          for (let i = 0; i < ids.length; i += MAX_IDS) {
            await trx.executeQuery(touch(now, ids.slice(i, i + MAX_IDS)));
          }
          for (const write of batch.alongside) await write(trx);
          await deps.audit.many(trx, batch.entries);
        });
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
