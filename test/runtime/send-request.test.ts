/**
 * Send request and runs end to end against a real upstream on 127.0.0.1:
 * the upstream receives the real value; the caller gets everything redacted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { buildTeam, inviteAndJoin, type Team } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const VALUE = 'zd_live_9f8KQ2bX/tX+e=Lq0pA7';

describe.each(DATABASES)('Send request and runs on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  let up: Upstream;
  let ws: string;

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    t = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    team = await buildTeam(t);
    ws = `/api/v1/workspaces/${team.workspaceId}`;
    const s = await team.owner.post(`${ws}/secrets`, { name: 'zendesk_token', visibility: 'masked', value: VALUE });
    expect(s.status, s.text).toBe(201);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await up?.close();
  });

  const block = (extra: Record<string, unknown> = {}) => ({
    id: 'call',
    type: 'api',
    method: 'POST',
    url: `${up.url}/echo`,
    headers: [{ key: 'Authorization', value: 'Bearer {{secret:zendesk_token}}' }],
    body: { mode: 'json', content: '{"who":"{{name}}","n":"{{count}}"}' },
    capture: [{ variable: 'echoed', path: '$.auth' }],
    ...extra,
  });

  it.runIf(available)(
    'without secrets.use a saver may edit a workflow but not change a block that sends a secret',
    async () => {
      const role = await team.owner.post(`${ws}/roles`, {
        name: 'Flow tweaker',
        permissions: ['workflows.read', 'workflows.edit', 'secrets.read', 'variables.read'],
      });
      expect(role.status, role.text).toBe(201);
      const { client: tweaker } = await inviteAndJoin(
        t,
        team.owner,
        team.workspaceId,
        'tweaker@example.com',
        role.body.id,
      );
      const blocks = [block({ onSuccess: 'after' }), { id: 'after', type: 'set', assignments: [] }];
      const wf = await team.clients.editor.post(`${ws}/workflows`, { name: 'Guarded', startBlockId: 'call', blocks });
      expect(wf.status, wf.text).toBe(201);
      const url = `${ws}/workflows/${wf.body.id}`;

      const renamed = await tweaker.put(url, { name: 'Renamed', startBlockId: 'call', blocks });
      expect(renamed.status, renamed.text).toBe(200);
      const otherBlock = [blocks[0], { id: 'after', type: 'set', assignments: [{ variable: 'x', value: '1' }] }];
      expect((await tweaker.put(url, { name: 'Renamed', startBlockId: 'call', blocks: otherBlock })).status).toBe(200);

      const before = (await team.owner.get(url)).body;
      for (const change of [
        { url: 'https://attacker.example/collect' },
        { method: 'PUT' },
        { headers: [{ key: 'X-Token', value: 'Bearer {{secret:zendesk_token}}' }] },
      ]) {
        const moved = await tweaker.put(url, {
          name: 'Renamed',
          startBlockId: 'call',
          blocks: [block({ onSuccess: 'after', ...change }), otherBlock[1]],
        });
        expect(moved.status, moved.text).toBe(403);
        expect(moved.body.code).toBe('forbidden');
      }
      expect((await team.owner.get(url)).body).toEqual(before);
      expect((await team.clients.editor.delete(url)).status).toBe(204);
    },
  );

  it.runIf(available)('an editor sends: the upstream gets the value, the editor sees only [secret:NAME]', async () => {
    up.handle((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-echo', String(req.headers.authorization));
      res.end(
        JSON.stringify({
          auth: req.headers.authorization,
          b64: Buffer.from(String(req.headers.authorization)).toString('base64'),
        }),
      );
    });
    const res = await team.clients.editor.post(`${ws}/blocks/send`, {
      block: block(),
      variables: { name: 'Ada', count: 3 },
    });
    expect(res.status, res.text).toBe(200);
    expect(up.received.at(-1)?.headers.authorization).toBe(`Bearer ${VALUE}`);
    expect(JSON.parse(up.received.at(-1)?.body ?? '{}')).toEqual({ who: 'Ada', n: 3 });
    expect(res.text).not.toContain(VALUE);
    expect(res.text).not.toContain(Buffer.from(`Bearer ${VALUE}`).toString('base64').slice(10, 30));
    expect(res.body.ok).toBe(true);
    expect(res.body.request.headers.authorization).toBe('Bearer [secret:zendesk_token]');
    expect(res.body.response.headers['x-echo']).toBe('Bearer [secret:zendesk_token]');
    expect(res.body.captures).toEqual({ echoed: 'Bearer [secret:zendesk_token]' });
    const secret = (await team.owner.get(`${ws}/secrets?q=zendesk`)).body.items[0];
    expect(secret.allowedHosts).toEqual(['127.0.0.1']);
    expect(secret.hostsPinnedAt).not.toBeNull();
    expect(secret.lastUsedAt).not.toBeNull();
  });

  it.runIf(available)(
    'a block cannot set Host (another virtual host than the one checked) nor a connection header: refused on save and send, nothing sent',
    async () => {
      const before = up.received.length;
      for (const key of ['Host', ' host ', 'Content-Length', 'Transfer-Encoding', 'Connection']) {
        const headers = [
          { key: 'Authorization', value: 'Bearer {{secret:zendesk_token}}' },
          { key, value: 'tenant.attacker.example' },
        ];
        const sent = await team.clients.editor.post(`${ws}/blocks/send`, { block: block({ headers }) });
        expect(sent.status, sent.text).toBe(422);
        expect(sent.body.code).toBe('invalid_header');
        const saved = await team.clients.editor.post(`${ws}/workflows`, {
          name: `Host ${key}`,
          startBlockId: 'call',
          blocks: [block({ headers })],
        });
        expect(saved.status, saved.text).toBe(422);
        expect(saved.body.code).toBe('invalid_header');
        expect(saved.body.errors[0].path).toBe('body.blocks.0.headers.1.key');
      }
      // A name from a variable is checked once rendered.
      const fromVariable = await team.clients.editor.post(`${ws}/blocks/send`, {
        block: block({ headers: [{ key: '{{h}}', value: 'tenant.attacker.example' }] }),
        variables: { h: 'HOST' },
      });
      expect(fromVariable.status, fromVariable.text).toBe(422);
      expect(fromVariable.body.code).toBe('invalid_header');
      expect(up.received.length).toBe(before);
    },
  );

  it.runIf(available)(
    'a quoted template key that is not a JSON string is 422 on save and send, never a 500',
    async () => {
      for (const source of ['{{a["\\x"]}}', '{{a["\\u"]}}', '{{a["\t"]}}']) {
        const sent = await team.clients.editor.post(`${ws}/blocks/send`, {
          block: block({ headers: [{ key: 'X-Odd', value: source }] }),
        });
        expect(sent.status, sent.text).toBe(422);
        expect(sent.body.code).toBe('validation_failed');
        const saved = await team.clients.editor.post(`${ws}/workflows`, {
          name: 'Odd path',
          startBlockId: 'set',
          blocks: [{ id: 'set', type: 'set', assignments: [{ variable: 'x', value: source }] }],
        });
        expect(saved.status, saved.text).toBe(422);
        expect(saved.body.errors[0].path).toBe('body.blocks.0.assignments.0.value');
      }
    },
  );

  it.runIf(available)('a JSON body key and a key named like its field ("a" and "a#key") stay apart', async () => {
    const received = up.received.length;
    const res = await team.clients.editor.post(`${ws}/blocks/send`, {
      block: block({
        headers: [],
        capture: [],
        body: { mode: 'json', content: '{"a":"x","a#key":"{{who}}","b":"{{secret:zendesk_token}}","b#key":"plain"}' },
      }),
      variables: { who: 'bob' },
    });
    expect(res.status, res.text).toBe(200);
    expect(up.received.length).toBe(received + 1);
    expect(JSON.parse(up.received.at(-1)?.body ?? '{}')).toEqual({
      a: 'x',
      'a#key': 'bob',
      b: VALUE,
      'b#key': 'plain',
    });
  });

  it.runIf(available)(
    'keys named like Object.prototype members are kept as they are (headers, captured objects); __proto__ is no variable name',
    async () => {
      up.handle((_req, res) => {
        res.setHeader('constructor', 'upstream-v1');
        res.setHeader('content-type', 'application/json');
        res.end('{"o":{"__proto__":{"polluted":true},"toString":"t"}}');
      });
      const res = await team.clients.editor.post(`${ws}/blocks/send`, {
        block: block({
          method: 'GET',
          body: { mode: 'none' },
          headers: [{ key: 'constructor', value: 'v1' }],
          capture: [{ variable: 'o', path: '$.o' }],
        }),
      });
      expect(res.status, res.text).toBe(200);
      expect(res.body.request.headers.constructor).toBe('v1');
      expect(res.body.response.headers.constructor).toBe('upstream-v1');
      expect(JSON.stringify(res.body.captures)).toBe('{"o":{"__proto__":{"polluted":true},"toString":"t"}}');
      for (const where of [
        { capture: [{ variable: '__proto__', path: '$.o' }] },
        { id: 'set', type: 'set', assignments: [{ variable: '__proto__', value: 'x' }] },
      ]) {
        const blocks = 'type' in where ? [where] : [block(where)];
        const saved = await team.clients.editor.post(`${ws}/workflows`, {
          name: 'Proto',
          startBlockId: blocks[0]?.id,
          blocks,
        });
        expect(saved.status, saved.text).toBe(422);
        expect(saved.body.code).toBe('validation_failed');
      }
    },
  );

  it.runIf(available)(
    'a JSON body sends what was written: numbers unrounded (2^53+1, 1e400), a __proto__ key kept',
    async () => {
      const content =
        '{"id":9007199254740993,"big":1e400,"neg":-12345678901234567890,"f":1.50,"e":1E5,"ok":42,"s":"9007199254740993","t":"{{who}}","arr":[0.1,-0,123456789012345678901234567890],"__proto__":{"k":"v"}}';
      const res = await team.clients.editor.post(`${ws}/blocks/send`, {
        block: block({ headers: [], capture: [], body: { mode: 'json', content } }),
        variables: { who: 'ann' },
      });
      expect(res.status, res.text).toBe(200);
      expect(up.received.at(-1)?.body).toBe(content.replace('{{who}}', 'ann'));
      expect(res.body.request.body).toBe(content.replace('{{who}}', 'ann'));
    },
  );

  it.runIf(available)(
    'a viewer cannot send and a secret bound to another host is refused before any connection',
    async () => {
      expect((await team.clients.viewer.post(`${ws}/blocks/send`, { block: block() })).status).toBe(403);
      const before = up.received.length;
      const res = await team.clients.editor.post(`${ws}/blocks/send`, {
        block: block({ url: `http://localhost:${up.port}/echo` }),
      });
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe('host_not_allowed');
      expect(up.received.length).toBe(before);
    },
  );

  it.runIf(available)('an operator runs a saved workflow and the run record is redacted', async () => {
    up.handle((req, res) => res.end(JSON.stringify({ auth: req.headers.authorization })));
    const wf = await team.clients.editor.post(`${ws}/workflows`, {
      name: 'Echo',
      startBlockId: 'call',
      blocks: [
        block({ onSuccess: 'after' }),
        { id: 'after', type: 'set', assignments: [{ variable: 'copy', value: 'got {{echoed}}' }] },
      ],
    });
    expect(wf.status, wf.text).toBe(201);
    const run = await team.clients.operator.post(`${ws}/workflows/${wf.body.id}/runs`, { variables: { name: 'Bo' } });
    expect(run.status, run.text).toBe(201);
    expect(run.body.status).toBe('succeeded');
    expect(run.text).not.toContain(VALUE);
    expect(run.body.variables.copy).toBe('got Bearer [secret:zendesk_token]');
    const again = await team.clients.viewer.get(`${ws}/runs/${run.body.id}`);
    expect(again.status).toBe(200);
    expect(again.text).not.toContain(VALUE);
    const usages = await team.clients.editor.get(
      `${ws}/secrets/${(await team.owner.get(`${ws}/secrets?q=zendesk`)).body.items[0].id}/usages`,
    );
    expect(usages.body.items).toEqual([
      { workflowId: wf.body.id, workflowName: 'Echo', blockId: 'call', blockName: '', field: 'headers.0.value' },
    ]);
  });

  it.runIf(available)(
    'saving refuses a secret in the URL, two secrets in one field, and an unknown secret',
    async () => {
      const save = (b: Record<string, unknown>) =>
        team.clients.editor.post(`${ws}/workflows`, { name: 'bad', startBlockId: 'call', blocks: [b] });
      expect((await save(block({ url: `${up.url}/?k={{secret:zendesk_token}}` }))).body.code).toBe(
        'secret_not_allowed_here',
      );
      expect(
        (await save(block({ headers: [{ key: 'X', value: '{{secret:zendesk_token}}{{secret:zendesk_token}}' }] }))).body
          .code,
      ).toBe('one_secret_per_field');
      expect((await save(block({ headers: [{ key: 'X', value: '{{secret:nope}}' }] }))).body.code).toBe(
        'secret_unavailable',
      );
      expect(
        (await save({ id: 'call', type: 'set', assignments: [{ variable: 'x', value: '{{secret:zendesk_token}}' }] }))
          .body.code,
      ).toBe('secret_not_allowed_here');
    },
  );

  it.runIf(available)(
    'saving refuses a block that could never run: a literal header name or value HTTP cannot carry, a URL that is not http(s) or holds credentials',
    async () => {
      const save = (b: Record<string, unknown>) =>
        team.clients.editor.post(`${ws}/workflows`, { name: 'never runs', startBlockId: 'call', blocks: [b] });
      for (const [extra, code, path] of [
        [{ headers: [{ key: 'X Bad', value: 'v' }] }, 'invalid_header', 'headers.0.key'],
        [{ headers: [{ key: 'X-A', value: 'a\r\nX-Injected: 1' }] }, 'invalid_header', 'headers.0.value'],
        [{ headers: [{ key: 'X-A', value: '€ 5' }] }, 'invalid_header', 'headers.0.value'],
        [{ url: 'not a url' }, 'invalid_url', 'url'],
        [{ url: 'ftp://files.example.com/x' }, 'invalid_url', 'url'],
        [{ url: 'https://user:pw@api.example.com/x' }, 'invalid_url', 'url'],
        [{ url: 'ftp://files.example.com/{{path}}' }, 'invalid_url', 'url'],
      ] as const) {
        const res = await save(block(extra));
        expect(res.status, `${JSON.stringify(extra)}: ${res.text}`).toBe(422);
        expect(res.body.code).toBe(code);
        expect(res.text).toContain(path);
      }
      // Templates are checked when they render, not guessed at: these save.
      for (const extra of [
        { headers: [{ key: '{{name}}', value: '{{value}}' }] },
        { url: '{{base}}/x' },
        { url: `${up.url}/{{path}}` },
        { headers: [{ key: 'X-Tab', value: 'a\tb' }] },
      ]) {
        const res = await save(block(extra));
        expect(res.status, `${JSON.stringify(extra)}: ${res.text}`).toBe(201);
      }
    },
  );

  it.runIf(available)(
    'concurrent sends each record their secret use, committed together, and the chain holds',
    async () => {
      up.handle((_req, res) => res.end('{}'));
      const count = async () =>
        (await t.ctx.db.selectFrom('audit_events').select('id').where('action', '=', 'secret.used').execute()).length;
      const before = await count();
      const results = await Promise.all(
        Array.from({ length: 12 }, () =>
          team.clients.editor.post(`${ws}/blocks/send`, { block: block({ capture: [] }) }),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(Array(12).fill(200));
      expect((await count()) - before).toBe(12);
      expect((await team.owner.get(`${ws}/audit/verify`)).body.ok).toBe(true);
    },
  );
});
