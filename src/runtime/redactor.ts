/**
 * The redactor: replaces every form of every secret value used in a run with
 * `[secret:NAME]`, in one left-to-right pass. At each position the longest
 * form starting there wins (leftmost-longest). Forms that overlap — a value
 * whose tail is its own head (`abcab` in `abcabcab`), or two secrets where
 * one's tail is the other's head — are covered together: a form starting
 * inside a replaced span and running past its end extends it, so no
 * character of any occurrence is left. A covered span reads as the
 * replacement of each secret in it, once each, in order.
 *
 * How: forms are indexed by a hash of their first W characters (W = their
 * length, at most 8). The scan looks the hash of the W characters at a
 * position up in an open table held in typed arrays and verifies candidates,
 * longest first. Two ways to move along the text:
 * - a skip table (Wu–Manber): for the characters ending a span of the text
 *   as long as the shortest form, how far the scan may jump before any form
 *   could start. Blocks of two characters in a small table for the few dozen
 *   forms of one execution; of three characters in a larger one when the
 *   forms are many (hundreds of secrets), where most two-character blocks
 *   end some form;
 * - a rolling hash, one position at a time, when even that would not skip
 *   (tens of thousands of forms).
 *
 * Cost is linear in the text whatever it holds: candidates that share a
 * form's first W characters but then differ are verified character by
 * character, and a text built to make that expensive (a form that repeats one
 * short pattern, echoed over and over) exhausts a budget of compared
 * characters; the rest of the text is then scanned by an Aho–Corasick
 * automaton over the reversed forms, which finds the longest form starting at
 * every position in one right-to-left pass — the same result in linear time.
 */
import { setOwn } from './json-path.js';
import { holdsForeignEncoding, MIN_DERIVED_FORM_LENGTH, secretFormList } from './secret-forms.js';

export interface SecretToRedact {
  name: string;
  value: string;
}

export interface RedactorOptions {
  /**
   * Characters the verification of near misses may compare in one text —
   * `perChar` × its length + `allowance` — before the scan hands the rest of
   * the text to the automaton. Tests shrink it to switch anywhere.
   */
  nearMissBudget?: { perChar: number; allowance: number };
  /** Tests: every text goes through the automaton alone, from its start. */
  automatonOnly?: boolean;
  /** Tests: no skip table, so texts are scanned with the rolling hash. */
  noSkip?: boolean;
}

const MAX_WINDOW = 8;
/** What `longestAt` answers besides a form's index. */
const NO_FORM = -1;
const OUT_OF_BUDGET = -2;
const BASE = 0x01000193; // FNV prime: a good multiplier for a polynomial hash
const DEFAULT_BUDGET = { perChar: 2, allowance: 4096 };
/** Characters a candidate check compares one by one before comparing the rest as a slice. */
const PREFIX_COMPARED = 32;
/**
 * Wu–Manber tables: blocks of two characters in a table of at most 4,096
 * slots (cheap to build: one is built per execution); when those would not
 * skip, blocks of three characters in at most 65,536 slots (64 KiB: a
 * larger table skips a little further but falls out of the core's cache on
 * large texts, measured slower per byte from 1 MiB on). Each
 * table has at least SKIP_SLOTS_PER_BLOCK slots per block of the forms (a
 * sparse table skips further).
 */
const SKIP_TABLES = [
  { block: 2, minSize: 256, maxSize: 4096 },
  { block: 3, minSize: 4096, maxSize: 1 << 16 },
] as const;
const SKIP_SLOTS_PER_BLOCK = 8;
/** The span the three-character table looks at: at most this many characters (shifts fit a byte). */
const MAX_SKIP_SPAN = 32;
/** The skip table is used while at most this share of its blocks say "no skip". */
const MAX_ZERO_SHIFT_SHARE = 0.25;

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

function blockKey(first: number, second: number, mask: number): number {
  return ((first << 5) ^ second) & mask;
}

function blockKey3(first: number, second: number, third: number, mask: number): number {
  return (Math.imul((first << 16) ^ (second << 8) ^ third, 0x9e3779b1) >>> 14) & mask;
}

/**
 * The tables of a redactor are carved from shared slabs: one redactor is
 * built per execution, and giving each of its small tables an ArrayBuffer of
 * its own (allocated outside the V8 heap, released by the garbage
 * collector) costs more than building it. A slab lives while any table cut
 * from it does; large tables get their own buffer.
 */
const SLAB_BYTES = 1 << 16;
const OWN_BUFFER_BYTES = SLAB_BYTES >> 3;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

function carve(bytes: number): [ArrayBuffer, number] {
  const size = (bytes + 7) & ~7; // 8-byte aligned, so any typed view fits
  if (size > OWN_BUFFER_BYTES) return [new ArrayBuffer(size), 0];
  if (slabUsed + size > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const at = slabUsed;
  slabUsed += size;
  return [slab, at];
}

function int32Table(length: number, value: number): Int32Array {
  const [buffer, at] = carve(length * 4);
  return new Int32Array(buffer, at, length).fill(value);
}

function uint8Table(length: number, value: number): Uint8Array {
  const [buffer, at] = carve(length);
  return new Uint8Array(buffer, at, length).fill(value);
}

/**
 * Indexes of `forms`, shortest first (ties keep their order). The few forms of
 * one execution's secrets are sorted by insertion, without a comparator call
 * per step; many secrets' forms by the built-in sort.
 */
function byLength(forms: readonly string[]): number[] {
  const order: number[] = [];
  for (let i = 0; i < forms.length; i++) order.push(i);
  if (forms.length > 64) return order.sort((a, b) => (forms[a] as string).length - (forms[b] as string).length);
  for (let i = 1; i < order.length; i++) {
    const at = order[i] as number;
    const length = (forms[at] as string).length;
    let j = i - 1;
    while (j >= 0 && (forms[order[j] as number] as string).length > length) {
      order[j + 1] = order[j] as number;
      j--;
    }
    order[j + 1] = at;
  }
  return order;
}

/** A value an upstream could answer as a JSON number (leading zeros and spaces dropped, a sign kept). */
const NUMERIC = /^\s*[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\s*$/;

export class Redactor {
  /** A redactor that changes nothing (no secrets in play). */
  static readonly NONE = new Redactor([]);

  private readonly patterns: string[] = [];
  private readonly replacements: string[] = [];
  private readonly buckets: Bucket[] = [];
  /** Wu–Manber shifts for the one-bucket case, or null when they would not skip. */
  private readonly skip: Uint8Array | null = null;
  private readonly skipMask: number = 0;
  /** Characters per block of the skip table (2 or 3), 0 without one. */
  readonly skipBlock: number = 0;
  /** How many characters from a position the skip table looks at (no form is shorter). */
  private readonly skipSpan: number = 0;
  /** The shortest form's length: no shorter text can hold one (most header names and values). */
  private readonly shortest: number;
  private readonly nearMissBudget: { perChar: number; allowance: number };
  private readonly automatonOnly: boolean;
  private automaton: ReverseAutomaton | undefined;
  /** Secrets whose value reads as a number, by that number: a JSON answer may carry one as a number. */
  private readonly numbers = new Map<number, string>();
  /** Characters compared by failed verifications during the current scan. */
  private work = 0;
  /** Where the current scan ran out of budget (the automaton goes on from there), or -1. */
  private resumeAt = -1;
  /** The replacements written for the covered span being extended (each once). */
  private spanLabels: string[] = [];
  /** Cumulative scan figures (for tests and benchmarks): never text, never values. */
  readonly stats = { nearMissChars: 0, automatonScans: 0 };
  /** The secrets, for holdsEncodedValue (their forms are built once, in the constructor). */
  private readonly secrets: readonly SecretToRedact[];

  constructor(secrets: readonly SecretToRedact[], options: RedactorOptions = {}) {
    this.secrets = secrets;
    this.nearMissBudget = options.nearMissBudget ?? DEFAULT_BUDGET;
    this.automatonOnly = options.automatonOnly ?? false;
    // When two secrets share a form the first one names it; shorter patterns
    // are inserted first so each chain lists candidates longest first.
    // One secret's forms are distinct already: only several need a set.
    const forms: string[] = [];
    const names: string[] = [];
    const seen = secrets.length > 1 ? new Set<string>() : undefined;
    for (const secret of secrets) {
      const replacement = `[secret:${secret.name}]`;
      if (NUMERIC.test(secret.value)) {
        const number = Number(secret.value);
        if (Number.isFinite(number) && !this.numbers.has(number)) this.numbers.set(number, replacement);
      }
      for (const form of secretFormList(secret.value)) {
        if (seen) {
          if (seen.has(form)) continue;
          seen.add(form);
        }
        forms.push(form);
        names.push(replacement);
      }
    }
    const byWindow = new Map<number, number[]>();
    for (const at of byLength(forms)) {
      const form = forms[at] as string;
      const index = this.patterns.push(form) - 1;
      this.replacements.push(names[at] as string);
      const window = Math.min(MAX_WINDOW, form.length);
      const list = byWindow.get(window);
      if (list) list.push(index);
      else byWindow.set(window, [index]);
    }
    this.shortest = this.patterns[0]?.length ?? Number.POSITIVE_INFINITY;
    const windows = [...byWindow.keys()].sort((a, b) => b - a);
    for (const window of windows) {
      const indexes = byWindow.get(window) as number[];
      let size = 16;
      // A sparse table: most positions of a text miss on the first load.
      while (size < indexes.length * 16) size *= 2;
      const bucket: Bucket = {
        window,
        outFactor: 1,
        mask: size - 1,
        heads: int32Table(size, -1),
        next: int32Table(this.patterns.length, -1),
        hashes: int32Table(this.patterns.length, 0),
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
    const only = this.buckets[0];
    if (this.buckets.length === 1 && only && only.window >= 3 && !options.noSkip) {
      const shortest = (this.patterns[0] as string).length; // sorted shortest first
      for (const { block, minSize, maxSize } of SKIP_TABLES) {
        // Two-character blocks look at the hash window; three-character ones as far as the shortest form.
        const span = block === 2 ? only.window : Math.min(shortest, MAX_SKIP_SPAN);
        if (span <= block) continue; // no room to shift
        let size = minSize;
        while (size < maxSize && size < this.patterns.length * (span - block + 1) * SKIP_SLOTS_PER_BLOCK) size *= 2;
        const skip = this.skipTable(block, span, size);
        if (skip) {
          this.skip = skip;
          this.skipMask = size - 1;
          this.skipBlock = block;
          this.skipSpan = span;
          break;
        }
      }
    }
  }

  get patternCount(): number {
    return this.patterns.length;
  }

  /** How texts are scanned (for tests and benchmarks): skip table, rolling hash, or one rolling hash per window length. */
  get scanMode(): 'skip' | 'rolling' | 'windows' | 'none' {
    if (this.buckets.length === 0) return 'none';
    if (this.buckets.length > 1) return 'windows';
    return this.skip ? 'skip' : 'rolling';
  }

  /** The text with every secret form replaced; the same string when nothing matched. */
  redact(text: string): string {
    if (text.length < this.shortest) return text;
    this.work = 0;
    this.resumeAt = this.automatonOnly ? 0 : -1;
    const parts: string[] = [];
    const copied =
      this.resumeAt === 0
        ? 0
        : this.buckets.length > 1
          ? this.scanManyWindows(text, parts)
          : this.skip
            ? this.scanSkipping(text, this.buckets[0] as Bucket, this.skip, parts)
            : this.scanRolling(text, this.buckets[0] as Bucket, parts);
    this.stats.nearMissChars += this.work;
    if (this.resumeAt !== -1) return this.finishWithAutomaton(text, this.resumeAt, copied, parts);
    if (copied === 0) return text;
    if (copied < text.length) parts.push(text.slice(copied));
    return parts.join('');
  }

  /**
   * Whether `bytes` hold a non-ASCII value written in a charset other than
   * UTF-8 (secret-forms.ts holdsForeignEncoding): a check on the bytes an
   * answer read in another charset goes back to, computed on each call.
   */
  holdsEncodedValue(bytes: Buffer): boolean {
    return holdsForeignEncoding(
      this.secrets.map((secret) => secret.value),
      bytes,
    );
  }

  /**
   * Whether `text` holds any form of 4 or more characters whatever its case
   * (a URL's host name comes out of the URL parser lower-cased). A check,
   * not a redaction: it compares every form, for short texts.
   */
  occursFolded(text: string): boolean {
    const folded = text.toLowerCase();
    return this.foldedForms().all.some((p) => folded.includes(p));
  }

  /**
   * `text` — an HTTP field name, which arrives lower-cased — with every form
   * replaced whatever its case: all forms compared case-folded on the text as
   * it is, overlapping occurrences merged into one covered span (its labels
   * each once), so no form's tail survives another's mark. Text whose
   * lower-casing changes its length (not ASCII) is redacted as usual.
   */
  redactFolded(text: string): string {
    // Lower-casing never shortens a text or a form (it may lengthen one: "İ" → "i̇").
    if (text.length < this.shortest) return text;
    const folded = text.toLowerCase();
    const { every, everyIndex, cased } = this.foldedForms();
    if (!cased || folded.length !== text.length) return this.redact(text);
    const spans: [number, number, string][] = [];
    for (let i = 0; i < every.length; i++) {
      const p = every[i] as string;
      if (p.length > folded.length) continue;
      for (let at = folded.indexOf(p); at !== -1; at = folded.indexOf(p, at + 1)) {
        spans.push([at, at + p.length, this.replacements[everyIndex[i] as number] as string]);
      }
    }
    if (spans.length === 0) return text;
    spans.sort((x, y) => x[0] - y[0] || y[1] - x[1]);
    let out = '';
    let copied = 0;
    let end = -1;
    let labels: string[] = [];
    const close = () => {
      if (end !== -1) out += labels.join('');
    };
    for (const [start, stop, label] of spans) {
      if (start >= end) {
        close();
        out += text.slice(copied, start);
        labels = [label];
        end = stop;
      } else {
        if (!labels.includes(label)) labels.push(label);
        end = Math.max(end, stop);
      }
      copied = end;
    }
    close();
    return out + text.slice(copied);
  }

  /**
   * The forms lower-cased: `all` those of 4 or more characters (occursFolded),
   * `every` one with its index in `patterns` (redactFolded), and `cased`
   * whether any changed (built on first use).
   */
  private folded: { all: string[]; every: string[]; everyIndex: number[]; cased: boolean } | undefined;
  private foldedForms(): { all: string[]; every: string[]; everyIndex: number[]; cased: boolean } {
    if (!this.folded) {
      const folded = { all: [] as string[], every: [] as string[], everyIndex: [] as number[], cased: false };
      this.patterns.forEach((p, i) => {
        const lower = p.toLowerCase();
        folded.every.push(lower);
        folded.everyIndex.push(i);
        if (lower !== p) folded.cased = true;
        if (p.length >= MIN_DERIVED_FORM_LENGTH) folded.all.push(lower);
      });
      this.folded = folded;
    }
    return this.folded;
  }

  /**
   * Redacts every string (keys too) inside a JSON-like value, and every number
   * that is a secret or holds one in its digits: a JSON answer may carry a
   * numeric value as a number (which JSON.parse may round past 15 digits, so a
   * number equal to a numeric secret's counts too). A redacted number becomes
   * the redacted string of its digits.
   */
  redactDeep<T>(value: T): T {
    if (this.buckets.length === 0) return value;
    return this.walk(value) as T;
  }

  private walk(value: unknown): unknown {
    if (typeof value === 'string') return this.redact(value);
    if (typeof value === 'number' || typeof value === 'bigint') {
      const text = String(value);
      const redacted = this.redact(text);
      if (redacted !== text) return redacted;
      return this.numbers.get(Number(value)) ?? value;
    }
    if (Array.isArray(value)) return value.map((v) => this.walk(v));
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) setOwn(out, this.redact(k), this.walk(v));
      return out;
    }
    return value;
  }

  /**
   * Wu–Manber shifts over the forms' first `span` characters: for each block
   * of `block` characters (hashed), how far the scan may move before the
   * block could end a form's first `span` characters. Null when too many
   * blocks say 0.
   */
  private skipTable(block: number, span: number, size: number): Uint8Array | null {
    const shift = uint8Table(size, span - block + 1);
    const mask = size - 1;
    let zeros = 0;
    for (const pattern of this.patterns) {
      for (let j = 0; j + block <= span; j++) {
        const key =
          block === 2
            ? blockKey(pattern.charCodeAt(j), pattern.charCodeAt(j + 1), mask)
            : blockKey3(pattern.charCodeAt(j), pattern.charCodeAt(j + 1), pattern.charCodeAt(j + 2), mask);
        const s = span - block - j;
        if (s < (shift[key] as number)) {
          if (s === 0) zeros++;
          shift[key] = s;
        }
      }
      if (zeros > size * MAX_ZERO_SHIFT_SHARE) return null;
    }
    return shift;
  }

  /**
   * The longest form starting at `i` among bucket `b`'s candidates for the
   * window hash `h` that are longer than `longerThan` (chains list them
   * longest first): its index, NO_FORM, or OUT_OF_BUDGET when a near miss
   * has spent the scan's budget `limit`.
   */
  private longestAt(text: string, i: number, b: Bucket, h: number, longerThan: number, limit: number): number {
    for (let p = b.heads[slot(h, b.mask)] as number; p !== -1; p = b.next[p] as number) {
      if ((this.patterns[p] as string).length <= longerThan) return NO_FORM;
      if (b.hashes[p] !== h) continue;
      if (this.matches(text, i, p)) return p;
      if (this.work > limit) return OUT_OF_BUDGET;
    }
    return NO_FORM;
  }

  /**
   * Whether form `p` starts at `i`; a near miss adds what it cost to `work`.
   * The first characters are compared one by one, so that the usual near
   * miss (a shared prefix such as `-----BEGIN `) is charged what it
   * compared; past them the rest is compared as a slice with ===, at memory
   * speed (startsWith and a charCodeAt loop go one character at a time,
   * 15–80× slower on long forms), and a miss there is charged the form's
   * whole length.
   */
  private matches(text: string, i: number, p: number): boolean {
    const pattern = this.patterns[p] as string;
    const head = Math.min(pattern.length, text.length - i, PREFIX_COMPARED);
    let k = 0;
    while (k < head && text.charCodeAt(i + k) === pattern.charCodeAt(k)) k++;
    if (k === pattern.length) return true;
    if (k < head) {
      this.work += k + 1;
      return false;
    }
    if (text.slice(i, i + pattern.length) === pattern) return true;
    this.work += pattern.length;
    return false;
  }

  /** Appends the text from `copied` to `i`, then form `p`'s replacement, starting a covered span; its end. */
  private replace(text: string, parts: string[], copied: number, i: number, p: number): number {
    if (i > copied) parts.push(text.slice(copied, i));
    const label = this.replacements[p] as string;
    parts.push(label);
    this.spanLabels.length = 0;
    this.spanLabels.push(label);
    return i + (this.patterns[p] as string).length;
  }

  /** Form `p`, found at `i` inside the covered span that ends at `end`, extends it if it runs past. */
  private extend(parts: string[], i: number, p: number, end: number): number {
    const formEnd = i + (this.patterns[p] as string).length;
    if (formEnd <= end) return end;
    const label = this.replacements[p] as string;
    if (!this.spanLabels.includes(label)) {
      this.spanLabels.push(label);
      parts.push(label);
    }
    return formEnd;
  }

  /**
   * Replaces form `p` at `i`, then covers every form that starts inside the
   * replaced span and runs past its end (overlapping occurrences): where the
   * text goes on. Each such extension is charged its length to the budget
   * (a text of back-to-back overlapping occurrences would otherwise verify
   * a whole form at every position); when the budget runs out at `j`, sets
   * `resumeAt` = j and the automaton, which extends spans too, goes on.
   */
  private replaceCovering(text: string, parts: string[], copied: number, i: number, p: number, limit: number): number {
    let end = this.replace(text, parts, copied, i, p);
    const n = text.length;
    for (let j = i + 1; j < end; j++) {
      // The longest form starting at j that runs past `end`, over every window's candidates.
      let best = NO_FORM;
      let bestLength = end - j;
      for (const b of this.buckets) {
        if (j + b.window > n) continue;
        const found = this.longestAt(text, j, b, hashAt(text, j, b.window), bestLength, limit);
        if (found === OUT_OF_BUDGET) {
          this.resumeAt = j;
          return end;
        }
        if (found !== NO_FORM) {
          best = found;
          bestLength = (this.patterns[found] as string).length;
        }
      }
      if (best === NO_FORM) continue;
      end = this.extend(parts, j, best, end);
      this.work += bestLength;
      if (this.work > limit && j + 1 < end) {
        this.resumeAt = j + 1;
        return end;
      }
    }
    return end;
  }

  /** Near-miss characters a scan of `n` characters may compare before the automaton takes over. */
  private budget(n: number): number {
    return this.nearMissBudget.perChar * n + this.nearMissBudget.allowance;
  }

  /*
   * The scans below append the text up to each form and its replacement to
   * `parts` and return how far the text was copied. When the budget runs out
   * at position i — checked after every failed verification, so no path
   * escapes it — they set `resumeAt` = i and stop: no form starts between the
   * copied end and i (the automaton looks at i again). Chains list
   * candidates longest first, so the first that matches is the longest form
   * starting at i.
   */

  private scanSkipping(text: string, b: Bucket, shift: Uint8Array, parts: string[]): number {
    const n = text.length;
    const limit = this.budget(n);
    const window = b.window;
    const span = this.skipSpan; // ≥ window: no form is shorter
    const skipMask = this.skipMask;
    const three = this.skipBlock === 3;
    let copied = 0;
    let i = 0;
    while (i + span <= n) {
      const end = i + span;
      const s = shift[
        three
          ? blockKey3(text.charCodeAt(end - 3), text.charCodeAt(end - 2), text.charCodeAt(end - 1), skipMask)
          : blockKey(text.charCodeAt(end - 2), text.charCodeAt(end - 1), skipMask)
      ] as number;
      if (s !== 0) {
        i += s;
        continue;
      }
      const best = this.longestAt(text, i, b, hashAt(text, i, window), 0, limit);
      if (best === OUT_OF_BUDGET) {
        this.resumeAt = i;
        return copied;
      }
      if (best === NO_FORM) {
        i += 1;
        continue;
      }
      i = copied = this.replaceCovering(text, parts, copied, i, best, limit);
      if (this.resumeAt !== -1) return copied;
    }
    return copied;
  }

  /** Every pattern has the same window, too many forms to skip: a rolling hash. */
  private scanRolling(text: string, b: Bucket, parts: string[]): number {
    const { window, outFactor, mask, heads, next, hashes } = b;
    const n = text.length;
    if (n < window) return 0;
    const limit = this.budget(n);
    let copied = 0;
    let i = 0;
    let h = hashAt(text, 0, window);
    for (;;) {
      // longestAt, written out: this loop runs at every position of the text.
      let best = NO_FORM;
      for (let p = heads[slot(h, mask)] as number; p !== -1; p = next[p] as number) {
        if (hashes[p] !== h) continue;
        if (this.matches(text, i, p)) {
          best = p;
          break;
        }
        if (this.work > limit) {
          this.resumeAt = i;
          return copied;
        }
      }
      if (best !== NO_FORM) {
        i = copied = this.replaceCovering(text, parts, copied, i, best, limit);
        if (this.resumeAt !== -1) return copied;
        if (i + window > n) break;
        h = hashAt(text, i, window);
        continue;
      }
      if (i + window >= n) break;
      h = (Math.imul(h - Math.imul(text.charCodeAt(i), outFactor), BASE) + text.charCodeAt(i + window)) | 0;
      i += 1;
    }
    return copied;
  }

  /** Several windows (some secret forms shorter than 8): one rolling hash each. */
  private scanManyWindows(text: string, parts: string[]): number {
    const n = text.length;
    const limit = this.budget(n);
    const buckets = this.buckets;
    const hs = buckets.map((b) => (n >= b.window ? hashAt(text, 0, b.window) : 0));
    let copied = 0;
    let i = 0;
    while (i < n) {
      let best = -1;
      let bestLength = 0;
      for (let k = 0; k < buckets.length; k++) {
        const b = buckets[k] as Bucket;
        if (i + b.window > n) continue;
        const p = this.longestAt(text, i, b, hs[k] as number, bestLength, limit);
        if (p === OUT_OF_BUDGET) {
          this.resumeAt = i;
          return copied;
        }
        if (p !== NO_FORM) {
          best = p;
          bestLength = (this.patterns[p] as string).length;
        }
      }
      if (best !== -1) {
        i = copied = this.replaceCovering(text, parts, copied, i, best, limit);
        if (this.resumeAt !== -1) return copied;
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
    return copied;
  }

  /** Redacts `text` from `from` on with the automaton; `parts` holds the text up to `copied`. */
  private finishWithAutomaton(text: string, from: number, copiedBefore: number, parts: string[]): string {
    this.stats.automatonScans += 1;
    this.automaton ??= new ReverseAutomaton(this.patterns);
    // Positions where some form starts, last first, each with its longest form.
    const { starts, forms } = this.automaton.formsStartingFrom(text, from);
    let copied = copiedBefore;
    for (let k = starts.length - 1; k >= 0; k--) {
      const i = starts[k] as number;
      // Inside a covered span (one the scan began, too): extends it if it runs past.
      copied =
        i < copied
          ? this.extend(parts, i, forms[k] as number, copied)
          : this.replace(text, parts, copied, i, forms[k] as number);
    }
    if (copied === 0) return text;
    if (copied < text.length) parts.push(text.slice(copied));
    return parts.join('');
  }
}

/**
 * An Aho–Corasick automaton over the reversed forms. Scanning a text from
 * its end towards `from`, the state after reading position i is the longest
 * reversed form prefix that ends the reversed text read so far; the longest
 * whole form on its suffix chain is the longest form *starting* at i. Linear
 * in the text (each step follows at most as many failure links as it moved
 * forward) and in the forms' total length.
 *
 * Transitions live in one open-addressing table keyed by (state, UTF-16
 * code unit), in typed arrays.
 */
class ReverseAutomaton {
  private readonly fail: Int32Array;
  /** The longest form on each state's suffix chain (itself included), or -1. */
  private readonly best: Int32Array;
  private readonly keyState: Int32Array;
  private readonly keyChar: Uint16Array;
  private readonly target: Int32Array;
  private readonly mask: number;

  constructor(patterns: readonly string[]) {
    let total = 1;
    for (const p of patterns) total += p.length;
    let size = 16;
    while (size < total * 2) size *= 2;
    this.mask = size - 1;
    this.keyState = new Int32Array(size).fill(-1);
    this.keyChar = new Uint16Array(size);
    this.target = new Int32Array(size);
    const parent = new Int32Array(total);
    const via = new Uint16Array(total);
    const depth = new Int32Array(total);
    const terminal = new Int32Array(total).fill(-1);
    let states = 1;
    // Patterns are sorted shortest first; a longer one on the same state (impossible:
    // equal reversed strings are equal forms, and forms are distinct) would overwrite.
    patterns.forEach((pattern, index) => {
      let state = 0;
      for (let k = pattern.length - 1; k >= 0; k--) {
        const c = pattern.charCodeAt(k);
        let next = this.go(state, c);
        if (next === -1) {
          next = states++;
          parent[next] = state;
          via[next] = c;
          depth[next] = (depth[state] as number) + 1;
          this.put(state, c, next);
        }
        state = next;
      }
      terminal[state] = index;
    });
    // Failure links are set in breadth-first (depth) order: a counting sort of the states by depth.
    let deepest = 0;
    for (let s = 1; s < states; s++) deepest = Math.max(deepest, depth[s] as number);
    const firstAt = new Int32Array(deepest + 2);
    for (let s = 1; s < states; s++)
      firstAt[(depth[s] as number) + 1] = (firstAt[(depth[s] as number) + 1] as number) + 1;
    for (let d = 1; d < firstAt.length; d++) firstAt[d] = (firstAt[d] as number) + (firstAt[d - 1] as number);
    const order = new Int32Array(states - 1);
    for (let s = 1; s < states; s++) {
      const d = depth[s] as number;
      order[firstAt[d] as number] = s;
      firstAt[d] = (firstAt[d] as number) + 1;
    }
    this.fail = new Int32Array(states);
    this.best = new Int32Array(states).fill(-1);
    for (const state of order) {
      const up = parent[state] as number;
      const c = via[state] as number;
      const f = up === 0 ? 0 : this.step(this.fail[up] as number, c);
      this.fail[state] = f;
      this.best[state] = terminal[state] !== -1 ? (terminal[state] as number) : (this.best[f] as number);
    }
  }

  /** The state after reading `c` in `state`: its transition, or its failure chain's first; the root if none. */
  private step(state: number, c: number): number {
    for (let s = state; ; s = this.fail[s] as number) {
      const next = this.go(s, c);
      if (next !== -1) return next;
      if (s === 0) return 0;
    }
  }

  private go(state: number, c: number): number {
    let s = (Math.imul(state, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b)) & this.mask;
    for (;;) {
      const key = this.keyState[s] as number;
      if (key === -1) return -1;
      if (key === state && this.keyChar[s] === c) return this.target[s] as number;
      s = (s + 1) & this.mask;
    }
  }

  private put(state: number, c: number, next: number): void {
    let s = (Math.imul(state, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b)) & this.mask;
    while (this.keyState[s] !== -1) s = (s + 1) & this.mask;
    this.keyState[s] = state;
    this.keyChar[s] = c;
    this.target[s] = next;
  }

  /**
   * Every position from `from` on where a form starts, from the last to the
   * first, with the longest form starting there (memory in proportion to
   * the matches, not to the text).
   */
  formsStartingFrom(text: string, from: number): { starts: number[]; forms: number[] } {
    const starts: number[] = [];
    const forms: number[] = [];
    let state = 0;
    for (let i = text.length - 1; i >= from; i--) {
      state = this.step(state, text.charCodeAt(i));
      const form = this.best[state] as number;
      if (form !== -1) {
        starts.push(i);
        forms.push(form);
      }
    }
    return { starts, forms };
  }
}
