/** Reading the audit trail: filtered pages, CSV rows and chain verification. */
import type { AppContext } from '../../app/context.js';
import { ValidationError } from '../../app/errors.js';
import type { Db } from '../../db/database.js';
import type { AuditEventsTable } from '../../db/schema.js';
import { authorize, type WorkspaceActor } from '../../policy/policy.js';
import { type ChainVerdict, ChainVerifier } from './audit-chain.js';

const VERIFY_BATCH = 1000;

/**
 * A time bound in the form events are stored in. `at` is nowIso() text —
 * `YYYY-MM-DDTHH:MM:SS.sssZ`, UTC, always milliseconds — compared as text
 * on both databases, which is only right between texts of that one form:
 * as text, `…:05Z` sorts after `…:05.666Z`. So a bound is parsed and
 * rewritten in that form. Digits past the millisecond round up: events fall
 * on whole milliseconds, so `at >= since` and `at < until` keep their meaning
 * (Date would cut them off, moving the bound back). Undefined for text that
 * is not a time, or a year outside 0000–9999 (no four-digit form).
 */
/** An ISO 8601 date, or date-time with seconds optional, fraction any length, and a zone (Z or ±hh:mm) optional. */
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?$/;

export function auditTimeBound(text: string): string | undefined {
  // Date.parse alone would take "0" (the year 2000) and roll 2026-02-30 over to March.
  const parts = ISO_TIME.exec(text.trim());
  if (!parts) return undefined;
  const [, y, mo, d, h = '0', mi = '0', sec = '0'] = parts;
  const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  if (day.getUTCMonth() !== Number(mo) - 1 || day.getUTCDate() !== Number(d)) return undefined;
  if (Number(h) > 23 || Number(mi) > 59 || Number(sec) > 59) return undefined;
  // A time without a zone is UTC (Date.parse would read it in the server's local zone).
  const zoned = parts[4] !== undefined && !/(?:Z|[+-]\d{2}:\d{2})$/.test(text.trim()) ? `${text.trim()}Z` : text.trim();
  let ms = Date.parse(zoned);
  if (Number.isNaN(ms)) return undefined;
  const beyondMs = /T\d{2}:\d{2}:\d{2}\.\d{3}(\d+)/.exec(zoned)?.[1];
  if (beyondMs && /[1-9]/.test(beyondMs)) ms += 1;
  const year = new Date(ms).getUTCFullYear();
  return year >= 0 && year <= 9999 ? new Date(ms).toISOString() : undefined;
}

function storedBound(text: string, field: string): string {
  const bound = auditTimeBound(text);
  if (bound !== undefined) return bound;
  const message = 'must be an ISO 8601 date-time with a zone, e.g. 2026-01-31T09:00:00Z';
  throw new ValidationError(`${field}: ${message}`, [{ path: field, message }]);
}

export interface AuditFilter {
  action?: string | undefined;
  actorId?: string | undefined;
  targetId?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
}

export function presentAuditEvent(row: AuditEventsTable & { actor_email?: string | null }) {
  return {
    id: row.id,
    seq: Number(row.seq),
    at: row.at,
    actorId: row.actor_id,
    actorType: row.actor_type,
    actorEmail: row.actor_email ?? null,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    ip: row.ip,
    requestId: row.request_id,
    data: JSON.parse(row.data) as Record<string, unknown>,
    hash: row.hash,
  };
}

/**
 * Walks one chain in batches (constant memory) and verifies it, from its
 * lowest stored seq (a row below 1 is a forgery, caught as a seq gap) up to
 * the head read first: events committed after that read belong to writes
 * that were still under way, and are checked by the next run. Then the head
 * is read again, and an event past it is out of place. `mustExist`: a
 * workspace chain (its creation is its first event) with no events at all
 * lost them.
 */
export async function verifyChain(db: Db, chain: string, options: { mustExist?: boolean } = {}): Promise<ChainVerdict> {
  const readHead = () =>
    db.selectFrom('audit_heads').select(['seq', 'hash']).where('chain', '=', chain).executeTakeFirst();
  const head = await readHead();
  const verifier = new ChainVerifier();
  let after: number | undefined;
  for (;;) {
    let q = db.selectFrom('audit_events').selectAll().where('chain', '=', chain);
    if (after !== undefined) q = q.where('seq', '>', after);
    if (head) q = q.where('seq', '<=', Number(head.seq));
    const rows = await q.orderBy('seq').limit(VERIFY_BATCH).execute();
    for (const r of rows) if (verifier.push({ ...r, seq: Number(r.seq) })) return verifier.finish();
    const last = rows.at(-1);
    if (!last || rows.length < VERIFY_BATCH) break;
    after = Number(last.seq);
  }
  if (head) {
    const verdict = verifier.finish({ seq: Number(head.seq), hash: head.hash });
    if (!verdict.ok) return verdict;
    // The last event first, then the head: an event commits with its head move, so a head read
    // after it is at least as far, whatever commits in between.
    const lastEvent = await db
      .selectFrom('audit_events')
      .select(['id', 'seq'])
      .where('chain', '=', chain)
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    const now = await readHead();
    if (lastEvent && Number(lastEvent.seq) > Number(now?.seq ?? head.seq))
      return {
        ok: false,
        checked: verdict.checked,
        brokenAt: lastEvent.id,
        reason: 'an event lies past the chain head',
      };
    return verdict;
  }
  // Every chain's first event creates its head: events without one mean the head was removed,
  // and with it the check that the trail was not cut short.
  const verdict = verifier.finish();
  if (!verdict.ok) return verdict;
  if (verdict.checked > 0)
    return { ok: false, checked: verdict.checked, brokenAt: '(head)', reason: 'the chain has events but no head' };
  if (options.mustExist) return { ok: false, checked: 0, brokenAt: '(start)', reason: 'the chain has no events' };
  return verdict;
}

export function createAuditService(deps: Pick<AppContext, 'db'>) {
  const { db } = deps;

  function query(actor: WorkspaceActor, filter: AuditFilter) {
    let q = db
      .selectFrom('audit_events')
      .leftJoin('users', 'users.id', 'audit_events.actor_id')
      .selectAll('audit_events')
      .select('users.email as actor_email')
      .where('audit_events.chain', '=', actor.workspaceId);
    if (filter.action) {
      q = filter.action.endsWith('.*')
        ? q.where('audit_events.action', 'like', `${filter.action.slice(0, -1)}%`)
        : q.where('audit_events.action', '=', filter.action);
    }
    if (filter.actorId) q = q.where('audit_events.actor_id', '=', filter.actorId);
    if (filter.targetId) q = q.where('audit_events.target_id', '=', filter.targetId);
    if (filter.since) q = q.where('audit_events.at', '>=', storedBound(filter.since, 'querystring.since'));
    if (filter.until) q = q.where('audit_events.at', '<', storedBound(filter.until, 'querystring.until'));
    return q;
  }

  return {
    /** Newest first; `beforeSeq` continues a page. */
    async list(actor: WorkspaceActor, filter: AuditFilter, limit: number, beforeSeq?: number) {
      authorize(actor, 'audit.read');
      let q = query(actor, filter);
      if (beforeSeq !== undefined) q = q.where('audit_events.seq', '<', beforeSeq);
      const rows = await q
        .orderBy('audit_events.seq', 'desc')
        .limit(limit + 1)
        .execute();
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: page.map(presentAuditEvent),
        nextSeq: rows.length > limit && last ? Number(last.seq) : undefined,
      };
    },

    /** Every matching event oldest first, in batches, for CSV export. */
    async *export(actor: WorkspaceActor, filter: AuditFilter) {
      authorize(actor, 'audit.read');
      let after: number | undefined;
      for (;;) {
        let q = query(actor, filter);
        if (after !== undefined) q = q.where('audit_events.seq', '>', after);
        const rows = await q.orderBy('audit_events.seq').limit(500).execute();
        for (const r of rows) yield presentAuditEvent(r);
        const last = rows.at(-1);
        if (!last || rows.length < 500) return;
        after = Number(last.seq);
      }
    },

    async verify(actor: WorkspaceActor) {
      authorize(actor, 'audit.read');
      return verifyChain(db, actor.workspaceId, { mustExist: true });
    },
  };
}
