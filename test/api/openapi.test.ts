/**
 * The OpenAPI document (GET /api/v1/openapi.json) says what the server does:
 * the SPEC §4 routes are in it, errors are application/problem+json as the
 * server sends them, a malformed path id's 422 is declared, and so are a
 * secret's and a workflow's ETag, and that a workflow list holds summaries.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

const sqlite = DATABASES.find((d) => d.kind === 'sqlite')?.available ?? false;

type Response = { content?: Record<string, unknown>; headers?: Record<string, unknown> };
type Operation = { parameters?: { in: string }[]; responses: Record<string, Response> };

describe.runIf(sqlite)('the OpenAPI document', () => {
  let t: TestApp;
  let doc: { openapi: string; paths: Record<string, Record<string, Operation>> };

  beforeAll(async () => {
    t = await startTestApp('sqlite');
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    expect(res.statusCode).toBe(200);
    doc = JSON.parse(res.body);
  });
  afterAll(async () => t?.close());

  const operations = () =>
    Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => ({ path, method, op })),
    );

  it('lists the routes of SPEC §4', () => {
    expect(doc.openapi).toBe('3.1.0');
    for (const [path, method] of [
      ['/api/v1/setup', 'post'],
      ['/api/v1/auth/login', 'post'],
      ['/api/v1/workspaces/{ws}/secrets', 'get'],
      ['/api/v1/workspaces/{ws}/secrets', 'post'],
      ['/api/v1/workspaces/{ws}/secrets/{id}', 'patch'],
      ['/api/v1/workspaces/{ws}/secrets/{id}/reveal', 'post'],
      ['/api/v1/workspaces/{ws}/secrets/{id}/usages', 'get'],
      ['/api/v1/workspaces/{ws}/variables', 'get'],
      ['/api/v1/workspaces/{ws}/blocks/send', 'post'],
      ['/api/v1/workspaces/{ws}/workflows/{id}/runs', 'post'],
      ['/api/v1/workspaces/{ws}/runs/{runId}', 'get'],
      ['/api/v1/workspaces/{ws}/audit', 'get'],
    ]) {
      expect(doc.paths[path as string]?.[method as string], `${method} ${path}`).toBeDefined();
    }
  });

  it('declares every error as application/problem+json, as the server sends it', async () => {
    let errors = 0;
    for (const { path, method, op } of operations())
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) < 400 || !response.content) continue;
        errors += 1;
        expect(Object.keys(response.content), `${method} ${path} ${status}`).toEqual(['application/problem+json']);
      }
    expect(errors).toBeGreaterThan(100);
    const { owner, workspaceId } = await setupOwner(t);
    const malformed = await owner.get(`/api/v1/workspaces/${workspaceId}/secrets/nope`);
    expect(malformed.status).toBe(422);
    expect(malformed.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('declares 422 wherever a path parameter can be malformed, and the ETag of a secret', () => {
    for (const { path, method, op } of operations())
      if (op.parameters?.some((p) => p.in === 'path')) expect(op.responses['422'], `${method} ${path}`).toBeDefined();
    const secret = doc.paths['/api/v1/workspaces/{ws}/secrets/{id}'];
    for (const method of ['get', 'patch']) expect(secret?.[method]?.responses['200']?.headers?.ETag).toBeDefined();
  });

  it('declares what the server answers besides the routes: body problems, rate limits, public operations, CSV', async () => {
    for (const { path, method, op } of operations()) {
      const body = (op as { requestBody?: unknown }).requestBody !== undefined;
      for (const status of ['400', '413', '415'])
        expect(op.responses[status] !== undefined, `${method} ${path} ${status}`).toBe(body);
    }
    const op = (path: string, method: string) => doc.paths[path]?.[method] as Operation & { security?: unknown[] };
    for (const [path, method] of [
      ['/api/v1/auth/login', 'post'],
      ['/api/v1/invitations/accept', 'post'],
      ['/api/v1/workspaces/{ws}/secrets/{id}/reveal', 'post'],
    ] as const)
      expect(Object.keys(op(path, method).responses), `${method} ${path}`).toEqual(
        expect.arrayContaining(['429', '503']),
      );
    for (const [path, method] of [
      ['/api/v1/setup', 'get'],
      ['/api/v1/setup', 'post'],
      ['/api/v1/auth/login', 'post'],
      ['/api/v1/invitations/accept', 'post'],
    ] as const)
      expect(op(path, method).security, `${method} ${path}`).toEqual([]);
    expect(op('/api/v1/workspaces/{ws}/secrets', 'get').security).toBeUndefined();
    const csv = op('/api/v1/workspaces/{ws}/audit.csv', 'get');
    expect(Object.keys(csv.responses['200']?.content ?? {})).toEqual(['text/csv']);
    expect(Object.keys(csv.responses)).toEqual(expect.arrayContaining(['401', '403', '404']));
    const secretBody = JSON.stringify(op('/api/v1/workspaces/{ws}/secrets', 'post'));
    expect(secretBody).toMatch(/"allowedHosts":\{[^}]*"maxItems":20/);

    // And the server answers so.
    const bad = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '{bad',
    });
    expect([bad.statusCode, JSON.parse(bad.body).code]).toEqual([400, 'malformed_json']);
    const form = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'a=b',
    });
    expect(form.statusCode).toBe(415);
  });

  it("declares a workflow's ETag, its 412, and a list of summaries without blocks", () => {
    const workflows = doc.paths['/api/v1/workspaces/{ws}/workflows'];
    const workflow = doc.paths['/api/v1/workspaces/{ws}/workflows/{id}'];
    expect(workflows?.post?.responses['201']?.headers?.ETag).toBeDefined();
    for (const method of ['get', 'put']) expect(workflow?.[method]?.responses['200']?.headers?.ETag).toBeDefined();
    for (const method of ['put', 'delete']) expect(workflow?.[method]?.responses['412']).toBeDefined();
    const list = JSON.stringify(workflows?.get?.responses['200']?.content);
    expect(list).toContain('blockCount');
    expect(list).not.toContain('"blocks"');
    expect(JSON.stringify(workflow?.get?.responses['200']?.content)).toContain('"blocks"');
  });
});
