/**
 * Single-byte charsets, as WHATWG TextDecoder reads them: the character each
 * byte stands for, and back. Used to read an answer in the charset it
 * declares (executor.ts bodyText) and to know how a value looks when an
 * answer in such a charset is read as UTF-8 (secret-forms.ts).
 */
import { TextDecoder } from 'node:util';

export interface SingleByte {
  /** The character each byte reads as. */
  chars: string[];
  /** The byte of each character. */
  bytes: Map<string, number>;
  /** `raw` read in this charset. */
  decode(raw: Uint8Array): string;
}

/** windows-1252 at 0x80–0x9F (WHATWG index; the five unassigned bytes map to their C1 control). */
const WINDOWS_1252_C1 = [...'€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ'];

/** Charsets an answer is commonly in besides UTF-8 (every byte assigned, so each one is a table). */
export const COMMON_SINGLE_BYTE = [
  'windows-1250',
  'windows-1251',
  'windows-1252',
  'windows-1254',
  'koi8-r',
  'koi8-u',
  'ibm866',
  'iso-8859-2',
  'iso-8859-5',
  'iso-8859-15',
  'macintosh',
  'x-mac-cyrillic',
];

const C1 = /[\u0080-\u009f]/g;

/** By label, as asked for (a Content-Type's, or a WHATWG name). */
const charsets = new Map<string, SingleByte | null>();

/**
 * The single-byte charset a label names (`windows-1251`, `latin1`…), or null
 * when it names UTF-8, a multi-byte charset or nothing this Node.js decodes.
 */
export function singleByte(label: string): SingleByte | null {
  let charset = charsets.get(label);
  if (charset === undefined) {
    charset = null;
    try {
      const decoder = new TextDecoder(label);
      const chars: string[] = [];
      for (let b = 0; b < 256; b++) chars.push(decoder.decode(Uint8Array.of(b)));
      // Node 20's windows-1252 decoder (ISO-8859-1 and US-ASCII labels included) reads 0x80–0x9F
      // as C1 controls, as ISO-8859-1 does; the WHATWG encoding has € ‚ ƒ „ … there.
      const fixC1 = decoder.encoding === 'windows-1252';
      if (fixC1) for (let b = 0x80; b < 0xa0; b++) chars[b] = WINDOWS_1252_C1[b - 0x80] as string;
      const bytes = new Map(chars.map((c, b) => [c, b]));
      // Single-byte: every byte a character of its own (multi-byte charsets, UTF-16, are not).
      if (chars.every((c) => c.length === 1) && bytes.size === 256) {
        const decode = fixC1
          ? (raw: Uint8Array) => decoder.decode(raw).replace(C1, (c) => chars[c.charCodeAt(0)] as string)
          : (raw: Uint8Array) => decoder.decode(raw);
        charset = { chars, bytes, decode };
      }
    } catch {
      // A label this Node.js has no decoder for.
    }
    if (charsets.size < 64) charsets.set(label, charset);
  }
  return charset;
}

/** `text` in a single-byte charset, or null when one of its characters has no byte there. */
export function encodeSingleByte(charset: SingleByte, text: string): Buffer | null {
  const out = Buffer.allocUnsafe(text.length);
  for (let i = 0; i < text.length; i++) {
    const byte = charset.bytes.get(text[i] as string);
    if (byte === undefined) return null;
    out[i] = byte;
  }
  return out;
}
