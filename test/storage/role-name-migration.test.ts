/**
 * Migration 0005 on both databases, over data an older Hush could hold: role
 * names equal but for case in one workspace (two concurrent creates both
 * passed the service's check). The migration keeps every role and its id;
 * the oldest of a group keeps its name, each later one gets the first free
 * " n" suffix (within 64 characters), in a fixed order; then the unique index on lower(name)
 * refuses any new duplicate, while other workspaces stay free to use the name.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isUniqueViolation, migrateToLatest, type OpenDatabase } from '../../src/db/database.js';
import { DATABASES } from '../support/databases.js';
import { addWorkspace, databaseBefore } from '../support/migrated-before.js';

describe.each(DATABASES)('migration 0005 (role names unique regardless of case) on $kind', ({ kind, available }) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const databaseBefore0005 = () => databaseBefore(kind, '0005', cleanups);

  async function addRole(database: OpenDatabase, workspaceId: string, id: string, name: string, createdAt: string) {
    await database.db
      .insertInto('roles')
      .values({
        id,
        workspace_id: workspaceId,
        name,
        description: '',
        permissions: '[]',
        created_at: createdAt,
        updated_at: createdAt,
      })
      .execute();
  }

  async function namesById(database: OpenDatabase): Promise<Record<string, string>> {
    const rows = await database.db.selectFrom('roles').select(['id', 'name']).orderBy('id').execute();
    return Object.fromEntries(rows.map((r) => [r.id, r.name]));
  }

  async function insertRefused(insert: () => Promise<void>): Promise<boolean> {
    try {
      await insert();
      return false;
    } catch (error) {
      if (isUniqueViolation(error)) return true;
      throw error;
    }
  }

  it.runIf(available)(
    'renames later case-duplicates to the first free " n", keeps every role and id, then refuses new duplicates',
    async () => {
      const database = await databaseBefore0005();
      await addWorkspace(database, 'ws_one');
      await addWorkspace(database, 'ws_two');
      const t = (minute: number) => `2024-01-01T00:0${minute}:00.000Z`;
      // Oldest of its group: keeps its name.
      await addRole(database, 'ws_one', 'rol_a', 'Ops', t(1));
      // Later duplicates, the same time: id breaks the tie.
      await addRole(database, 'ws_one', 'rol_b', 'OPS', t(2));
      await addRole(database, 'ws_one', 'rol_d', 'ops', t(2));
      // Holds the first suffix already (and is no duplicate itself).
      await addRole(database, 'ws_one', 'rol_c', 'ops 2', t(0));
      await addRole(database, 'ws_one', 'rol_e', 'Other', t(1));
      // Another workspace's "OPS" is no duplicate.
      await addRole(database, 'ws_two', 'rol_f', 'OPS', t(3));
      // A long name stays within the API's 64 characters.
      await addRole(database, 'ws_two', 'rol_k', 'L'.repeat(64), t(1));
      await addRole(database, 'ws_two', 'rol_l', 'l'.repeat(64), t(2));

      const outcome = await migrateToLatest(database.db);
      expect(outcome.error).toBeUndefined();
      // 0005 and every migration after it.
      expect(outcome.applied?.[0]).toBe('0005-role-names-case-insensitive');
      expect(await namesById(database)).toEqual({
        rol_a: 'Ops',
        rol_b: 'OPS 3',
        rol_c: 'ops 2',
        rol_d: 'ops 4',
        rol_e: 'Other',
        rol_f: 'OPS',
        rol_k: 'L'.repeat(64),
        rol_l: `${'l'.repeat(62)} 2`,
      });
      // What the API accepts as a role name (role-router.ts).
      for (const name of Object.values(await namesById(database))) expect(name).toMatch(/^[\p{L}\p{N} _.-]{1,64}$/u);

      // The index: no new name equal but for case, in the same workspace.
      expect(await insertRefused(() => addRole(database, 'ws_one', 'rol_g', 'oPs', t(4)))).toBe(true);
      expect(await insertRefused(() => addRole(database, 'ws_two', 'rol_h', 'ops', t(4)))).toBe(true);
      expect(
        await insertRefused(() =>
          database.db
            .updateTable('roles')
            .set({ name: 'OTHER' })
            .where('id', '=', 'rol_a')
            .execute()
            .then(() => {}),
        ),
      ).toBe(true);
      // A name new to the workspace, and a renamed role's old name elsewhere, are fine.
      expect(await insertRefused(() => addRole(database, 'ws_two', 'rol_i', 'Other', t(4)))).toBe(false);
      expect(await insertRefused(() => addRole(database, 'ws_one', 'rol_j', 'Ops 5', t(4)))).toBe(false);
    },
    60_000,
  );

  it.runIf(available)('changes nothing on data without duplicates', async () => {
    const database = await databaseBefore0005();
    await addWorkspace(database, 'ws_one');
    await addRole(database, 'ws_one', 'rol_a', 'Ops', '2024-01-01T00:00:00.000Z');
    await addRole(database, 'ws_one', 'rol_b', 'Ops 2', '2024-01-01T00:01:00.000Z');
    const outcome = await migrateToLatest(database.db);
    expect(outcome.error).toBeUndefined();
    expect(await namesById(database)).toEqual({ rol_a: 'Ops', rol_b: 'Ops 2' });
  });
});
