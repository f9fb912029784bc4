import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import type { Database } from '../../db/schema.js';
import { createWorkspaceCache } from './workspace-cache.js';

const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SQLite(':memory:') }) });
afterAll(() => db.destroy());

/** A loader that counts its calls. */
function loader(value: string) {
  const calls = { n: 0 };
  const load = async () => {
    calls.n += 1;
    return value;
  };
  return { calls, load };
}

describe('the workspace cache', () => {
  it('keeps the workspaces used most recently, however often the newest is looked up', async () => {
    const cache = createWorkspaceCache(db, { workspaces: 2 });
    const a = loader('a');
    const b = loader('b');
    await cache.get('A', 1, 'k', a.load);
    await cache.get('B', 1, 'k', b.load);
    await cache.get('A', 1, 'k', a.load); // A becomes the most recent…
    await cache.get('A', 1, 'k', a.load); // …and stays so
    await cache.get('C', 1, 'k', loader('c').load); // evicts B, the least recent
    expect(await cache.get('A', 1, 'k', a.load)).toBe('a');
    expect(a.calls.n).toBe(1);
    expect(await cache.get('B', 1, 'k', b.load)).toBe('b');
    expect(b.calls.n).toBe(2);
  });

  it('drops the entries of an older epoch, and does not cache for a caller behind the cache', async () => {
    const cache = createWorkspaceCache(db);
    const v1 = loader('v1');
    const v2 = loader('v2');
    expect(await cache.get('A', 1, 'k', v1.load)).toBe('v1');
    expect(await cache.get('A', 1, 'k', v1.load)).toBe('v1');
    expect(v1.calls.n).toBe(1);
    expect(await cache.get('A', 2, 'k', v2.load)).toBe('v2'); // a newer epoch: reloaded
    const stale = loader('stale');
    expect(await cache.get('A', 1, 'k', stale.load)).toBe('stale'); // behind: loads, keeps nothing
    expect(await cache.get('A', 2, 'k', v2.load)).toBe('v2');
    expect(v2.calls.n).toBe(1);
  });
});
