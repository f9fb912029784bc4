/**
 * Rate limits counted in Redis, and Redis stops answering: a limited request
 * (reveal, login) is refused with 503 `rate_limit_unavailable` — not let
 * through uncounted, not a 500 — and nothing is revealed or attempted; when
 * Redis is back, so is the service; a Redis that holds the connection but
 * stops answering gives the same 503. Redis is reached through a TCP relay on
 * 127.0.0.1 that the test cuts, restores and stalls.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupOwner } from '../support/fixtures.js';
import { PASSWORD, startTestApp, type TestApp } from '../support/harness.js';
import { REDIS_URL, redisUp } from '../support/redis.js';
import { TcpRelay } from '../support/tcp-relay.js';

describe.runIf(redisUp)('rate limits when Redis stops answering', () => {
  const target = new URL(REDIS_URL);
  const relay = new TcpRelay(target.hostname, Number(target.port || 6379));
  let t: TestApp;

  beforeAll(async () => {
    await relay.up();
    t = await startTestApp('sqlite', { HUSH_REDIS_URL: `redis://127.0.0.1:${relay.port}` });
  });
  afterAll(async () => {
    await t?.close();
    await relay.down();
  });

  it('refuses a reveal and a login with 503 rate_limit_unavailable, reveals nothing, and recovers', async () => {
    const { owner, workspaceId } = await setupOwner(t);
    const created = await owner.post(`/api/v1/workspaces/${workspaceId}/secrets`, {
      name: 'k',
      visibility: 'masked',
      value: 'relay-cut-value-0123',
    });
    expect(created.status, created.text).toBe(201);
    const reveal = `/api/v1/workspaces/${workspaceId}/secrets/${created.body.id}/reveal`;
    expect((await owner.post(reveal)).status).toBe(200);
    const revealsBefore = await t.ctx.db
      .selectFrom('audit_events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('action', '=', 'secret.revealed')
      .executeTakeFirstOrThrow();

    await relay.down();
    const refused = await owner.post(reveal);
    expect(refused.status, refused.text).toBe(503);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.body.code).toBe('rate_limit_unavailable');
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.text).not.toContain('relay-cut-value-0123');
    const login = await t.client().post('/api/v1/auth/login', { email: 'owner@example.com', password: PASSWORD });
    expect(login.status, login.text).toBe(503);
    expect(login.body.code).toBe('rate_limit_unavailable');
    expect(login.headers['set-cookie']).toBeUndefined();
    // Nothing was revealed while the count could not be kept.
    const revealsAfter = await t.ctx.db
      .selectFrom('audit_events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('action', '=', 'secret.revealed')
      .executeTakeFirstOrThrow();
    expect(Number(revealsAfter.n)).toBe(Number(revealsBefore.n));
    // Routes without a limit go on answering.
    expect((await owner.get(`/api/v1/workspaces/${workspaceId}/secrets`)).status).toBe(200);

    await relay.up();
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await owner.post(reveal)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);

    // Connected, but no answer: the count times out into the same 503, not a hanging request.
    relay.stall();
    const stalled = await owner.post(reveal);
    expect(stalled.status, stalled.text).toBe(503);
    expect(stalled.body.code).toBe('rate_limit_unavailable');
    relay.resume();
    status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await owner.post(reveal)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  });
});
