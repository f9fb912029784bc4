import { describe, expect, it } from 'vitest';
import { createPageCache } from './page-cache.js';

const body = (text: string, size = text.length) => Buffer.from(text.padEnd(size, '.'));
const at = (seq: number, epoch = 1) => ({ epoch, seq });

describe('page cache', () => {
  it('answers only for exactly the head a page was stored at', () => {
    const pages = createPageCache(4096);
    pages.set('ws_a', at(5), 'k', body('five'));
    expect(pages.get('ws_a', at(5), 'k')?.toString()).toBe('five');
    expect(pages.get('ws_a', at(6), 'k')).toBeUndefined();
    expect(pages.get('ws_a', at(5, 2), 'k')).toBeUndefined();
    expect(pages.get('ws_a', at(5), 'other')).toBeUndefined();
    expect(pages.get('ws_b', at(5), 'k')).toBeUndefined();
  });

  it('keeps a newer page when a slower request stores an older one, and replaces an older one', () => {
    const pages = createPageCache(4096);
    pages.set('ws', at(7), 'k', body('seven'));
    pages.set('ws', at(6), 'k', body('six'));
    expect(pages.get('ws', at(7), 'k')?.toString()).toBe('seven');
    expect(pages.get('ws', at(6), 'k')).toBeUndefined();
    pages.set('ws', at(8), 'k', body('eight'));
    expect(pages.get('ws', at(8), 'k')?.toString()).toBe('eight');
  });

  it('stays within its byte budget, dropping the least recently used page first', () => {
    // Each page costs its body, its key and a fixed overhead: 2,000 + ~10 + 256 here, so four fit in 10,000.
    const pages = createPageCache(10_000);
    for (const key of ['p1', 'p2', 'p3', 'p4']) pages.set('ws', at(1), key, body(key, 2000));
    expect(pages.get('ws', at(1), 'p1')).toBeDefined(); // p1 is now the most recent
    pages.set('ws', at(1), 'p5', body('p5', 2000));
    expect(pages.get('ws', at(1), 'p2')).toBeUndefined();
    for (const key of ['p1', 'p3', 'p4', 'p5']) expect(pages.get('ws', at(1), key), key).toBeDefined();
    // A page costing more than a quarter of the budget is never kept.
    pages.set('ws', at(1), 'big', body('big', 2300));
    expect(pages.get('ws', at(1), 'big')).toBeUndefined();
    expect(pages.get('ws', at(1), 'p5')).toBeDefined();
  });

  it('counts keys and bookkeeping too: many tiny pages (a search per keystroke) stay within the budget', () => {
    const pages = createPageCache(10_000);
    const keys = Array.from({ length: 1000 }, (_, i) => `secrets\nfalse\n50\n${'q'.repeat(60)}${i}\n`);
    for (const key of keys) pages.set('ws_0123456789abcdefghijklmnop', at(1), key, body('{"items":[]}'));
    const kept = keys.filter((key) => pages.get('ws_0123456789abcdefghijklmnop', at(1), key) !== undefined);
    // ~12 + 2 × ~100 + 256 bytes each: about 20 fit in 10,000 bytes, not 1,000.
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThanOrEqual(25);
    expect(kept).toEqual(keys.slice(-kept.length)); // the most recent ones
  });

  it('keeps nothing when its budget is 0 (HUSH_LIST_CACHE_MB=0)', () => {
    const pages = createPageCache(0);
    pages.set('ws', at(1), 'k', body('tiny'));
    expect(pages.get('ws', at(1), 'k')).toBeUndefined();
  });
});
