/**
 * Database-backed sessions and personal API tokens. Only sha256 hashes of
 * the tokens are stored; a stolen database yields no usable credential.
 */
import type { Config } from '../../app/config.js';
import { hashToken, newToken, nowIso, safeEqual } from '../../app/ids.js';
import type { Db } from '../../db/database.js';
import type { WorkspaceCache } from '../workspaces/workspace-cache.js';

export const API_TOKEN_PREFIX = 'hush_';
/** Idle-expiry refreshes are written at most this often per session. */
const TOUCH_INTERVAL_MS = 60_000;

export interface NewSession {
  sessionToken: string;
  csrfToken: string;
}

export interface SessionStore {
  /** `executor` lets the caller create the session inside its transaction. */
  create(userId: string, executor?: Db): Promise<NewSession>;
  /** The session's user id, or null when unknown or expired (then deleted). */
  resolve(sessionToken: string): Promise<{ userId: string; sessionHash: string; csrfHash: string } | null>;
  csrfMatches(csrfHash: string, presented: string): boolean;
  destroy(sessionHash: string, executor?: Db): Promise<void>;
  resolveApiToken(token: string): Promise<ResolvedApiToken | null>;
}

export interface ResolvedApiToken {
  userId: string;
  tokenId: string;
  workspaceId: string;
  /** The workspace's change epoch read for this request (see workspace-cache.ts). */
  epoch: number;
  /** The workspace's audit sequence read with it. */
  seq: number;
}

/** Token hashes whose workspace is known (a token's workspace never changes). */
const MAX_KNOWN_TOKENS = 50_000;

export function createSessionStore(
  db: Db,
  config: Pick<Config, 'sessionIdleMs' | 'sessionAbsoluteMs'>,
  cache: WorkspaceCache,
  clock: () => number = Date.now,
): SessionStore {
  const tokenWorkspaces = new Map<string, string>();
  const loadToken = (tokenHash: string) =>
    db
      .selectFrom('api_tokens')
      .select(['id', 'user_id', 'workspace_id', 'expires_at', 'last_used_at'])
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();

  return {
    async create(userId, executor = db) {
      const sessionToken = newToken();
      const csrfToken = newToken();
      const now = clock();
      await executor
        .insertInto('sessions')
        .values({
          id_hash: hashToken(sessionToken),
          user_id: userId,
          csrf_hash: hashToken(csrfToken),
          created_at: nowIso(now),
          last_seen_at: nowIso(now),
          idle_expires_at: nowIso(now + config.sessionIdleMs),
          absolute_expires_at: nowIso(now + config.sessionAbsoluteMs),
        })
        .execute();
      return { sessionToken, csrfToken };
    },

    async resolve(sessionToken) {
      const sessionHash = hashToken(sessionToken);
      const row = await db.selectFrom('sessions').selectAll().where('id_hash', '=', sessionHash).executeTakeFirst();
      if (!row) return null;
      const now = clock();
      const nowText = nowIso(now);
      if (row.idle_expires_at <= nowText || row.absolute_expires_at <= nowText) {
        await db.deleteFrom('sessions').where('id_hash', '=', sessionHash).execute();
        return null;
      }
      if (now - Date.parse(row.last_seen_at) >= TOUCH_INTERVAL_MS) {
        await db
          .updateTable('sessions')
          .set({ last_seen_at: nowText, idle_expires_at: nowIso(now + config.sessionIdleMs) })
          .where('id_hash', '=', sessionHash)
          .execute();
      }
      return { userId: row.user_id, sessionHash, csrfHash: row.csrf_hash };
    },

    csrfMatches(csrfHash, presented) {
      return safeEqual(csrfHash, hashToken(presented));
    },

    async destroy(sessionHash, executor = db) {
      await executor.deleteFrom('sessions').where('id_hash', '=', sessionHash).execute();
    },

    async resolveApiToken(token) {
      if (!token.startsWith(API_TOKEN_PREFIX)) return null;
      const tokenHash = hashToken(token);
      let workspaceId = tokenWorkspaces.get(tokenHash);
      if (workspaceId === undefined) {
        const first = await loadToken(tokenHash);
        if (!first) return null;
        workspaceId = first.workspace_id;
        if (tokenWorkspaces.size >= MAX_KNOWN_TOKENS) tokenWorkspaces.clear();
        tokenWorkspaces.set(tokenHash, workspaceId);
      }
      // The epoch first, then the row: a row is only ever cached under an epoch it is at least as new as.
      const { epoch, seq } = await cache.head(workspaceId);
      const row = await cache.get(workspaceId, epoch, `token:${tokenHash}`, () => loadToken(tokenHash));
      if (!row) return null;
      const now = clock();
      if (row.expires_at <= nowIso(now)) return null;
      if (!row.last_used_at || now - Date.parse(row.last_used_at) >= TOUCH_INTERVAL_MS) {
        row.last_used_at = nowIso(now);
        await db.updateTable('api_tokens').set({ last_used_at: row.last_used_at }).where('id', '=', row.id).execute();
      }
      return { userId: row.user_id, tokenId: row.id, workspaceId: row.workspace_id, epoch, seq };
    },
  };
}
