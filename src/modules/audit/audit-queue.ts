/**
 * Audit events that record a read or a use rather than a change —
 * `secret.used` (one per secret per execution, with the secrets' `lastUsedAt`),
 * `secret.revealed`, `run.started` — appended with group commit: each caller
 * waits until its events are committed (a reveal answers only then), but
 * callers arriving in the same turn of the event loop, or while a commit is
 * under way, share the next transaction: one chain-head lock and one commit
 * for many requests instead of one each. On PostgreSQL that is what keeps a
 * busy workspace's chain head from serialising every request.
 */
import { nowIso } from '../../app/ids.js';
import type { Db } from '../../db/database.js';
import type { AuditEntry, AuditWriter } from './audit-log.js';

export interface AuditQueue {
  /** Appends `entries`, and sets `lastUsedAt` of `secretsUsed`; resolves once committed. */
  append(entries: readonly AuditEntry[], secretsUsed?: readonly string[]): Promise<void>;
}

interface Batch {
  entries: AuditEntry[];
  secretsUsed: Set<string>;
  done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

/** Secret ids per UPDATE … WHERE id IN (…). */
const MAX_IDS = 500;

export function createAuditQueue(deps: { db: Db; audit: AuditWriter }): AuditQueue {
  let queue: Batch | undefined;
  let flushing = false;

  function nextBatch(): Batch {
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { entries: [], secretsUsed: new Set(), done, resolve, reject };
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
            await trx
              .updateTable('secrets')
              .set({ last_used_at: now })
              .where('id', 'in', ids.slice(i, i + MAX_IDS))
              .execute();
          }
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
    append(entries, secretsUsed = []) {
      if (entries.length === 0 && secretsUsed.length === 0) return Promise.resolve();
      queue ??= nextBatch();
      const batch = queue;
      batch.entries.push(...entries);
      for (const id of secretsUsed) batch.secretsUsed.add(id);
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
