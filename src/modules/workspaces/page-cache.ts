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
  /** What the entry holds in memory, key and bookkeeping included (see cost). */
  cost: number;
}

/** Map entry, object and Buffer bookkeeping per page, on top of its key and body. */
const ENTRY_OVERHEAD = 256;

/** Bytes an entry holds: its body, its key (UTF-16) and a fixed overhead, so many tiny pages stay bounded. */
function cost(id: string, body: Buffer): number {
  return body.length + id.length * 2 + ENTRY_OVERHEAD;
}

export interface PageCache {
  /** The body stored for `key` in the workspace at exactly `head`, if any. */
  get(workspaceId: string, head: WorkspaceHead, key: string): Buffer | undefined;
  /** Stores `body` for `key` at `head` (a newer page already stored is kept). */
  set(workspaceId: string, head: WorkspaceHead, key: string, body: Buffer): void;
}

/** A cache of at most `maxBytes` (bodies, keys and bookkeeping; HUSH_LIST_CACHE_MB; 0 keeps nothing). */
export function createPageCache(maxBytes: number): PageCache {
  const pages = new Map<string, Page>();
  let bytes = 0;

  function drop(id: string, page: Page): void {
    pages.delete(id);
    bytes -= page.cost;
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
      const id = `${workspaceId}\n${key}`;
      const size = cost(id, body);
      if (size > maxBytes / 4) return; // also: a cache of 0 bytes keeps nothing
      const existing = pages.get(id);
      if (existing) {
        if (existing.seq > head.seq) return;
        drop(id, existing);
      }
      pages.set(id, { epoch: head.epoch, seq: head.seq, body, cost: size });
      bytes += size;
      for (const [oldest, page] of pages) {
        if (bytes <= maxBytes) break;
        drop(oldest, page);
      }
    },
  };
}
