/**
 * Database-backed sessions and personal API tokens. Only sha256 hashes of
 * the tokens are stored; a stolen database yields no usable credential.
 */
import type { Config } from '../../app/config.js';
import { hashToken, newToken, nowIso, safeEqual } from '../../app/ids.js';
import type { Db } from '../../db/database.js';

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
  resolveApiToken(token: string): Promise<{ userId: string; tokenId: string; workspaceId: string } | null>;
}

export function createSessionStore(
  db: Db,
  config: Pick<Config, 'sessionIdleMs' | 'sessionAbsoluteMs'>,
  clock: () => number = Date.now,
): SessionStore {
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
      const row = await db
        .selectFrom('api_tokens')
        .select(['id', 'user_id', 'workspace_id', 'expires_at', 'last_used_at'])
        .where('token_hash', '=', hashToken(token))
        .executeTakeFirst();
      if (!row) return null;
      const now = clock();
      if (row.expires_at <= nowIso(now)) return null;
      if (!row.last_used_at || now - Date.parse(row.last_used_at) >= TOUCH_INTERVAL_MS) {
        await db
          .updateTable('api_tokens')
          .set({ last_used_at: nowIso(now) })
          .where('id', '=', row.id)
          .execute();
      }
      return { userId: row.user_id, tokenId: row.id, workspaceId: row.workspace_id };
    },
  };
}
