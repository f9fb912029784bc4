/**
 * A fresh database of either kind migrated only up to (not including) one
 * migration: the data an older Hush left, for tests of the migration that
 * comes next. Every database and directory made is removed by `cleanups`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Migrator } from 'kysely';
import { type OpenDatabase, openDatabase } from '../../src/db/database.js';
import { migrations } from '../../src/db/migrations/index.js';
import { createPostgresDatabase, type DatabaseKindUnderTest } from './databases.js';

export async function databaseBefore(
  kind: DatabaseKindUnderTest,
  migration: string,
  cleanups: (() => Promise<void>)[],
): Promise<OpenDatabase> {
  let database: OpenDatabase;
  if (kind === 'postgres') {
    const pgDb = await createPostgresDatabase();
    cleanups.push(() => pgDb.drop());
    database = openDatabase({ kind: 'postgres', url: pgDb.url });
  } else {
    const dir = mkdtempSync(path.join(tmpdir(), 'hush-migration-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    database = openDatabase({ kind: 'sqlite', file: path.join(dir, 'hush.db') });
  }
  cleanups.push(() => database.close());
  const earlier = Object.entries(migrations).filter(([name]) => name < migration);
  const { error } = await new Migrator({
    db: database.db,
    provider: { getMigrations: async () => Object.fromEntries(earlier) },
    migrationTableName: 'hush_migrations',
    migrationLockTableName: 'hush_migrations_lock',
  }).migrateToLatest();
  if (error) throw error;
  return database;
}

/** A workspace row as every migration since 0004 expects one (named by its id). */
export async function addWorkspace(database: OpenDatabase, id: string): Promise<void> {
  const at = '2024-01-01T00:00:00.000Z';
  await database.db
    .insertInto('workspaces')
    .values({
      id,
      name: id,
      secret_host_binding: 'pin-on-first-use',
      active_key_version: 1,
      created_at: at,
      updated_at: at,
      deleted_at: null,
    })
    .execute();
}
