/**
 * Migration 0012 on both databases: role names that read alike (fullwidth
 * "Ｏｐｓ" beside "Ops", a dotless "Admın" beside "Admin") in one workspace,
 * which an older Hush let both exist. Every role and id is kept; the oldest
 * keeps its name, later ones get the first " n" whose reading is free; then
 * the unique index on name_key refuses a new lookalike.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isUniqueViolation, migrateToLatest, type OpenDatabase } from '../../src/db/database.js';
import { DATABASES } from '../support/databases.js';
import { addWorkspace, databaseBefore } from '../support/migrated-before.js';

describe.each(DATABASES)('migration 0012 (role names unique by how they read) on $kind', ({ kind, available }) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const at = (minute: number) => `2024-01-01T00:0${minute}:00.000Z`;
  async function addRole(database: OpenDatabase, workspaceId: string, id: string, name: string, minute: number) {
    const values = { id, workspace_id: workspaceId, name, description: '', permissions: '[]' };
    await database.db
      .insertInto('roles')
      .values({ ...values, created_at: at(minute), updated_at: at(minute) })
      .execute();
  }

  it.runIf(available)('renames later lookalikes, keeps every role and id, then refuses new ones', async () => {
    const database = await databaseBefore(kind, '0012', cleanups);
    await addWorkspace(database, 'ws_one');
    await addWorkspace(database, 'ws_two');
    await addRole(database, 'ws_one', 'rol_a', 'Ops', 1);
    await addRole(database, 'ws_one', 'rol_b', 'Ｏｐｓ', 2);
    // Holds the first suffix's reading already.
    await addRole(database, 'ws_one', 'rol_c', 'ｏｐｓ 2', 0);
    await addRole(database, 'ws_one', 'rol_d', 'Admin team', 1);
    await addRole(database, 'ws_one', 'rol_e', 'Admın team', 3);
    // Another workspace's lookalike is no duplicate.
    await addRole(database, 'ws_two', 'rol_f', 'ＯＰＳ', 1);

    const outcome = await migrateToLatest(database.db);
    expect(outcome.error).toBeUndefined();
    const rows = await database.db.selectFrom('roles').select(['id', 'name', 'name_key']).orderBy('id').execute();
    expect(rows.map((r) => [r.id, r.name, r.name_key])).toEqual([
      ['rol_a', 'Ops', 'ops'],
      ['rol_b', 'Ｏｐｓ 3', 'ops 3'],
      ['rol_c', 'ｏｐｓ 2', 'ops 2'],
      ['rol_d', 'Admin team', 'admin team'],
      ['rol_e', 'Admın team 2', 'admin team 2'],
      ['rol_f', 'ＯＰＳ', 'ops'],
    ]);

    const refused = async (key: string) => {
      try {
        await database.db
          .insertInto('roles')
          .values({
            id: `rol_${key.length}`,
            workspace_id: 'ws_one',
            name: key,
            name_key: key,
            description: '',
            permissions: '[]',
            created_at: at(5),
            updated_at: at(5),
          })
          .execute();
        return false;
      } catch (error) {
        if (isUniqueViolation(error)) return true;
        throw error;
      }
    };
    expect(await refused('ops')).toBe(true);
    expect(await refused('ops 4')).toBe(false);
  });
  it.runIf(available)(
    'a role reading as a system role or mixing scripts becomes "<name> custom"; a rename is free by the database\'s lower() too',
    async () => {
      const database = await databaseBefore(kind, '0012', cleanups);
      await addWorkspace(database, 'ws_one');
      await addRole(database, 'ws_one', 'rol_fw', 'Ｏｗｎｅｒ', 1);
      await addRole(database, 'ws_one', 'rol_cy', 'Оwner', 2);
      await addRole(database, 'ws_one', 'rol_ok', 'Admins', 3);
      // PostgreSQL lowers "İX 2" to "ix 2", JavaScript to "i̇x 2": the rename of "ix" must pass both.
      await addRole(database, 'ws_one', 'rol_iw', 'ＩＸ', 0);
      await addRole(database, 'ws_one', 'rol_ix', 'ix', 1);
      await addRole(database, 'ws_one', 'rol_id', 'İX 2', 2);

      const outcome = await migrateToLatest(database.db);
      expect(outcome.error).toBeUndefined();
      const rows = await database.db.selectFrom('roles').select(['id', 'name']).orderBy('id').execute();
      const names = Object.fromEntries(rows.map((r) => [r.id, r.name]));
      expect(names).toEqual({
        rol_fw: 'Ｏｗｎｅｒ custom',
        rol_cy: 'Оwner custom',
        rol_ok: 'Admins',
        rol_iw: 'ＩＸ',
        rol_ix: expect.stringMatching(/^ix [23]$/),
        rol_id: 'İX 2',
      });
    },
  );
});
