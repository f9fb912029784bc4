/**
 * The redactor: replaces every form of every secret value used in a run with
 * `[secret:NAME]`, in one left-to-right pass whose cost is linear in the text
 * and independent of how many secrets or forms there are.
 *
 * How: patterns are indexed by a hash of their first W characters (W = their
 * length, at most 8). The scan keeps a rolling hash of the W characters at
 * each position per distinct W (almost always just W = 8), looks the hash up
 * in an open table held in typed arrays, and verifies candidates with
 * `startsWith`, longest first, so the leftmost-longest form wins. After a
 * replacement the scan resumes past it.
 */
import { secretForms } from './secret-forms.js';

export interface SecretToRedact {
  name: string;
  value: string;
}

const MAX_WINDOW = 8;
const BASE = 0x01000193; // FNV prime: a good multiplier for a polynomial hash

interface Bucket {
  window: number;
  /** BASE^(window-1) mod 2^32, to drop the outgoing character. */
  outFactor: number;
  mask: number;
  heads: Int32Array;
  next: Int32Array;
  hashes: Int32Array;
}

function hashAt(text: string, start: number, window: number): number {
  let h = 0;
  for (let k = 0; k < window; k++) h = (Math.imul(h, BASE) + text.charCodeAt(start + k)) | 0;
  return h;
}

function slot(h: number, mask: number): number {
  return (Math.imul(h, 0x9e3779b1) >>> 0) & mask;
}

export class Redactor {
  /** A redactor that changes nothing (no secrets in play). */
  static readonly NONE = new Redactor([]);

  private readonly patterns: string[] = [];
  private readonly replacements: string[] = [];
  private readonly buckets: Bucket[] = [];

  constructor(secrets: readonly SecretToRedact[]) {
    // Longest name wins when two secrets share a form; shorter patterns are
    // inserted first so each chain lists candidates longest first.
    const seen = new Map<string, string>();
    for (const secret of secrets) {
      for (const form of secretForms(secret.value)) if (!seen.has(form)) seen.set(form, `[secret:${secret.name}]`);
    }
    const entries = [...seen].sort((a, b) => a[0].length - b[0].length);
    const byWindow = new Map<number, number[]>();
    for (const [form, replacement] of entries) {
      const index = this.patterns.push(form) - 1;
      this.replacements.push(replacement);
      const window = Math.min(MAX_WINDOW, form.length);
      const list = byWindow.get(window) ?? [];
      list.push(index);
      byWindow.set(window, list);
    }
    for (const [window, indexes] of [...byWindow].sort((a, b) => b[0] - a[0])) {
      let size = 16;
      // A sparse table: most positions of a text miss on the first load.
      while (size < indexes.length * 16) size *= 2;
      const bucket: Bucket = {
        window,
        outFactor: 1,
        mask: size - 1,
        heads: new Int32Array(size).fill(-1),
        next: new Int32Array(this.patterns.length).fill(-1),
        hashes: new Int32Array(this.patterns.length),
      };
      for (let k = 1; k < window; k++) bucket.outFactor = Math.imul(bucket.outFactor, BASE);
      for (const index of indexes) {
        const h = hashAt(this.patterns[index] as string, 0, window);
        const s = slot(h, bucket.mask);
        bucket.hashes[index] = h;
        bucket.next[index] = bucket.heads[s] as number;
        bucket.heads[s] = index;
      }
      this.buckets.push(bucket);
    }
  }

  get patternCount(): number {
    return this.patterns.length;
  }

  /** The text with every secret form replaced; the same string when nothing matched. */
  redact(text: string): string {
    if (this.buckets.length === 0 || text.length === 0) return text;
    if (this.buckets.length === 1) return this.redactOneWindow(text, this.buckets[0] as Bucket);
    return this.redactManyWindows(text);
  }

  /** The fast path: every pattern has the same window (the usual case). */
  private redactOneWindow(text: string, b: Bucket): string {
    const { window, outFactor, mask, heads, next, hashes } = b;
    const n = text.length;
    if (n < window) return text;
    const parts: string[] = [];
    let copied = 0;
    let i = 0;
    let h = hashAt(text, 0, window);
    for (;;) {
      let best = -1;
      for (let p = heads[slot(h, mask)] as number; p !== -1; p = next[p] as number) {
        if (hashes[p] === h && text.startsWith(this.patterns[p] as string, i)) {
          best = p;
          break; // chains are longest first
        }
      }
      if (best !== -1) {
        if (i > copied) parts.push(text.slice(copied, i));
        parts.push(this.replacements[best] as string);
        i += (this.patterns[best] as string).length;
        copied = i;
        if (i + window > n) break;
        h = hashAt(text, i, window);
        continue;
      }
      if (i + window >= n) break;
      h = (Math.imul(h - Math.imul(text.charCodeAt(i), outFactor), BASE) + text.charCodeAt(i + window)) | 0;
      i += 1;
    }
    if (copied === 0) return text;
    if (copied < n) parts.push(text.slice(copied));
    return parts.join('');
  }

  /** Several windows (some secret forms shorter than 8): one rolling hash each. */
  private redactManyWindows(text: string): string {
    const n = text.length;
    const buckets = this.buckets;
    const hs = buckets.map((b) => (n >= b.window ? hashAt(text, 0, b.window) : 0));
    const parts: string[] = [];
    let copied = 0;
    let i = 0;
    while (i < n) {
      let best = -1;
      let bestLength = 0;
      for (let k = 0; k < buckets.length; k++) {
        const b = buckets[k] as Bucket;
        if (i + b.window > n) continue;
        const h = hs[k] as number;
        for (let p = b.heads[slot(h, b.mask)] as number; p !== -1; p = b.next[p] as number) {
          const pattern = this.patterns[p] as string;
          if (pattern.length <= bestLength) break;
          if (b.hashes[p] === h && text.startsWith(pattern, i)) {
            best = p;
            bestLength = pattern.length;
            break;
          }
        }
      }
      if (best !== -1) {
        if (i > copied) parts.push(text.slice(copied, i));
        parts.push(this.replacements[best] as string);
        i += bestLength;
        copied = i;
        for (let k = 0; k < buckets.length; k++) {
          const b = buckets[k] as Bucket;
          if (i + b.window <= n) hs[k] = hashAt(text, i, b.window);
        }
        continue;
      }
      for (let k = 0; k < buckets.length; k++) {
        const b = buckets[k] as Bucket;
        if (i + b.window < n) {
          hs[k] =
            (Math.imul((hs[k] as number) - Math.imul(text.charCodeAt(i), b.outFactor), BASE) +
              text.charCodeAt(i + b.window)) |
            0;
        }
      }
      i += 1;
    }
    if (copied === 0) return text;
    if (copied < n) parts.push(text.slice(copied));
    return parts.join('');
  }

  /** Redacts every string (keys too) inside a JSON-like value. */
  redactDeep<T>(value: T): T {
    if (this.buckets.length === 0) return value;
    return this.walk(value) as T;
  }

  private walk(value: unknown): unknown {
    if (typeof value === 'string') return this.redact(value);
    if (Array.isArray(value)) return value.map((v) => this.walk(v));
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[this.redact(k)] = this.walk(v);
      return out;
    }
    return value;
  }
}
