/**
 * Workspace data keys (DEKs): created and wrapped by the root key provider,
 * stored wrapped, and unwrapped on demand into a small in-memory cache. The
 * cache holds keys, never secret values (SPEC §3).
 */
import { sql, type Transaction } from 'kysely';
import { CryptoError } from '../../app/errors.js';
import { nowIso } from '../../app/ids.js';
import { generateDataKey, unwrapWorkspaceKey, wrapWorkspaceKey } from '../../crypto/envelope.js';
import type { RootKeyProvider } from '../../crypto/root-keys.js';
import type { DatabaseKind, Db } from '../../db/database.js';
import type { Database } from '../../db/schema.js';

/**
 * The PostgreSQL advisory lock that keeps wrapping apart from root key
 * retirement: every transaction that wraps a workspace key holds it shared
 * until it commits; `hush keys retire-root` holds it exclusively while it
 * checks which root keys are in use and rewrites the key file
 * (pauseWorkspaceKeyWraps). On SQLite the write lock does the same.
 */
export const WORKSPACE_KEY_WRAPS_LOCK = 'hush:workspace-key-wraps';

export interface WorkspaceKeyring {
  /**
   * Creates, wraps and stores key `version` of a workspace inside `trx`, a
   * write transaction: until it commits, no root key retirement can check the
   * key file against the stored keys (PostgreSQL: the wrap lock, taken shared
   * before wrapping; SQLite: the write lock, held since BEGIN IMMEDIATE).
   */
  createKey(trx: Transaction<Database>, workspaceId: string, version: number): Promise<void>;
  /**
   * The unwrapped key, from cache or by unwrapping the stored one. Inside a
   * transaction pass it as `executor`: SQLite has one connection, so a query
   * outside the open transaction would wait for it forever.
   */
  dataKey(workspaceId: string, version: number, executor?: Db): Promise<Buffer>;
  /** Drops cached keys (all, or one workspace's), e.g. after rotation. */
  forget(workspaceId?: string): void;
  /** Stops the idle sweep and drops every cached key. */
  close(): void;
}

/**
 * How long an unwrapped key stays in memory unused. A workspace nobody uses —
 * deleted, purged by another server, or just idle — does not keep its keys in
 * this process's memory for ever; the next use unwraps again (one row read and
 * one unwrap).
 */
export const KEY_IDLE_MS = 15 * 60_000;

export function createWorkspaceKeyring(
  db: Db,
  dbKind: DatabaseKind,
  rootKeys: RootKeyProvider,
  maxEntries = 10_000,
  idleMs = KEY_IDLE_MS,
): WorkspaceKeyring {
  /** Insertion order is eviction order when full; `usedAt` is when the key was last handed out. */
  const cache = new Map<string, { dek: Buffer; usedAt: number }>();
  const cacheKey = (ws: string, v: number) => `${ws}:${v}`;
  const sweep = setInterval(
    () => {
      const before = Date.now() - idleMs;
      for (const [k, entry] of cache) if (entry.usedAt < before) cache.delete(k);
    },
    Math.max(10, Math.min(idleMs, 60_000)),
  );
  sweep.unref();

  return {
    async createKey(trx, workspaceId, version) {
      // Before the wrap: the root key it picks is then either one a retirement already
      // checked (the file was rewritten before this lock was granted, and the provider
      // rereads it) or one no retirement can check until this transaction has committed.
      if (dbKind === 'postgres')
        await sql`select pg_advisory_xact_lock_shared(hashtext(${WORKSPACE_KEY_WRAPS_LOCK}))`.execute(trx);
      const dek = generateDataKey();
      const wrapped = await wrapWorkspaceKey(rootKeys, dek, { workspaceId, keyVersion: version });
      await trx
        .insertInto('workspace_keys')
        .values({
          workspace_id: workspaceId,
          version,
          root_key_id: wrapped.rootKeyId,
          wrapped_key: wrapped.ciphertext,
          created_at: nowIso(),
        })
        .execute();
      dek.fill(0);
    },

    async dataKey(workspaceId, version, executor = db) {
      const key = cacheKey(workspaceId, version);
      const hit = cache.get(key);
      if (hit) {
        hit.usedAt = Date.now();
        return hit.dek;
      }
      const row = await executor
        .selectFrom('workspace_keys')
        .select(['root_key_id', 'wrapped_key'])
        .where('workspace_id', '=', workspaceId)
        .where('version', '=', version)
        .executeTakeFirst();
      if (!row)
        throw new CryptoError('decrypt_failed', `workspace key version ${version} of ${workspaceId} does not exist`);
      const dek = await unwrapWorkspaceKey(
        rootKeys,
        { rootKeyId: row.root_key_id, ciphertext: Buffer.from(row.wrapped_key) },
        { workspaceId, keyVersion: version },
      );
      if (cache.size >= maxEntries) {
        const oldest = cache.keys().next().value;
        if (oldest !== undefined) cache.delete(oldest);
      }
      cache.set(key, { dek, usedAt: Date.now() });
      return dek;
    },

    forget(workspaceId) {
      if (workspaceId === undefined) cache.clear();
      else for (const k of cache.keys()) if (k.startsWith(`${workspaceId}:`)) cache.delete(k);
    },

    close() {
      clearInterval(sweep);
      cache.clear();
    },
  };
}
