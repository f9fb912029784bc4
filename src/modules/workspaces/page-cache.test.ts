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
    const pages = createPageCache(1000);
    for (const key of ['p1', 'p2', 'p3', 'p4']) pages.set('ws', at(1), key, body(key, 240));
    expect(pages.get('ws', at(1), 'p1')).toBeDefined(); // p1 is now the most recent
    pages.set('ws', at(1), 'p5', body('p5', 240));
    expect(pages.get('ws', at(1), 'p2')).toBeUndefined();
    for (const key of ['p1', 'p3', 'p4', 'p5']) expect(pages.get('ws', at(1), key), key).toBeDefined();
    // A page larger than a quarter of the budget is never kept.
    pages.set('ws', at(1), 'big', body('big', 251));
    expect(pages.get('ws', at(1), 'big')).toBeUndefined();
    expect(pages.get('ws', at(1), 'p5')).toBeDefined();
  });

  it('keeps nothing when its budget is 0 (HUSH_LIST_CACHE_MB=0)', () => {
    const pages = createPageCache(0);
    pages.set('ws', at(1), 'k', body('tiny'));
    expect(pages.get('ws', at(1), 'k')).toBeUndefined();
  });
});
