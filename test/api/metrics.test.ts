/**
 * GET /metrics (SPEC §4, outside /api/v1): Prometheus text with the process
 * and the HTTP traffic by route template — and nothing a tenant wrote: no
 * workspace or secret id, no name, no value, no raw URL. With
 * HUSH_METRICS_TOKEN set it answers only to that Bearer token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { raw, startTestApp, type TestApp } from '../support/harness.js';

const VALUE = 'metrics-canary-9f8KQ2bX/tX+e=Lq0pA7';
const TOKEN = 'scrape-token-0123456789abcdef';

describe.each(DATABASES)('GET /metrics on $kind', ({ kind, available }) => {
  let open: TestApp;
  let guarded: TestApp;

  beforeAll(async () => {
    if (!available) return;
    open = await startTestApp(kind, { HUSH_REVEAL_LIMIT_PER_MIN: '1000' });
    guarded = await startTestApp(kind, { HUSH_METRICS_TOKEN: TOKEN });
  }, 120_000);
  afterAll(async () => {
    await open?.close();
    await guarded?.close();
  });

  it.runIf(available)('counts requests by route template and status, and holds nothing a tenant wrote', async () => {
    const { owner, workspaceId } = await setupOwner(open);
    const ws = `/api/v1/workspaces/${workspaceId}`;
    const created = await owner.post(`${ws}/secrets`, { name: 'metrics_probe', visibility: 'masked', value: VALUE });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    expect((await owner.post(`${ws}/secrets/${id}/reveal`)).body).toEqual({ value: VALUE });
    for (let i = 0; i < 3; i++) expect((await owner.get(`${ws}/secrets?limit=10`)).status).toBe(200);
    expect((await owner.get(`${ws}/secrets/sec_${'x'.repeat(26)}`)).status).toBe(404);
    expect((await raw(open, 'GET', `/api/v1/no-such-route/${VALUE}`)).status).toBe(404);

    const res = await raw(open, 'GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.text;
    expect(text).toMatch(
      /hush_http_requests_total\{method="GET",route="\/api\/v1\/workspaces\/:ws\/secrets",status_code="200"\} [3-9]/,
    );
    expect(text).toContain('route="/api/v1/workspaces/:ws/secrets/:id/reveal",status_code="200"');
    expect(text).toContain('route="/api/v1/workspaces/:ws/secrets/:id",status_code="404"');
    expect(text).toMatch(/hush_http_request_duration_seconds_bucket\{le="0.1",method="GET",route="[^"]+"\}/);
    expect(text).toContain('hush_process_cpu_user_seconds_total');
    expect(text).toContain('hush_nodejs_eventloop_lag_seconds');
    for (const tenantData of [workspaceId, id, 'metrics_probe', VALUE, 'no-such-route', 'owner@example.com']) {
      expect(text.includes(tenantData), `metrics hold ${tenantData.slice(0, 12)}…`).toBe(false);
    }
    for (const form of [encodeURIComponent(VALUE), Buffer.from(VALUE).toString('base64')]) {
      expect(text).not.toContain(form);
    }
  });

  it.runIf(available)('with HUSH_METRICS_TOKEN, only that Bearer token gets the metrics', async () => {
    for (const authorization of [
      undefined,
      'Bearer wrong-token-0123456789abcdef',
      `Basic ${TOKEN}`,
      `Bearer ${TOKEN}x`,
    ]) {
      const refused = await raw(guarded, 'GET', '/metrics', { headers: authorization ? { authorization } : {} });
      expect(refused.status, String(authorization)).toBe(401);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(refused.text).not.toContain('hush_http_requests_total');
    }
    const ok = await raw(guarded, 'GET', '/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('hush_http_requests_total');
  });
});
