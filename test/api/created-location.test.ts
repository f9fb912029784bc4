/**
 * A 201 says where the new resource lives (RFC 9110 §15.3.2): `Location` on the
 * creation of a workspace, secret, variable, workflow and run, and a GET of it
 * answers that resource.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';

describe('Location on 201', () => {
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

  it('names the created resource, and a GET of it answers it', async () => {
    const workflow = await owner.post(`${ws}/workflows`, {
      name: 'Greet',
      startBlockId: 's',
      blocks: [{ id: 's', type: 'set', assignments: [{ variable: 'greeting', value: 'hello' }] }],
    });
    const created = [
      await owner.post('/api/v1/workspaces', { name: 'Second' }),
      await owner.post(`${ws}/secrets`, { name: 'api_key', visibility: 'masked', value: 'sk-12345678' }),
      await owner.post(`${ws}/variables`, { name: 'count', type: 'number' }),
      workflow,
      await owner.post(`${ws}/workflows/${workflow.body.id}/runs`, { variables: {} }),
    ];
    for (const res of created) {
      expect(res.status, res.text).toBe(201);
      const location = res.headers.location;
      expect(typeof location, res.text).toBe('string');
      const fetched = await owner.get(String(location));
      expect(fetched.status, `GET ${location}`).toBe(200);
      expect(fetched.body.id, `GET ${location}`).toBe(res.body.id);
    }
    // The document says so on each of them.
    const doc = (await owner.get('/api/v1/openapi.json')).body;
    for (const route of [
      '/api/v1/workspaces',
      '/api/v1/workspaces/{ws}/secrets',
      '/api/v1/workspaces/{ws}/variables',
      '/api/v1/workspaces/{ws}/workflows',
      '/api/v1/workspaces/{ws}/workflows/{id}/runs',
    ]) {
      expect(doc.paths[route].post.responses['201'].headers?.Location, route).toBeDefined();
    }
  });

  it("a secret's create and restore answer its ETag, as GET and PATCH do: usable as If-Match at once", async () => {
    const created = await owner.post(`${ws}/secrets`, {
      name: 'tagged',
      visibility: 'masked',
      value: 'tagged-value-1',
    });
    expect(created.status, created.text).toBe(201);
    const url = String(created.headers.location);
    expect(created.headers.etag).toBe((await owner.get(url)).headers.etag);
    expect((await owner.delete(url)).status).toBe(204);
    const restored = await owner.post(`${url}/restore`);
    expect(restored.status, restored.text).toBe(200);
    const etag = String(restored.headers.etag);
    expect(etag).toBe((await owner.get(url)).headers.etag);
    const patched = await owner.patch(url, { description: 'back' }, { 'if-match': etag });
    expect(patched.status, patched.text).toBe(200);
    const doc = (await owner.get('/api/v1/openapi.json')).body;
    expect(doc.paths['/api/v1/workspaces/{ws}/secrets'].post.responses['201'].headers.ETag).toBeDefined();
    expect(doc.paths['/api/v1/workspaces/{ws}/secrets/{id}/restore'].post.responses['200'].headers.ETag).toBeDefined();
  });
});
