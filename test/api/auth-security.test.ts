/**
 * The negative side of authentication (SPEC §3 "Web and session", §4 errors),
 * on both databases: CSRF, login rate limit, logout, session expiry, API
 * tokens, anonymous callers, security headers and bad input. Each refusal
 * must be the documented status and code, and must change nothing.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import {
  cookieHeader,
  PASSWORD,
  type Reply,
  raw,
  SETUP_TOKEN,
  startTestApp,
  type TestApp,
  type TestClient,
} from '../support/harness.js';

const PAST = '2000-01-01T00:00:00.000Z';

function setCookies(res: Reply): string[] {
  const h = res.headers['set-cookie'];
  if (h === undefined) return [];
  return Array.isArray(h) ? h : [String(h)];
}

function cookieLine(res: Reply, name: string): string {
  const line = setCookies(res).find((c) => c.startsWith(`${name}=`));
  expect(line, `set-cookie for ${name}`).toBeDefined();
  return line as string;
}

function expectProblem(res: Reply, status: number, code: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body?.code, res.text).toBe(code);
}

async function login(t: TestApp, email: string, password = PASSWORD): Promise<TestClient> {
  const c = t.client();
  const res = await c.post('/api/v1/auth/login', { email, password });
  expect(res.status, res.text).toBe(200);
  return c;
}

/** What a refused state change must leave untouched. */
async function snapshot(t: TestApp) {
  const db = t.ctx.db;
  return {
    workspaces: await db
      .selectFrom('workspaces')
      .select(['id', 'name', 'deleted_at', 'updated_at'])
      .orderBy('id')
      .execute(),
    members: await db
      .selectFrom('members')
      .select(['workspace_id', 'user_id', 'role'])
      .orderBy('workspace_id')
      .orderBy('user_id')
      .execute(),
    tokens: await db.selectFrom('api_tokens').select('id').orderBy('id').execute(),
    sessions: await db.selectFrom('sessions').select('id_hash').orderBy('id_hash').execute(),
    audit: await db.selectFrom('audit_events').select('id').orderBy('id').execute(),
  };
}

async function sessionHashes(t: TestApp, userId: string): Promise<Set<string>> {
  const rows = await t.ctx.db.selectFrom('sessions').select('id_hash').where('user_id', '=', userId).execute();
  return new Set(rows.map((r) => r.id_hash));
}

/** Signs in and returns the client plus the id of the session row it got. */
async function loginTracked(t: TestApp, email: string, userId: string) {
  const before = await sessionHashes(t, userId);
  const client = await login(t, email);
  const after = await sessionHashes(t, userId);
  const fresh = [...after].filter((h) => !before.has(h));
  expect(fresh).toHaveLength(1);
  return { client, sessionHash: fresh[0] as string };
}

describe.each(DATABASES)('auth security on $kind', ({ kind, available }) => {
  let t: TestApp;
  let owner: TestClient;
  let ownerId: string;
  let wsA: string;
  let wsB: string;
  let admin: TestClient;
  let adminId: string;

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    ({ owner, workspaceId: wsA, ownerId } = await setupOwner(t));
    const b = await owner.post('/api/v1/workspaces', { name: 'Beta' });
    expect(b.status, b.text).toBe(201);
    wsB = b.body.id;
    ({ client: admin, userId: adminId } = await inviteAndJoin(t, owner, wsA, 'admin@example.com', 'admin'));
  }, 120_000);
  afterAll(async () => t?.close());

  describe('CSRF and cookies', () => {
    it.runIf(available)('a cookie request without X-Hush-Csrf is refused and changes nothing', async () => {
      const before = await snapshot(t);
      const cookie = cookieHeader(owner);
      const attempts: [string, string, unknown][] = [
        ['POST', '/api/v1/workspaces', { name: 'Sneaky' }],
        ['PATCH', `/api/v1/workspaces/${wsA}`, { name: 'Sneaky' }],
        ['DELETE', `/api/v1/workspaces/${wsB}`, undefined],
        ['POST', '/api/v1/tokens', { name: 'sneaky', workspaceId: wsA, expiresInDays: 1 }],
        ['POST', `/api/v1/workspaces/${wsA}/invitations`, { email: 'sneaky@example.com', role: 'viewer' }],
        ['PATCH', `/api/v1/workspaces/${wsA}/members/${adminId}`, { role: 'viewer' }],
        ['DELETE', `/api/v1/workspaces/${wsA}/members/${adminId}`, undefined],
        ['POST', '/api/v1/auth/logout', {}],
      ];
      for (const [method, url, payload] of attempts) {
        const res = await raw(t, method, url, { headers: { cookie }, payload });
        expectProblem(res, 403, 'csrf_failed');
      }
      expect(await snapshot(t)).toEqual(before);
      // The refused logout did not end the session.
      expect((await owner.get('/api/v1/me')).status).toBe(200);
    });

    it.runIf(available)('a cookie request with a wrong X-Hush-Csrf is refused and changes nothing', async () => {
      const before = await snapshot(t);
      const realCsrf = owner.cookies.get('hush_csrf') as string;
      const forged = randomBytes(32).toString('base64url');
      const other = await login(t, 'admin@example.com');
      const variants: { name: string; cookie: string; header: string }[] = [
        { name: 'a wrong header', cookie: cookieHeader(owner), header: forged },
        { name: 'an empty header', cookie: cookieHeader(owner), header: '' },
        { name: 'a truncated header', cookie: cookieHeader(owner), header: realCsrf.slice(0, -1) },
        // Cookie tossing: header and cookie agree, but neither belongs to this session.
        { name: 'a forged pair', cookie: cookieHeader(owner, { hush_csrf: forged }), header: forged },
        // The right header without its cookie.
        { name: 'no csrf cookie', cookie: cookieHeader(owner, { hush_csrf: undefined }), header: realCsrf },
        // Another session's valid pair.
        {
          name: "another session's pair",
          cookie: cookieHeader(owner, { hush_csrf: other.cookies.get('hush_csrf') }),
          header: other.cookies.get('hush_csrf') as string,
        },
      ];
      for (const v of variants) {
        const res = await raw(t, 'PATCH', `/api/v1/workspaces/${wsA}`, {
          headers: { cookie: v.cookie, 'x-hush-csrf': v.header },
          payload: { name: `Sneaky ${v.name}` },
        });
        expect(res.status, `${v.name}: ${res.text}`).toBe(403);
        expect(res.body?.code, v.name).toBe('csrf_failed');
      }
      const del = await raw(t, 'DELETE', `/api/v1/workspaces/${wsB}`, {
        headers: { cookie: cookieHeader(owner), 'x-hush-csrf': forged },
      });
      expectProblem(del, 403, 'csrf_failed');
      const after = await snapshot(t);
      // Only the helper sign-in above may have added a session and its audit event.
      expect(after.workspaces).toEqual(before.workspaces);
      expect(after.members).toEqual(before.members);
      expect(after.tokens).toEqual(before.tokens);
      const newEvents = await t.ctx.db
        .selectFrom('audit_events')
        .select('action')
        .where(
          'id',
          'not in',
          before.audit.map((a) => a.id),
        )
        .execute();
      expect(newEvents.map((e) => e.action)).toEqual(['auth.login']);
    });

    it.runIf(available)('a cookie GET without X-Hush-Csrf works', async () => {
      const cookie = cookieHeader(owner);
      const me = await raw(t, 'GET', '/api/v1/me', { headers: { cookie } });
      expect(me.status, me.text).toBe(200);
      expect(me.body.user.id).toBe(ownerId);
      const ws = await raw(t, 'GET', `/api/v1/workspaces/${wsA}`, { headers: { cookie } });
      expect(ws.status, ws.text).toBe(200);
    });

    it.runIf(available)('the session cookie is HttpOnly and SameSite=Lax; the CSRF cookie is readable', async () => {
      const res = await raw(t, 'POST', '/api/v1/auth/login', {
        payload: { email: 'owner@example.com', password: PASSWORD },
      });
      expect(res.status, res.text).toBe(200);
      const session = cookieLine(res, 'hush_session');
      const csrf = cookieLine(res, 'hush_csrf');
      expect(session).toMatch(/;\s*HttpOnly/i);
      expect(session).toMatch(/;\s*SameSite=Lax/i);
      expect(session).toMatch(/;\s*Path=\//i);
      expect(csrf).not.toMatch(/HttpOnly/i);
      expect(csrf).toMatch(/;\s*SameSite=Lax/i);
      // Served over http (HUSH_PUBLIC_URL=http://…), so not Secure.
      expect(session).not.toMatch(/;\s*Secure/i);
      // The session token itself is never in the JSON body.
      const sessionValue = session.split(';')[0]?.split('=')[1] as string;
      expect(res.text).not.toContain(sessionValue);
    });

    it.runIf(available)('behind https the session and CSRF cookies are Secure, with HSTS', async () => {
      const https = await startTestApp(kind, { HUSH_PUBLIC_URL: 'https://hush.example.com' });
      try {
        const res = await raw(https, 'POST', '/api/v1/setup', {
          payload: {
            token: SETUP_TOKEN,
            email: 'owner@example.com',
            password: PASSWORD,
            name: 'O',
            workspaceName: 'W',
          },
        });
        expect(res.status, res.text).toBe(201);
        expect(cookieLine(res, 'hush_session')).toMatch(/;\s*Secure/i);
        expect(cookieLine(res, 'hush_csrf')).toMatch(/;\s*Secure/i);
        // …and every answer, API or UI, tells the browser to keep to HTTPS.
        expect(res.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
        const page = await raw(https, 'GET', '/');
        expect(page.headers['strict-transport-security']).toMatch(/^max-age=31536000; includeSubDomains/);
      } finally {
        await https.close();
      }
    });
  });

  describe('login rate limit', () => {
    let rl: TestApp;
    let rlOwner: TestClient;
    let rlWorkspace: string;
    beforeAll(async () => {
      if (!available) return;
      rl = await startTestApp(kind, { HUSH_LOGIN_LIMIT_PER_MIN: '3' });
      // Setup is no login; accepting an invitation counts once for the account it joins.
      const { owner: o, workspaceId } = await setupOwner(rl);
      rlOwner = o;
      rlWorkspace = workspaceId;
      for (const email of ['other@example.com', 'burst@example.com', 'victim@example.com']) {
        await inviteAndJoin(rl, o, workspaceId, email, 'viewer');
      }
    }, 60_000);
    afterAll(async () => rl?.close());

    it.runIf(available)(
      'the 4th login for one account from one IP is refused with 429, even with the right password',
      async () => {
        const c = rl.client();
        for (let i = 0; i < 3; i++) {
          const wrong = await c.post('/api/v1/auth/login', {
            email: 'owner@example.com',
            password: `wrong guess ${i}`,
          });
          expectProblem(wrong, 401, 'unauthenticated');
        }
        const blocked = await c.post('/api/v1/auth/login', { email: 'owner@example.com', password: PASSWORD });
        expectProblem(blocked, 429, 'rate_limited');
        const retryAfter = Number(blocked.headers['retry-after']);
        expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, String(retryAfter)).toBe(true);
        expect(setCookies(blocked).filter((s) => s.startsWith('hush_session=') && !/hush_session=;/.test(s))).toEqual(
          [],
        );
        expect(c.cookies.has('hush_session')).toBe(false);

        // Changing the spelling of the email does not reset the count.
        const recased = await c.post('/api/v1/auth/login', { email: '  OWNER@Example.COM ', password: PASSWORD });
        expectProblem(recased, 429, 'rate_limited');

        // Another account from the same IP is not affected.
        const other = await rl.client().post('/api/v1/auth/login', { email: 'other@example.com', password: PASSWORD });
        expect(other.status, other.text).toBe(200);

        // The same account from another IP is not affected either (the key is account + IP).
        const elsewhere = await raw(rl, 'POST', '/api/v1/auth/login', {
          payload: { email: 'owner@example.com', password: PASSWORD },
          remoteAddress: '198.51.100.7',
        });
        expect(elsewhere.status, elsewhere.text).toBe(200);
      },
    );

    it.runIf(available)(
      "accepting an invitation checks an existing account's password under the same limit: no guessing there either",
      async () => {
        // Anyone may invite any email to a workspace of their own, then try passwords at accept.
        const own = await rlOwner.post('/api/v1/workspaces', { name: 'Bait' });
        expect(own.status, own.text).toBe(201);
        const invited = await rlOwner.post(`/api/v1/workspaces/${own.body.id}/invitations`, {
          email: 'victim@example.com',
          role: 'viewer',
        });
        expect(invited.status, invited.text).toBe(201);
        const guesser = rl.client();
        const statuses: number[] = [];
        for (let i = 0; i < 4; i++) {
          const guess = await guesser.post('/api/v1/invitations/accept', {
            token: invited.body.token,
            password: `g${i}`,
          });
          statuses.push(guess.status);
        }
        // Joining counted once already (the victim accepted an invitation before): then wrong guesses, then 429.
        expect(statuses).toEqual([401, 401, 429, 429]);
        expectProblem(
          await guesser.post('/api/v1/invitations/accept', { token: invited.body.token, password: PASSWORD }),
          429,
          'rate_limited',
        );
        // Another IP is not affected (the key is account + IP, as for signing in).
        const elsewhere = await raw(rl, 'POST', '/api/v1/invitations/accept', {
          payload: { token: invited.body.token, password: 'g-elsewhere' },
          remoteAddress: '198.51.100.9',
        });
        expect(elsewhere.status, elsewhere.text).toBe(401);
      },
    );

    it.runIf(available)(
      'signing in and accepting an invitation share one budget per account and IP: no second budget of guesses',
      async () => {
        const { userId } = await inviteAndJoin(rl, rlOwner, rlWorkspace, 'crossing@example.com', 'viewer'); // 1
        expect(userId).toEqual(expect.any(String));
        const own = await rlOwner.post('/api/v1/workspaces', { name: 'Crossing bait' });
        const invited = await rlOwner.post(`/api/v1/workspaces/${own.body.id}/invitations`, {
          email: 'crossing@example.com',
          role: 'viewer',
        });
        expect(invited.status, invited.text).toBe(201);
        const guesser = rl.client();
        expectProblem(
          await guesser.post('/api/v1/auth/login', { email: 'crossing@example.com', password: 'login guess 1' }),
          401,
          'unauthenticated',
        ); // 2
        expectProblem(
          await guesser.post('/api/v1/invitations/accept', { token: invited.body.token, password: 'accept guess 1' }),
          401,
          'unauthenticated',
        ); // 3: the budget of 3 is spent, whichever route spent it
        expectProblem(
          await guesser.post('/api/v1/auth/login', { email: 'CROSSING@example.com', password: PASSWORD }),
          429,
          'rate_limited',
        );
        expectProblem(
          await guesser.post('/api/v1/invitations/accept', { token: invited.body.token, password: PASSWORD }),
          429,
          'rate_limited',
        );
      },
    );

    it.runIf(available)('a burst of parallel login attempts cannot get past the limit', async () => {
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          rl.client().post('/api/v1/auth/login', { email: 'burst@example.com', password: `burst guess ${i}` }),
        ),
      );
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s !== 429).length, statuses.join(',')).toBeLessThanOrEqual(3);
      expect(
        statuses.filter((s) => s < 300),
        statuses.join(','),
      ).toEqual([]);
      expectProblem(
        await rl.client().post('/api/v1/auth/login', { email: 'burst@example.com', password: PASSWORD }),
        429,
        'rate_limited',
      );
    });
  });

  describe('logout and session expiry', () => {
    it.runIf(available)('parallel sign-ins, failed sign-ins and sign-outs never fail with a 5xx', async () => {
      // Account-level events share one audit chain; concurrent writers must not collide.
      const attempts = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          t.client().post('/api/v1/auth/login', {
            email: i % 3 === 2 ? 'nobody@example.com' : 'admin@example.com',
            password: i % 3 === 0 ? PASSWORD : 'a wrong password',
          }),
        ),
      );
      expect(
        attempts.map((r) => r.status),
        attempts.map((r) => r.text).join('\n'),
      ).toEqual([200, 401, 401, 200, 401, 401, 200, 401]);

      const sessions = await Promise.all([1, 2, 3].map(() => login(t, 'admin@example.com')));
      const outs = await Promise.all(sessions.map((c) => c.post('/api/v1/auth/logout')));
      expect(
        outs.map((r) => r.status),
        outs.map((r) => r.text).join('\n'),
      ).toEqual([204, 204, 204]);
    });

    it.runIf(available)('after logout the old session cookie no longer works', async () => {
      const { client, sessionHash } = await loginTracked(t, 'owner@example.com', ownerId);
      const oldSession = client.cookies.get('hush_session') as string;
      const oldCsrf = client.cookies.get('hush_csrf') as string;
      const out = await client.post('/api/v1/auth/logout');
      expect(out.status, out.text).toBe(204);
      expect(client.cookies.has('hush_session')).toBe(false);
      expect(await sessionHashes(t, ownerId)).not.toContain(sessionHash);

      const replay = t.client();
      replay.cookies.set('hush_session', oldSession);
      replay.cookies.set('hush_csrf', oldCsrf);
      expectProblem(await replay.get('/api/v1/me'), 401, 'unauthenticated');
      const before = await snapshot(t);
      expectProblem(await replay.post('/api/v1/workspaces', { name: 'Replayed' }), 401, 'unauthenticated');
      expect(await snapshot(t)).toEqual(before);
      // Other sessions of the same user live on.
      expect((await owner.get('/api/v1/me')).status).toBe(200);
    });

    it.runIf(available)('a session past its idle expiry is refused and deleted', async () => {
      const { client, sessionHash } = await loginTracked(t, 'owner@example.com', ownerId);
      expect((await client.get('/api/v1/me')).status).toBe(200);
      await t.ctx.db
        .updateTable('sessions')
        .set({ idle_expires_at: PAST })
        .where('id_hash', '=', sessionHash)
        .execute();
      expectProblem(await client.get('/api/v1/me'), 401, 'unauthenticated');
      const row = await t.ctx.db.selectFrom('sessions').select('id_hash').where('id_hash', '=', sessionHash).execute();
      expect(row).toEqual([]);
    });

    it.runIf(available)(
      'a session past its absolute expiry is refused and deleted, even when recently used',
      async () => {
        const { client, sessionHash } = await loginTracked(t, 'owner@example.com', ownerId);
        expect((await client.get('/api/v1/me')).status).toBe(200);
        await t.ctx.db
          .updateTable('sessions')
          .set({ absolute_expires_at: PAST })
          .where('id_hash', '=', sessionHash)
          .execute();
        expectProblem(await client.get('/api/v1/me'), 401, 'unauthenticated');
        const row = await t.ctx.db
          .selectFrom('sessions')
          .select('id_hash')
          .where('id_hash', '=', sessionHash)
          .execute();
        expect(row).toEqual([]);
      },
    );
  });

  describe('API tokens', () => {
    async function createToken(c: TestClient, workspaceId: string, name = 'ci') {
      const res = await c.post('/api/v1/tokens', { name, workspaceId, expiresInDays: 7 });
      expect(res.status, res.text).toBe(201);
      return { id: res.body.id as string, token: res.body.token as string, body: res.body };
    }

    function bearer(token: string): TestClient {
      const c = t.client();
      c.bearer = token;
      return c;
    }

    it.runIf(available)('a token is shown once and stored only as a hash', async () => {
      const { id, token, body } = await createToken(owner, wsA);
      expect(token).toMatch(/^hush_[A-Za-z0-9_-]{20,}$/);
      expect(body.workspaceId).toBe(wsA);

      const list = await owner.get('/api/v1/tokens');
      expect(list.status).toBe(200);
      expect(list.body.items.map((i: { id: string }) => i.id)).toContain(id);
      expect(list.text).not.toContain(token);
      expect(list.text).not.toContain(token.slice(5));

      const rows = await t.ctx.db.selectFrom('api_tokens').selectAll().execute();
      const row = rows.find((r) => r.id === id);
      expect(row).toBeDefined();
      expect(row?.token_hash).not.toBe(token);
      expect(row?.token_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(rows)).not.toContain(token.slice(5));

      // Nor is it in the audit trail or the server log.
      const audit = await t.ctx.db.selectFrom('audit_events').selectAll().execute();
      expect(JSON.stringify(audit)).not.toContain(token.slice(5));
      expect(t.logs.join('\n')).not.toContain(token.slice(5));
    });

    it.runIf(available)('a bearer request changes state without CSRF', async () => {
      const { token } = await createToken(owner, wsA);
      const c = bearer(token);
      expect(c.cookies.size).toBe(0);
      const me = await c.get('/api/v1/me');
      expect(me.status, me.text).toBe(200);
      expect(me.body.via).toBe('token');
      const renamed = await c.patch(`/api/v1/workspaces/${wsA}`, { name: 'Acme by token' });
      expect(renamed.status, renamed.text).toBe(200);
      expect(renamed.body.name).toBe('Acme by token');
      const back = await c.patch(`/api/v1/workspaces/${wsA}`, { name: 'Acme' });
      expect(back.status, back.text).toBe(200);
    });

    it.runIf(available)(
      'a token for workspace A is 404 on workspace B, although its user is a member of both',
      async () => {
        const { token } = await createToken(owner, wsA);
        const c = bearer(token);
        const before = await snapshot(t);
        expectProblem(await c.get(`/api/v1/workspaces/${wsB}`), 404, 'not_found');
        expectProblem(await c.get(`/api/v1/workspaces/${wsB}/members`), 404, 'not_found');
        expectProblem(await c.get(`/api/v1/workspaces/${wsB}/audit`), 404, 'not_found');
        expectProblem(await c.patch(`/api/v1/workspaces/${wsB}`, { name: 'Hijacked' }), 404, 'not_found');
        expectProblem(
          await c.post(`/api/v1/workspaces/${wsB}/invitations`, { email: 'x@example.com', role: 'viewer' }),
          404,
          'not_found',
        );
        expectProblem(await c.delete(`/api/v1/workspaces/${wsB}`), 404, 'not_found');
        expect(await snapshot(t)).toEqual(before);
        // It does not even list workspace B.
        const list = await c.get('/api/v1/workspaces');
        expect(list.body.items.map((w: { id: string }) => w.id)).toEqual([wsA]);
        const me = await c.get('/api/v1/me');
        expect(me.body.workspaces.map((w: { id: string }) => w.id)).toEqual([wsA]);
        // The session of the same user still reaches B.
        expect((await owner.get(`/api/v1/workspaces/${wsB}`)).status).toBe(200);
      },
    );

    it.runIf(available)('a token cannot create workspaces or tokens', async () => {
      const { id, token } = await createToken(owner, wsA);
      const c = bearer(token);
      const before = await snapshot(t);
      expectProblem(await c.post('/api/v1/workspaces', { name: 'From a token' }), 403, 'forbidden');
      expectProblem(
        await c.post('/api/v1/tokens', { name: 'child', workspaceId: wsA, expiresInDays: 365 }),
        403,
        'forbidden',
      );
      expectProblem(await c.delete(`/api/v1/tokens/${id}`), 403, 'forbidden');
      expect(await snapshot(t)).toEqual(before);
    });

    it.runIf(available)('an expired token is refused', async () => {
      const { id, token } = await createToken(owner, wsA);
      const c = bearer(token);
      expect((await c.get(`/api/v1/workspaces/${wsA}`)).status).toBe(200);
      await t.ctx.db.updateTable('api_tokens').set({ expires_at: PAST }).where('id', '=', id).execute();
      // A hand edit of the database bypasses the audited change epoch that
      // invalidates cached token rows (workspace-cache.ts); every change Hush
      // makes is audited. Expiry by the clock: test/evidence/abuse-controls.test.ts.
      t.ctx.cache.clear();
      expectProblem(await c.get(`/api/v1/workspaces/${wsA}`), 401, 'unauthenticated');
      expectProblem(await c.get('/api/v1/me'), 401, 'unauthenticated');
    });

    it.runIf(available)('a revoked token is refused', async () => {
      const { id, token } = await createToken(owner, wsA);
      const c = bearer(token);
      expect((await c.get(`/api/v1/workspaces/${wsA}`)).status).toBe(200);
      const revoked = await owner.delete(`/api/v1/tokens/${id}`);
      expect(revoked.status, revoked.text).toBe(204);
      expectProblem(await c.get(`/api/v1/workspaces/${wsA}`), 401, 'unauthenticated');
      const list = await owner.get('/api/v1/tokens');
      expect(list.body.items.map((i: { id: string }) => i.id)).not.toContain(id);
      // Another user cannot revoke someone else's token.
      const second = await createToken(owner, wsA);
      expectProblem(await admin.delete(`/api/v1/tokens/${second.id}`), 404, 'not_found');
      expect((await bearer(second.token).get('/api/v1/me')).status).toBe(200);
    });

    it.runIf(available)("a token acts with its creator's current permissions", async () => {
      const { token } = await createToken(admin, wsA, 'admin-ci');
      const c = bearer(token);
      const audit = await c.get(`/api/v1/workspaces/${wsA}/audit`);
      expect(audit.status, audit.text).toBe(200);

      const demote = await owner.patch(`/api/v1/workspaces/${wsA}/members/${adminId}`, { role: 'viewer' });
      expect(demote.status, demote.text).toBe(204);
      try {
        expectProblem(await c.get(`/api/v1/workspaces/${wsA}/audit`), 403, 'forbidden');
        expectProblem(await c.get(`/api/v1/workspaces/${wsA}/members`), 403, 'forbidden');
        expectProblem(
          await c.post(`/api/v1/workspaces/${wsA}/invitations`, { email: 'late@example.com', role: 'viewer' }),
          403,
          'forbidden',
        );
        // What a viewer may do, the token still may.
        expect((await c.get(`/api/v1/workspaces/${wsA}`)).status).toBe(200);
      } finally {
        const restore = await owner.patch(`/api/v1/workspaces/${wsA}/members/${adminId}`, { role: 'admin' });
        expect(restore.status, restore.text).toBe(204);
      }
    });

    it.runIf(available)('a token stops working when its creator leaves the workspace', async () => {
      const leaver = await inviteAndJoin(t, owner, wsA, 'leaver@example.com', 'editor');
      const { token } = await createToken(leaver.client, wsA, 'leaver-ci');
      const c = bearer(token);
      expect((await c.get(`/api/v1/workspaces/${wsA}`)).status).toBe(200);
      const left = await leaver.client.delete(`/api/v1/workspaces/${wsA}/members/${leaver.userId}`);
      expect(left.status, left.text).toBe(204);
      const after = await c.get(`/api/v1/workspaces/${wsA}`);
      expect([401, 404], after.text).toContain(after.status);
      expect(after.body.code).toBe(after.status === 401 ? 'unauthenticated' : 'not_found');
    });

    it.runIf(available)('a garbage bearer is refused', async () => {
      const garbage = [
        `hush_${randomBytes(32).toString('base64url')}`,
        'hush_',
        'not-a-token',
        `${randomBytes(32).toString('base64url')}`,
      ];
      for (const g of garbage) {
        const res = await raw(t, 'GET', '/api/v1/me', { headers: { authorization: `Bearer ${g}` } });
        expectProblem(res, 401, 'unauthenticated');
      }
      for (const header of ['Bearer', 'Bearer ', 'Basic b3duZXI6cGFzcw==', 'hush_abc']) {
        const res = await raw(t, 'GET', '/api/v1/me', { headers: { authorization: header } });
        expectProblem(res, 401, 'unauthenticated');
      }
      // A garbage bearer does not fall back to the session cookie either.
      const both = await raw(t, 'GET', '/api/v1/me', {
        headers: { cookie: cookieHeader(owner), authorization: 'Bearer hush_garbage' },
      });
      expectProblem(both, 401, 'unauthenticated');
    });
  });

  describe('anonymous callers', () => {
    it.runIf(available)('an anonymous caller gets 401 unauthenticated', async () => {
      const anon = t.client();
      const before = await snapshot(t);
      const calls: [string, string, unknown][] = [
        ['GET', '/api/v1/me', undefined],
        ['GET', '/api/v1/tokens', undefined],
        ['POST', '/api/v1/tokens', { name: 'anon', workspaceId: wsA, expiresInDays: 1 }],
        ['GET', '/api/v1/workspaces', undefined],
        ['POST', '/api/v1/workspaces', { name: 'Anonymous' }],
        ['GET', `/api/v1/workspaces/${wsA}`, undefined],
      ];
      for (const [method, url, body] of calls) {
        const res = await anon.request(method, url, body);
        expect(res.status, `${method} ${url}: ${res.text}`).toBe(401);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.body).toMatchObject({ status: 401, code: 'unauthenticated' });
        expect(typeof res.body.type).toBe('string');
        expect(typeof res.body.title).toBe('string');
        expect(typeof res.body.detail).toBe('string');
      }
      expect(await snapshot(t)).toEqual(before);
    });
  });

  describe('signing out', () => {
    it.runIf(available)(
      'a session ended elsewhere (or none at all) still signs out: 204, cookies cleared, nothing else changes',
      async () => {
        const first = await login(t, 'admin@example.com');
        const stale = new Map(first.cookies);
        expect((await first.post('/api/v1/auth/logout')).status).toBe(204);
        // The other tab still holds the ended session's cookies.
        const before = await snapshot(t);
        const cookie = [...stale].map(([k, v]) => `${k}=${v}`).join('; ');
        const res = await raw(t, 'POST', '/api/v1/auth/logout', {
          headers: { cookie, 'x-hush-csrf': stale.get('hush_csrf') as string },
          payload: {},
        });
        expect(res.status, res.text).toBe(204);
        const cleared = [res.headers['set-cookie']].flat().map(String);
        expect(
          cleared.some((c) => c.startsWith('hush_session=;')),
          cleared.join('\n'),
        ).toBe(true);
        expect(
          cleared.some((c) => c.startsWith('hush_csrf=;')),
          cleared.join('\n'),
        ).toBe(true);
        const anonymous = await t.client().post('/api/v1/auth/logout');
        expect(anonymous.status).toBe(204);
        expect(await snapshot(t)).toEqual(before);
        expect((await raw(t, 'GET', '/api/v1/me', { headers: { cookie } })).status).toBe(401);
      },
    );
  });

  describe('security headers', () => {
    it.runIf(available)('every response carries a request id and the security headers', async () => {
      const responses: [string, Reply][] = [
        ['GET /healthz', await raw(t, 'GET', '/healthz')],
        ['GET /metrics', await raw(t, 'GET', '/metrics')],
        ['GET /api/v1/setup', await raw(t, 'GET', '/api/v1/setup')],
        ['GET /api/v1/me (401)', await raw(t, 'GET', '/api/v1/me')],
        ['GET /api/v1/me (200)', await owner.get('/api/v1/me')],
        ['GET unknown (404)', await raw(t, 'GET', '/api/v1/no-such-route')],
        // An API route reached through an encoded path is still an API answer.
        ['GET encoded path', await raw(t, 'GET', '/%61pi/v1/me', { headers: { cookie: cookieHeader(owner) } })],
        [
          'POST malformed (400)',
          await raw(t, 'POST', '/api/v1/auth/login', {
            headers: { 'content-type': 'application/json' },
            payload: '{"email":',
          }),
        ],
        ['POST invalid (422)', await raw(t, 'POST', '/api/v1/auth/login', { payload: { email: 1 } })],
        [
          'PATCH csrf (403)',
          await raw(t, 'PATCH', `/api/v1/workspaces/${wsA}`, {
            headers: { cookie: cookieHeader(owner) },
            payload: { name: 'x' },
          }),
        ],
      ];
      const ids = new Set<string>();
      for (const [name, res] of responses) {
        const id = res.headers['x-request-id'];
        expect(typeof id === 'string' && id.length > 0, `${name}: x-request-id`).toBe(true);
        ids.add(String(id));
        // Nothing in an API answer may run, be framed, cached, sniffed or read by another origin.
        expect(res.headers['content-security-policy'], `${name}: CSP`).toBe(
          "default-src 'none'; frame-ancestors 'none'",
        );
        expect(res.headers['x-frame-options'], name).toBe('DENY');
        expect(res.headers['cache-control'], name).toBe('no-store');
        expect(res.headers['x-content-type-options'], name).toBe('nosniff');
        expect(res.headers['referrer-policy'], name).toBe('no-referrer');
        expect(res.headers['cross-origin-resource-policy'], name).toBe('same-origin');
        // HSTS only where the server is reached over HTTPS (HUSH_PUBLIC_URL https://…).
        expect(res.headers['strict-transport-security'], name).toBeUndefined();
      }
      // Generated ids are unique per request.
      expect(ids.size).toBe(responses.length);
    });

    it.runIf(available)('the web UI gets the CSP its page needs, and no more', async () => {
      for (const url of ['/', '/workspaces/x/secrets']) {
        const res = await raw(t, 'GET', url);
        expect(res.status, url).toBe(200);
        expect(res.headers['content-type'], url).toMatch(/^text\/html/);
        expect(res.headers['x-request-id'], url).toBeTruthy();
        const csp = String(res.headers['content-security-policy'] ?? '');
        expect(csp, `${url}: CSP`).toMatch(/(^|;)\s*default-src 'self'/);
        expect(csp, `${url}: CSP`).toMatch(/(^|;)\s*script-src 'self'(;|$)/);
        expect(csp, `${url}: CSP`).toContain("frame-ancestors 'none'");
        expect(csp, `${url}: CSP`).not.toContain('unsafe-inline');
        expect(csp, `${url}: CSP`).not.toContain('unsafe-eval');
        expect(res.headers['x-content-type-options'], url).toBe('nosniff');
        expect(res.headers['referrer-policy'], url).toBe('no-referrer');
        expect(res.headers['cache-control'], url).toBe('no-store');
      }
    });

    it.runIf(available)('a safe incoming x-request-id is echoed, an unsafe one is replaced', async () => {
      const safe = 'req-123.abc:XYZ_9';
      const echoed = await raw(t, 'GET', '/api/v1/setup', { headers: { 'x-request-id': safe } });
      expect(echoed.headers['x-request-id']).toBe(safe);
      const echoedError = await raw(t, 'GET', '/api/v1/me', { headers: { 'x-request-id': safe } });
      expect(echoedError.headers['x-request-id']).toBe(safe);

      for (const unsafe of ['<script>alert(1)</script>', 'a b', 'x'.repeat(65), 'id\u00e9', 'a;b']) {
        const res = await raw(t, 'GET', '/api/v1/setup', { headers: { 'x-request-id': unsafe } });
        const id = String(res.headers['x-request-id'] ?? '');
        expect(id).not.toBe(unsafe);
        expect(id).toMatch(/^[A-Za-z0-9._:-]{1,64}$/);
      }
    });
  });

  describe('bad input', () => {
    it.runIf(available)('bad input is a 4xx problem, never a 5xx', async () => {
      const before = await snapshot(t);
      const logStart = t.logs.length;

      const malformed = await owner.request('POST', '/api/v1/workspaces', '{"name": "x",', {
        'content-type': 'application/json',
      });
      expectProblem(malformed, 400, 'malformed_json');
      const malformedAnon = await raw(t, 'POST', '/api/v1/auth/login', {
        headers: { 'content-type': 'application/json' },
        payload: '{not json}',
      });
      expectProblem(malformedAnon, 400, 'malformed_json');

      const unknownField = await owner.post('/api/v1/workspaces', { name: 'x', isAdmin: true });
      expectProblem(unknownField, 422, 'validation_failed');
      expect(Array.isArray(unknownField.body.errors) && unknownField.body.errors.length > 0).toBe(true);
      expect(unknownField.body.errors[0]).toMatchObject({ path: expect.stringMatching(/^body/) });

      const unknownLoginField = await raw(t, 'POST', '/api/v1/auth/login', {
        payload: { email: 'owner@example.com', password: PASSWORD, remember: true },
      });
      expectProblem(unknownLoginField, 422, 'validation_failed');
      expect(unknownLoginField.body.errors.length).toBeGreaterThan(0);

      const wrongTypes: [string, string, unknown][] = [
        ['POST', '/api/v1/workspaces', { name: 42 }],
        ['POST', '/api/v1/workspaces', { name: ['a'] }],
        ['POST', '/api/v1/tokens', { name: 'x', workspaceId: wsA, expiresInDays: 'ten' }],
        ['POST', '/api/v1/tokens', { name: 'x', workspaceId: wsA, expiresInDays: 1.5 }],
        ['POST', '/api/v1/tokens', { name: 'x', workspaceId: wsA, expiresInDays: 100_000 }],
        ['PATCH', `/api/v1/workspaces/${wsA}`, { name: null }],
        ['PATCH', `/api/v1/workspaces/${wsA}/members/${adminId}`, { role: 7 }],
        ['POST', `/api/v1/workspaces/${wsA}/invitations`, { email: 'not-an-email', role: 'viewer' }],
      ];
      for (const [method, url, body] of wrongTypes) {
        const res = await owner.request(method, url, body);
        expect(res.status, `${method} ${url} ${JSON.stringify(body)}: ${res.text}`).toBe(422);
        expect(res.body.code).toBe('validation_failed');
        expect(res.body.errors.length).toBeGreaterThan(0);
      }
      const badId = await owner.get('/api/v1/workspaces/..%2F..%2Fetc');
      expect(badId.status, badId.text).toBeGreaterThanOrEqual(400);
      expect(badId.status, badId.text).toBeLessThan(500);

      const unknownRoute = await owner.get('/api/v1/definitely/not/here');
      expectProblem(unknownRoute, 404, 'not_found');
      const unknownMethod = await owner.request('PUT', '/api/v1/me', {});
      expect(unknownMethod.status).toBe(404);
      expect(unknownMethod.headers['content-type']).toMatch(/^application\/problem\+json/);

      const huge = JSON.stringify({ name: 'x'.repeat(3 * 1024 * 1024) });
      const tooLarge = await owner.request('POST', '/api/v1/workspaces', huge, { 'content-type': 'application/json' });
      expectProblem(tooLarge, 413, 'payload_too_large');
      const tooLargeAnon = await raw(t, 'POST', '/api/v1/auth/login', {
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ email: 'owner@example.com', password: 'p'.repeat(3 * 1024 * 1024) }),
      });
      expectProblem(tooLargeAnon, 413, 'payload_too_large');

      expect(await snapshot(t)).toEqual(before);
      // Nothing above made the server log an unhandled error.
      expect(t.logs.slice(logStart).filter((l) => l.includes('unhandled error'))).toEqual([]);
    });

    it.runIf(available)('a validation error names the offending field', async () => {
      // FieldError.path is "body.email"-like: the field, not just "body".
      const typed = await owner.post('/api/v1/workspaces', { name: 42 });
      expectProblem(typed, 422, 'validation_failed');
      expect(typed.body.errors, typed.text).toContainEqual(expect.objectContaining({ path: 'body.name' }));
      const twoBad = await raw(t, 'POST', '/api/v1/auth/login', { payload: { email: 1, password: [] } });
      expectProblem(twoBad, 422, 'validation_failed');
      expect([...new Set(twoBad.body.errors.map((e: { path: string }) => e.path))].sort(), twoBad.text).toEqual([
        'body.email',
        'body.password',
      ]);
      // An unknown field is named too.
      const unknownField = await owner.post('/api/v1/workspaces', { name: 'x', isAdmin: true });
      expectProblem(unknownField, 422, 'validation_failed');
      expect(JSON.stringify(unknownField.body.errors)).toContain('isAdmin');
    });

    it.runIf(available)(
      'a malformed URL is a 400 problem with a request id and the security headers, not a raw framework error',
      async () => {
        for (const url of ['/api/v1/workspaces/%zz', '/api/v1/me%', '/%E0%A4%A']) {
          const res = await raw(t, 'GET', url, { headers: { cookie: cookieHeader(owner) } });
          expect(res.status, `${url}: ${res.text}`).toBe(400);
          expect(res.headers['content-type'], url).toMatch(/^application\/problem\+json/);
          expect(res.body?.code, url).toBe('bad_request');
          expect(res.body?.status, url).toBe(400);
          expect(res.headers['x-request-id'], url).toBeTruthy();
          expect(String(res.headers['content-security-policy'] ?? ''), url).toContain("frame-ancestors 'none'");
          expect(res.headers['x-content-type-options'], url).toBe('nosniff');
        }
      },
    );
  });
});
