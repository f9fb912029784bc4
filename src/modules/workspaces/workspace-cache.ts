/**
 * What requests re-read on the hot path — an API token's row, a member's
 * role and permissions, a workspace's custom variables, a secret's row and
 * its *ciphertext* — cached per workspace and validated by the workspace's
 * change epoch.
 *
 * The epoch lives next to the audit chain head (`audit_heads.epoch`) and the
 * audit writer increments it in the same transaction as every audited change
 * (everything but pure reads and uses, see `audit-log.ts`). Every change to
 * what is cached here is audited, so a request that reads the epoch (one
 * point read, the only query on a warm path) sees every change committed
 * before it, made by this process, another server or the CLI: no cache
 * entry outlives the change that made it stale, on any node, and there is
 * nothing to broadcast. Plaintext is never cached: secret entries hold the
 * ciphertext, decrypted per execution.
 */
import { boundQuery, type Db } from '../../db/database.js';

/** Workspaces whose entries are kept; least recently used first out. */
const MAX_WORKSPACES = 10_000;
/** Entries per workspace (tokens, members, secrets, variables). */
const MAX_ENTRIES_PER_WORKSPACE = 2_000;

interface WorkspaceEntries {
  epoch: number;
  entries: Map<string, unknown>;
}

/** Where a workspace stands now: its change epoch and the last sequence number of its audit chain. */
export interface WorkspaceHead {
  /** Audited changes so far (0 before the first). */
  epoch: number;
  /**
   * Every audit event so far, uses and reads included (`secret.used` moves a
   * secret's `lastUsedAt` in the event's transaction): what a cache of
   * anything that shows `lastUsedAt` is validated against.
   */
  seq: number;
}

export interface WorkspaceCache {
  /** The workspace's change epoch and audit sequence as committed now; one point read. */
  head(workspaceId: string): Promise<WorkspaceHead>;
  /** The workspace's change epoch as committed now (0 before its first audited change). */
  epoch(workspaceId: string): Promise<number>;
  /**
   * The value cached under `key` for the workspace at `epoch`, or `load()`ed
   * and cached. Entries of an older epoch are dropped first; a caller holding
   * an epoch older than the cache's loads without caching.
   */
  get<T>(workspaceId: string, epoch: number, key: string, load: () => Promise<T>): Promise<T>;
  /** Drops everything (tests, restore). */
  clear(): void;
}

/** Workspaces per shared head read (`in (…)` list). */
const MAX_SHARED_READ = 500;

interface HeadWaiter {
  resolve(head: WorkspaceHead): void;
  reject(error: unknown): void;
}

const toHead = (row: { epoch: number | string; seq: number | string } | undefined): WorkspaceHead =>
  row ? { epoch: Number(row.epoch), seq: Number(row.seq) } : { epoch: 0, seq: 0 };

export function createWorkspaceCache(
  db: Db,
  options: {
    workspaces?: number;
    entriesPerWorkspace?: number;
  } = {},
): WorkspaceCache {
  const maxWorkspaces = options.workspaces ?? MAX_WORKSPACES;
  const maxEntries = options.entriesPerWorkspace ?? MAX_ENTRIES_PER_WORKSPACE;
  const workspaces = new Map<string, WorkspaceEntries>();
  const headQuery = boundQuery((slot) =>
    db.selectFrom('audit_heads').select(['epoch', 'seq']).where('chain', '=', slot(0)),
  );
  const readHead = async (chain: string) => (await db.executeQuery(headQuery([chain]))).rows;
  /** Requests waiting for the next shared head read, by workspace. */
  let gathering: Map<string, HeadWaiter[]> | undefined;

  async function readShared(batch: Map<string, HeadWaiter[]>): Promise<void> {
    try {
      const ids = [...batch.keys()];
      const heads = new Map<string, WorkspaceHead>();
      if (ids.length === 1) {
        const [row] = await readHead(ids[0] as string);
        heads.set(ids[0] as string, toHead(row));
      } else {
        for (let i = 0; i < ids.length; i += MAX_SHARED_READ) {
          const rows = await db
            .selectFrom('audit_heads')
            .select(['chain', 'epoch', 'seq'])
            .where('chain', 'in', ids.slice(i, i + MAX_SHARED_READ))
            .execute();
          for (const row of rows) heads.set(row.chain, toHead(row));
        }
      }
      for (const [id, waiters] of batch) for (const w of waiters) w.resolve(heads.get(id) ?? toHead(undefined));
    } catch (error) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(error);
    }
  }

  /**
   * Requests that ask for heads in the same turn of the event loop share one
   * query, sent after the last of them asked (so it sees every commit any of
   * them could have to see). On PostgreSQL a read is a network round trip;
   * on SQLite each one takes and releases the WAL read lock (file-lock
   * system calls, ~20 µs under load here).
   */
  function sharedHead(workspaceId: string): Promise<WorkspaceHead> {
    return new Promise((resolve, reject) => {
      if (!gathering) {
        const batch = new Map<string, HeadWaiter[]>();
        gathering = batch;
        // Sent once this turn's requests have all asked; a request arriving later waits for the next read.
        setImmediate(() => {
          gathering = undefined;
          void readShared(batch);
        });
      }
      const waiters = gathering.get(workspaceId);
      if (waiters) waiters.push({ resolve, reject });
      else gathering.set(workspaceId, [{ resolve, reject }]);
    });
  }

  /** The workspace touched last: already the most recent, so not moved again (a Map delete + set per lookup). */
  let newest: WorkspaceEntries | undefined;

  function entriesAt(workspaceId: string, epoch: number): Map<string, unknown> | undefined {
    let ws = workspaces.get(workspaceId);
    if (ws && ws.epoch > epoch) return undefined;
    if (ws && ws === newest && ws.epoch === epoch) return ws.entries;
    if (ws) workspaces.delete(workspaceId);
    if (!ws || ws.epoch < epoch) ws = { epoch, entries: new Map() };
    workspaces.set(workspaceId, ws);
    newest = ws;
    if (workspaces.size > maxWorkspaces) workspaces.delete(workspaces.keys().next().value as string);
    return ws.entries;
  }

  return {
    head: sharedHead,

    async epoch(workspaceId) {
      return (await sharedHead(workspaceId)).epoch;
    },

    async get<T>(workspaceId: string, epoch: number, key: string, load: () => Promise<T>): Promise<T> {
      const entries = entriesAt(workspaceId, epoch);
      if (entries?.has(key)) return entries.get(key) as T;
      const value = await load();
      // The epoch may have moved on while loading; only keep what is still current.
      if (entries && workspaces.get(workspaceId)?.entries === entries) {
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as string);
        entries.set(key, value);
      }
      return value;
    },

    clear: () => {
      workspaces.clear();
      newest = undefined;
    },
  };
}
