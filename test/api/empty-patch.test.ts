/**
 * A PATCH that names no field changes nothing, and every PATCH route says so
 * alike: 422 `validation_failed`, nothing written, nothing audited. The custom
 * role's PATCH answered 200, moved `updatedAt` and audited a `role.updated`
 * that changed nothing, where a secret's, a variable's and a workspace's
 * refused the same body.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';

const sqlite = DATABASES.find((d) => d.kind === 'sqlite')?.available ?? false;

describe.runIf(sqlite)('an empty PATCH', () => {
  let t: TestApp;
  let owner: TestClient;
  let ws: string;

  beforeAll(async () => {
    t = await startTestApp('sqlite');
    const setup = await setupOwner(t);
    owner = setup.owner;
    ws = `/api/v1/workspaces/${setup.workspaceId}`;
  });
  afterAll(async () => t?.close());

  it('is 422 validation_failed on every PATCH route, and audits nothing', async () => {
    const role = await owner.post(`${ws}/roles`, { name: 'Ops', permissions: ['variables.read'] });
    const variable = await owner.post(`${ws}/variables`, { name: 'count', type: 'number' });
    const secret = await owner.post(`${ws}/secrets`, { name: 'api_key', visibility: 'masked', value: 'sk-12345678' });
    for (const created of [role, variable, secret]) expect(created.status, created.text).toBe(201);
    const events = async () => (await owner.get(`${ws}/audit?limit=200`)).body.items.length as number;
    const before = await events();

    for (const url of [
      ws,
      `${ws}/roles/${role.body.id}`,
      `${ws}/variables/${variable.body.id}`,
      `${ws}/secrets/${secret.body.id}`,
    ]) {
      const res = await owner.patch(url, {});
      expect([res.status, res.body?.code], `PATCH ${url}`).toEqual([422, 'validation_failed']);
    }
    expect(await events()).toBe(before);
    const after = (await owner.get(`${ws}/roles`)).body.items.find((r: { id: string }) => r.id === role.body.id);
    expect(after).toEqual(role.body);
  });
});
