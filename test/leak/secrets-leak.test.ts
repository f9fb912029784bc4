/**
 * The leak test for the Variables Management Panel API: canary secret values
 * go through every secret route and error path, with the server logging at
 * debug; then every response (body and headers), the whole log, every file in
 * the data directory (SQLite file, WAL, key file) — and on PostgreSQL a
 * pg_dump — are searched for every encoded form of every canary. The only
 * place a value may appear is the answer to a permitted reveal.
 *
 * The second test does the same for execution: canary secrets go out in Send
 * requests and workflow runs to an upstream that echoes them back in every
 * encoded form (and fails with a 500 that echoes them); the only place they
 * may appear is the outbound request that upstream received.
 */
import { execFileSync } from 'node:child_process';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeakSearch, makeCanary } from '../support/canary.js';
import { DATABASES } from '../support/databases.js';
import { buildTeam, type Team } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { type Received, startUpstream, type Upstream } from '../support/upstream.js';

/** Answers with `value` in every form the SPEC's redaction lists: headers, JSON, HTML. */
function echoForms(res: ServerResponse, value: string, status: number, html: boolean): void {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const escaped = value.replace(
    /[&<>"']/g,
    (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": '#39' }[c]};`,
  );
  res.statusCode = status;
  res.setHeader('x-raw', value);
  res.setHeader('x-basic', `Basic ${b64(`user:${value}`)}`);
  res.setHeader('x-pct', encodeURIComponent(value));
  if (html) {
    res.setHeader('content-type', 'text/html');
    // Buffer bodies: Node then writes the header block one byte per character (latin1).
    return void res.end(Buffer.from(`<b title="${escaped}">${value}</b> ${Buffer.from(value).toString('hex')}`));
  }
  res.setHeader('content-type', 'application/json');
  res.end(
    Buffer.from(
      JSON.stringify({
        echo: value,
        b64: b64(value),
        b64url: Buffer.from(value).toString('base64url'),
        hex: Buffer.from(value).toString('hex').toUpperCase(),
        pct: encodeURIComponent(value),
        form: encodeURIComponent(value).replaceAll('%20', '+'),
        html: escaped,
        basic: ['', 'u', 'us', 'use', 'user', 'user:'].map((p) => b64(`${p}${value}`)),
        error: `invalid token ${value}`,
      }),
    ),
  );
}

describe.each(DATABASES)('secret values never leak on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  let up: Upstream;
  let other: Upstream;
  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    other = await startUpstream('127.0.0.2');
    t = await startTestApp(kind, {
      HUSH_LOG_LEVEL: 'debug',
      HUSH_REVEAL_LIMIT_PER_MIN: '5',
      HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8',
    });
    team = await buildTeam(t);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await up?.close();
    await other?.close();
  });

  it.runIf(available)('no form of any canary appears outside permitted reveal responses', async () => {
    const canaries = {
      masked: makeCanary('masked'),
      masked2: makeCanary('masked2'),
      restricted: makeCanary('restricted'),
      rejected: makeCanary('rejected'),
      purged: makeCanary('purged'),
      huge: `${makeCanary('huge')}${'z'.repeat(70_000)}`,
    };
    const search = new LeakSearch(canaries);
    const ws = `/api/v1/workspaces/${team.workspaceId}`;
    const { owner, admin, editor, viewer, manager } = team.clients;
    const revealAnswers: Reply[] = [];
    const replies: { label: string; reply: Reply }[] = [];
    const call = async (
      label: string,
      client: TestClient,
      method: string,
      url: string,
      body?: unknown,
      headers?: Record<string, string>,
    ) => {
      const reply = await client.request(method, url, body, headers);
      replies.push({ label, reply });
      return reply;
    };

    // Create, including refused creates that carry a canary value.
    const masked = await call('create masked', owner, 'POST', `${ws}/secrets`, {
      name: 'zendesk_token',
      visibility: 'masked',
      value: canaries.masked,
      allowedHosts: ['*.zendesk.com'],
    });
    expect(masked.status).toBe(201);
    const restricted = await call('create restricted', admin, 'POST', `${ws}/secrets`, {
      name: 'crm_key',
      visibility: 'restricted',
      value: canaries.restricted,
    });
    expect(restricted.status).toBe(201);
    const toPurge = await call('create to purge', owner, 'POST', `${ws}/secrets`, {
      name: 'old_key',
      visibility: 'masked',
      value: canaries.purged,
    });
    expect(toPurge.status).toBe(201);
    const refusedCreates: [string, TestClient, unknown, number][] = [
      ['duplicate name', owner, { name: 'ZENDESK_TOKEN', visibility: 'masked', value: canaries.rejected }, 409],
      ['bad name', owner, { name: '1bad', visibility: 'masked', value: canaries.rejected }, 422],
      [
        'bad hosts',
        owner,
        { name: 'x1', visibility: 'masked', value: canaries.rejected, allowedHosts: ['https://a.com/'] },
        422,
      ],
      ['bad visibility', owner, { name: 'x2', visibility: 'public', value: canaries.rejected }, 422],
      [
        'unknown field',
        owner,
        { name: 'x3', visibility: 'masked', value: canaries.rejected, extra: canaries.rejected },
        422,
      ],
      ['value too large', owner, { name: 'x4', visibility: 'masked', value: canaries.huge }, 422],
      ['editor create', editor, { name: 'x5', visibility: 'masked', value: canaries.rejected }, 403],
      ['viewer create', viewer, { name: 'x6', visibility: 'masked', value: canaries.rejected }, 403],
      ['outsider create', team.outsider, { name: 'x7', visibility: 'masked', value: canaries.rejected }, 404],
      ['anonymous create', team.anonymous, { name: 'x8', visibility: 'masked', value: canaries.rejected }, 401],
    ];
    for (const [label, client, body, status] of refusedCreates) {
      expect((await call(label, client, 'POST', `${ws}/secrets`, body)).status, label).toBe(status);
    }
    // Malformed JSON that carries the canary, and a canary in a search query.
    const broken = `{"name":"x9","visibility":"masked","value":"${canaries.rejected.replaceAll('"', '\\"')}"`;
    expect(
      (await call('malformed json', owner, 'POST', `${ws}/secrets`, broken, { 'content-type': 'application/json' }))
        .status,
    ).toBe(400);
    expect(
      (
        await call('wrong content type', owner, 'POST', `${ws}/secrets`, canaries.rejected, {
          'content-type': 'text/plain',
        })
      ).status,
    ).toBe(422);
    await call(
      'search by value',
      owner,
      'GET',
      `${ws}/secrets?q=${encodeURIComponent(canaries.rejected.slice(0, 40))}`,
    );

    const id = masked.body.id as string;
    const rid = restricted.body.id as string;
    // Reads by every role.
    for (const [label, client] of Object.entries({ owner, admin, editor, manager, viewer })) {
      await call(`list as ${label}`, client, 'GET', `${ws}/secrets`);
      await call(`get as ${label}`, client, 'GET', `${ws}/secrets/${id}`);
      await call(`get restricted as ${label}`, client, 'GET', `${ws}/secrets/${rid}`);
      await call(`versions as ${label}`, client, 'GET', `${ws}/secrets/${id}/versions`);
    }
    // Updates, including refused ones carrying canaries.
    expect(
      (
        await call(
          'update value',
          owner,
          'PATCH',
          `${ws}/secrets/${id}`,
          { value: canaries.masked2 },
          { 'if-match': '1' },
        )
      ).status,
    ).toBe(200);
    expect(
      (
        await call(
          'stale if-match',
          owner,
          'PATCH',
          `${ws}/secrets/${id}`,
          { value: canaries.rejected },
          { 'if-match': '1' },
        )
      ).status,
    ).toBe(412);
    expect(
      (await call('immutable', owner, 'PATCH', `${ws}/secrets/${id}`, { value: canaries.rejected, name: 'renamed' }))
        .status,
    ).toBe(422);
    expect(
      (await call('editor update', editor, 'PATCH', `${ws}/secrets/${id}`, { value: canaries.rejected })).status,
    ).toBe(403);
    expect(
      (await call('oversize update', owner, 'PATCH', `${ws}/secrets/${id}`, { value: canaries.huge })).status,
    ).toBe(422);
    expect(
      (
        await call(
          'bad if-match',
          owner,
          'PATCH',
          `${ws}/secrets/${id}`,
          { value: canaries.rejected },
          { 'if-match': canaries.rejected.slice(0, 30) },
        )
      ).status,
    ).toBe(422);

    // Reveals: permitted ones are the only exempt responses.
    for (const client of [owner, editor]) {
      const r = await client.post(`${ws}/secrets/${id}/reveal`);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ value: canaries.masked2 });
      search.scan('reveal response headers', JSON.stringify(r.headers));
      revealAnswers.push(r);
    }
    expect((await call('reveal restricted', owner, 'POST', `${ws}/secrets/${rid}/reveal`)).status).toBe(403);
    expect((await call('viewer reveal', viewer, 'POST', `${ws}/secrets/${id}/reveal`)).status).toBe(403);
    expect((await call('manager reveal', manager, 'POST', `${ws}/secrets/${id}/reveal`)).status).toBe(403);
    for (let i = 0; i < 5; i++) await call('reveal until limited', admin, 'POST', `${ws}/secrets/${rid}/reveal`);

    // Lifecycle and its error paths.
    expect((await call('delete', owner, 'DELETE', `${ws}/secrets/${id}`)).status).toBe(204);
    expect((await call('reveal deleted', editor, 'POST', `${ws}/secrets/${id}/reveal`)).status).toBe(409);
    expect(
      (await call('update deleted', owner, 'PATCH', `${ws}/secrets/${id}`, { value: canaries.rejected })).status,
    ).toBe(409);
    await call('list deleted', owner, 'GET', `${ws}/secrets?deleted=true`);
    expect((await call('restore', owner, 'POST', `${ws}/secrets/${id}/restore`)).status).toBe(200);
    expect((await call('restore again', owner, 'POST', `${ws}/secrets/${id}/restore`)).status).toBe(409);
    expect((await call('purge', owner, 'DELETE', `${ws}/secrets/${toPurge.body.id}?purge=true`)).status).toBe(204);
    expect((await call('get purged', owner, 'GET', `${ws}/secrets/${toPurge.body.id}`)).status).toBe(404);
    await call(
      'bad cursor',
      owner,
      'GET',
      `${ws}/secrets?cursor=${Buffer.from(canaries.rejected).toString('base64url')}`,
    );
    // The audit trail and its export, as the panel's audit page would read them.
    await call('audit list', owner, 'GET', `${ws}/audit?limit=200`);
    await call('audit csv', owner, 'GET', `${ws}/audit.csv`);

    for (const { label, reply } of replies) {
      search.scan(`response body: ${label}`, reply.text);
      search.scan(`response headers: ${label}`, JSON.stringify(reply.headers));
      expect(reply.status, `${label}: ${reply.text}`).toBeLessThan(500);
    }
    search.scan('server log', t.logs.join('\n'));
    const files = search.scanDirectory(t.dataDir);
    if (kind === 'sqlite') {
      expect(files.some((f) => f.endsWith('hush.db'))).toBe(true);
      expect(files.some((f) => f.endsWith('hush.db-wal'))).toBe(true);
    } else {
      const url = t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '';
      const dump = execFileSync('pg_dump', ['--no-owner', url], { maxBuffer: 256 * 1024 * 1024 });
      expect(dump.length).toBeGreaterThan(1000);
      search.scan('pg_dump', dump);
    }
    // The logs really were at debug and really did see these requests.
    expect(t.logs.some((l) => l.includes('"level":20'))).toBe(true);
    expect(revealAnswers).toHaveLength(2);
    expect(search.places).toBeGreaterThan(100);
    expect(search.hits).toEqual([]);
  });

  it.runIf(available)(
    'no form of a canary used in Send requests and runs appears anywhere but on the wire',
    async () => {
      const canaries = { sent: makeCanary('sent'), ran: makeCanary('ran') };
      const search = new LeakSearch(canaries);
      const ws = `/api/v1/workspaces/${team.workspaceId}`;
      const { owner, editor, operator, viewer } = team.clients;
      const replies: { label: string; reply: Reply }[] = [];
      const call = async (label: string, client: TestClient, method: string, url: string, body?: unknown) => {
        const reply = await client.request(method, url, body);
        replies.push({ label, reply });
        return reply;
      };
      // The upstream echoes whichever canary it was sent, in every form; /fail with a 500; /hang never answers.
      up.handle((req, res) => {
        if (req.url.startsWith('/hang')) return;
        if (req.url.startsWith('/away')) return void res.writeHead(307, { location: `${other.url}/land` }).end();
        const wire = JSON.stringify(req);
        const value = Object.values(canaries).find(
          (c) => wire.includes(c) || wire.includes(JSON.stringify(c).slice(1, -1)),
        );
        if (value === undefined) return void res.end('{}');
        echoForms(res, value, req.url.startsWith('/fail') ? 500 : 200, req.url.startsWith('/html'));
      });
      other.handle((req, res) => res.end(JSON.stringify(req)));

      expect(
        (
          await call('create sent', owner, 'POST', `${ws}/secrets`, {
            name: 'leak_sent',
            visibility: 'masked',
            value: canaries.sent,
          })
        ).status,
      ).toBe(201);
      expect(
        (
          await call('create ran', owner, 'POST', `${ws}/secrets`, {
            name: 'leak_ran',
            visibility: 'restricted',
            value: canaries.ran,
            allowedHosts: ['127.0.0.1'],
          })
        ).status,
      ).toBe(201);

      const block = (extra: Record<string, unknown>) => ({
        id: 'call',
        type: 'api',
        method: 'POST',
        url: `${up.url}/echo`,
        headers: [{ key: 'Authorization', value: 'Bearer {{secret:leak_sent}}' }],
        query: [{ key: 'key', value: '{{secret:leak_sent}}' }],
        body: { mode: 'json', content: '{"token":"{{secret:leak_sent}}"}' },
        capture: [{ variable: 'echoed', path: '$.echo' }],
        ...extra,
      });
      const sends: [string, Record<string, unknown>, number][] = [
        ['send json echo', block({}), 200],
        [
          'send html echo',
          block({
            url: `${up.url}/html`,
            body: { mode: 'form', content: [{ key: 't', value: '{{secret:leak_sent}}' }] },
          }),
          200,
        ],
        ['send text body', block({ body: { mode: 'text', content: 'token={{secret:leak_sent}}' } }), 200],
        ['send failing 500', block({ url: `${up.url}/fail` }), 200],
        ['send timeout', block({ url: `${up.url}/hang`, timeoutMs: 200 }), 200],
        ['send redirect away', block({ url: `${up.url}/away` }), 200],
        ['send closed port', block({ url: 'http://127.0.0.1:1/' }), 200],
        ['send other host', block({ url: `${other.url}/x` }), 403],
        ['send localhost', block({ url: `http://localhost:${up.port}/x` }), 403],
        ['send as viewer', block({}), 403],
        ['send header injection', block({ headers: [{ key: 'X-A', value: '{{evil}}' }] }), 422],
      ];
      for (const [label, b, status] of sends) {
        const client = label === 'send as viewer' ? viewer : editor;
        const reply = await call(label, client, 'POST', `${ws}/blocks/send`, {
          block: b,
          variables: { evil: 'a\r\nX-B: c' },
        });
        expect(reply.status, `${label}: ${reply.text}`).toBe(status);
      }
      expect((up.received.find((r) => r.url.startsWith('/echo')) as Received).headers.authorization).toBe(
        `Bearer ${canaries.sent}`,
      );

      // A workflow that uses both secrets, one step failing with a 500 that echoes the value.
      const wf = await call('create workflow', editor, 'POST', `${ws}/workflows`, {
        name: 'Leak run',
        startBlockId: 'first',
        blocks: [
          block({
            id: 'first',
            headers: [{ key: 'Authorization', value: 'Bearer {{secret:leak_ran}}' }],
            query: [],
            body: { mode: 'none' },
            onSuccess: 'second',
          }),
          block({ id: 'second', url: `${up.url}/fail`, onError: 'after' }),
          { id: 'after', type: 'set', assignments: [{ variable: 'copy', value: 'got {{echoed}}' }] },
        ],
      });
      expect(wf.status, wf.text).toBe(201);
      const failing = await call('create failing workflow', editor, 'POST', `${ws}/workflows`, {
        name: 'Leak fail',
        startBlockId: 'call',
        blocks: [block({ url: `${up.url}/fail`, headers: [{ key: 'X-Key', value: '{{secret:leak_ran}}' }] })],
      });
      expect(failing.status, failing.text).toBe(201);
      const run = await call('run', operator, 'POST', `${ws}/workflows/${wf.body.id}/runs`, {
        variables: { who: 'x' },
      });
      expect(run.status, run.text).toBe(201);
      expect(run.body.variables.copy).toMatch(/^got \[secret:leak_(sent|ran)\]$/);
      const failed = await call('failing run', operator, 'POST', `${ws}/workflows/${failing.body.id}/runs`, {});
      expect(failed.body.status).toBe('failed');
      await call('get run', viewer, 'GET', `${ws}/runs/${run.body.id}`);
      await call('get failed run', viewer, 'GET', `${ws}/runs/${failed.body.id}`);
      await call('list runs', viewer, 'GET', `${ws}/workflows/${wf.body.id}/runs`);
      await call('get workflow', viewer, 'GET', `${ws}/workflows/${wf.body.id}`);
      await call('list workflows', viewer, 'GET', `${ws}/workflows`);
      const secrets = await call('list secrets', owner, 'GET', `${ws}/secrets?q=leak_`);
      for (const s of secrets.body.items as { id: string; name: string }[]) {
        await call(`usages ${s.name}`, editor, 'GET', `${ws}/secrets/${s.id}/usages`);
      }
      await call('audit list', owner, 'GET', `${ws}/audit?limit=200`);
      await call('audit csv', owner, 'GET', `${ws}/audit.csv`);

      for (const { label, reply } of replies) {
        search.scan(`response body: ${label}`, reply.text);
        search.scan(`response headers: ${label}`, JSON.stringify(reply.headers));
        expect(reply.status, `${label}: ${reply.text}`).toBeLessThan(500);
      }
      // The host the secret may not go to, reached by a redirect: nothing.
      search.scan('requests received by another origin', JSON.stringify(other.received));
      search.scan('server log', t.logs.join('\n'));
      search.scanDirectory(t.dataDir);
      if (kind === 'postgres') {
        const url = t.ctx.config.database.kind === 'postgres' ? t.ctx.config.database.url : '';
        search.scan('pg_dump', execFileSync('pg_dump', ['--no-owner', url], { maxBuffer: 256 * 1024 * 1024 }));
      }
      expect(other.received.length).toBeGreaterThan(0);
      // Positive control: the same search does find both canaries on the wire and in the echoes.
      const control = new LeakSearch(canaries);
      control.scan('outbound requests', JSON.stringify(up.received));
      expect(new Set(control.hits.map((h) => h.canary))).toEqual(new Set(['sent', 'ran']));
      expect(search.places).toBeGreaterThan(40);
      expect(search.hits).toEqual([]);
    },
  );
});
