/**
 * JSON numbers as their text: JSON.parse turns 9007199254740993 into …992,
 * 1e400 into Infinity (null once written) and 1.50 into 1.5. A block's JSON
 * body goes out as its author wrote it (`keepNumbers`), and a captured
 * integer keeps every digit (`parseJsonExact`) — an id rounded names
 * another record.
 */
import { randomBytes } from 'node:crypto';
import { setOwn } from './json-path.js';

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Whether JSON.parse would write `token` back differently. */
const rewritten = (token: string) => JSON.stringify(JSON.parse(token)) !== token;

/**
 * Whether `token` is an integer that a JavaScript number would not write back
 * digit for digit (9007199254740993 reads as …992; past 10^21 it writes as
 * 1e+21): an id that a template would then write wrong. Leading zeros are
 * not digits that count.
 */
export function inexactInteger(token: string): boolean {
  if (!/^-?\d{16,}$/.test(token)) return false; // up to 15 digits every integer is held and written exactly
  const digits = token.replace(/^(-?)0+(?=\d)/, '$1');
  return String(Number(digits)) !== digits;
}

export interface KeptNumbers {
  /** The JSON with each kept number as a placeholder string. */
  text: string;
  /** Rendered JSON with each placeholder (a JSON string) back as its number's text. */
  restore(json: string): string;
  /** The kept number's text when `value` is a placeholder. */
  original(value: string): string | undefined;
  /** Whether any number was kept. */
  readonly kept: boolean;
}

/**
 * `source`'s numbers that `keep` picks (by default every one JavaScript would
 * not write back the same) as placeholder strings — a per-call random tag no
 * value can know — so the JSON parses and is written back without them
 * changing; `restore` and `original` give their text back.
 */
export function keepNumbers(source: string, keep: (token: string) => boolean = rewritten): KeptNumbers {
  const kept: string[] = [];
  let tag: string | undefined;
  let text = '';
  let copied = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source.charCodeAt(i);
    if (c === 0x22) {
      // Skip a string: to its closing quote, past escapes.
      for (i++; i < source.length && source.charCodeAt(i) !== 0x22; i++) if (source.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER.lastIndex = i;
      const token = NUMBER.exec(source)?.[0];
      if (!token) continue;
      if (keep(token)) {
        tag ??= `\u0000${randomBytes(8).toString('hex')}:`;
        text += source.slice(copied, i) + JSON.stringify(`${tag}${kept.length}`);
        kept.push(token);
        copied = i + token.length;
      }
      i += token.length - 1;
    }
  }
  if (tag === undefined) return { text: source, restore: (json) => json, original: () => undefined, kept: false };
  const prefix = tag;
  text += source.slice(copied);
  const placeholder = new RegExp(`"${JSON.stringify(prefix).slice(1, -1).replaceAll('\\', '\\\\')}(\\d+)"`, 'g');
  return {
    text,
    restore: (json) => json.replace(placeholder, (_, n: string) => kept[Number(n)] as string),
    original: (value) => (value.startsWith(prefix) ? kept[Number(value.slice(prefix.length))] : undefined),
    kept: true,
  };
}

/**
 * JSON text parsed as JSON.parse does, except that an integer a JavaScript
 * number cannot hold exactly comes out as a string of its digits (what a
 * text variable holds, what a template writes). Throws as JSON.parse does.
 */
export function parseJsonExact(text: string): unknown {
  // Most answers hold no run of 16 digits: nothing to keep.
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  const numbers = keepNumbers(text, inexactInteger);
  const parsed: unknown = JSON.parse(numbers.text);
  if (!numbers.kept) return parsed;
  if (typeof parsed === 'string') return numbers.original(parsed) ?? parsed;
  // In place (the value is this call's own), without recursion: an answer may nest deep.
  const stack: unknown[] = [parsed];
  while (stack.length > 0) {
    const current = stack.pop();
    if (current === null || typeof current !== 'object') continue;
    const record = current as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const item = record[key];
      if (typeof item === 'string') {
        const digits = numbers.original(item);
        if (digits !== undefined) setOwn(record, key, digits);
      } else stack.push(item);
    }
  }
  return parsed;
}
