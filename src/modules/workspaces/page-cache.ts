/**
 * Serialised list pages (metadata only, as the presenter built them; UTF-8
 * bytes, so they are not encoded again per request), kept
 * per workspace and reused while the workspace's audit chain has not moved.
 *
 * Every write to what a list shows is audited in the same transaction —
 * changes move the chain's sequence and epoch, and a use (`secret.used`,
 * which moves `lastUsedAt`) appends an event too — so a page stored at
 * (epoch, seq) is exactly what the database would answer for any request
 * that read that head: the head is read before the page is loaded, so a
 * page is never older than the head it is stored under. A request that
 * reads a newer head misses and reloads; servers share nothing and need no
 * broadcast. Callers authorise before asking: the cache holds bodies, not
 * decisions.
 */
import type { WorkspaceHead } from './workspace-cache.js';

interface Page extends WorkspaceHead {
  body: Buffer;
}

export interface PageCache {
  /** The body stored for `key` in the workspace at exactly `head`, if any. */
  get(workspaceId: string, head: WorkspaceHead, key: string): Buffer | undefined;
  /** Stores `body` for `key` at `head` (a newer page already stored is kept). */
  set(workspaceId: string, head: WorkspaceHead, key: string, body: Buffer): void;
}

/** A cache of at most `maxBytes` of bodies (HUSH_LIST_CACHE_MB; 0 keeps nothing). */
export function createPageCache(maxBytes: number): PageCache {
  const pages = new Map<string, Page>();
  let bytes = 0;

  function drop(id: string, page: Page): void {
    pages.delete(id);
    bytes -= page.body.length;
  }

  return {
    get(workspaceId, head, key) {
      const id = `${workspaceId}\n${key}`;
      const page = pages.get(id);
      if (!page || page.seq !== head.seq || page.epoch !== head.epoch) return undefined;
      // Most recently used last.
      pages.delete(id);
      pages.set(id, page);
      return page.body;
    },

    set(workspaceId, head, key, body) {
      if (body.length > maxBytes / 4) return; // also: a cache of 0 bytes keeps nothing
      const id = `${workspaceId}\n${key}`;
      const existing = pages.get(id);
      if (existing) {
        if (existing.seq > head.seq) return;
        drop(id, existing);
      }
      pages.set(id, { epoch: head.epoch, seq: head.seq, body });
      bytes += body.length;
      for (const [oldest, page] of pages) {
        if (bytes <= maxBytes) break;
        drop(oldest, page);
      }
    },
  };
}
