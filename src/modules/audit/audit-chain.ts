/**
 * The hash chain, as pure functions. Each event's hash covers its own fields
 * and the previous event's hash, so changing, deleting, inserting or
 * reordering any event breaks every hash after it.
 */
import { hash } from 'node:crypto';

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
  // One-shot hash: no Hash object per event (about 0.5 µs less each).
  return hash('sha256', canonical, 'hex');
}

export interface ChainVerdict {
  ok: boolean;
  checked: number;
  /** Id of the first event that does not verify (or the seq gap's successor). */
  brokenAt?: string;
  reason?: string;
}

/**
 * Verifies one chain event by event, in seq order, in constant memory.
 * `push` returns a failed verdict at the first bad event; `finish` compares
 * the end with the recorded head, which also catches a truncated tail.
 */
export class ChainVerifier {
  private prevHash = GENESIS_HASH;
  private checked = 0;
  private lastId: string | undefined;
  private failed: ChainVerdict | undefined;

  push(e: ChainedEvent & { hash: string }): ChainVerdict | undefined {
    if (this.failed) return this.failed;
    const expectedSeq = this.checked + 1;
    let reason: string | undefined;
    if (e.seq !== expectedSeq) reason = `expected seq ${expectedSeq}, found ${e.seq}`;
    else if (e.prev_hash !== this.prevHash) reason = 'previous hash does not match';
    else if (hashEvent(e) !== e.hash) reason = 'event hash does not match its fields';
    if (reason) {
      this.failed = { ok: false, checked: this.checked, brokenAt: e.id, reason };
      return this.failed;
    }
    this.prevHash = e.hash;
    this.checked += 1;
    this.lastId = e.id;
    return undefined;
  }

  finish(head?: { seq: number; hash: string }): ChainVerdict {
    if (this.failed) return this.failed;
    if (head && (head.seq !== this.checked || head.hash !== this.prevHash)) {
      return {
        ok: false,
        checked: this.checked,
        brokenAt: this.lastId ?? '(start)',
        reason: `the chain head records ${head.seq} events but the trail ends after ${this.checked}`,
      };
    }
    return { ok: true, checked: this.checked };
  }
}

/** Verifies a whole chain given in seq order (see ChainVerifier). */
export function verifyEvents(
  events: Iterable<ChainedEvent & { hash: string }>,
  head?: { seq: number; hash: string },
): ChainVerdict {
  const verifier = new ChainVerifier();
  for (const e of events) if (verifier.push(e)) break;
  return verifier.finish(head);
}
