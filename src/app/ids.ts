/**
 * Identifiers and random tokens. Ids are `prefix_` + 26 Crockford-base32
 * characters: 48 bits of milliseconds then 80 random bits, so they sort by
 * creation time (handy for cursors) and cannot be guessed.
 */
import { hash, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

// Ids draw their random bits from a pool refilled 4 KiB at a time: one
// system call per 409 ids instead of one per id (ids are not secrets; tokens
// and keys still use randomBytes directly).
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

/** An id's 16 bytes, rewritten by every newId (they are encoded before it returns). */
const idBytes = Buffer.alloc(16);

export function newId(prefix: string): string {
  if (poolOffset + 10 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  idBytes.writeUIntBE(Date.now(), 0, 6);
  pool.copy(idBytes, 6, poolOffset, poolOffset + 10);
  poolOffset += 10;
  return `${prefix}_${base32(idBytes)}`;
}

/** A high-entropy bearer token (256 bits), base64url. */
export function newToken(prefix = ''): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** sha256 hex of a high-entropy token: what we store instead of the token. */
export function hashToken(token: string): string {
  return hash('sha256', token, 'hex');
}

/** Constant-time string equality (different lengths are simply unequal). */
export function safeEqual(a: string, b: string): boolean {
  const ab = hash('sha256', a, 'buffer');
  const bb = hash('sha256', b, 'buffer');
  return timingSafeEqual(ab, bb) && a.length === b.length;
}

let isoMs = Number.NaN;
let isoText = '';

export function nowIso(now = Date.now()): string {
  // Formatting costs a microsecond; a busy server asks several times per millisecond.
  if (now !== isoMs) {
    isoText = new Date(now).toISOString();
    isoMs = now;
  }
  return isoText;
}
