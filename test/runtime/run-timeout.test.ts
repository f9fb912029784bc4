/**
 * A run's time in all is bounded (HUSH_RUN_TIMEOUT_SECONDS): a workflow that
 * loops on an upstream that never answers — each step within its block's
 * timeout — stops with `run_timeout` and is recorded, instead of holding its
 * decrypted secrets for 100 steps × the block timeout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

describe.each(DATABASES)('run time limit on $kind', ({ kind, available }) => {
  let t: TestApp;
  let up: Upstream;
  let owner: TestClient;
  let ws: string;

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    t = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8', HUSH_RUN_TIMEOUT_SECONDS: '2' });
    const o = await setupOwner(t);
    owner = o.owner;
    ws = `/api/v1/workspaces/${o.workspaceId}`;
    const s = await owner.post(`${ws}/secrets`, { name: 'tok', visibility: 'masked', value: 'run-timeout-value-123' });
    expect(s.status, s.text).toBe(201);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await up?.close();
  });

  it.runIf(available)(
    'a run looping on an upstream that never answers stops with run_timeout, recorded',
    async () => {
      up.handle(() => {}); // never answers
      const saved = await owner.post(`${ws}/workflows`, {
        name: 'Loop',
        startBlockId: 'call',
        blocks: [
          {
            id: 'call',
            type: 'api',
            method: 'GET',
            url: `${up.url}/hang`,
            headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok}}' }],
            timeoutMs: 700,
            onError: 'call',
          },
        ],
      });
      expect(saved.status, saved.text).toBe(201);
      const started = performance.now();
      const r = await owner.post(`${ws}/workflows/${saved.body.id}/runs`, { variables: {} });
      const took = performance.now() - started;
      expect(r.status, r.text).toBe(201);
      expect(r.body.status).toBe('failed');
      const steps = r.body.steps as { status: string; error?: { code: string } }[];
      expect(steps.at(-1)).toMatchObject({ status: 'failed', error: { code: 'run_timeout' } });
      expect(steps.slice(0, -1).every((s) => s.error?.code === 'upstream_timeout')).toBe(true);
      // Bounded by the run's limit (plus one call's timer slack), far below 100 × 700 ms.
      expect(steps.length).toBeLessThan(10);
      expect(took).toBeLessThan(10_000);
      const listed = await owner.get(`${ws}/runs/${r.body.id}`);
      expect(listed.status, listed.text).toBe(200);
      expect(listed.body.steps.at(-1).error.code).toBe('run_timeout');
    },
    30_000,
  );

  it.runIf(available)('a run limit outside 1–3600 s is refused at start', async () => {
    await expect(startTestApp(kind, { HUSH_RUN_TIMEOUT_SECONDS: '0' })).rejects.toThrow(/HUSH_RUN_TIMEOUT_SECONDS/);
  });
});
