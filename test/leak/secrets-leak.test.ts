/**
 * The leak test for the Variables Management Panel API: canary secret values
 * go through every secret route and error path, with the server logging at
 * debug; then every response (body and headers), the whole log, every file in
 * the data directory (SQLite file, WAL, key file) — and on PostgreSQL a
 * pg_dump — are searched for every encoded form of every canary. The only
 * place a value may appear is the answer to a permitted reveal.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeakSearch, makeCanary } from '../support/canary.js';
import { DATABASES } from '../support/databases.js';
import { buildTeam, type Team } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';

describe.each(DATABASES)('secret values never leak on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind, { HUSH_LOG_LEVEL: 'debug', HUSH_REVEAL_LIMIT_PER_MIN: '5' });
    team = await buildTeam(t);
  }, 120_000);
  afterAll(async () => t?.close());

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
});
