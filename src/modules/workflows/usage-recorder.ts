/**
 * Records secret use (`lastUsedAt` and one `secret.used` audit event per
 * secret per execution) with group commit: every execution waits until its
 * events are committed, but executions that finish while a commit is under
 * way, or in the same turn of the event loop, share the next transaction —
 * one chain-head lock and one commit for many requests instead of one each.
 */
import type { AppContext } from '../../app/context.js';
import { nowIso } from '../../app/ids.js';
import type { AuditContext } from '../audit/audit-log.js';

export interface SecretUse {
  workspaceId: string;
  secretId: string;
  name: string;
  blockId: string;
  host: string;
  executionId: string;
  audit: AuditContext;
}

export interface UsageRecorder {
  record(uses: SecretUse[]): Promise<void>;
}

interface Pending {
  uses: SecretUse[];
  done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

const MAX_BATCH = 500;

export function createUsageRecorder(deps: Pick<AppContext, 'db' | 'audit'>): UsageRecorder {
  let queue: Pending | undefined;
  let flushing = false;

  function nextBatch(): Pending {
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { uses: [], done, resolve, reject };
  }

  async function flush(): Promise<void> {
    flushing = true;
    while (queue) {
      const batch = queue;
      queue = undefined;
      try {
        const now = nowIso();
        await deps.db.transaction().execute(async (trx) => {
          const secretIds = [...new Set(batch.uses.map((u) => u.secretId))];
          for (let i = 0; i < secretIds.length; i += MAX_BATCH) {
            await trx
              .updateTable('secrets')
              .set({ last_used_at: now })
              .where('id', 'in', secretIds.slice(i, i + MAX_BATCH))
              .execute();
          }
          await deps.audit.many(
            trx,
            batch.uses.map((u) => ({
              ctx: u.audit,
              input: {
                workspaceId: u.workspaceId,
                action: 'secret.used',
                targetType: 'secret',
                targetId: u.secretId,
                data: { name: u.name, blockId: u.blockId, host: u.host, executionId: u.executionId },
              },
            })),
          );
        });
        batch.resolve();
      } catch (error) {
        batch.reject(error);
      }
    }
    flushing = false;
  }

  return {
    record(uses) {
      if (uses.length === 0) return Promise.resolve();
      queue ??= nextBatch();
      const batch = queue;
      batch.uses.push(...uses);
      // The flush starts on the next turn of the event loop, so every execution
      // finishing in this turn joins the same transaction.
      if (!flushing) {
        flushing = true;
        setImmediate(() => void flush());
      }
      return batch.done;
    },
  };
}
