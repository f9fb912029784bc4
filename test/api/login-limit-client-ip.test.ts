/**
 * Whose IP the login limit counts (SPEC §6: HUSH_LOGIN_LIMIT_PER_MIN per
 * account and IP). Behind a reverse proxy (HUSH_TRUST_PROXY) the client's IP
 * is the one the proxy saw and appended to X-Forwarded-For — not an entry the
 * client wrote there itself, which the proxy passes on in front of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { PASSWORD, raw, startTestApp, type TestApp } from '../support/harness.js';

const PROXY = '10.0.0.2';
const CLIENT = '203.0.113.5';

describe.each(DATABASES)('the login limit counts the real client IP on $kind', ({ kind, available }) => {
  let t: TestApp;
  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind, { HUSH_LOGIN_LIMIT_PER_MIN: '3', HUSH_TRUST_PROXY: 'true' });
    await setupOwner(t);
  }, 60_000);
  afterAll(async () => t?.close());

  it.runIf(available)(
    'behind a proxy, X-Forwarded-For entries the client forged in front of its real address get it no fresh budget',
    async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        // What nginx's $proxy_add_x_forwarded_for (and most proxies) send on: the client's
        // header, then the address the proxy saw.
        const res = await raw(t, 'POST', '/api/v1/auth/login', {
          headers: { 'x-forwarded-for': `198.51.100.${i + 1}, ${CLIENT}` },
          payload: { email: 'owner@example.com', password: `guess ${i}` },
          remoteAddress: PROXY,
        });
        statuses.push(res.status);
      }
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      // Another client behind the same proxy keeps its own budget.
      const other = await raw(t, 'POST', '/api/v1/auth/login', {
        headers: { 'x-forwarded-for': '203.0.113.77' },
        payload: { email: 'owner@example.com', password: PASSWORD },
        remoteAddress: PROXY,
      });
      expect(other.status, other.text).toBe(200);
      // And the audit trail records the address the proxy saw, not the forged one.
      const failed = await t.ctx.db
        .selectFrom('audit_events')
        .select('ip')
        .where('action', '=', 'auth.login_failed')
        .execute();
      expect(new Set(failed.map((r) => r.ip))).toEqual(new Set([CLIENT]));
    },
  );

  it.runIf(available)(
    'an IPv6 client gets one budget for its /64, not one per address; IPv4 clients seen as mapped IPv6 keep theirs',
    async () => {
      const attempt = (remoteAddress: string, password: string) =>
        raw(t, 'POST', '/api/v1/auth/login', {
          payload: { email: 'owner@example.com', password },
          remoteAddress,
        });
      const statuses: number[] = [];
      for (let i = 1; i <= 5; i++) statuses.push((await attempt(`2001:db8:7:7::${i.toString(16)}`, `v6 ${i}`)).status);
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      expect((await attempt('2001:0db8:0007:0007:ffff:ffff:ffff:ffff', 'v6 last')).status).toBe(429);
      // The next /64 is another client.
      expect((await attempt('2001:db8:7:8::1', PASSWORD)).status).toBe(200);
      // A server listening on :: sees IPv4 clients as ::ffff:a.b.c.d: each is its own IPv4 address.
      const mapped: number[] = [];
      for (let i = 1; i <= 4; i++) mapped.push((await attempt(`::ffff:192.0.2.${i}`, `v4 ${i}`)).status);
      expect(mapped).toEqual([401, 401, 401, 401]);
    },
  );
});
