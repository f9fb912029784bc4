/**
 * The server answers what its OpenAPI document says: every route of SPEC §4
 * is called through inject — successes and the errors a client can cause —
 * and each answer is checked against the served document: its status is
 * declared for the operation, its content type is the declared one, its body
 * validates against the declared schema (ajv, JSON Schema 2020-12), an error
 * is problem+json with a `code`, a 204 is empty, and nothing is a 5xx.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { buildTeam, type Team } from '../support/fixtures.js';
import { PASSWORD, type Reply, raw, startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const sqlite = DATABASES.find((d) => d.kind === 'sqlite')?.available ?? false;

type Media = { schema?: object };
type Operation = { responses: Record<string, { content?: Record<string, Media> }> };
type Document = { paths: Record<string, Record<string, Operation>> };

/** What is wrong with one answer, measured against the document; [] when nothing. */
function mismatches(doc: Document, ajv: Ajv2020, method: string, url: string, res: Reply): string[] {
  const path = url.split('?')[0] as string;
  const entry = Object.entries(doc.paths).find(
    ([template, item]) =>
      item[method.toLowerCase()] &&
      new RegExp(`^${template.replaceAll('.', '\\.').replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path),
  );
  if (!entry) return ['no operation in the document'];
  const op = entry[1][method.toLowerCase()] as Operation;
  const problems: string[] = [];
  if (res.status >= 500) problems.push(`answered ${res.status}`);
  const declared = op.responses[String(res.status)];
  if (!declared) return [...problems, `status ${res.status} (${res.body?.code}) is not declared`];
  const type = String(res.headers['content-type'] ?? '').split(';')[0] as string;
  if (res.status === 204) {
    if (res.text !== '' || type !== '') problems.push('a 204 with a body or content type');
    return problems;
  }
  const media = declared.content?.[type];
  if (!media) return [...problems, `content type "${type}" is not declared for ${res.status}`];
  if (res.status >= 400)
    for (const field of ['type', 'title', 'status', 'detail', 'code'])
      if (!(field in (res.body ?? {}))) problems.push(`problem without ${field}`);
  if (type.endsWith('json') && media.schema) {
    const validate = ajv.compile(media.schema);
    if (!validate(res.body)) problems.push(`body: ${ajv.errorsText(validate.errors)}`);
  }
  return problems;
}

describe.runIf(sqlite)('answers against the OpenAPI document', () => {
  let t: TestApp;
  let team: Team;
  let up: Upstream;
  let doc: Document;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const found: string[] = [];

  beforeAll(async () => {
    t = await startTestApp('sqlite', { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    up = await startUpstream();
    up.handle((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"id":42}');
    });
    doc = JSON.parse((await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).body);
    team = await buildTeam(t);
  }, 60_000);
  beforeEach(() => {
    found.length = 0;
  });
  afterAll(async () => {
    await up?.close();
    await t?.close();
  });

  /** One call, checked; `status` (and `code`) is what the test expects the server to answer. */
  async function call(
    c: TestClient,
    method: string,
    url: string,
    status: number,
    options: { body?: unknown; headers?: Record<string, string>; code?: string } = {},
  ): Promise<Reply> {
    const full = `/api/v1${url}`;
    const body = options.body ?? (method === 'GET' || method === 'DELETE' ? undefined : {});
    const res = await c.request(method, full, body, options.headers);
    const label = `${method} ${url} → ${res.status} ${res.body?.code ?? ''}`;
    if (res.status !== status || (options.code !== undefined && res.body?.code !== options.code))
      found.push(`${label}: expected ${status} ${options.code ?? ''}`);
    for (const problem of mismatches(doc, ajv, method, full, res)) found.push(`${label}: ${problem}`);
    return res;
  }

  it('auth, tokens, workspaces: public operations refuse a bad bearer token (401) and a session without CSRF (403)', async () => {
    const { owner, anonymous } = team;
    const badBearer = { authorization: 'Bearer hush_not-a-token' };
    await call(anonymous, 'GET', '/setup', 200);
    await call(anonymous, 'GET', '/setup', 401, { headers: badBearer, code: 'unauthenticated' });
    await call(anonymous, 'POST', '/setup', 422, { body: { token: 'x' } });
    await call(anonymous, 'POST', '/setup', 401, { body: { token: 'x' }, headers: badBearer });
    await call(anonymous, 'POST', '/auth/login', 401, { body: { email: 'owner@example.com', password: 'wrong' } });
    await call(anonymous, 'POST', '/auth/login', 401, {
      body: { email: 'owner@example.com', password: PASSWORD },
      headers: badBearer,
    });
    await call(anonymous, 'POST', '/invitations/accept', 401, {
      body: { token: 'x', password: 'y' },
      headers: badBearer,
    });
    await call(anonymous, 'POST', '/auth/logout', 401, { headers: badBearer });
    const session = t.client();
    await call(session, 'POST', '/auth/login', 200, { body: { email: 'owner@example.com', password: PASSWORD } });
    // A signed-in browser posting without X-Hush-Csrf: refused before the route runs.
    const cookie = `hush_session=${session.cookies.get('hush_session')}`;
    for (const [url, payload] of [
      ['/auth/login', { email: 'owner@example.com', password: PASSWORD }],
      ['/invitations/accept', { token: 'x', password: 'y' }],
      ['/auth/logout', {}],
    ] as const) {
      const res = await raw(t, 'POST', `/api/v1${url}`, {
        headers: { cookie, 'content-type': 'application/json' },
        payload,
      });
      if (res.status !== 403 || res.body?.code !== 'csrf_failed')
        found.push(`POST ${url} without CSRF → ${res.status}`);
      for (const problem of mismatches(doc, ajv, 'POST', `/api/v1${url}`, res))
        found.push(`POST ${url} without CSRF → ${res.status}: ${problem}`);
    }
    await call(session, 'POST', '/auth/logout', 204);
    await call(anonymous, 'GET', '/me', 401);
    await call(owner, 'GET', '/me', 200);

    const token = await call(owner, 'POST', '/tokens', 201, {
      body: { name: 'ci', workspaceId: team.workspaceId, expiresInDays: 5 },
    });
    await call(team.clients.viewer, 'POST', '/tokens', 404, { body: { name: 'ci', workspaceId: 'ws_0000000000' } });
    await call(owner, 'POST', '/tokens', 422, { body: { name: '' } });
    const bearer = t.client();
    bearer.bearer = token.body.token;
    await call(bearer, 'POST', '/tokens', 403, { body: { name: 'x', workspaceId: team.workspaceId } });
    await call(bearer, 'GET', '/me', 200);
    await call(owner, 'GET', '/tokens', 200);
    await call(owner, 'GET', '/tokens?cursor=zz', 422);
    await call(owner, 'DELETE', `/tokens/${token.body.id}`, 204);
    await call(owner, 'DELETE', `/tokens/${token.body.id}`, 404);

    const ws = `/workspaces/${team.workspaceId}`;
    await call(owner, 'GET', '/workspaces', 200);
    const second = await call(owner, 'POST', '/workspaces', 201, { body: { name: 'Second' } });
    await call(owner, 'GET', ws, 200);
    await call(team.outsider, 'GET', ws, 404);
    await call(owner, 'GET', '/workspaces/nope', 422);
    await call(owner, 'PATCH', ws, 200, { body: { name: 'Acme 2' } });
    await call(team.clients.admin, 'PATCH', ws, 403, { body: { name: 'Acme 3' } });
    await call(owner, 'PATCH', ws, 422, { body: {} });
    await call(owner, 'DELETE', `/workspaces/${second.body.id}?purge=true`, 422);
    await call(owner, 'DELETE', `/workspaces/${second.body.id}`, 204);
    expect(found).toEqual([]);
  });

  it('members, invitations and roles', async () => {
    const { owner, clients, userIds } = team;
    const ws = `/workspaces/${team.workspaceId}`;
    await call(owner, 'GET', `${ws}/members`, 200);
    await call(clients.operator, 'GET', `${ws}/members`, 403);
    await call(owner, 'PATCH', `${ws}/members/${userIds.manager}`, 204, { body: { role: 'operator' } });
    await call(owner, 'PATCH', `${ws}/members/${team.ownerId}`, 409, { body: { role: 'admin' }, code: 'last_owner' });
    await call(owner, 'PATCH', `${ws}/members/${userIds.manager}`, 422, { body: { role: 'nosuch' } });
    await call(owner, 'PATCH', `${ws}/members/usr_0000000000`, 404, { body: { role: 'viewer' } });
    await call(clients.admin, 'PATCH', `${ws}/members/${userIds.manager}`, 403, { body: { role: 'owner' } });
    await call(owner, 'DELETE', `${ws}/members/${team.ownerId}`, 409);
    const invitation = await call(owner, 'POST', `${ws}/invitations`, 201, {
      body: { email: 'new@example.com', role: 'viewer' },
    });
    await call(owner, 'POST', `${ws}/invitations`, 409, { body: { email: 'viewer@example.com', role: 'viewer' } });
    await call(clients.editor, 'POST', `${ws}/invitations`, 403, { body: { email: 'x@example.com', role: 'viewer' } });
    await call(owner, 'GET', `${ws}/invitations`, 200);
    await call(team.anonymous, 'POST', '/invitations/accept', 404, { body: { token: 'nope', password: 'x' } });
    await call(team.anonymous, 'POST', '/invitations/accept', 422, { body: {} });
    await call(owner, 'DELETE', `${ws}/invitations/${invitation.body.id}`, 204);
    await call(owner, 'DELETE', `${ws}/invitations/${invitation.body.id}`, 404);

    await call(owner, 'GET', `${ws}/roles`, 200);
    await call(clients.operator, 'GET', `${ws}/roles`, 403);
    const role = await call(owner, 'POST', `${ws}/roles`, 201, {
      body: { name: 'Ops', permissions: ['variables.read'] },
    });
    await call(owner, 'POST', `${ws}/roles`, 409, { body: { name: 'ops', permissions: [] }, code: 'name_taken' });
    await call(owner, 'POST', `${ws}/roles`, 422, { body: { name: 'S', permissions: ['secrets.manage'] } });
    await call(clients.editor, 'POST', `${ws}/roles`, 403, { body: { name: 'X', permissions: [] } });
    await call(owner, 'PATCH', `${ws}/roles/${role.body.id}`, 200, { body: { description: 'd' } });
    await call(owner, 'PATCH', `${ws}/roles/rol_0000000000`, 404, { body: { description: 'd' } });
    await call(owner, 'PATCH', `${ws}/members/${userIds.manager}`, 204, { body: { role: role.body.id } });
    await call(owner, 'DELETE', `${ws}/roles/${role.body.id}`, 409, { code: 'role_in_use' });
    await call(owner, 'PATCH', `${ws}/members/${userIds.manager}`, 204, { body: { role: 'manager' } });
    await call(owner, 'DELETE', `${ws}/roles/${role.body.id}`, 204);
    expect(found).toEqual([]);
  });

  it('variables, secrets, workflows, Send request, runs and the audit trail', async () => {
    const { owner, clients } = team;
    const ws = `/workspaces/${team.workspaceId}`;
    await call(clients.viewer, 'GET', `${ws}/variables?q=run`, 200);
    const variable = await call(clients.editor, 'POST', `${ws}/variables`, 201, {
      body: { name: 'count', type: 'number', testValue: 3 },
    });
    await call(clients.editor, 'POST', `${ws}/variables`, 409, { body: { name: 'COUNT', type: 'number' } });
    await call(clients.editor, 'POST', `${ws}/variables`, 422, {
      body: { name: 'note', type: 'text', testValue: '{{secret:x}}' },
      code: 'secret_not_allowed_here',
    });
    await call(clients.viewer, 'GET', `${ws}/variables/$run_id`, 200);
    await call(clients.editor, 'PATCH', `${ws}/variables/$run_id`, 409, { body: { description: 'x' } });
    await call(clients.editor, 'PATCH', `${ws}/variables/${variable.body.id}`, 200, { body: { description: 'x' } });

    const secret = await call(owner, 'POST', `${ws}/secrets`, 201, {
      body: { name: 'api_key', visibility: 'masked', value: 'sk-abcdefgh123', allowedHosts: ['127.0.0.1'] },
    });
    const restricted = await call(owner, 'POST', `${ws}/secrets`, 201, {
      body: { name: 'hidden', visibility: 'restricted', value: 'r-abcdefgh123' },
    });
    const one = `${ws}/secrets/${secret.body.id}`;
    await call(owner, 'POST', `${ws}/secrets`, 409, {
      body: { name: 'COUNT', visibility: 'masked', value: 'x' },
      code: 'name_taken',
    });
    await call(clients.editor, 'POST', `${ws}/secrets`, 403, { body: { name: 'e', visibility: 'masked', value: 'x' } });
    await call(clients.editor, 'GET', `${ws}/secrets?q=api`, 200);
    await call(clients.manager, 'GET', `${ws}/secrets`, 403);
    const read = await call(clients.editor, 'GET', one, 200);
    await call(owner, 'PATCH', one, 412, {
      body: { description: 'd' },
      headers: { 'if-match': '7' },
      code: 'version_conflict',
    });
    await call(owner, 'PATCH', one, 200, {
      body: { value: 'sk-new-value-1' },
      headers: { 'if-match': `${read.headers.etag}` },
    });
    await call(owner, 'PATCH', one, 422, { body: { name: 'other' }, code: 'immutable_field' });
    await call(clients.editor, 'POST', `${one}/reveal`, 200);
    await call(owner, 'POST', `${ws}/secrets/${restricted.body.id}/reveal`, 403, { code: 'secret_restricted' });
    await call(clients.editor, 'GET', `${one}/versions`, 200);

    const block = {
      id: 'call',
      type: 'api',
      method: 'GET',
      url: `${up.url}/x`,
      headers: [{ key: 'Authorization', value: 'Bearer {{secret:api_key}}' }],
      capture: [{ variable: 'rid', path: '$.id' }],
    };
    const workflow = { name: 'Flow', startBlockId: 'call', blocks: [block] };
    const created = await call(clients.editor, 'POST', `${ws}/workflows`, 201, { body: workflow });
    const flow = `${ws}/workflows/${created.body.id}`;
    await call(clients.editor, 'POST', `${ws}/workflows`, 422, {
      body: { ...workflow, blocks: [{ ...block, url: `${up.url}/{{secret:api_key}}` }] },
      code: 'secret_not_allowed_here',
    });
    await call(clients.viewer, 'GET', `${ws}/workflows`, 200);
    await call(clients.viewer, 'GET', flow, 200);
    await call(clients.editor, 'PUT', flow, 412, { body: workflow, headers: { 'if-match': '"99"' } });
    await call(clients.editor, 'PUT', flow, 200, {
      body: workflow,
      headers: { 'if-match': `${created.headers.etag}` },
    });
    await call(clients.editor, 'GET', `${one}/usages`, 200);

    await call(clients.editor, 'POST', `${ws}/blocks/send`, 200, { body: { block } });
    await call(clients.operator, 'POST', `${ws}/blocks/send`, 403, { body: { block } });
    await call(clients.editor, 'POST', `${ws}/blocks/send`, 200, {
      body: { block: { ...block, url: 'http://127.0.0.1:1/x', headers: [] } },
    });
    await call(clients.editor, 'POST', `${ws}/blocks/send`, 403, {
      body: { block: { ...block, url: 'http://127.0.0.2:1/x' } },
      code: 'host_not_allowed',
    });
    await call(clients.editor, 'POST', `${ws}/blocks/send`, 403, {
      body: { block: { ...block, url: 'http://169.254.169.254/x', headers: [] } },
      code: 'outbound_blocked',
    });
    await call(clients.editor, 'POST', `${ws}/blocks/send`, 422, {
      body: { block: { ...block, headers: [{ key: 'A', value: '{{secret:api_key}}{{secret:hidden}}' }] } },
      code: 'one_secret_per_field',
    });

    const run = await call(clients.operator, 'POST', `${flow}/runs`, 201);
    await call(clients.viewer, 'POST', `${flow}/runs`, 403);
    await call(clients.operator, 'POST', `${flow}/runs`, 422, { body: { variables: { count: 'abc' } } });
    await call(clients.viewer, 'GET', `${flow}/runs`, 200);
    await call(clients.viewer, 'GET', `${ws}/runs/${run.body.id}`, 200);
    await call(clients.viewer, 'GET', `${ws}/runs/run_0000000000`, 404);

    await call(owner, 'DELETE', one, 204);
    await call(owner, 'GET', `${ws}/secrets?deleted=true`, 200);
    await call(owner, 'PATCH', one, 409, { body: { description: 'x' }, code: 'secret_deleted' });
    await call(clients.editor, 'POST', `${ws}/blocks/send`, 422, { body: { block }, code: 'secret_unavailable' });
    await call(owner, 'POST', `${one}/restore`, 200);
    await call(owner, 'POST', `${one}/restore`, 409);
    await call(owner, 'DELETE', `${one}?purge=true`, 204);
    await call(owner, 'GET', one, 404);
    await call(clients.editor, 'DELETE', flow, 412, { headers: { 'if-match': '"99"' } });
    await call(clients.editor, 'DELETE', flow, 204);
    await call(clients.editor, 'DELETE', `${ws}/variables/${variable.body.id}`, 204);

    await call(owner, 'GET', `${ws}/audit?limit=5`, 200);
    await call(clients.editor, 'GET', `${ws}/audit`, 403);
    await call(owner, 'GET', `${ws}/audit?since=yesterday`, 422);
    await call(owner, 'GET', `${ws}/audit.csv`, 200);
    await call(owner, 'GET', `${ws}/audit/verify`, 200);
    expect(found).toEqual([]);
  });
});
