/**
 * The settings Hush's SQLite connection runs with (src/db/database.ts), read
 * back from a real database file: write-ahead log, NORMAL sync (durable at
 * every checkpoint, no fsync per commit), foreign keys enforced, and a busy
 * timeout for the CLI's concurrent writers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { type OpenDatabase, openDatabase } from '../../src/db/database.js';

const dirs: string[] = [];
const opened: OpenDatabase[] = [];
afterEach(async () => {
  for (const d of opened.splice(0)) await d.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function pragma(database: OpenDatabase, name: string): Promise<unknown> {
  const { rows } = await sql<Record<string, unknown>>`${sql.raw(`pragma ${name}`)}`.execute(database.db);
  return Object.values(rows[0] ?? {})[0];
}

describe('the SQLite connection', () => {
  it('runs with WAL, NORMAL sync, foreign keys and a busy timeout', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-sqlite-'));
    dirs.push(dir);
    const database = openDatabase({ kind: 'sqlite', file: path.join(dir, 'hush.db') });
    opened.push(database);
    expect(await pragma(database, 'journal_mode')).toBe('wal');
    expect(await pragma(database, 'synchronous')).toBe(1);
    expect(await pragma(database, 'foreign_keys')).toBe(1);
    expect(await pragma(database, 'busy_timeout')).toBe(5000);
  });
});
