/**
 * Workflow runs end to end (SPEC §4 "Run", §3 "Outbound calls", audit):
 * a failing step follows its onError route, else the run fails; steps refused
 * before sending fail the run without any traffic; a run audits run.started,
 * run.finished and exactly one secret.used per secret (never a value), and
 * sets lastUsedAt; run records list newest first.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAppContext } from '../../src/app/bootstrap.js';
import { createLogger } from '../../src/app/logger.js';
import { buildServer } from '../../src/app/server.js';
import { runListLock } from '../../src/modules/workflows/run-service.js';
import { canaryForms, makeCanary } from '../support/canary.js';
import { DATABASES } from '../support/databases.js';
import { buildTeam, inviteAndJoin, type Team } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, TestClient } from '../support/harness.js';
import { type Received, startUpstream, type Upstream } from '../support/upstream.js';

function formsIn(text: string, value: string): string[] {
  return Object.entries(canaryForms(value))
    .filter(([, form]) => text.includes(form))
    .map(([name]) => name);
}

function expectNoForm(reply: Reply, value: string): void {
  expect(formsIn(reply.text, value), reply.text.slice(0, 1500)).toEqual([]);
  expect(formsIn(JSON.stringify(reply.body ?? null), value)).toEqual([]);
}

interface Step {
  blockId: string;
  status: string;
  error?: { code: string };
  response: { status: number; body: string; headers: Record<string, string> } | null;
}

describe.each(DATABASES)('workflow runs on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  let up: Upstream;
  let up2: Upstream;
  let ws: string;
  const A = makeCanary('runa');
  const B = makeCanary('runb');
  const secretIds: Record<string, string> = {};

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    up2 = await startUpstream('127.0.0.2');
    t = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    team = await buildTeam(t);
    ws = `/api/v1/workspaces/${team.workspaceId}`;
    for (const [name, value] of [
      ['tok_a', A],
      ['tok_b', B],
    ] as const) {
      const s = await team.owner.post(`${ws}/secrets`, {
        name,
        visibility: 'restricted',
        value,
        allowedHosts: ['127.0.0.1'],
      });
      expect(s.status, s.text).toBe(201);
      secretIds[name] = s.body.id;
    }
    // The upstream: /fail answers 500 echoing what it got; /hang never answers;
    // /replay answers the Authorization it received last; the rest echo 200.
    let lastAuth = '';
    up.handle((req, res) => {
      if (req.url.startsWith('/hang')) return;
      if (req.url.startsWith('/deep')) {
        res.setHeader('content-type', 'application/json');
        res.end(`${'['.repeat(10_000)}1${']'.repeat(10_000)}`);
        return;
      }
      if (req.url.startsWith('/bigjson')) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ v: 'j'.repeat(1024 * 1024) }));
        return;
      }
      if (req.url.startsWith('/big')) {
        res.end('x'.repeat(1024 * 1024));
        return;
      }
      if (req.url.startsWith('/number')) {
        // Echoes the bearer credential as a JSON number.
        res.setHeader('content-type', 'application/json');
        res.end(`{"n":${String(req.headers.authorization ?? '').replace('Bearer ', '')}}`);
        return;
      }
      if (req.url.startsWith('/replay')) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ last: lastAuth }));
        return;
      }
      const auth = String(req.headers.authorization ?? '');
      lastAuth = auth;
      res.statusCode = req.url.startsWith('/fail') ? 500 : 200;
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-echo', auth);
      res.end(Buffer.from(JSON.stringify({ error: `bad token ${auth}`, url: req.url })));
    });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await up?.close();
    await up2?.close();
  });

  const api = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    type: 'api',
    method: 'GET',
    url: `${up.url}/ok`,
    headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok_a}}' }],
    ...extra,
  });
  const set = (id: string, variable: string, value: string) => ({
    id,
    type: 'set',
    assignments: [{ variable, value }],
  });
  const save = async (name: string, blocks: unknown[], startBlockId = 'call') => {
    const wf = await team.clients.editor.post(`${ws}/workflows`, { name, startBlockId, blocks });
    expect(wf.status, wf.text).toBe(201);
    return wf.body.id as string;
  };
  const run = async (workflowId: string, variables: Record<string, unknown> = {}) => {
    const r = await team.clients.operator.post(`${ws}/workflows/${workflowId}/runs`, { variables });
    expect(r.status, r.text).toBe(201);
    return r;
  };

  it.runIf(available)(
    'a captured value nesting 10,000 deep fails the step (capture_too_deep), never a 500',
    async () => {
      const id = await save('Deep', [
        api('call', { url: `${up.url}/deep`, headers: [], capture: [{ variable: 'deep', path: '$' }] }),
      ]);
      const r = await run(id);
      expect(r.body.status).toBe('failed');
      expect(r.body.steps[0]).toMatchObject({
        status: 'failed',
        error: { code: 'capture_too_deep' },
        captures: { deep: null },
      });
      const deepRun = await team.clients.operator.post(
        `${ws}/workflows/${id}/runs`,
        `{"variables":{"input":${'['.repeat(5_000)}1${']'.repeat(5_000)}}}`,
        { 'content-type': 'application/json' },
      );
      expect(deepRun.status, deepRun.text.slice(0, 300)).toBe(422);
      expect(deepRun.body.code).toBe('validation_failed');
    },
  );

  it.runIf(available)(
    'an upstream answering back a value it got in an earlier execution is redacted in a later one that sends no secret',
    async () => {
      // An earlier Send leaves tok_a's header with the upstream (tok_a and tok_b are bound to 127.0.0.1).
      const first = await team.clients.editor.post(`${ws}/blocks/send`, { block: api('first') });
      expect(first.body.ok, first.text).toBe(true);
      const replay = api('replay', {
        url: `${up.url}/replay`,
        headers: [],
        capture: [{ variable: 'got', path: '$.last' }],
      });

      // A Send that uses no secret at all.
      const send = await team.clients.editor.post(`${ws}/blocks/send`, { block: replay });
      expect(send.status, send.text).toBe(200);
      expect(send.body.response.body).toBe('{"last":"Bearer [secret:tok_a]"}');
      expect(send.body.captures).toEqual({ got: 'Bearer [secret:tok_a]' });
      expectNoForm(send, A);

      // A run of a workflow that uses no secret: the record and its variables too.
      const r = await run(await save('Replay later', [replay], 'replay'));
      expect(r.body.variables.got).toBe('Bearer [secret:tok_a]');
      expectNoForm(r, A);
      expectNoForm(await team.clients.operator.get(`${ws}/runs/${r.body.id}`), A);

      // Reached through a redirect from a host no secret is bound to: the answer's host counts.
      up2.handle((req, res) => {
        if (req.url.startsWith('/to-replay')) {
          res.statusCode = 302;
          res.setHeader('location', `${up.url}/replay`);
        }
        res.end('ok');
      });
      const redirected = await team.clients.editor.post(`${ws}/blocks/send`, {
        block: api('via', { url: `${up2.url}/to-replay`, headers: [] }),
      });
      expect(redirected.body.response.body, redirected.text).toBe('{"last":"Bearer [secret:tok_a]"}');
      expectNoForm(redirected, A);

      // Redaction only: nothing was sent, so no secret.used for these executions.
      const used = await t.ctx.db
        .selectFrom('audit_events')
        .select('data')
        .where('action', '=', 'secret.used')
        .where('target_id', '=', secretIds.tok_a as string)
        .execute();
      const executions = used.map((e) => (JSON.parse(e.data) as { blockId: string }).blockId);
      expect(executions).not.toContain('replay');
      expect(executions).not.toContain('via');
    },
  );

  it.runIf(available)(
    "a secret loaded only to redact a host's answer is loaded afresh when a later step sends it",
    async () => {
      const v1 = makeCanary('bound1');
      const v2 = makeCanary('bound2');
      const created = await team.owner.post(`${ws}/secrets`, {
        name: 'tok_c',
        visibility: 'restricted',
        value: v1,
        allowedHosts: ['127.0.0.2'],
      });
      expect(created.status, created.text).toBe(201);
      // Step 1 sends no secret (tok_c is loaded for redaction, at v1); while it waits, tok_c becomes v2.
      up2.handle((req, res) => {
        if (!req.url.startsWith('/update')) return void res.end('ok');
        void team.owner
          .patch(`${ws}/secrets/${created.body.id}`, { value: v2 })
          .then((patched) => res.end(String(patched.status)));
      });
      const id = await save(
        'Fresh after redaction',
        [
          api('update', { url: `${up2.url}/update`, headers: [], onSuccess: 'use' }),
          api('use', { url: `${up2.url}/use`, headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok_c}}' }] }),
        ],
        'update',
      );
      const before = up2.received.length;
      const r = await run(id);
      expect(r.body.status, r.text).toBe('succeeded');
      expect(r.body.steps[0].response.body).toBe('200');
      expect(up2.received.slice(before).map((x) => x.headers.authorization)).toEqual([undefined, `Bearer ${v2}`]);
      expectNoForm(r, v1);
      expectNoForm(r, v2);
    },
  );

  it.runIf(available).each([
    ['given a new value: the next step sends the new one', 'rotate'],
    ['narrowed to another host: the next step sends nothing (host_not_allowed)', 'narrow'],
    ['deleted: the next step sends nothing (secret_unavailable)', 'delete'],
  ] as const)('a secret a run has sent, then %s', async (_label, change) => {
    const v1 = makeCanary(`mid${change}1`);
    const v2 = makeCanary(`mid${change}2`);
    const name = `tok_mid_${change}`;
    const created = await team.owner.post(`${ws}/secrets`, {
      name,
      visibility: 'restricted',
      value: v1,
      allowedHosts: ['127.0.0.2'],
    });
    expect(created.status, created.text).toBe(201);
    const secretUrl = `${ws}/secrets/${created.body.id}`;
    // Step 1 sends the secret; while its answer is pending, an admin changes the secret.
    up2.handle((req, res) => {
      if (!req.url.startsWith('/change')) return void res.end('ok');
      const changed =
        change === 'rotate'
          ? team.owner.patch(secretUrl, { value: v2 })
          : change === 'narrow'
            ? team.owner.patch(secretUrl, { allowedHosts: ['api.example.com'] })
            : team.owner.delete(secretUrl);
      void changed.then((r) => res.end(String(r.status)));
    });
    const auth = [{ key: 'Authorization', value: `Bearer {{secret:${name}}}` }];
    const id = await save(
      `Changed mid-run (${change})`,
      [
        api('first', { url: `${up2.url}/change`, headers: auth, onSuccess: 'second' }),
        api('second', { url: `${up2.url}/again`, headers: auth }),
      ],
      'first',
    );
    const before = up2.received.length;
    const r = await run(id);
    expect(r.body.steps[0].response.body).toMatch(/^20[04]$/);
    const sent = up2.received.slice(before).map((x) => x.headers.authorization);
    if (change === 'rotate') {
      expect(r.body.status, r.text).toBe('succeeded');
      expect(sent).toEqual([`Bearer ${v1}`, `Bearer ${v2}`]);
    } else {
      expect(r.body.status, r.text).toBe('failed');
      expect(r.body.steps[1]).toMatchObject({
        status: 'failed',
        error: { code: change === 'narrow' ? 'host_not_allowed' : 'secret_unavailable' },
      });
      expect(sent).toEqual([`Bearer ${v1}`]);
    }
    // The old value stays redacted in the record.
    expectNoForm(r, v1);
    expectNoForm(r, v2);
  });

  it.runIf(available)(
    'a captured lone surrogate is captured as U+FFFD and a later step encodes it into its URL (was a 500 after the secret went out)',
    async () => {
      up2.handle((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(req.url.startsWith('/surrogate') ? '{"x":"\\ud800ok"}' : 'fine');
      });
      const id = await save(
        'Lone surrogate',
        [
          api('first', {
            url: `${up2.url}/surrogate`,
            headers: [],
            capture: [{ variable: 'x', path: '$.x' }],
            onSuccess: 'second',
          }),
          api('second', { url: `${up2.url}/next?v={{x}}`, headers: [] }),
        ],
        'first',
      );
      const before = up2.received.length;
      const r = await run(id);
      expect(r.body.status, r.text).toBe('succeeded');
      expect(r.body.steps[0].captures).toEqual({ x: '\ufffdok' });
      expect(up2.received.slice(before).map((x) => x.url)).toEqual(['/surrogate', '/next?v=%EF%BF%BDok']);
    },
  );

  it.runIf(available)(
    'a step that fails on the server still leaves its run recorded and finished (then a 500)',
    async () => {
      const id = await save('Damaged', [
        api('call', { url: `${up.url}/ok`, onSuccess: 'broken' }),
        set('broken', 'v', 'x'),
      ]);
      // Damage the stored workflow behind the API's back: the second block cannot be run.
      const stored = await t.ctx.db
        .selectFrom('workflows')
        .select('blocks')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      const blocks = JSON.parse(stored.blocks) as { id: string; assignments?: unknown }[];
      (blocks[1] as { assignments: unknown }).assignments = null;
      await t.ctx.db
        .updateTable('workflows')
        .set({ blocks: JSON.stringify(blocks) })
        .where('id', '=', id)
        .execute();

      const r = await team.clients.operator.post(`${ws}/workflows/${id}/runs`, { variables: {} });
      expect(r.status, r.text).toBe(500);
      expect(r.body.code).toBe('internal_error');
      expectNoForm(r, A);
      const runs = await team.clients.operator.get(`${ws}/workflows/${id}/runs`);
      expect(runs.body.items).toHaveLength(1);
      expect(runs.body.items[0]).toMatchObject({ status: 'failed', stepCount: 2 });
      const recorded = (await team.clients.operator.get(`${ws}/runs/${runs.body.items[0].id}`)).body;
      expect(recorded.status).toBe('failed');
      expect(recorded.steps.map((s: Step) => [s.blockId, s.status, s.error?.code])).toEqual([
        ['call', 'succeeded', undefined],
        ['broken', 'failed', 'internal_error'],
      ]);
      expectNoForm(runs, A);
      const finished = await t.ctx.db
        .selectFrom('audit_events')
        .select('data')
        .where('action', '=', 'run.finished')
        .where('target_id', '=', recorded.id)
        .execute();
      expect(finished.map((e) => JSON.parse(e.data))).toEqual([{ workflowId: id, status: 'failed', steps: 2 }]);
    },
  );

  it.runIf(available)(
    'values put into a declared variable take its type: converted when they read as it, else type_mismatch',
    async () => {
      for (const [name, type] of [
        ['typed_n', 'number'],
        ['typed_b', 'boolean'],
        ['typed_d', 'datetime'],
        ['typed_m', 'map'],
        ['typed_t', 'text'],
      ] as const) {
        const v = await team.owner.post(`${ws}/variables`, { name, type });
        expect(v.status, v.text).toBe(201);
      }
      up2.handle((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(
          req.url.startsWith('/typed')
            ? JSON.stringify({ n: '12.5', when: '2026-02-30T00:00:00Z', m: '{"a":1}', t: 7 })
            : req.body,
        );
      });
      const id = await save(
        'Typed',
        [
          set('set', 'typed_n', '{{typed_n}}0'),
          api('get', {
            url: `${up2.url}/typed`,
            headers: [],
            capture: [
              { variable: 'typed_m', path: '$.m' },
              { variable: 'typed_t', path: '$.t' },
            ],
            onSuccess: 'post',
          }),
          api('post', {
            method: 'POST',
            url: `${up2.url}/echo`,
            headers: [],
            body: {
              mode: 'json',
              content: '{"n":"{{typed_n}}","b":"{{typed_b}}","m":"{{typed_m}}","t":"{{typed_t}}"}',
            },
            onSuccess: 'bad',
          }),
          set('bad', 'typed_b', 'yes please'),
        ].map((b, i, all) => (b.type === 'set' && i === 0 ? { ...b, onSuccess: all[1]?.id } : b)),
        'set',
      );
      // Input: "4" for a number (any case of its name) and "TRUE" for a boolean are converted.
      const r = await team.clients.operator.post(`${ws}/workflows/${id}/runs`, {
        variables: { TYPED_N: '4', typed_b: 'TRUE' },
      });
      expect(r.status, r.text).toBe(201);
      const [setStep, get, post, bad] = r.body.steps;
      expect(setStep.captures).toEqual({ typed_n: 40 });
      expect(get.captures).toEqual({ typed_m: { a: 1 }, typed_t: '7' });
      expect(JSON.parse(post.response.body)).toEqual({ n: 40, b: true, m: { a: 1 }, t: '7' });
      expect(bad).toMatchObject({ status: 'failed', error: { code: 'type_mismatch' } });
      expect(r.body.status).toBe('failed');
      expect(r.body.variables).toMatchObject({ typed_n: 40, typed_b: true });

      // A capture that cannot be its type fails the step; an input that cannot be is refused.
      const capture = await save('Typed capture', [
        api('call', { url: `${up2.url}/typed`, headers: [], capture: [{ variable: 'typed_d', path: '$.when' }] }),
      ]);
      const c = await run(capture);
      expect(c.body.steps[0]).toMatchObject({
        status: 'failed',
        error: { code: 'type_mismatch' },
        captures: { typed_d: null },
      });
      const refused = await team.clients.operator.post(`${ws}/workflows/${capture}/runs`, {
        variables: { typed_n: 'abc' },
      });
      expect(refused.status, refused.text).toBe(422);
      expect(refused.body).toMatchObject({ code: 'validation_failed', errors: [{ path: 'body.variables.typed_n' }] });
    },
  );

  it.runIf(available)(
    'an integer past 2^53 is captured with every digit, as text; used so in the next call; a number variable refuses it',
    async () => {
      for (const [name, type] of [
        ['big_t', 'text'],
        ['big_l', 'list'],
        ['big_n', 'number'],
      ] as const) {
        const v = await team.owner.post(`${ws}/variables`, { name, type });
        expect(v.status, v.text).toBe(201);
      }
      up2.handle((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(req.url === '/big' ? '{"id":9007199254740993,"ids":[12345678901234567890,7],"small":42}' : '{}');
      });
      const id = await save('Big ids', [
        api('call', {
          url: `${up2.url}/big`,
          headers: [],
          capture: [
            { variable: 'big_t', path: '$.id' },
            { variable: 'big_l', path: '$.ids' },
          ],
          onSuccess: 'use',
        }),
        api('use', { url: `${up2.url}/use/{{big_t}}?first={{big_l[0]}}`, headers: [] }),
      ]);
      const r = await run(id);
      expect(r.body.status, r.text).toBe('succeeded');
      expect(r.body.steps[0].captures).toEqual({ big_t: '9007199254740993', big_l: ['12345678901234567890', 7] });
      expect(up2.received.at(-1)?.url).toBe('/use/9007199254740993?first=12345678901234567890');
      // The answer as recorded is the answer as received.
      expect(r.body.steps[0].response.body).toContain('9007199254740993');

      // A number variable would round it (…992 names another record): refused, not rounded.
      const numeric = await save('Big number', [
        api('call', { url: `${up2.url}/big`, headers: [], capture: [{ variable: 'big_n', path: '$.id' }] }),
      ]);
      const n = await run(numeric);
      expect(n.body.steps[0]).toMatchObject({
        status: 'failed',
        error: { code: 'type_mismatch' },
        captures: { big_n: null },
      });
      expect(n.body.steps[0].error.message).toMatch(/within ±2\^53.*text variable/);
      // As run input too.
      const input = await team.clients.operator.post(`${ws}/workflows/${numeric}/runs`, {
        variables: { big_n: '9007199254740993' },
      });
      expect(input.status, input.text).toBe(422);
      const exact = await team.clients.operator.post(`${ws}/workflows/${numeric}/runs`, {
        variables: { big_n: '9007199254740992' },
      });
      expect(exact.status, exact.text).toBe(201);
    },
  );

  it.runIf(available)(
    'a run whose starter is removed, demoted or loses the token it ran with mid-run sends nothing more (access_revoked)',
    async () => {
      const value = makeCanary('revoked');
      const created = await team.owner.post(`${ws}/secrets`, {
        name: 'tok_revoked',
        visibility: 'masked',
        value,
        allowedHosts: ['127.0.0.2'],
      });
      expect(created.status, created.text).toBe(201);
      // The first call takes a while: time enough to take the starter's access away.
      let release!: () => void;
      const firstCallArrived = new Promise<void>((arrived) => {
        up2.handle((req, res) => {
          if (req.url.startsWith('/first')) {
            arrived();
            release = () => res.end('{}');
          } else res.end('{}');
        });
      });
      const call = (id: string, path: string, onSuccess: string | null) =>
        api(id, {
          url: `${up2.url}${path}`,
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok_revoked}}' }],
          onSuccess,
          onError: 'again',
        });
      const id = await save(
        'Revoked mid-run',
        [call('first', '/first', 'second'), call('second', '/second', null), call('again', '/again', null)],
        'first',
      );
      let tokenId = '';
      for (const [n, revoke] of [
        [1, (userId: string) => team.owner.delete(`${ws}/members/${userId}`)],
        [2, (userId: string) => team.owner.patch(`${ws}/members/${userId}`, { role: 'viewer' })],
        [3, (_userId: string, session: TestClient) => session.delete(`/api/v1/tokens/${tokenId}`)],
      ] as const) {
        const joined = await inviteAndJoin(t, team.owner, team.workspaceId, `runner${n}@example.com`, 'operator');
        const { userId } = joined;
        let client = joined.client;
        if (n === 3) {
          // Run with an API token, revoked while the run is under way.
          const made = await joined.client.post('/api/v1/tokens', { name: 'runner', workspaceId: team.workspaceId });
          expect(made.status, made.text).toBe(201);
          tokenId = made.body.id;
          client = t.client();
          client.bearer = made.body.token;
        }
        let arrived = firstCallArrived;
        if (n > 1) {
          arrived = new Promise<void>((resolve) => {
            up2.handle((req, res) => {
              if (req.url.startsWith('/first')) {
                resolve();
                release = () => res.end('{}');
              } else res.end('{}');
            });
          });
        }
        const before = up2.received.length;
        const running = client.post(`${ws}/workflows/${id}/runs`, { variables: {} });
        await arrived;
        const revoked = await revoke(userId, joined.client);
        expect(revoked.status, revoked.text).toBeLessThan(300);
        release();
        const r = await running;
        expect(r.status, r.text).toBe(201);
        expect(r.body.status).toBe('failed');
        expect(
          r.body.steps.map((s: { blockId: string; status: string; error?: { code: string } }) => [
            s.blockId,
            s.error?.code ?? s.status,
          ]),
        ).toEqual([
          ['first', 'succeeded'],
          ['second', 'access_revoked'],
        ]);
        expect(up2.received.slice(before).map((x) => x.url)).toEqual(['/first']);
      }
    },
  );

  it.runIf(available)(
    'a run started with a token that expires mid-run sends nothing after the expiry, though nothing else changed',
    async () => {
      const value = makeCanary('expiring');
      const created = await team.owner.post(`${ws}/secrets`, {
        name: 'tok_expiring',
        visibility: 'masked',
        value,
        allowedHosts: ['127.0.0.2'],
      });
      expect(created.status, created.text).toBe(201);
      const joined = await inviteAndJoin(t, team.owner, team.workspaceId, 'expiring@example.com', 'operator');
      const made = await joined.client.post('/api/v1/tokens', { name: 'short', workspaceId: team.workspaceId });
      expect(made.status, made.text).toBe(201);
      // Expires two seconds from now: by hand, as time passing does — no change, no epoch moved.
      const expiresAt = Date.now() + 2_000;
      await t.ctx.db
        .updateTable('api_tokens')
        .set({ expires_at: new Date(expiresAt).toISOString() })
        .where('id', '=', made.body.id)
        .execute();
      const client = t.client();
      client.bearer = made.body.token;
      // The second call answers once the token has expired.
      up2.handle((req, res) => {
        if (req.url.startsWith('/second')) setTimeout(() => res.end('{}'), Math.max(0, expiresAt - Date.now()) + 200);
        else res.end('{}');
      });
      const call = (id: string, path: string, onSuccess: string | null) =>
        api(id, {
          url: `${up2.url}${path}`,
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok_expiring}}' }],
          onSuccess,
        });
      const id = await save(
        'Expiring mid-run',
        [call('first', '/first', 'second'), call('second', '/second', 'third'), call('third', '/third', null)],
        'first',
      );
      const before = up2.received.length;
      const r = await client.post(`${ws}/workflows/${id}/runs`, { variables: {} });
      expect(r.status, r.text).toBe(201);
      expect(
        r.body.steps.map((s: { blockId: string; status: string; error?: { code: string } }) => [
          s.blockId,
          s.error?.code ?? s.status,
        ]),
      ).toEqual([
        ['first', 'succeeded'],
        ['second', 'succeeded'],
        ['third', 'access_revoked'],
      ]);
      expect(up2.received.slice(before).map((x) => x.url)).toEqual(['/first', '/second']);
    },
  );

  it.runIf(available)(
    'a step refused before sending (after a slow destination check) does not let the next one send for a removed starter',
    async () => {
      const value = makeCanary('refusedstep');
      const created = await team.owner.post(`${ws}/secrets`, { name: 'tok_refused', visibility: 'masked', value });
      expect(created.status, created.text).toBe(201);
      up2.handle((_req, res) => res.end('{}'));
      const auth = [{ key: 'Authorization', value: 'Bearer {{secret:tok_refused}}' }];
      const id = await save(
        'Refused then sent',
        [
          // A private address: refused by the SSRF guard once its (slow) check is done.
          api('slow', { url: 'http://10.0.0.1/x', headers: auth, onError: 'final' }),
          api('final', { url: `${up2.url}/final`, headers: auth }),
        ],
        'slow',
      );
      const { client, userId } = await inviteAndJoin(t, team.owner, team.workspaceId, 'refused@example.com', 'editor');
      // The destination check waits until the starter has been removed.
      const outbound = t.ctx.outbound;
      const check = outbound.checkDestination;
      let removed!: () => void;
      const gone = new Promise<void>((resolve) => (removed = resolve));
      outbound.checkDestination = async (url, timeoutMs) => {
        if (url.hostname === '10.0.0.1') await gone;
        return check(url, timeoutMs);
      };
      try {
        const before = up2.received.length;
        const running = client.post(`${ws}/workflows/${id}/runs`, { variables: {} });
        await new Promise((resolve) => setTimeout(resolve, 200));
        const r1 = await team.owner.delete(`${ws}/members/${userId}`);
        expect(r1.status, r1.text).toBe(204);
        removed();
        const r = await running;
        expect(r.status, r.text).toBe(201);
        const steps = r.body.steps as { blockId: string; error?: { code: string } }[];
        expect(steps.map((s) => [s.blockId, s.error?.code])).toEqual([
          ['slow', 'outbound_blocked'],
          ['final', 'access_revoked'],
        ]);
        expect(up2.received.length).toBe(before);
      } finally {
        outbound.checkDestination = check;
      }
    },
  );

  it.runIf(available)(
    'a declared variable named in another case is that variable: typed, read and listed once, never a second one',
    async () => {
      const declared = await team.owner.post(`${ws}/variables`, { name: 'cased_n', type: 'number' });
      expect(declared.status, declared.text).toBe(201);
      const bad = await save('Cased bad', [set('set', 'CASED_N', 'abc')], 'set');
      const b = await run(bad);
      expect(b.body.steps[0]).toMatchObject({ status: 'failed', error: { code: 'type_mismatch' } });
      up2.handle((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(req.url.startsWith('/cased') ? JSON.stringify({ n: '8' }) : req.body);
      });
      const good = await save(
        'Cased good',
        [
          { ...set('set', 'Cased_N', '5'), onSuccess: 'get' },
          api('get', {
            url: `${up2.url}/cased?was={{CASED_n}}`,
            headers: [],
            capture: [{ variable: 'CASED_N', path: '$.n' }],
          }),
        ],
        'set',
      );
      // Saved without a warning: `CASED_n` is the declared `cased_n`.
      const saved = await team.clients.editor.get(`${ws}/workflows/${good}`);
      expect(saved.body.warnings ?? []).toEqual([]);
      const reSaved = await team.clients.editor.put(`${ws}/workflows/${good}`, {
        name: saved.body.name,
        startBlockId: saved.body.startBlockId,
        blocks: saved.body.blocks,
      });
      expect(reSaved.status, reSaved.text).toBe(200);
      expect(reSaved.body.warnings ?? []).toEqual([]);
      const g = await run(good);
      expect(g.body.status, g.text).toBe('succeeded');
      expect(up2.received.at(-1)?.url).toBe('/cased?was=5');
      // One variable under its declared name, converted to its type by the capture.
      const keys = Object.keys(g.body.variables).filter((k) => k.toLowerCase() === 'cased_n');
      expect(keys).toEqual(['cased_n']);
      expect(g.body.variables.cased_n).toBe(8);
    },
  );

  it.runIf(available)(
    'a value captured into a number variable is redacted before it is read as a number: a secret never becomes one',
    async () => {
      const declared = await team.owner.post(`${ws}/variables`, { name: 'captured_n', type: 'number' });
      expect(declared.status, declared.text).toBe(201);
      for (const [value, echoed] of [
        ['12345678.', '12345678.'],
        ['123456789012345678', '1234567890123456789'],
        ['98765432', '98765432'],
      ] as const) {
        const name = `tok_num_${value.length}_${echoed.length}_${value.slice(0, 2)}`;
        const created = await team.owner.post(`${ws}/secrets`, {
          name,
          visibility: 'restricted',
          value,
          allowedHosts: ['127.0.0.2'],
        });
        expect(created.status, created.text).toBe(201);
        up2.handle((_req, res) => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ n: echoed }));
        });
        const id = await save(`Number capture ${name}`, [
          api('call', {
            url: `${up2.url}/n`,
            headers: [{ key: 'Authorization', value: `Bearer {{secret:${name}}}` }],
            capture: [{ variable: 'captured_n', path: '$.n' }],
          }),
        ]);
        const r = await run(id);
        expect(r.body.steps[0], value).toMatchObject({
          error: { code: 'type_mismatch' },
          captures: { captured_n: null },
        });
        expect(r.text).not.toContain(value.replace('.', ''));
      }
    },
  );

  it.runIf(available)(
    'a map captured from JSON text is redacted after it is decoded: an escape the redactor has no form for cannot carry a value to another host',
    async () => {
      const value = makeCanary('mapesc');
      const created = await team.owner.post(`${ws}/secrets`, {
        name: 'tok_mapesc',
        visibility: 'restricted',
        value,
        allowedHosts: ['127.0.0.2'],
      });
      expect(created.status, created.text).toBe(201);
      const declared = await team.owner.post(`${ws}/variables`, { name: 'escaped_map', type: 'map' });
      expect(declared.status, declared.text).toBe(201);
      // The value's first character written as a \\u escape inside JSON text inside JSON.
      const escaped = `\\u${value.charCodeAt(0).toString(16).padStart(4, '0')}${JSON.stringify(value.slice(1)).slice(1, -1)}`;
      up2.handle((_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(`{"m":${JSON.stringify(`{"k":"${escaped}"}`)}}`);
      });
      const id = await save(
        'Escaped map',
        [
          api('get', {
            url: `${up2.url}/escaped`,
            headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok_mapesc}}' }],
            capture: [{ variable: 'escaped_map', path: '$.m' }],
            onSuccess: 'send',
          }),
          api('send', { url: `${up.url}/ok`, headers: [{ key: 'X-Fwd', value: '{{escaped_map.k}}' }] }),
        ],
        'get',
      );
      const before = up.received.length;
      const r = await run(id);
      expect(r.body.status, r.text).toBe('succeeded');
      expect(r.body.steps[0].captures).toEqual({ escaped_map: { k: '[secret:tok_mapesc]' } });
      const forwarded = up.received.slice(before);
      expect(forwarded.map((x) => x.headers['x-fwd'])).toEqual(['[secret:tok_mapesc]']);
      expect(JSON.stringify(forwarded)).not.toContain(value);
    },
  );

  it.runIf(available)(
    'a numeric secret echoed as a JSON number is redacted in captures, run variables and what a later step sends',
    async () => {
      const pin = '8675309123';
      const created = await team.owner.post(`${ws}/secrets`, {
        name: 'pin',
        visibility: 'restricted',
        value: pin,
        allowedHosts: ['127.0.0.1'],
      });
      expect(created.status, created.text).toBe(201);
      const echo = api('num', {
        url: `${up.url}/number`,
        headers: [{ key: 'Authorization', value: 'Bearer {{secret:pin}}' }],
        capture: [{ variable: 'n', path: '$.n' }],
      });
      const send = await team.clients.editor.post(`${ws}/blocks/send`, { block: echo });
      expect(send.body.response.body, send.text).toBe('{"n":[secret:pin]}');
      expect(send.body.captures).toEqual({ n: '[secret:pin]' });
      expect(send.text).not.toContain(pin);

      const id = await save(
        'Numeric',
        [
          { ...echo, onSuccess: 'fwd' },
          api('fwd', { url: `${up2.url}/fwd`, headers: [{ key: 'X-Fwd', value: '{{n}}' }] }),
        ],
        'num',
      );
      const before = up2.received.length;
      const r = await run(id);
      expect(r.body.status, r.text).toBe('succeeded');
      expect(r.body.variables.n).toBe('[secret:pin]');
      expect(up2.received.slice(before).map((x) => x.headers['x-fwd'])).toEqual(['[secret:pin]']);
      expect(r.text).not.toContain(pin);
      expect(JSON.stringify(up2.received)).not.toContain(pin);
    },
  );

  it.runIf(available)(
    'rendering past 5 MiB is value_too_large (a Set Values loop that doubles a value, a repeated big variable), never a 500',
    async () => {
      // A Set Values block on a loop quadrupling x: the step that would pass 5 MiB fails the run.
      const id = await save('Doubling', [set('grow', 'x', '{{x}}{{x}}{{x}}{{x}}')], 'grow');
      const loop = await team.clients.editor.get(`${ws}/workflows/${id}`);
      const blocks = loop.body.blocks.map((b: Record<string, unknown>) => ({ ...b, onSuccess: 'grow' }));
      const looped = await team.clients.editor.put(`${ws}/workflows/${id}`, {
        name: 'Doubling',
        startBlockId: 'grow',
        blocks,
      });
      expect(looped.status, looped.text).toBe(200);
      const r = await run(id, { x: 'ab' });
      expect(r.body.status).toBe('failed');
      const last = r.body.steps.at(-1);
      expect(last).toMatchObject({ blockId: 'grow', status: 'failed', error: { code: 'value_too_large' } });
      expect(r.body.steps.length).toBeLessThan(15);
      expect((await team.clients.operator.get(`${ws}/runs/${r.body.id}`)).status).toBe(200);

      // A text body and a JSON body repeating a 64 KiB variable 100 times: refused, nothing sent.
      const before = up.received.length;
      const big = 'b'.repeat(64 * 1024);
      for (const body of [
        { mode: 'text', content: '{{big}}'.repeat(100) },
        { mode: 'json', content: JSON.stringify(Array.from({ length: 100 }, () => '{{big}}')) },
      ]) {
        const sent = await team.clients.editor.post(`${ws}/blocks/send`, {
          block: api('big', { method: 'POST', headers: [], body }),
          variables: { big },
        });
        expect(sent.status, sent.text.slice(0, 300)).toBe(422);
        expect(sent.body.code).toBe('value_too_large');
      }
      expect(up.received.length).toBe(before);
    },
  );

  it.runIf(available)(
    'one step cannot record past the bounds: copies of a big value in Set Values, many captures of a big answer',
    async () => {
      const big = 'c'.repeat(512 * 1024);
      const copies = Array.from({ length: 100 }, (_, i) => ({ variable: `c${i}`, value: '{{big}}' }));
      const id = await save('Copies', [{ id: 'copy', type: 'set', assignments: copies }], 'copy');
      const r = await run(id, { big });
      expect(r.body.status).toBe('failed');
      expect(r.body.steps[0]).toMatchObject({ status: 'failed', error: { code: 'value_too_large' } });
      expect(r.text.length).toBeLessThan(16 * 1024 * 1024);

      const captures = Array.from({ length: 100 }, (_, i) => ({ variable: `k${i}`, path: '$.v' }));
      const send = await team.clients.editor.post(`${ws}/blocks/send`, {
        block: api('many', { url: `${up.url}/bigjson`, headers: [], capture: captures }),
      });
      expect(send.status).toBe(200);
      expect(send.body.error.code).toBe('value_too_large');
      const kept = Object.values(send.body.captures as Record<string, unknown>).filter((v) => v !== null);
      expect(kept.length).toBeGreaterThan(0);
      expect(kept.length).toBeLessThan(6);
      expect(send.text.length).toBeLessThan(16 * 1024 * 1024);
    },
  );

  it.runIf(available)('a run whose steps record more than 32 MiB stops with run_too_large', async () => {
    const id = await save('Big loop', [api('big', { url: `${up.url}/big`, headers: [], onSuccess: 'big' })], 'big');
    const r = await run(id);
    expect(r.body.status).toBe('failed');
    const steps = r.body.steps as Step[];
    expect(steps.at(-1)).toMatchObject({ status: 'failed', error: { code: 'run_too_large' } });
    expect(steps.length).toBeGreaterThan(30);
    expect(steps.length).toBeLessThan(40);
  });

  it.runIf(available)('request headers count toward the 32 MiB too: a loop sending a 2 MiB header stops', async () => {
    const header = [{ key: 'X-Big', value: '{{big}}{{big}}{{big}}{{big}}' }];
    const id = await save(
      'Header loop',
      [api('hdr', { url: `${up.url}/hdr`, headers: header, onSuccess: 'hdr', onError: 'hdr' })],
      'hdr',
    );
    const r = await run(id, { big: 'h'.repeat(512 * 1024) });
    expect(r.body.status).toBe('failed');
    const steps = r.body.steps as Step[];
    expect(steps.at(-1)).toMatchObject({ status: 'failed', error: { code: 'run_too_large' } });
    // 16 steps of 2 MiB reach 32 MiB (before: 100 steps and a 200 MiB record).
    expect(steps.length).toBeLessThan(20);
    expect(r.text.length).toBeLessThan(40 * 1024 * 1024);
  });

  it.runIf(available)(
    'an operator cannot pin an unpinned secret by steering the URL: only someone with secrets.use pins it',
    async () => {
      const value = makeCanary('unpinned');
      const created = await team.owner.post(`${ws}/secrets`, { name: 'tok_free', visibility: 'masked', value });
      expect(created.status, created.text).toBe(201);
      const id = await save('Steerable', [
        api('call', {
          url: '{{base}}/steer',
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok_free}}' }],
        }),
      ]);
      const before = up2.received.length;
      const steered = await run(id, { base: up2.url });
      expect(steered.body.status).toBe('failed');
      expect(steered.body.steps[0]).toMatchObject({ status: 'failed', error: { code: 'host_not_allowed' } });
      expect(up2.received.length).toBe(before);
      // A host that does not resolve is no different: the operator could not pin it there either.
      const nowhere = await run(id, { base: 'http://no-such-host.invalid' });
      expect(nowhere.body.steps[0]).toMatchObject({ status: 'failed', error: { code: 'host_not_allowed' } });
      const secret = await team.owner.get(`${ws}/secrets/${created.body.id}`);
      expect(secret.body.allowedHosts).toEqual([]);

      // An editor's Send pins it; from then on the operator's runs go there, and only there.
      const pinned = await team.clients.editor.post(`${ws}/blocks/send`, {
        block: api('pin', { headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok_free}}' }] }),
      });
      expect(pinned.body.ok, pinned.text).toBe(true);
      expect((await run(id, { base: up.url })).body.status).toBe('succeeded');
      expect((await run(id, { base: up2.url })).body.steps[0].error.code).toBe('host_not_allowed');
      expect(up2.received.length).toBe(before);
    },
  );

  it.runIf(available)(
    'an upstream replaying a value sent by an earlier step cannot pass it to a later step or another host',
    async () => {
      const id = await save('Replay', [
        api('call', { onSuccess: 'replay' }),
        api('replay', {
          url: `${up.url}/replay`,
          headers: [],
          capture: [{ variable: 'got', path: '$.last' }],
          onSuccess: 'fwd',
        }),
        api('fwd', { url: `${up2.url}/fwd`, headers: [{ key: 'X-Fwd', value: '{{got}}' }] }),
      ]);
      const before = up2.received.length;
      const r = await run(id);
      expect(r.body.status, r.text).toBe('succeeded');
      const steps = r.body.steps as (Step & { captures: Record<string, unknown> })[];
      expect(steps[1]?.captures).toEqual({ got: 'Bearer [secret:tok_a]' });
      const forwarded = up2.received.slice(before);
      expect(forwarded.map((x) => x.headers['x-fwd'])).toEqual(['Bearer [secret:tok_a]']);
      expect(formsIn(JSON.stringify(forwarded), A)).toEqual([]);
      expectNoForm(r, A);
    },
  );

  it.runIf(available)('a failing step (500 echoing the secret) follows its onError route', async () => {
    const id = await save('On error', [
      api('call', { url: `${up.url}/fail`, onSuccess: 'fine', onError: 'handled' }),
      set('fine', 'path', 'success'),
      set('handled', 'path', 'error handled'),
    ]);
    const r = await run(id);
    expect(r.body.status).toBe('succeeded');
    const steps = r.body.steps as Step[];
    expect(steps.map((s) => [s.blockId, s.status])).toEqual([
      ['call', 'failed'],
      ['handled', 'succeeded'],
    ]);
    expect(steps[0]?.error?.code).toBe('upstream_error');
    expect(steps[0]?.response?.status).toBe(500);
    expect(JSON.parse(steps[0]?.response?.body ?? '{}').error).toBe('bad token Bearer [secret:tok_a]');
    expect(steps[0]?.response?.headers['x-echo']).toBe('Bearer [secret:tok_a]');
    expect(r.body.variables.path).toBe('error handled');
    expectNoForm(r, A);
    expectNoForm(await team.clients.viewer.get(`${ws}/runs/${r.body.id}`), A);
  });

  it.runIf(available)('without onError a failing step fails the run and nothing after it runs', async () => {
    const id = await save('No route', [
      api('call', { url: `${up.url}/fail`, onSuccess: 'fine' }),
      set('fine', 'path', 'success'),
    ]);
    const r = await run(id);
    expect(r.body.status).toBe('failed');
    expect((r.body.steps as Step[]).map((s) => s.blockId)).toEqual(['call']);
    expect(r.body.steps[0].error.code).toBe('upstream_error');
    expect(r.body.variables.path).toBeUndefined();
    expectNoForm(r, A);
    const again = await team.clients.viewer.get(`${ws}/runs/${r.body.id}`);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('failed');
  });

  it.runIf(available)('a timeout and an unreachable upstream are step failures that follow onError', async () => {
    const id = await save('Timeout', [
      api('call', { url: `${up.url}/hang`, timeoutMs: 300, onError: 'second' }),
      api('second', { url: 'http://127.0.0.1:1/', onError: 'handled' }),
      set('handled', 'path', 'both failed'),
    ]);
    const r = await run(id);
    expect(r.body.status).toBe('succeeded');
    const steps = r.body.steps as Step[];
    expect(steps.map((s) => [s.blockId, s.status, s.error?.code ?? null])).toEqual([
      ['call', 'failed', 'upstream_timeout'],
      ['second', 'failed', 'upstream_unreachable'],
      ['handled', 'succeeded', null],
    ]);
    expectNoForm(r, A);
  });

  it.runIf(available)(
    'a step refused before sending (host_not_allowed, secret_unavailable) fails the run; nothing is sent',
    async () => {
      const before = { received: up2.received.length, connections: up2.connections };
      const elsewhere = await save('Elsewhere', [api('call', { url: `${up2.url}/x` })]);
      const r = await run(elsewhere);
      expect(r.body.status).toBe('failed');
      expect(r.body.steps[0].error.code).toBe('host_not_allowed');
      expect({ received: up2.received.length, connections: up2.connections }).toEqual(before);
      expectNoForm(r, A);

      const temp = await team.owner.post(`${ws}/secrets`, {
        name: 'temp_token',
        visibility: 'masked',
        value: 'temp-value-0123456789',
        allowedHosts: ['127.0.0.1'],
      });
      expect(temp.status, temp.text).toBe(201);
      const usesTemp = await save('Uses temp', [
        api('call', { headers: [{ key: 'X-Key', value: '{{secret:temp_token}}' }] }),
      ]);
      expect((await team.owner.delete(`${ws}/secrets/${temp.body.id}`)).status).toBe(204);
      const received = up.received.length;
      const r2 = await run(usesTemp);
      expect(r2.body.status).toBe('failed');
      expect(r2.body.steps[0].error.code).toBe('secret_unavailable');
      expect(up.received.length).toBe(received);

      // The workflow stays editable: a reference it already had may name the deleted secret (a
      // warning says the block fails until it is restored); a new one may not.
      const kept = [api('call', { headers: [{ key: 'X-Key', value: '{{secret:temp_token}}' }] })];
      const renamed = await team.clients.editor.put(`${ws}/workflows/${usesTemp}`, {
        name: 'Uses temp, renamed',
        startBlockId: 'call',
        blocks: kept,
      });
      expect(renamed.status, renamed.text).toBe(200);
      expect(renamed.body.warnings).toEqual([
        {
          path: 'blocks[id=call].headers.0.value',
          message:
            'the secret "temp_token" does not exist or is deleted: this block fails with secret_unavailable until it is restored',
        },
      ]);
      // Rows are positional: removing or adding a row above the kept reference keeps it the block's.
      const shifted = await team.clients.editor.put(`${ws}/workflows/${usesTemp}`, {
        name: 'Uses temp, renamed',
        startBlockId: 'call',
        blocks: [
          api('call', {
            headers: [
              { key: 'Accept', value: 'application/json' },
              { key: 'X-Key', value: '{{secret:temp_token}}' },
            ],
          }),
        ],
      });
      expect(shifted.status, shifted.text).toBe(200);
      expect(shifted.body.warnings.map((w: { path: string }) => w.path)).toEqual(['blocks[id=call].headers.1.value']);
      for (const blocks of [
        // the same secret added to another block, or a secret that never existed, is new
        [...kept, api('more', { headers: [{ key: 'X-Key', value: '{{secret:temp_token}}' }] })],
        [api('call', { headers: [{ key: 'X-Key', value: '{{secret:never_was}}' }] })],
      ]) {
        const refused = await team.clients.editor.put(`${ws}/workflows/${usesTemp}`, {
          name: 'Uses temp, renamed',
          startBlockId: 'call',
          blocks,
        });
        expect(refused.status, refused.text).toBe(422);
        expect(refused.body.code).toBe('secret_unavailable');
      }
      expect((await team.owner.get(`${ws}/workflows/${usesTemp}`)).body.name).toBe('Uses temp, renamed');
    },
  );

  it.runIf(available)(
    'a run audits run.started, run.finished and exactly one secret.used per secret, with no value; lastUsedAt is set',
    async () => {
      const id = await save('Audit', [
        api('call', { onSuccess: 'second' }),
        api('second', {
          method: 'POST',
          url: `${up.url}/second`,
          query: [{ key: 'key', value: '{{secret:tok_a}}' }],
          headers: [],
          body: { mode: 'json', content: '{"b":"{{secret:tok_b}}"}' },
          onSuccess: 'third',
        }),
        api('third', { url: `${up.url}/third`, headers: [{ key: 'X-B', value: '{{secret:tok_b}}' }] }),
      ]);
      const received = up.received.length;
      const r = await run(id);
      expect(r.body.status).toBe('succeeded');
      const sent = up.received.slice(received);
      expect(sent.map((s) => s.url.split('?')[0])).toEqual(['/ok', '/second', '/third']);
      expect((sent[0] as Received).headers.authorization).toBe(`Bearer ${A}`);
      expect(JSON.parse((sent[1] as Received).body)).toEqual({ b: B });
      expect((sent[2] as Received).headers['x-b']).toBe(B);
      expectNoForm(r, A);
      expectNoForm(r, B);

      const runId = r.body.id as string;
      const events = await t.ctx.db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
      const ofRun = events.filter((e) => e.target_id === runId);
      expect(ofRun.map((e) => e.action)).toEqual(['run.started', 'run.finished']);
      expect(JSON.parse(ofRun[1]?.data ?? '{}')).toMatchObject({ workflowId: id, status: 'succeeded' });
      const used = events
        .filter((e) => e.action === 'secret.used')
        .map((e) => ({ target: e.target_id, data: JSON.parse(e.data) as Record<string, unknown> }))
        .filter((e) => e.data.executionId === runId);
      expect(used).toHaveLength(2);
      const byName = Object.fromEntries(used.map((u) => [u.data.name, u]));
      expect(byName.tok_a?.target).toBe(secretIds.tok_a);
      expect(byName.tok_a?.data).toMatchObject({ name: 'tok_a', blockId: 'call', host: '127.0.0.1' });
      expect(byName.tok_b?.target).toBe(secretIds.tok_b);
      expect(byName.tok_b?.data).toMatchObject({ name: 'tok_b', blockId: 'second', host: '127.0.0.1' });
      for (const value of [A, B]) expect(formsIn(JSON.stringify(events), value)).toEqual([]);
      // The events and their actor are those of the operator who ran it.
      expect(ofRun[0]?.actor_id).toBe(team.userIds.operator);

      for (const name of ['tok_a', 'tok_b']) {
        const s = await team.owner.get(`${ws}/secrets/${secretIds[name]}`);
        expect(typeof s.body.lastUsedAt, name).toBe('string');
      }

      // A second run audits once more per secret; a run without secrets audits none.
      const second = await run(id);
      const after = await t.ctx.db.selectFrom('audit_events').selectAll().where('action', '=', 'secret.used').execute();
      expect(after.filter((e) => JSON.parse(e.data).executionId === second.body.id)).toHaveLength(2);
      const plain = await save('Plain', [api('call', { headers: [] })]);
      const third = await run(plain);
      const none = await t.ctx.db.selectFrom('audit_events').selectAll().where('action', '=', 'secret.used').execute();
      expect(none.filter((e) => JSON.parse(e.data).executionId === third.body.id)).toHaveLength(0);
    },
  );

  it.runIf(available)('a Send request audits one secret.used per secret and sets lastUsedAt', async () => {
    const before = await t.ctx.db
      .selectFrom('audit_events')
      .select('id')
      .where('action', '=', 'secret.used')
      .where('target_id', '=', secretIds.tok_b as string)
      .execute();
    const res = await team.clients.editor.post(`${ws}/blocks/send`, {
      block: api('send', {
        method: 'POST',
        headers: [{ key: 'X-B', value: '{{secret:tok_b}}' }],
        body: { mode: 'form', content: [{ key: 'b', value: '{{secret:tok_b}}' }] },
      }),
    });
    expect(res.status, res.text).toBe(200);
    expectNoForm(res, B);
    const after = await t.ctx.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'secret.used')
      .where('target_id', '=', secretIds.tok_b as string)
      .execute();
    expect(after.length - before.length).toBe(1);
  });

  it.runIf(available)(
    'a slow run finishing while the runs list is paged is never skipped: it lists above the first page',
    async () => {
      // Answers at once, except the one request a test holds until it lets it go.
      const slow = await startUpstream();
      let hold = false;
      let release = () => {};
      slow.handle((_req, res) => {
        res.setHeader('content-type', 'application/json');
        if (!hold) return void res.end('{}');
        hold = false;
        release = () => res.end('{}');
      });
      try {
        const id = await save('Paging', [api('call', { url: `${slow.url}/x`, headers: [] })]);
        const r1 = (await run(id)).body.id as string;
        const r2 = (await run(id)).body.id as string;
        hold = true;
        const pending = run(id); // r3: its id is taken now, its row written when it finishes
        await expect.poll(() => slow.received.length).toBe(3);
        const r4 = (await run(id)).body.id as string;

        const walked: string[] = [];
        const url = `${ws}/workflows/${id}/runs?limit=2`;
        let page = await team.clients.viewer.get(url);
        walked.push(...page.body.items.map((r: { id: string }) => r.id));
        release(); // r3 finishes between the first page and the next
        const r3 = (await pending).body.id as string;
        while (page.body.nextCursor) {
          page = await team.clients.viewer.get(`${url}&cursor=${encodeURIComponent(page.body.nextCursor)}`);
          expect(page.status, page.text).toBe(200);
          walked.push(...page.body.items.map((r: { id: string }) => r.id));
        }
        expect(walked).toEqual([r4, r2, r1]);
        // Listed in the order the runs were recorded: r3 comes above where the walk began, so a
        // client fetching what is newer than its first item finds it. Paged by the run id (taken
        // at the start), r3 sat between r4 and r2, behind the cursor: no walk ever showed it.
        const fresh = await team.clients.viewer.get(`${ws}/workflows/${id}/runs`);
        const all = fresh.body.items.map((r: { id: string }) => r.id);
        expect(all).toEqual([r3, r4, r2, r1]);
        expect([...all.slice(0, all.indexOf(walked[0])), ...walked].sort()).toEqual([r1, r2, r3, r4].sort());
      } finally {
        release();
        await slow.close();
      }
    },
  );

  it.runIf(available && kind === 'postgres')(
    "a run is recorded under its own workflow's list lock: another workflow's runs, on another server, never wait for it",
    async () => {
      const held = await save('Held list', [api('call', { headers: [] })]);
      const free = await save('Free list', [api('call', { headers: [] })]);
      // A second server on the same database, the operator signed in there with the same cookies.
      const ctx2 = await createAppContext(t.ctx.config, createLogger('silent'));
      const app2 = await buildServer(ctx2);
      const operator2 = new TestClient(app2);
      for (const [k, v] of team.clients.operator.cookies) operator2.cookies.set(k, v);
      const url = t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '';
      const locker = new pg.Client({ connectionString: url });
      await locker.connect();
      const key = runListLock(team.workspaceId, held).toString();
      let unlocked = false;
      try {
        // A third server recording a run of `held` holds its lock.
        await locker.query('select pg_advisory_lock($1::bigint)', [key]);
        const waiting = run(held).then((r) => {
          expect(unlocked, 'recorded only once the lock is let go').toBe(true);
          return r;
        });
        const other = await operator2.post(`${ws}/workflows/${free}/runs`, { variables: {} });
        expect(other.status, other.text).toBe(201);
        expect((await team.clients.viewer.get(`${ws}/workflows/${free}/runs`)).body.items).toHaveLength(1);
        expect((await team.clients.viewer.get(`${ws}/workflows/${held}/runs`)).body.items).toEqual([]);
        unlocked = true;
        await locker.query('select pg_advisory_unlock($1::bigint)', [key]);
        const done = await waiting;
        const after = await team.clients.viewer.get(`${ws}/workflows/${held}/runs`);
        expect(after.body.items.map((r: { id: string }) => r.id)).toEqual([done.body.id]);
      } finally {
        await locker.end();
        await app2.close();
        await ctx2.close();
      }
    },
  );

  it.runIf(available)('a run needs no body: POST …/runs with none is a run with no input variables', async () => {
    const id = await save('No body', [set('s', 'greeting', 'hello')], 's');
    const operator = team.clients.operator;
    const cookie = [...operator.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await t.app.inject({
      method: 'POST',
      url: `${ws}/workflows/${id}/runs`,
      headers: { cookie, 'x-hush-csrf': operator.cookies.get('hush_csrf') ?? '' },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'succeeded', variables: { greeting: 'hello' } });
  });

  it.runIf(available)('runs list newest first with a cursor, and $env is PRODUCTION in a run', async () => {
    const id = await save('Listing', [set('call', 'env', '{{$env}}')]);
    const first = await run(id);
    const second = await run(id);
    expect(second.body.variables.env).toBe('PRODUCTION');
    const page = await team.clients.viewer.get(`${ws}/workflows/${id}/runs?limit=1`);
    expect(page.status, page.text).toBe(200);
    expect(page.body.items.map((r: { id: string }) => r.id)).toEqual([second.body.id]);
    // Summaries only: a run's record (up to 32 MiB) is read one run at a time.
    expect(page.body.items[0]).toEqual({
      id: second.body.id,
      workflowId: id,
      status: 'succeeded',
      startedAt: second.body.startedAt,
      finishedAt: second.body.finishedAt,
      startedBy: second.body.startedBy,
      stepCount: 1,
    });
    expect(page.body.nextCursor).toEqual(expect.any(String));
    const next = await team.clients.viewer.get(
      `${ws}/workflows/${id}/runs?limit=1&cursor=${encodeURIComponent(page.body.nextCursor)}`,
    );
    expect(next.body.items.map((r: { id: string }) => r.id)).toEqual([first.body.id]);
    // A cursor this API never issued, however it is made, is 422 — never a 500.
    for (const seq of [2 ** 31, Number.MAX_SAFE_INTEGER, -1, 1.5]) {
      const forged = Buffer.from(JSON.stringify({ seq })).toString('base64url');
      const res = await team.clients.viewer.get(`${ws}/workflows/${id}/runs?cursor=${forged}`);
      expect([seq, res.status, res.body.code]).toEqual([seq, 422, 'validation_failed']);
    }
    // Another workspace's member cannot read it.
    expect((await team.outsider.get(`${ws}/runs/${first.body.id}`)).status).toBe(404);
    // Deleting the workflow keeps its runs listable; an id that never named one is 404.
    expect((await team.owner.delete(`${ws}/workflows/${id}`)).status).toBe(204);
    const kept = await team.clients.viewer.get(`${ws}/workflows/${id}/runs`);
    expect(kept.status, kept.text).toBe(200);
    expect(kept.body.items.map((r: { id: string }) => r.id)).toEqual([second.body.id, first.body.id]);
    expect((await team.clients.viewer.get(`${ws}/workflows/wf_neverexisted/runs`)).status).toBe(404);
  });
});
