/**
 * `?since=` / `?until=` of the audit list and CSV export, on both databases.
 * Events are stored at millisecond precision (`…:05.666Z`); a bound written
 * another way (whole seconds, more digits) means the same instant
 * and must select the same events: `since` keeps events at or after it,
 * `until` keeps events before it. Compared as plain text, `since=…:05Z`
 * dropped an event at `…:05.666Z` and `until=…:05Z` kept it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';

describe.each(DATABASES)('audit time bounds on $kind', ({ kind, available }) => {
  let t: TestApp;
  let owner: TestClient;
  let ws: string;
  /** An event stored at a fractional second (milliseconds not 000). */
  let event: { id: string; at: string };

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    ({ owner, workspaceId: ws } = await setupOwner(t));
    for (let i = 0; !event; i++) {
      const r = await owner.post(`/api/v1/workspaces/${ws}/invitations`, {
        email: `p${i}@example.com`,
        role: 'viewer',
      });
      expect(r.status, r.text).toBe(201);
      const row = await t.ctx.db
        .selectFrom('audit_events')
        .select(['id', 'at'])
        .where('chain', '=', ws)
        .orderBy('seq', 'desc')
        .executeTakeFirstOrThrow();
      if (!row.at.endsWith('.000Z')) event = row;
    }
    expect(event.at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  }, 60_000);
  afterAll(async () => t?.close());

  async function listed(query: string): Promise<string[]> {
    const res = await owner.get(`/api/v1/workspaces/${ws}/audit?limit=200&${query}`);
    expect(res.status, res.text).toBe(200);
    return (res.body.items as { id: string }[]).map((e) => e.id);
  }

  async function exported(query: string): Promise<string> {
    const res = await owner.get(`/api/v1/workspaces/${ws}/audit.csv?${query}`);
    expect(res.status, res.text).toBe(200);
    return res.text;
  }

  it.runIf(available)('a whole-second bound: since keeps an event later in that second, until drops it', async () => {
    const second = `${event.at.slice(0, 19)}Z`;
    expect(await listed(`since=${second}`)).toContain(event.id);
    expect(await listed(`until=${second}`)).not.toContain(event.id);
    expect(await exported(`since=${second}`)).toContain(event.id);
    expect(await exported(`until=${second}`)).not.toContain(event.id);
  });

  it.runIf(available)('the exact instant: since keeps the event, until drops it', async () => {
    expect(await listed(`since=${event.at}`)).toContain(event.id);
    expect(await listed(`until=${event.at}`)).not.toContain(event.id);
  });

  it.runIf(available)(
    'a bound a fraction of a millisecond after the event: since drops it, until keeps it',
    async () => {
      const after = event.at.replace('Z', '1Z');
      expect(await listed(`since=${after}`)).not.toContain(event.id);
      expect(await listed(`until=${after}`)).toContain(event.id);
      const justBefore = new Date(Date.parse(event.at) - 1).toISOString().replace('Z', '9999Z');
      expect(await listed(`since=${justBefore}`)).toContain(event.id);
      expect(await listed(`until=${justBefore}`)).not.toContain(event.id);
    },
  );

  it.runIf(available)('since and until together keep exactly the events in between', async () => {
    const all = await t.ctx.db.selectFrom('audit_events').select(['id', 'at']).where('chain', '=', ws).execute();
    const since = `${event.at.slice(0, 19)}Z`;
    const until = new Date(Date.parse(since) + 1000).toISOString().replace('.000Z', 'Z');
    const expected = all.filter((e) => Date.parse(e.at) >= Date.parse(since) && Date.parse(e.at) < Date.parse(until));
    expect(new Set(await listed(`since=${since}&until=${until}`))).toEqual(new Set(expected.map((e) => e.id)));
  });

  it.runIf(available)('a bound with a UTC offset is the same instant', async () => {
    const second = Date.parse(`${event.at.slice(0, 19)}Z`);
    const local = new Date(second + 2 * 3_600_000).toISOString().slice(0, 19);
    const offset = encodeURIComponent(`${local}+02:00`);
    expect(await listed(`since=${offset}`)).toContain(event.id);
    expect(await listed(`until=${offset}`)).not.toContain(event.id);
  });

  it.runIf(available)('a bound that is not a date-time is 422 validation_failed', async () => {
    for (const bad of ['yesterday', '2026-01-31', '2026-02-30T00:00:00Z', '2026-01-31T10:00:00']) {
      const res = await owner.get(`/api/v1/workspaces/${ws}/audit?since=${encodeURIComponent(bad)}`);
      expect(res.status, `${bad}: ${res.text}`).toBe(422);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.errors[0].path).toBe('query.since');
    }
  });
});
