/**
 * The hash chain, as pure functions. Each event's hash covers its own fields
 * and the previous event's hash, so changing, deleting, inserting or
 * reordering any event breaks every hash after it.
 */
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);
export const SYSTEM_CHAIN = 'system';

/** The fields an event's hash covers, in a fixed order. */
export interface ChainedEvent {
  id: string;
  chain: string;
  seq: number;
  at: string;
  workspace_id: string | null;
  actor_id: string | null;
  actor_type: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  request_id: string | null;
  data: string;
  prev_hash: string;
}

export function hashEvent(e: ChainedEvent): string {
  const canonical = JSON.stringify([
    'hush-audit-v1',
    e.id,
    e.chain,
    e.seq,
    e.at,
    e.workspace_id,
    e.actor_id,
    e.actor_type,
    e.action,
    e.target_type,
    e.target_id,
    e.ip,
    e.request_id,
    e.data,
    e.prev_hash,
  ]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

export interface ChainVerdict {
  ok: boolean;
  checked: number;
  /** Id of the first event that does not verify (or the seq gap's successor). */
  brokenAt?: string;
  reason?: string;
}

/**
 * Verifies events of one chain given in seq order. `headSeq`/`headHash`, when
 * known, also catch a truncated tail.
 */
export function verifyEvents(
  events: Iterable<ChainedEvent & { hash: string }>,
  head?: { seq: number; hash: string },
): ChainVerdict {
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  let checked = 0;
  let lastId: string | undefined;
  for (const e of events) {
    if (e.seq !== expectedSeq)
      return { ok: false, checked, brokenAt: e.id, reason: `expected seq ${expectedSeq}, found ${e.seq}` };
    if (e.prev_hash !== prevHash) return { ok: false, checked, brokenAt: e.id, reason: 'previous hash does not match' };
    if (hashEvent(e) !== e.hash)
      return { ok: false, checked, brokenAt: e.id, reason: 'event hash does not match its fields' };
    prevHash = e.hash;
    expectedSeq += 1;
    checked += 1;
    lastId = e.id;
  }
  if (head && (head.seq !== checked || head.hash !== prevHash)) {
    return {
      ok: false,
      checked,
      brokenAt: lastId ?? '(start)',
      reason: `the chain head records ${head.seq} events but ${checked} are present`,
    };
  }
  return { ok: true, checked };
}
