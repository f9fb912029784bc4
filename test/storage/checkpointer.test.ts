/**
 * The SQLite checkpoint helper (src/db/checkpointer.ts), on real database
 * files: a busy writer gets a process that copies the WAL into the database
 * file while the main connection's own checkpoint is only a backstop; it
 * gets nothing of the server's environment; a trickle of writes never starts
 * it; it ends when the WAL stops growing and on close, and when it cannot run
 * the writes go on as before.
 */
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CheckpointerOptions } from '../../src/db/checkpointer.js';
import { type OpenDatabase, openDatabase } from '../../src/db/database.js';

const FAST: CheckpointerOptions = { busyCommitsPerSecond: 5, intervalMs: 20, idleMs: 300 };

let dir = '';
let file = '';
const opened: OpenDatabase[] = [];

function open(checkpoints: CheckpointerOptions): OpenDatabase {
  const database = openDatabase({ kind: 'sqlite', file }, { checkpoints });
  opened.push(database);
  return database;
}

async function writeRows(database: OpenDatabase, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    await database.db.transaction().execute(async (trx) => {
      await sql`insert into notes (id, body) values (${i}, ${`note ${i} ${'x'.repeat(500)}`})`.execute(trx);
    });
  }
}

async function autocheckpoint(database: OpenDatabase): Promise<number> {
  const { rows } = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(database.db);
  return Number(rows[0]?.wal_autocheckpoint);
}

async function until(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Rows in the database file alone, read from a copy without its WAL; -1
 * when the copy caught a checkpoint half-way through writing the file.
 */
function rowsInFileAlone(): number {
  const copy = path.join(dir, 'copy.db');
  copyFileSync(file, copy);
  const db = new SQLite(copy, { readonly: true });
  try {
    return (db.prepare('select count(*) as n from notes').get() as { n: number }).n;
  } catch (error) {
    if ((error as { code?: string }).code === 'SQLITE_CORRUPT') return -1;
    throw error;
  } finally {
    db.close();
  }
}

describe('SQLite checkpoint helper', () => {
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'hush-checkpointer-'));
    file = path.join(dir, 'hush.db');
    const setup = openDatabase({ kind: 'sqlite', file });
    await sql`create table notes (id integer primary key, body text not null)`.execute(setup.db);
    await setup.close();
  });
  afterEach(async () => {
    for (const database of opened.splice(0)) await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts for a busy writer, copies the WAL into the database file, and ends once the WAL stops growing', async () => {
    const database = open(FAST);
    const checkpointer = database.checkpointer;
    if (!checkpointer) throw new Error('a SQLite database has a checkpointer');
    expect(await autocheckpoint(database)).toBe(1_000);

    await writeRows(database, 0, 200);
    expect(checkpointer.stats()).toMatchObject({ running: true, started: 1 });
    // While the helper runs, the main connection's own checkpoint is only a backstop.
    expect(await autocheckpoint(database)).toBe(20_000);

    // Below SQLite's own threshold of 1,000 pages, only the helper copies anything back.
    await until('the helper has copied every row into the database file', () => rowsInFileAlone() === 200);
    // Its report comes over IPC after the copy: the file can show the rows first.
    await until('the helper has reported its checkpoints', () => checkpointer.stats().checkpoints > 0);
    expect(checkpointer.stats().checkpoints).toBeGreaterThan(0);
    expect(checkpointer.stats().framesCopied).toBeGreaterThan(0);

    await until('the idle helper has ended', () => !checkpointer.stats().running);
    expect(await autocheckpoint(database)).toBe(1_000);

    // Busy again: a new helper.
    await writeRows(database, 200, 20);
    expect(checkpointer.stats()).toMatchObject({ running: true, started: 2 });
    await until('the new rows are in the database file', () => rowsInFileAlone() === 220);
  });

  it('never starts for a trickle of commits, which keep SQLite’s own checkpoints', async () => {
    const database = open({ ...FAST, busyCommitsPerSecond: 1_000 });
    await writeRows(database, 0, 50);
    expect(database.checkpointer?.stats()).toMatchObject({ running: false, started: 0, checkpoints: 0 });
    expect(await autocheckpoint(database)).toBe(1_000);
    // Nothing copied these 50 small commits back yet: they are in the WAL only.
    expect(rowsInFileAlone()).toBe(0);
  });

  it('is a process with nothing of the server’s environment, ended with the database on close; every committed row is there on reopening', async () => {
    const database = open({ ...FAST, idleMs: 60_000 });
    process.env.HUSH_MASTER_KEY_TEST_CANARY = 'canary-value-never-in-the-helper';
    try {
      await writeRows(database, 0, 100);
    } finally {
      delete process.env.HUSH_MASTER_KEY_TEST_CANARY;
    }
    const pid = database.checkpointer?.stats().pid;
    if (pid === undefined || pid === process.pid) throw new Error('the helper is a process of its own');
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    // Its settings, and Node's own IPC plumbing (NODE_CHANNEL_FD…): nothing else.
    const names = environ.map((entry) => entry.split('=')[0] ?? '').filter((name) => !name.startsWith('NODE_CHANNEL_'));
    expect(names).toEqual(['HUSH_CHECKPOINT']);
    expect(environ.join('\n')).not.toContain('canary-value-never-in-the-helper');

    await database.close();
    opened.splice(opened.indexOf(database), 1);
    expect(database.checkpointer?.stats().running).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);

    const reopened = new SQLite(file, { readonly: true });
    try {
      expect((reopened.prepare('select count(*) as n from notes').get() as { n: number }).n).toBe(100);
    } finally {
      reopened.close();
    }
  });

  it('when the helper cannot run, reports it once and the writes go on with SQLite’s own checkpoints', async () => {
    const errors: Error[] = [];
    const database = open({ ...FAST, onError: (error) => errors.push(error) });
    // The helper opens the file by name (it must exist): moved away, it cannot.
    const moved = path.join(dir, 'moved.db');
    renameSync(file, moved);
    try {
      await writeRows(database, 0, 20);
      await until('the failure is reported', () => errors.length > 0);
      await until('the failed helper has ended', () => database.checkpointer?.stats().running === false);
      await writeRows(database, 20, 100);
      expect(errors).toHaveLength(1);
      expect(database.checkpointer?.stats()).toMatchObject({ running: false, started: 1 });
      expect(await autocheckpoint(database)).toBe(1_000);
      const { rows } = await sql<{ n: number }>`select count(*) as n from notes`.execute(database.db);
      expect(Number(rows[0]?.n)).toBe(120);
    } finally {
      renameSync(moved, file);
    }
  });
});
