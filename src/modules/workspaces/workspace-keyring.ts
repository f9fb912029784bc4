/**
 * Workspace data keys (DEKs): created and wrapped by the root key provider,
 * stored wrapped, and unwrapped on demand into a small in-memory cache. The
 * cache holds keys, never secret values (SPEC §3).
 */
import type { Transaction } from 'kysely';
import { CryptoError } from '../../app/errors.js';
import { nowIso } from '../../app/ids.js';
import { generateDataKey, unwrapWorkspaceKey, wrapWorkspaceKey } from '../../crypto/envelope.js';
import type { RootKeyProvider } from '../../crypto/root-keys.js';
import type { Db } from '../../db/database.js';
import type { Database } from '../../db/schema.js';

export interface WorkspaceKeyring {
  /** Creates, wraps and stores key `version` of a workspace (inside `trx`). */
  createKey(trx: Transaction<Database> | Db, workspaceId: string, version: number): Promise<void>;
  /**
   * The unwrapped key, from cache or by unwrapping the stored one. Inside a
   * transaction pass it as `executor`: SQLite has one connection, so a query
   * outside the open transaction would wait for it forever.
   */
  dataKey(workspaceId: string, version: number, executor?: Db): Promise<Buffer>;
  /** Drops cached keys (all, or one workspace's), e.g. after rotation. */
  forget(workspaceId?: string): void;
}

export function createWorkspaceKeyring(db: Db, rootKeys: RootKeyProvider, maxEntries = 10_000): WorkspaceKeyring {
  const cache = new Map<string, Buffer>();
  const cacheKey = (ws: string, v: number) => `${ws}:${v}`;

  return {
    async createKey(trx, workspaceId, version) {
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
      if (hit) return hit;
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
      cache.set(key, dek);
      return dek;
    },

    forget(workspaceId) {
      if (workspaceId === undefined) cache.clear();
      else for (const k of cache.keys()) if (k.startsWith(`${workspaceId}:`)) cache.delete(k);
    },
  };
}
