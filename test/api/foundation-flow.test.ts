/**
 * The foundation's promise over the HTTP API, on both databases: set up,
 * sign in, invite one person per role, and each of them can sign in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ROLES } from '../../src/policy/permissions.js';
import { DATABASES } from '../support/databases.js';
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import { PASSWORD, SETUP_TOKEN, startTestApp, type TestApp } from '../support/harness.js';

describe.each(DATABASES)('foundation flow on $kind', ({ kind, available }) => {
  let t: TestApp;
  beforeAll(async () => {
    if (available) t = await startTestApp(kind);
  });
  afterAll(async () => t?.close());

  it.runIf(available)('sets up once, then every role can be invited and sign in', async () => {
    const anon = t.client();
    expect((await anon.get('/api/v1/setup')).body).toEqual({ needed: true });

    const wrong = await anon.post('/api/v1/setup', {
      token: 'not-the-token-at-all',
      email: 'x@example.com',
      password: PASSWORD,
      name: 'X',
      workspaceName: 'X',
    });
    expect(wrong.status).toBe(403);
    expect(wrong.body.code).toBe('invalid_setup_token');

    const { owner, workspaceId } = await setupOwner(t);
    expect((await anon.get('/api/v1/setup')).body).toEqual({ needed: false });
    const again = await anon.post('/api/v1/setup', {
      token: SETUP_TOKEN,
      email: 'y@example.com',
      password: PASSWORD,
      name: 'Y',
      workspaceName: 'Y',
    });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('setup_done');

    const me = await owner.get('/api/v1/me');
    expect(me.status).toBe(200);
    expect(me.body.workspaces).toEqual([{ id: workspaceId, name: 'Acme', role: 'owner', roleName: 'owner' }]);

    for (const role of SYSTEM_ROLES.filter((r) => r !== 'owner')) {
      const email = `${role}@Example.com`;
      await inviteAndJoin(t, owner, workspaceId, email, role);
      const fresh = t.client();
      const login = await fresh.post('/api/v1/auth/login', { email: email.toLowerCase(), password: PASSWORD });
      expect(login.status, login.text).toBe(200);
      const who = await fresh.get('/api/v1/me');
      expect(who.body.user.email).toBe(email);
      expect(who.body.workspaces).toEqual([{ id: workspaceId, name: 'Acme', role, roleName: role }]);
    }

    const members = await owner.get(`/api/v1/workspaces/${workspaceId}/members`);
    expect(members.body.items.map((m: { role: string }) => m.role).sort()).toEqual([...SYSTEM_ROLES].sort());
  });

  it.runIf(available)('refuses a wrong password and an unknown account alike', async () => {
    const c = t.client();
    const wrong = await c.post('/api/v1/auth/login', { email: 'owner@example.com', password: 'wrong password!!' });
    const unknown = await c.post('/api/v1/auth/login', { email: 'nobody@example.com', password: 'wrong password!!' });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body.code).toBe('unauthenticated');
    expect(wrong.body.detail).toBe(unknown.body.detail);
    expect(c.cookies.has('hush_session')).toBe(false);
  });
});
