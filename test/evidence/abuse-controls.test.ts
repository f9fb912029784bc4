/**
 * Evidence for the abuse controls of issue 8 (SPEC §3 "Web and session"), on
 * SQLite and PostgreSQL. This file holds only what no other test proves yet.
 *
 * Already proven elsewhere (not repeated here):
 * - login rate limit (per account and IP, 429 rate_limited + Retry-After, parallel burst):
 *   test/api/auth-security.test.ts › login rate limit; across two servers (Redis):
 *   test/storage/shared-rate-limit.test.ts › "login attempts counted on one server are refused on the other"
 * - reveal rate limit (one user, one secret; another user unaffected; the 429 carries no value):
 *   test/api/secrets.test.ts › "reveal rate limit on $kind"; across servers:
 *   test/storage/shared-rate-limit.test.ts › "reveals counted on one server are refused on the other"
 * - idle and absolute expiry of a session row (refused, row deleted):
 *   test/api/auth-security.test.ts › logout and session expiry › "a session past its idle expiry…", "…absolute expiry…"
 * - logout: the old cookie replayed from another client is refused, also for a state change, and the
 *   user's other sessions live on: auth-security › "after logout the old session cookie no longer works"
 * - API token expiry and revocation (refused at once), tokens cannot mint tokens, token acts with the
 *   creator's current permissions: auth-security › API tokens
 * - security headers on API responses, errors and framework errors (CSP, frame-ancestors, nosniff,
 *   Referrer-Policy, x-request-id): auth-security › security headers, › bad input › "a malformed URL…"
 * - cookie flags (HttpOnly, SameSite=Lax, Secure behind https) and CSRF on eight routes plus the
 *   wrong-header variants (forged pair, other session's pair) on one: auth-security › CSRF and cookies
 *
 * Added here:
 * 1. CSRF on EVERY state-changing route, enumerated from the running app (the OpenAPI document,
 *    cross-checked against fastify's own route tree, so a hidden route cannot slip by): a cookie
 *    request with no, a wrong, or a forged-pair X-Hush-Csrf is 403 csrf_failed, no table of the
 *    database changes and no outbound call is made; the same request with the right header then
 *    succeeds (so the refusal was CSRF and nothing else). Also other spellings of a path, a
 *    method-override header, and the simple (form / text/plain) bodies a cross-site page can send
 *    to the routes that carry no CSRF token by design (setup, login, invitation acceptance).
 * 2. Security headers on the web UI: index.html, the SPA fallback and every built asset, and the
 *    built HTML has no inline script, style or event handler (so the strict CSP is not in the way).
 * 3. The reveal limit counts per user across secrets AND credentials: a second session or an API
 *    token of the same user does not get a fresh budget.
 * 4. With a controlled clock and the configured values (HUSH_SESSION_IDLE_MINUTES,
 *    HUSH_SESSION_ABSOLUTE_HOURS, expiresInDays): activity slides the idle expiry but never past the
 *    absolute one, each to the millisecond; a token dies exactly at its expiry.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashToken } from '../../src/app/ids.js';
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
import { startUpstream, type Upstream } from '../support/upstream.js';

const WEB_ROOT = path.resolve(import.meta.dirname, '../../dist/web');
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const IDLE_MINUTES = 10;
const ABSOLUTE_HOURS = 1;
const REVEAL_LIMIT = 3;
const MINUTE = 60_000;

// ---------------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------------

function expectProblem(res: Reply, status: number, code: string, label = ''): void {
  expect(res.status, `${label} ${res.text}`).toBe(status);
  expect(res.headers['content-type'], label).toMatch(/^application\/problem\+json/);
  expect(res.body?.code, `${label} ${res.text}`).toBe(code);
}

function setSessionCookie(res: Reply): boolean {
  const h = res.headers['set-cookie'];
  const lines = h === undefined ? [] : Array.isArray(h) ? h : [String(h)];
  return lines.some((l) => /^hush_session=[^;]+/.test(l));
}

async function login(t: TestApp, email: string): Promise<TestClient> {
  const c = t.client();
  const res = await c.post('/api/v1/auth/login', { email, password: PASSWORD });
  expect(res.status, res.text).toBe(200);
  return c;
}

/**
 * Every row of every table, in a stable order. Columns a mere authenticated
 * read may touch (session last-seen / idle refresh, token last use) are left
 * out; everything else must stay byte for byte the same after a refusal.
 */
async function databaseState(t: TestApp): Promise<Record<string, string[]>> {
  const volatile: Record<string, string[]> = {
    sessions: ['last_seen_at', 'idle_expires_at'],
    api_tokens: ['last_used_at'],
  };
  const tables = (await t.ctx.db.introspection.getTables()).map((tb) => tb.name).sort();
  expect(tables).toEqual(expect.arrayContaining(['secrets', 'secret_versions', 'sessions', 'audit_events']));
  const state: Record<string, string[]> = {};
  for (const name of tables) {
    const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(name)}`.execute(t.ctx.db);
    state[name] = rows
      .map((row) => {
        const copy = { ...row };
        for (const col of volatile[name] ?? []) delete copy[col];
        return JSON.stringify(copy);
      })
      .sort();
  }
  return state;
}

// ---------------------------------------------------------------------------
// Route enumeration
// ---------------------------------------------------------------------------

/** "METHOD /path/{param}" for every state-changing operation in the OpenAPI document. */
function openApiStateChanging(t: TestApp): string[] {
  const doc = t.app.swagger() as { paths: Record<string, Record<string, unknown>> };
  const out: string[] = [];
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      if (STATE_CHANGING.has(method.toUpperCase())) out.push(`${method.toUpperCase()} ${p}`);
    }
  }
  return out.sort();
}

/**
 * The same from fastify's own route tree, which also lists routes hidden from
 * the OpenAPI document (static files, /healthz…). Lines look like
 * `│   ├── /:id (PATCH, DELETE)`; a child's path is its parent's plus its segment.
 */
function routerStateChanging(t: TestApp): string[] {
  const tree = t.app.printRoutes({ commonPrefix: false });
  const paths: string[] = [];
  const out: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:[│ ] {3})*)(?:[├└]── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = (m[1] ?? '').length / 4;
    const full = `${depth === 0 ? '' : paths[depth - 1]}${m[2]}`;
    paths[depth] = full;
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim())) {
      if (STATE_CHANGING.has(method)) out.push(`${method} ${full.replace(/:([A-Za-z]+)/g, '{$1}')}`);
    }
  }
  expect(out.length, `could not parse fastify's route tree:\n${tree}`).toBeGreaterThan(10);
  return out.sort();
}

// ---------------------------------------------------------------------------
// One prepared, valid request per state-changing route
// ---------------------------------------------------------------------------

interface World {
  t: TestApp;
  owner: TestClient;
  ws: string;
  up: Upstream;
}

interface Prepared {
  url: string;
  body?: unknown;
  /** The session to attack with; default: the owner's. */
  as?: TestClient;
}

interface CsrfCase {
  /** As in the OpenAPI document. */
  route: string;
  label?: string;
  prepare(w: World): Promise<Prepared>;
  /**
   * With the right header: 'success' = 2xx; 'handled' = reaches the route
   * (setup is already done, so it answers its own 4xx).
   */
  control: 'success' | 'handled';
}

let seq = 0;
const unique = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

async function created(res: Reply): Promise<string> {
  expect(res.status, res.text).toBe(201);
  return res.body.id as string;
}

const newSecret = async (w: World, opts: { deleted?: boolean } = {}) => {
  const id = await created(
    await w.owner.post(`/api/v1/workspaces/${w.ws}/secrets`, {
      name: unique('S'),
      visibility: 'masked',
      value: 'csrf-evidence-secret-value',
    }),
  );
  if (opts.deleted) expect((await w.owner.delete(`/api/v1/workspaces/${w.ws}/secrets/${id}`)).status).toBe(204);
  return id;
};
const newVariable = async (w: World) =>
  created(await w.owner.post(`/api/v1/workspaces/${w.ws}/variables`, { name: unique('v'), type: 'text' }));
const newRole = async (w: World) =>
  created(
    await w.owner.post(`/api/v1/workspaces/${w.ws}/roles`, {
      name: unique('r').slice(0, 30),
      permissions: ['variables.read'],
    }),
  );
const newInvitation = async (w: World) => {
  const res = await w.owner.post(`/api/v1/workspaces/${w.ws}/invitations`, {
    email: `${unique('inv')}@example.com`.toLowerCase(),
    role: 'viewer',
  });
  expect(res.status, res.text).toBe(201);
  return { id: res.body.id as string, token: res.body.token as string };
};
const newMember = async (w: World) =>
  (await inviteAndJoin(w.t, w.owner, w.ws, `${unique('m')}@example.com`.toLowerCase(), 'viewer')).userId;
/** A workflow whose one API block calls the upstream: a run that got through would be seen there. */
const apiWorkflow = (w: World) => ({
  name: unique('wf'),
  startBlockId: 'call',
  blocks: [{ id: 'call', type: 'api', name: 'Call', method: 'GET', url: `${w.up.url}/from-run` }],
});
const newWorkflow = async (w: World) =>
  created(await w.owner.post(`/api/v1/workspaces/${w.ws}/workflows`, apiWorkflow(w)));

const CASES: CsrfCase[] = [
  {
    route: 'POST /api/v1/setup',
    control: 'handled',
    prepare: async () => ({
      url: '/api/v1/setup',
      body: {
        token: SETUP_TOKEN,
        email: 'second-owner@example.com',
        password: PASSWORD,
        name: 'X',
        workspaceName: 'X',
      },
    }),
  },
  {
    route: 'POST /api/v1/auth/login',
    control: 'success',
    prepare: async () => ({ url: '/api/v1/auth/login', body: { email: 'owner@example.com', password: PASSWORD } }),
  },
  {
    route: 'POST /api/v1/auth/logout',
    control: 'success',
    // Its own session, so the control's logout ends only that one.
    prepare: async (w) => ({ url: '/api/v1/auth/logout', body: {}, as: await login(w.t, 'owner@example.com') }),
  },
  {
    route: 'POST /api/v1/tokens',
    control: 'success',
    prepare: async (w) => ({ url: '/api/v1/tokens', body: { name: 'csrf', workspaceId: w.ws, expiresInDays: 1 } }),
  },
  {
    route: 'DELETE /api/v1/tokens/{id}',
    control: 'success',
    prepare: async (w) => {
      const id = await created(await w.owner.post('/api/v1/tokens', { name: 'x', workspaceId: w.ws }));
      return { url: `/api/v1/tokens/${id}` };
    },
  },
  {
    route: 'POST /api/v1/workspaces',
    control: 'success',
    prepare: async () => ({ url: '/api/v1/workspaces', body: { name: 'Planted' } }),
  },
  {
    route: 'PATCH /api/v1/workspaces/{ws}',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}`, body: { name: 'Renamed' } }),
  },
  {
    route: 'DELETE /api/v1/workspaces/{ws}',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${await created(await w.owner.post('/api/v1/workspaces', { name: 'Disposable' }))}`,
    }),
  },
  {
    route: 'PATCH /api/v1/workspaces/{ws}/members/{userId}',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/members/${await newMember(w)}`,
      body: { role: 'admin' },
    }),
  },
  {
    route: 'DELETE /api/v1/workspaces/{ws}/members/{userId}',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/members/${await newMember(w)}` }),
  },
  {
    route: 'POST /api/v1/workspaces/{ws}/invitations',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/invitations`,
      body: { email: 'attacker@example.com', role: 'admin' },
    }),
  },
  {
    route: 'DELETE /api/v1/workspaces/{ws}/invitations/{id}',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/invitations/${(await newInvitation(w)).id}` }),
  },
  {
    route: 'POST /api/v1/invitations/accept',
    control: 'success',
    prepare: async (w) => ({
      url: '/api/v1/invitations/accept',
      body: { token: (await newInvitation(w)).token, name: 'Invitee', password: PASSWORD },
    }),
  },
  {
    route: 'POST /api/v1/workspaces/{ws}/roles',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/roles`,
      body: { name: unique('role').slice(0, 30), permissions: ['variables.read'] },
    }),
  },
  {
    route: 'PATCH /api/v1/workspaces/{ws}/roles/{id}',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/roles/${await newRole(w)}`,
      body: { description: 'changed' },
    }),
  },
  {
    route: 'DELETE /api/v1/workspaces/{ws}/roles/{id}',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/roles/${await newRole(w)}` }),
  },
  {
    route: 'POST /api/v1/workspaces/{ws}/variables',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/variables`,
      body: { name: unique('v'), type: 'text', testValue: 'x' },
    }),
  },
  {
    route: 'PATCH /api/v1/workspaces/{ws}/variables/{id}',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/variables/${await newVariable(w)}`,
      body: { description: 'changed' },
    }),
  },
  {
    route: 'DELETE /api/v1/workspaces/{ws}/variables/{id}',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/variables/${await newVariable(w)}` }),
  },
  {
    route: 'POST /api/v1/workspaces/{ws}/secrets',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/secrets`,
      body: { name: unique('S'), visibility: 'masked', value: 'planted-by-a-forged-request' },
    }),
  },
  {
    route: 'PATCH /api/v1/workspaces/{ws}/secrets/{id}',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/secrets/${await newSecret(w)}`,
      body: { value: 'overwritten-by-a-forged-request', allowedHosts: ['attacker.example'] },
    }),
  },
  {
    route: 'DELETE /api/v1/workspaces/{ws}/secrets/{id}',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/secrets/${await newSecret(w)}` }),
  },
  {
    route: 'DELETE /api/v1/workspaces/{ws}/secrets/{id}',
    label: '?purge=true',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/secrets/${await newSecret(w)}?purge=true` }),
  },
  {
    route: 'POST /api/v1/workspaces/{ws}/secrets/{id}/restore',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/secrets/${await newSecret(w, { deleted: true })}/restore`,
    }),
  },
  {
    route: 'POST /api/v1/workspaces/{ws}/secrets/{id}/reveal',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/secrets/${await newSecret(w)}/reveal` }),
  },
  {
    route: 'POST /api/v1/workspaces/{ws}/workflows',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/workflows`, body: apiWorkflow(w) }),
  },
  {
    route: 'PUT /api/v1/workspaces/{ws}/workflows/{id}',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/workflows/${await newWorkflow(w)}`,
      body: apiWorkflow(w),
    }),
  },
  {
    route: 'DELETE /api/v1/workspaces/{ws}/workflows/{id}',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/workflows/${await newWorkflow(w)}` }),
  },
  {
    route: 'POST /api/v1/workspaces/{ws}/workflows/{id}/runs',
    control: 'success',
    prepare: async (w) => ({ url: `/api/v1/workspaces/${w.ws}/workflows/${await newWorkflow(w)}/runs`, body: {} }),
  },
  {
    route: 'POST /api/v1/workspaces/{ws}/blocks/send',
    control: 'success',
    prepare: async (w) => ({
      url: `/api/v1/workspaces/${w.ws}/blocks/send`,
      body: { block: { id: 'probe', type: 'api', method: 'POST', url: `${w.up.url}/from-send` }, variables: {} },
    }),
  },
];

/** What a cross-site page can make a browser send along with the victim's cookies. */
const FORGERIES: { name: string; headers(victim: TestClient): Record<string, string> }[] = [
  { name: 'no X-Hush-Csrf', headers: (v) => ({ cookie: cookieHeader(v) }) },
  {
    name: 'a wrong X-Hush-Csrf',
    headers: (v) => ({ cookie: cookieHeader(v), 'x-hush-csrf': randomBytes(32).toString('base64url') }),
  },
  {
    // Cookie tossing from a sibling subdomain: header and cookie agree, but are not this session's.
    name: 'a forged cookie/header pair',
    headers: (v) => {
      const forged = randomBytes(32).toString('base64url');
      return { cookie: cookieHeader(v, { hush_csrf: forged }), 'x-hush-csrf': forged };
    },
  },
];

// ---------------------------------------------------------------------------
// CSP parsing
// ---------------------------------------------------------------------------

function cspDirectives(header: unknown): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of String(header ?? '').split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) out.set(name.toLowerCase(), values);
  }
  return out;
}

function expectStrictHeaders(res: Reply, label: string): void {
  const csp = cspDirectives(res.headers['content-security-policy']);
  expect(csp.size, `${label}: no Content-Security-Policy`).toBeGreaterThan(0);
  // script-src falls back to default-src when absent.
  const scriptSrc = csp.get('script-src') ?? csp.get('default-src');
  expect(scriptSrc, `${label}: script-src`).toBeDefined();
  for (const bad of ["'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", '*', 'data:', 'http:', 'https:', 'blob:']) {
    expect(scriptSrc, `${label}: script-src must not allow ${bad}`).not.toContain(bad);
  }
  expect(csp.get('frame-ancestors'), `${label}: frame-ancestors`).toEqual(["'none'"]);
  expect(csp.get('object-src'), `${label}: object-src`).toEqual(["'none'"]);
  expect(res.headers['x-content-type-options'], `${label}: nosniff`).toBe('nosniff');
  expect(['no-referrer', 'same-origin', 'strict-origin', 'strict-origin-when-cross-origin'], label).toContain(
    res.headers['referrer-policy'],
  );
}

// ---------------------------------------------------------------------------

describe.each(DATABASES)('abuse controls on $kind', ({ kind, available }) => {
  let t: TestApp;
  let up: Upstream;
  let owner: TestClient;
  let ws: string;
  let world: World;

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    t = await startTestApp(kind, {
      HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8',
      HUSH_REVEAL_LIMIT_PER_MIN: String(REVEAL_LIMIT),
    });
    ({ owner, workspaceId: ws } = await setupOwner(t));
    world = { t, owner, ws, up };
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await up?.close();
  });

  describe('CSRF on every cookie-authenticated state-changing route', () => {
    it.runIf(available)('the routes are enumerated from the app, and every one has a prepared request here', () => {
      const fromOpenApi = openApiStateChanging(t);
      const fromRouter = routerStateChanging(t);
      // No state-changing route is hidden from the OpenAPI document…
      expect(fromRouter).toEqual(fromOpenApi);
      // …and every one of them is exercised below (a new route must be added to CASES).
      expect([...new Set(CASES.map((c) => c.route))].sort()).toEqual(fromOpenApi);
      // The authentication hook guards /api/ only: no state-changing route lives elsewhere.
      expect(fromRouter.filter((r) => !r.split(' ')[1]?.startsWith('/api/'))).toEqual([]);
    });

    it.runIf(available).each(CASES.map((c): [string, CsrfCase] => [c.label ? `${c.route} ${c.label}` : c.route, c]))(
      '%s: refused without, with a wrong and with a forged X-Hush-Csrf; nothing changes',
      async (_title, c) => {
        const p = await c.prepare(world);
        const victim = p.as ?? owner;
        const before = await databaseState(t);
        const upstreamBefore = up.received.length;
        const method = c.route.split(' ')[0] as string;
        for (const f of FORGERIES) {
          const res = await raw(t, method, p.url, {
            headers: { ...f.headers(victim), origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
            payload: p.body,
          });
          expectProblem(res, 403, 'csrf_failed', `${c.route} with ${f.name}:`);
          expect(setSessionCookie(res), `${c.route} with ${f.name}: set a session`).toBe(false);
        }
        expect(await databaseState(t), `${c.route}: the database changed`).toEqual(before);
        expect(up.received.length, `${c.route}: an outbound call was made`).toBe(upstreamBefore);

        // Control: the same request with the session's own header goes through.
        const ok = await raw(t, method, p.url, {
          headers: { cookie: cookieHeader(victim), 'x-hush-csrf': victim.cookies.get('hush_csrf') as string },
          payload: p.body,
        });
        if (c.control === 'success') {
          expect(ok.status, `${c.route} control: ${ok.text}`).toBeGreaterThanOrEqual(200);
          expect(ok.status, `${c.route} control: ${ok.text}`).toBeLessThan(300);
        } else {
          expect(ok.body?.code, `${c.route} control: ${ok.text}`).not.toBe('csrf_failed');
        }
      },
    );

    it.runIf(available)(
      'other spellings of a path and a method-override header do not get around the check',
      async () => {
        const before = await databaseState(t);
        const cookie = cookieHeader(owner);
        const spellings = [
          '/api/v1/workspaces/',
          '/api//v1/workspaces',
          '/api/v1/./workspaces',
          '/api/v1/x/../workspaces',
          '/api/v1/workspaces;x',
          '/api/v1/workspaces?x=1',
          '/%61pi/v1/workspaces',
          '/API/v1/workspaces',
          '//api/v1/workspaces',
          '/api%2Fv1/workspaces',
        ];
        for (const url of spellings) {
          const res = await raw(t, 'POST', url, { headers: { cookie }, payload: { name: 'Spelled' } });
          // Refused as a forgery, as anonymous (the hook did not see /api/) or as an unknown route.
          expect([401, 403, 404], `${url}: ${res.text}`).toContain(res.status);
          expect(res.headers['content-type'], url).toMatch(/^application\/problem\+json/);
        }
        for (const override of ['GET', 'HEAD', 'OPTIONS']) {
          for (const h of ['x-http-method-override', 'x-http-method', 'x-method-override']) {
            const res = await raw(t, 'PATCH', `/api/v1/workspaces/${ws}`, {
              headers: { cookie, [h]: override },
              payload: { name: 'Overridden' },
            });
            expectProblem(res, 403, 'csrf_failed', `${h}: ${override}`);
          }
        }
        expect(await databaseState(t)).toEqual(before);
      },
    );

    it.runIf(available)(
      'setup, login and invitation acceptance (no CSRF token by design) take only JSON, so a cross-site form cannot drive them',
      async () => {
        const invitation = await newInvitation(world);
        const before = await databaseState(t);
        const targets: [string, Record<string, string>][] = [
          [
            '/api/v1/setup',
            {
              token: SETUP_TOKEN,
              email: 'cross-site@example.com',
              password: PASSWORD,
              name: 'X',
              workspaceName: 'X',
            },
          ],
          ['/api/v1/auth/login', { email: 'owner@example.com', password: PASSWORD }],
          ['/api/v1/invitations/accept', { token: invitation.token, name: 'X', password: PASSWORD }],
        ];
        for (const [url, fields] of targets) {
          const form = new URLSearchParams(fields).toString();
          const boundary = 'xxBOUNDARYxx';
          const multipart = `${Object.entries(fields)
            .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
            .join('')}--${boundary}--\r\n`;
          const simple: [string, string][] = [
            ['application/x-www-form-urlencoded', form],
            ['multipart/form-data; boundary=xxBOUNDARYxx', multipart],
            // A form with enctype=text/plain can carry a JSON-looking body.
            ['text/plain', JSON.stringify(fields)],
            ['text/plain;charset=UTF-8', JSON.stringify(fields)],
          ];
          for (const [contentType, payload] of simple) {
            const res = await raw(t, 'POST', url, {
              headers: { 'content-type': contentType, origin: 'https://evil.example' },
              payload,
            });
            expect(res.status, `${url} as ${contentType}: ${res.text}`).toBeGreaterThanOrEqual(400);
            expect(res.status, `${url} as ${contentType}: ${res.text}`).toBeLessThan(500);
            expect(setSessionCookie(res), `${url} as ${contentType}: set a session`).toBe(false);
          }
        }
        expect(await databaseState(t)).toEqual(before);
        // Control: the invitation is still usable by its invitee, as JSON.
        const accepted = await raw(t, 'POST', '/api/v1/invitations/accept', {
          payload: { token: invitation.token, name: 'Invitee', password: PASSWORD },
        });
        expect(accepted.status, accepted.text).toBe(201);
      },
    );
  });

  describe('security headers on the web UI', () => {
    it.runIf(available)(
      'index.html, the SPA fallback and every built asset carry the strict CSP, nosniff and Referrer-Policy',
      async () => {
        expect(
          existsSync(path.join(WEB_ROOT, 'index.html')),
          'dist/web/index.html is missing: build the UI first (npx vite build; npm test does it).',
        ).toBe(true);
        const assets = readdirSync(path.join(WEB_ROOT, 'assets')).map((f) => `/assets/${f}`);
        expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
        const pages = ['/', '/index.html', '/login', `/workspaces/${ws}/variables`, '/invite'];
        for (const url of [...pages, ...assets]) {
          for (const method of ['GET', 'HEAD']) {
            const res = await raw(t, method, url);
            expect(res.status, `${method} ${url}`).toBe(200);
            expectStrictHeaders(res, `${method} ${url}`);
          }
        }
        for (const url of pages) {
          const res = await raw(t, 'GET', url);
          expect(res.headers['content-type'], url).toMatch(/^text\/html/);
          expect(res.text, url).toContain('<div id="root">');
          // The page names the current bundle: never cached; the hashed bundle files may be.
          expect(res.headers['cache-control'], url).toBe('no-store');
        }
        for (const a of assets) {
          expect((await raw(t, 'GET', a)).headers['cache-control'], a).toBe('public, max-age=31536000, immutable');
        }
        // With nosniff a script only runs when served with a script type.
        for (const a of assets) {
          const res = await raw(t, 'GET', a);
          if (a.endsWith('.js')) expect(res.headers['content-type'], a).toMatch(/^(text|application)\/javascript/);
          if (a.endsWith('.css')) expect(res.headers['content-type'], a).toMatch(/^text\/css/);
        }
      },
    );

    it.runIf(available)(
      'the served HTML has no inline script, style or event handler, and loads scripts only from its own origin',
      async () => {
        const html = (await raw(t, 'GET', '/')).text;
        expect(html).toBe(readFileSync(path.join(WEB_ROOT, 'index.html'), 'utf8'));
        const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
        expect(scripts.length).toBeGreaterThan(0);
        for (const [tag, attrs, content] of scripts) {
          expect(content?.trim(), `inline script: ${tag}`).toBe('');
          const src = /\bsrc="([^"]+)"/.exec(attrs ?? '')?.[1];
          expect(src, `script without src: ${tag}`).toBeDefined();
          expect(src, `script from elsewhere: ${tag}`).toMatch(/^\/(?!\/)/);
        }
        expect(html).not.toMatch(/<style\b/i);
        expect(html).not.toMatch(/\sstyle\s*=/i);
        expect(html).not.toMatch(/\son[a-z]+\s*=/i);
        expect(html).not.toMatch(/javascript:/i);
      },
    );
  });

  describe('reveal limit', () => {
    it.runIf(available)(
      'counts per user across secrets and credentials: a second session or an API token gets no fresh budget',
      async () => {
        const editor = await inviteAndJoin(t, owner, ws, 'reveal-editor@example.com', 'editor');
        const admin = await inviteAndJoin(t, owner, ws, 'reveal-admin@example.com', 'admin');
        const secondSession = await login(t, 'reveal-editor@example.com');
        const minted = await editor.client.post('/api/v1/tokens', {
          name: 'reveal',
          workspaceId: ws,
          expiresInDays: 1,
        });
        expect(minted.status, minted.text).toBe(201);
        const tokenClient = t.client();
        tokenClient.bearer = minted.body.token;

        const values = ['reveal-limit-value-aaaa', 'reveal-limit-value-bbbb'];
        const ids: string[] = [];
        for (const [i, value] of values.entries()) {
          ids.push(
            await created(
              await owner.post(`/api/v1/workspaces/${ws}/secrets`, { name: `LIMIT_${i}`, visibility: 'masked', value }),
            ),
          );
        }
        const url = (i: number) => `/api/v1/workspaces/${ws}/secrets/${ids[i]}/reveal`;
        // Three reveals, each through another credential or of another secret.
        const allowed: [TestClient, number][] = [
          [editor.client, 0],
          [secondSession, 1],
          [tokenClient, 0],
        ];
        expect(allowed).toHaveLength(REVEAL_LIMIT);
        for (const [client, i] of allowed) {
          const res = await client.post(url(i));
          expect(res.status, res.text).toBe(200);
          expect(res.body.value).toBe(values[i]);
        }
        const auditBefore = await t.ctx.db
          .selectFrom('audit_events')
          .select('id')
          .where('action', '=', 'secret.revealed')
          .execute();
        for (const client of [editor.client, secondSession, tokenClient, await login(t, 'reveal-editor@example.com')]) {
          for (const i of [0, 1]) {
            const res = await client.post(url(i));
            expectProblem(res, 429, 'rate_limited');
            const retryAfter = Number(res.headers['retry-after']);
            expect(retryAfter >= 1 && retryAfter <= 60, String(retryAfter)).toBe(true);
            for (const v of values) expect(res.text).not.toContain(v);
          }
        }
        // A refused reveal is not a reveal: no audit event.
        const auditAfter = await t.ctx.db
          .selectFrom('audit_events')
          .select('id')
          .where('action', '=', 'secret.revealed')
          .execute();
        expect(auditAfter.length).toBe(auditBefore.length);
        // Another user keeps their own budget.
        const other = await admin.client.post(url(1));
        expect(other.status, other.text).toBe(200);
        expect(other.body.value).toBe(values[1]);
      },
    );
  });

  describe('expiry against a controlled clock and the configured values', () => {
    // A server of its own, started under a fake Date (timers stay real), so the
    // session store's clock is the one this test moves.
    let tc: TestApp;
    let wsc: string;
    beforeAll(async () => {
      if (!available) return;
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
      tc = await startTestApp(kind, {
        HUSH_SESSION_IDLE_MINUTES: String(IDLE_MINUTES),
        HUSH_SESSION_ABSOLUTE_HOURS: String(ABSOLUTE_HOURS),
      });
      ({ workspaceId: wsc } = await setupOwner(tc));
    }, 60_000);
    afterAll(async () => {
      await tc?.close();
      vi.useRealTimers();
    });

    async function sessionRow(client: TestClient) {
      return tc.ctx.db
        .selectFrom('sessions')
        .selectAll()
        .where('id_hash', '=', hashToken(client.cookies.get('hush_session') as string))
        .executeTakeFirst();
    }

    it.runIf(available)(
      'use slides the idle expiry (10 min here), never past the absolute one (1 h here)',
      async () => {
        const t0 = Date.now();
        const at = (ms: number) => vi.setSystemTime(t0 + ms);
        const idle = IDLE_MINUTES * MINUTE;
        const absolute = ABSOLUTE_HOURS * 60 * MINUTE;

        const active = tc.client();
        const signIn = await active.post('/api/v1/auth/login', { email: 'owner@example.com', password: PASSWORD });
        expect(signIn.status, signIn.text).toBe(200);
        // The cookie lives as long as the absolute expiry, no longer.
        const cookieLine = ([] as string[])
          .concat(signIn.headers['set-cookie'] as string[] | string)
          .find((l) => l.startsWith('hush_session=')) as string;
        expect(cookieLine).toMatch(new RegExp(`Max-Age=${absolute / 1000}(;|$)`, 'i'));
        const idleOnly = await login(tc, 'owner@example.com');
        const lastMinute = await login(tc, 'owner@example.com');
        const row = await sessionRow(active);
        expect(row?.idle_expires_at).toBe(new Date(t0 + idle).toISOString());
        expect(row?.absolute_expires_at).toBe(new Date(t0 + absolute).toISOString());

        at(9 * MINUTE);
        expect((await active.get('/api/v1/me')).status, 'active at 9 min').toBe(200);
        at(idle - 1);
        expect((await lastMinute.get('/api/v1/me')).status, 'one millisecond before the idle expiry').toBe(200);
        at(idle);
        expectProblem(await idleOnly.get('/api/v1/me'), 401, 'unauthenticated', 'unused for the idle time:');
        expect(await sessionRow(idleOnly), 'the idle session row is deleted').toBeUndefined();
        // The one used a millisecond earlier got a fresh idle period.
        expect((await lastMinute.get('/api/v1/me')).status).toBe(200);

        // Used every 9 minutes, the active session outlives many idle periods…
        for (let m = 18; m < ABSOLUTE_HOURS * 60; m += 9) {
          at(m * MINUTE);
          expect((await active.get('/api/v1/me')).status, `active at ${m} min`).toBe(200);
          const r = await sessionRow(active);
          expect(r?.idle_expires_at, `idle expiry slid at ${m} min`).toBe(
            new Date(t0 + m * MINUTE + idle).toISOString(),
          );
          expect(r?.absolute_expires_at, 'the absolute expiry never moves').toBe(new Date(t0 + absolute).toISOString());
        }
        at(absolute - 1);
        expect((await active.get('/api/v1/me')).status, 'one millisecond before the absolute expiry').toBe(200);
        // …but not its absolute expiry, although its last use was minutes ago.
        at(absolute);
        const before = await databaseState(tc);
        expectProblem(await active.get('/api/v1/me'), 401, 'unauthenticated', 'at the absolute expiry:');
        expectProblem(
          await active.post('/api/v1/workspaces', { name: 'After expiry' }),
          401,
          'unauthenticated',
          'a state change at the absolute expiry:',
        );
        expect(await sessionRow(active), 'the expired session row is deleted').toBeUndefined();
        const after = await databaseState(tc);
        expect({ ...after, sessions: [] }).toEqual({ ...before, sessions: [] });
      },
    );

    it.runIf(available)('an API token works until the millisecond its expiresInDays run out, then never', async () => {
      const t0 = Date.now();
      const client = await login(tc, 'owner@example.com');
      const minted = await client.post('/api/v1/tokens', { name: 'short', workspaceId: wsc, expiresInDays: 2 });
      expect(minted.status, minted.text).toBe(201);
      const lifetime = 2 * 24 * 60 * MINUTE;
      expect(minted.body.expiresAt).toBe(new Date(t0 + lifetime).toISOString());
      const bearer = tc.client();
      bearer.bearer = minted.body.token;

      vi.setSystemTime(t0 + lifetime - 1);
      expect((await bearer.get(`/api/v1/workspaces/${wsc}`)).status).toBe(200);
      vi.setSystemTime(t0 + lifetime);
      expectProblem(await bearer.get(`/api/v1/workspaces/${wsc}`), 401, 'unauthenticated', 'at expiry:');
      expectProblem(
        await bearer.patch(`/api/v1/workspaces/${wsc}`, { name: 'By an expired token' }),
        401,
        'unauthenticated',
        'a state change at expiry:',
      );
      // And never again.
      vi.setSystemTime(t0 + lifetime + 365 * 24 * 60 * MINUTE);
      expectProblem(await bearer.get('/api/v1/me'), 401, 'unauthenticated', 'a year later:');
    });
  });
});
