/**
 * `hush audit verify` and `hush audit export` as processes. Verify exits 0
 * on an untouched trail and 1 when one row was changed, deleted, inserted or
 * reordered directly in the database, naming the first broken event. Export
 * streams every event (CSV or JSON lines), filtered by --since / --workspace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/app/context.js';
import type { AuditEventsTable } from '../../src/db/schema.js';
import { hashEvent } from '../../src/modules/audit/audit-chain.js';
import {
  createSite,
  describeRun,
  type HushSite,
  killStartedProcesses,
  runHush,
  setUp,
  startServer,
} from '../support/cli.js';
import { DATABASES } from '../support/databases.js';

const VALUES = ['audit-export-value-1-Qx9', 'audit-export-value-2-Rk4', 'audit-export-value-3-Zp7'];

describe.each(DATABASES)('hush audit on $kind', ({ kind, available }) => {
  let site: HushSite;
  let ctx: AppContext & { close(): Promise<void> };
  let ws: string;
  /** An instant between the first and the second batch of events. */
  let since: string;

  beforeAll(async () => {
    if (!available) return;
    site = await createSite(kind);
    const server = await startServer(site.env);
    try {
      const owner = await setUp(server);
      ws = owner.workspaceId;
      const base = `/workspaces/${ws}`;
      const ids: string[] = [];
      for (const [i, value] of VALUES.entries()) {
        const r = await owner.api.post(`${base}/secrets`, { name: `audit_secret_${i}`, visibility: 'masked', value });
        expect(r.status, r.text).toBe(201);
        ids.push(r.body.id);
      }
      for (let i = 0; i < 3; i++) {
        const r = await owner.session.post(`${base}/invitations`, { email: `p${i}@example.com`, role: 'viewer' });
        expect(r.status, r.text).toBe(201);
      }
      await new Promise((r) => setTimeout(r, 50));
      since = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 10));
      for (const id of ids) expect((await owner.api.post(`${base}/secrets/${id}/reveal`)).status).toBe(200);
      expect((await owner.api.patch(`${base}/secrets/${ids[0]}`, { value: `${VALUES[0]}-v2` })).status).toBe(200);
    } finally {
      await server.stop();
    }
    ctx = await site.open();
  }, 60_000);

  afterAll(async () => {
    killStartedProcesses();
    await ctx?.close();
    await site?.cleanup();
  });

  async function chainRows(): Promise<AuditEventsTable[]> {
    return ctx.db.selectFrom('audit_events').selectAll().where('chain', '=', ws).orderBy('seq').execute();
  }

  /**
   * Runs `tamper`, expects `hush audit verify` to exit 1 naming `broken(ids)`
   * in the workspace chain (the system chain still ok), then puts the rows back.
   */
  async function expectCaught(tamper: (rows: AuditEventsTable[]) => Promise<void>, broken: (ids: string[]) => string) {
    const before = await chainRows();
    const head = await ctx.db.selectFrom('audit_heads').selectAll().where('chain', '=', ws).executeTakeFirstOrThrow();
    await tamper(before);
    try {
      const r = await runHush(['audit', 'verify'], site.env);
      expect(r.code, describeRun(r)).toBe(1);
      const id = broken(before.map((e) => e.id));
      expect(r.stdout).toMatch(
        new RegExp(`^BROKEN  ${ws}: first bad event ${id} \\(.+\\) after \\d+ good events$`, 'm'),
      );
      expect(r.stdout).toMatch(/^ok +system: \d+ events$/m);
    } finally {
      await ctx.db.deleteFrom('audit_events').where('chain', '=', ws).execute();
      for (const row of before) await ctx.db.insertInto('audit_events').values(row).execute();
      await ctx.db.updateTable('audit_heads').set({ seq: head.seq, hash: head.hash }).where('chain', '=', ws).execute();
    }
  }

  it.runIf(available)('an untouched trail verifies: exit 0, one ok line per chain', async () => {
    const events = await chainRows();
    expect(events.length).toBeGreaterThan(8);
    const r = await runHush(['audit', 'verify'], site.env);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual(
      [`ok      ${ws}: ${events.length} events`, expect.stringMatching(/^ok {6}system: \d+ events$/)].sort(),
    );
    const one = await runHush(['audit', 'verify', '--workspace', ws], site.env);
    expect(one.code, describeRun(one)).toBe(0);
    expect(one.stdout.trim()).toBe(`ok      ${ws}: ${events.length} events`);
  });

  it.runIf(available)('a changed row: exit 1, names that event', async () => {
    await expectCaught(
      async (rows) => {
        await ctx.db
          .updateTable('audit_events')
          .set({ data: '{"role":"owner"}' })
          .where('id', '=', rows[3]?.id ?? '')
          .execute();
      },
      (ids) => ids[3] ?? '',
    );
  });

  it.runIf(available)('a deleted row: exit 1, names the event after it', async () => {
    await expectCaught(
      async (rows) => {
        await ctx.db
          .deleteFrom('audit_events')
          .where('id', '=', rows[2]?.id ?? '')
          .execute();
      },
      (ids) => ids[3] ?? '',
    );
  });

  it.runIf(available)(
    'an inserted row with a valid hash of its own: exit 1, names the event it displaced',
    async () => {
      await expectCaught(
        async (rows) => {
          const at = rows[1];
          if (!at) throw new Error('fixture too small');
          for (const r of [...rows].reverse()) {
            if (Number(r.seq) >= 3)
              await ctx.db
                .updateTable('audit_events')
                .set({ seq: Number(r.seq) + 1 })
                .where('id', '=', r.id)
                .execute();
          }
          const forged = {
            ...at,
            id: 'evt_forged0000000000000000',
            seq: 3,
            prev_hash: at.hash,
            action: 'member.removed',
          };
          await ctx.db
            .insertInto('audit_events')
            .values({ ...forged, hash: hashEvent({ ...forged, seq: 3 }) })
            .execute();
        },
        (ids) => ids[2] ?? '',
      );
    },
  );

  it.runIf(available)('two rows swapped: exit 1, names the first out of place', async () => {
    await expectCaught(
      async (rows) => {
        const a = rows[4];
        const b = rows[5];
        if (!a || !b) throw new Error('fixture too small');
        await ctx.db.updateTable('audit_events').set({ seq: -1 }).where('id', '=', a.id).execute();
        await ctx.db.updateTable('audit_events').set({ seq: a.seq }).where('id', '=', b.id).execute();
        await ctx.db.updateTable('audit_events').set({ seq: b.seq }).where('id', '=', a.id).execute();
      },
      (ids) => ids[5] ?? '',
    );
  });

  it.runIf(available)('the last row deleted: exit 1, caught against the chain head', async () => {
    await expectCaught(
      async (rows) => {
        await ctx.db
          .deleteFrom('audit_events')
          .where('id', '=', rows.at(-1)?.id ?? '')
          .execute();
      },
      (ids) => ids.at(-2) ?? '',
    );
  });

  it.runIf(available)(
    'a removed chain head, also with the trail cut short or wiped: exit 1; an unknown --workspace: exit 1',
    async () => {
      const rows = await chainRows();
      const head = await ctx.db.selectFrom('audit_heads').selectAll().where('chain', '=', ws).executeTakeFirstOrThrow();
      await ctx.db.deleteFrom('audit_heads').where('chain', '=', ws).execute();
      try {
        for (const cut of ['head only', 'and the last event', 'and every event']) {
          if (cut === 'and the last event')
            await ctx.db
              .deleteFrom('audit_events')
              .where('id', '=', rows.at(-1)?.id ?? '')
              .execute();
          if (cut === 'and every event') await ctx.db.deleteFrom('audit_events').where('chain', '=', ws).execute();
          for (const args of [
            ['audit', 'verify'],
            ['audit', 'verify', '--workspace', ws],
          ]) {
            const r = await runHush(args, site.env);
            expect(r.code, `${cut}: ${describeRun(r)}`).toBe(1);
            expect(r.stdout).toMatch(new RegExp(`^BROKEN  ${ws}: `, 'm'));
          }
        }
      } finally {
        await ctx.db.deleteFrom('audit_events').where('chain', '=', ws).execute();
        for (const row of rows) await ctx.db.insertInto('audit_events').values(row).execute();
        await ctx.db.insertInto('audit_heads').values(head).execute();
      }
      const unknown = await runHush(['audit', 'verify', '--workspace', 'ws_nope'], site.env);
      expect(unknown.code, describeRun(unknown)).toBe(1);
      expect(unknown.stderr.trim()).toBe('hush: no workspace ws_nope');
      expect(unknown.stdout).toBe('');
    },
  );

  it.runIf(available)('after the rows are put back the trail verifies again', async () => {
    const r = await runHush(['audit', 'verify'], site.env);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).not.toContain('BROKEN');
  });

  it.runIf(available)('export --format jsonl streams every event, ordered by chain and seq', async () => {
    const all = await ctx.db.selectFrom('audit_events').select(['id', 'chain', 'seq']).execute();
    const r = await runHush(['audit', 'export', '--format', 'jsonl'], site.env);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines.length).toBe(all.length);
    const events = lines.map((l) => JSON.parse(l) as { chain: string; id: string; seq: number; action: string });
    expect(new Set(events.map((e) => e.id))).toEqual(new Set(all.map((e) => e.id)));
    const sorted = [...events].sort((a, b) => (a.chain === b.chain ? a.seq - b.seq : a.chain < b.chain ? -1 : 1));
    expect(events.map((e) => e.id)).toEqual(sorted.map((e) => e.id));
    expect(events.find((e) => e.action === 'secret.revealed')).toMatchObject({ chain: ws });
    for (const value of VALUES) expect(r.stdout).not.toContain(value);
  });

  it.runIf(available)('export --format csv: a header and one row per event', async () => {
    const all = await ctx.db.selectFrom('audit_events').select(['chain', 'seq', 'id', 'action', 'hash']).execute();
    const r = await runHush(['audit', 'export', '--format', 'csv'], site.env);
    expect(r.code, describeRun(r)).toBe(0);
    const rows = r.stdout.split('\r\n').filter(Boolean);
    expect(rows[0]).toBe(
      'chain,seq,id,at,action,actorType,actorId,actorEmail,targetType,targetId,ip,requestId,data,hash',
    );
    expect(rows.length - 1).toBe(all.length);
    // Each row names its event by id (what `audit verify` reports) as well as by (chain, seq).
    const byKey = new Map(rows.slice(1).map((row) => [row.split(',', 2).join(','), row]));
    for (const e of all) {
      const row = byKey.get(`${e.chain},${e.seq}`);
      expect(row?.split(',')[2]).toBe(e.id);
      expect(row?.split(',')[4]).toBe(e.action);
      expect(row?.endsWith(`,${e.hash}`)).toBe(true);
    }
    for (const value of VALUES) expect(r.stdout).not.toContain(value);
  });

  it.runIf(available)('--since keeps events at or after the time; --workspace keeps one chain', async () => {
    const expected = await ctx.db.selectFrom('audit_events').select('id').where('at', '>=', since).execute();
    const total = await ctx.db.selectFrom('audit_events').select('id').execute();
    expect(expected.length).toBeGreaterThanOrEqual(4);
    expect(expected.length).toBeLessThan(total.length);
    const [jsonl, csv, one] = await Promise.all([
      runHush(['audit', 'export', '--format', 'jsonl', '--since', since], site.env),
      runHush(['audit', 'export', '--format', 'csv', '--since', since], site.env),
      runHush(['audit', 'export', '--workspace', ws], site.env),
    ]);
    expect(jsonl.code, describeRun(jsonl)).toBe(0);
    const events = jsonl.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { id: string; at: string; chain: string });
    expect(new Set(events.map((e) => e.id))).toEqual(new Set(expected.map((e) => e.id)));
    for (const e of events) expect(e.at >= since).toBe(true);
    expect(csv.code, describeRun(csv)).toBe(0);
    expect(csv.stdout.split('\r\n').filter(Boolean).length - 1).toBe(expected.length);
    expect(one.code, describeRun(one)).toBe(0);
    const chains = new Set(
      one.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { chain: string }).chain),
    );
    expect(chains).toEqual(new Set([ws]));
    // A mistyped id is an error (exit 1, one line), not an empty export with exit 0.
    for (const format of ['csv', 'jsonl']) {
      const unknown = await runHush(['audit', 'export', '--format', format, '--workspace', 'ws_nope'], site.env);
      expect(unknown.code, describeRun(unknown)).toBe(1);
      expect([unknown.stderr.trim(), unknown.stdout]).toEqual(['hush: no workspace ws_nope', '']);
    }
  });

  it.runIf(available)('--since compares instants, not text: whole seconds and sub-millisecond digits', async () => {
    const all = await ctx.db.selectFrom('audit_events').select(['id', 'at']).execute();
    // Events are stored at millisecond precision; one at a fractional second shows the difference.
    const event = all.find((e) => !e.at.endsWith('.000Z'));
    if (!event) throw new Error('no event at a fractional second');
    const idsSince = async (bound: string) => {
      const r = await runHush(['audit', 'export', '--format', 'jsonl', '--since', bound], site.env);
      expect(r.code, describeRun(r)).toBe(0);
      const lines = r.stdout.split('\n').filter(Boolean);
      return new Set(lines.map((l) => (JSON.parse(l) as { id: string }).id));
    };
    const atOrAfter = (ms: number) => new Set(all.filter((e) => Date.parse(e.at) >= ms).map((e) => e.id));
    const second = `${event.at.slice(0, 19)}Z`;
    const [wholeSecond, subMsAfter] = await Promise.all([idsSince(second), idsSince(event.at.replace('Z', '1Z'))]);
    expect(wholeSecond).toContain(event.id);
    expect(wholeSecond).toEqual(atOrAfter(Date.parse(second)));
    // …05.6661Z is after an event at …05.666Z: cutting the digits off would keep it.
    expect(subMsAfter).not.toContain(event.id);
    expect(subMsAfter).toEqual(atOrAfter(Date.parse(event.at) + 1));
  });

  it.runIf(available)('a --since year with no four-digit form is a usage error, not "everything"', async () => {
    const r = await runHush(['audit', 'export', '--since', '+010000-01-01T00:00:00Z'], site.env);
    expect(r.code, describeRun(r)).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(['hush: --since must be a date or time, e.g. 2026-01-31']);
    expect(r.stdout).toBe('');
  });

  it.runIf(available)(
    'a --since that is no real date (Feb 30, month 13, hour 25, a bare number) is a usage error',
    async () => {
      for (const bound of ['2026-02-30', '2026-13-01', '2026-01-31T25:00Z', '0', '2026']) {
        const r = await runHush(['audit', 'export', '--since', bound], site.env);
        expect(r.code, `${bound}: ${describeRun(r)}`).toBe(2);
        expect(r.stdout).toBe('');
      }
      // A date-time without a zone is UTC.
      const utc = await runHush(['audit', 'export', '--since', since.replace('Z', '')], site.env);
      const zoned = await runHush(['audit', 'export', '--since', since], site.env);
      expect(utc.code, describeRun(utc)).toBe(0);
      expect(utc.stdout).toBe(zoned.stdout);
    },
  );

  it.runIf(available)('a bad --format or --since is a usage error: exit 2, one line', async () => {
    const [format, when] = await Promise.all([
      runHush(['audit', 'export', '--format', 'xml'], site.env),
      runHush(['audit', 'export', '--since', 'last tuesday'], site.env),
    ]);
    expect(format.code, describeRun(format)).toBe(2);
    expect(format.stderr.trim().split('\n')).toEqual(['hush: --format must be csv or jsonl']);
    expect(format.stdout).toBe('');
    expect(when.code, describeRun(when)).toBe(2);
    expect(when.stderr.trim().split('\n')).toHaveLength(1);
  });
});
