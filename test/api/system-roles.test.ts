/**
 * The system roles the roles list gives (ids "owner", "admin", …) are fixed: a
 * change or a delete of one is 409 `system_role_read_only` for whoever may
 * manage roles and 403 for anyone else — not 422 "is not a valid id" for an id
 * the list itself gave. Nothing is written or audited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ROLES } from '../../src/policy/permissions.js';
import { buildTeam, type Team } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

describe('system roles', () => {
  let t: TestApp;
  let team: Team;
  let ws: string;
  beforeAll(async () => {
    t = await startTestApp('sqlite');
    team = await buildTeam(t);
    ws = `/api/v1/workspaces/${team.workspaceId}`;
  });
  afterAll(async () => t?.close());

  it('cannot be changed or deleted: 409 for a role manager, 403 for anyone else, nothing audited', async () => {
    const listed = (await team.owner.get(`${ws}/roles`)).body.items as { id: string; system: boolean }[];
    const system = listed.filter((r) => r.system).map((r) => r.id);
    expect(system).toEqual([...SYSTEM_ROLES]);
    const events = async () => (await team.owner.get(`${ws}/audit?limit=200`)).body.items.length as number;
    const before = await events();
    for (const id of system) {
      const patched = await team.owner.patch(`${ws}/roles/${id}`, { description: 'mine now' });
      expect([patched.status, patched.body?.code], `PATCH ${id}`).toEqual([409, 'system_role_read_only']);
      const deleted = await team.owner.delete(`${ws}/roles/${id}`);
      expect([deleted.status, deleted.body?.code], `DELETE ${id}`).toEqual([409, 'system_role_read_only']);
      const byEditor = await team.clients.editor.patch(`${ws}/roles/${id}`, { description: 'mine now' });
      expect([byEditor.status, byEditor.body?.code], `editor PATCH ${id}`).toEqual([403, 'forbidden']);
    }
    expect(await events()).toBe(before);
    expect((await team.owner.get(`${ws}/roles`)).body.items).toEqual(listed);
    // Any other id that is not a custom role's is still refused as such.
    const bogus = await team.owner.patch(`${ws}/roles/Owner`, { description: 'x' });
    expect([bogus.status, bogus.body?.code]).toEqual([422, 'validation_failed']);
  });
});
