/**
 * Charsets other than UTF-8, as Node.js reads them (WHATWG labels): the
 * single-byte ones as tables (the character each byte stands for, and
 * back), the multi-byte ones (Shift_JIS, GBK, UTF-16…) as Node's
 * TextDecoder reads them and iconv-lite writes them. Used to read an answer
 * in the charset it declares (executor.ts bodyText) and to know how a value
 * looks when an answer in such a charset is read as UTF-8 (secret-forms.ts).
 */
import { TextDecoder } from 'node:util';
import iconv from 'iconv-lite';

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

/**
 * Multi-byte charsets an answer is commonly in besides UTF-8 and UTF-16, by
 * their WHATWG names (GB18030 too: it writes € otherwise than GBK, and
 * writes what GBK cannot).
 */
export const COMMON_MULTI_BYTE = ['shift_jis', 'euc-jp', 'gbk', 'gb18030', 'big5', 'euc-kr'];

export interface MultiByte {
  /** Its WHATWG name (`shift_jis`, `utf-16le`…). */
  name: string;
  /** `raw` read in this charset (a byte order mark kept as U+FEFF, so the text goes back to the same bytes). */
  decode(raw: Uint8Array): string;
  /** `text` in this charset; a character it cannot write becomes "?". */
  encode(text: string): Buffer;
}

/** By label, as asked for (a Content-Type's). */
const multiBytes = new Map<string, MultiByte | null>();

/**
 * The multi-byte charset a label names (`shift_jis`, `gb2312`, `utf-16`…)
 * when Node.js reads it and iconv-lite writes it, or null: UTF-8, a
 * single-byte charset, ISO-2022-JP (iconv-lite has no encoder for it), or a
 * label neither knows.
 */
export function multiByte(label: string): MultiByte | null {
  let charset = multiBytes.get(label);
  if (charset === undefined) {
    charset = null;
    try {
      const decoder = new TextDecoder(label, { ignoreBOM: true });
      const name = decoder.encoding;
      if (name !== 'utf-8' && iconv.encodingExists(name) && !singleByte(label)) {
        charset = { name, decode: (raw) => decoder.decode(raw), encode: (text) => iconv.encode(text, name) };
      }
    } catch {
      // A label this Node.js has no decoder for.
    }
    if (multiBytes.size < 64) multiBytes.set(label, charset);
  }
  return charset;
}

const QUESTION_MARK = 0x3f;

/**
 * `text` in a multi-byte charset (a COMMON_MULTI_BYTE name), or null when
 * one of its characters has no code there. iconv-lite writes "?" for such a
 * character: more "?" bytes out than "?" characters in means one was
 * missing (0x3F is never the second byte of a character in these charsets).
 */
export function encodeMultiByte(name: string, text: string): Buffer | null {
  const bytes = iconv.encode(text, name);
  let marks = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === QUESTION_MARK) marks--;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === QUESTION_MARK) marks++;
  if (marks === 0) return bytes;
  bytes.fill(0);
  return null;
}

const ESC = '\u001b';
/** ISO-2022-JP's switches: to JIS X 0208, and back to ASCII. */
export const TO_JIS = `${ESC}$B`;
export const TO_ASCII = `${ESC}(B`;

/**
 * `text` in ISO-2022-JP as the WHATWG encoder writes it from ASCII — seven
 * bits, so each byte as the ASCII character a UTF-8 decoder reads it as —
 * or null when a character needs more than ASCII and JIS X 0208 (half-width
 * katakana, JIS X 0212, ¥ and ‾ of JIS-Roman) or has no code. Built from
 * its EUC-JP bytes (JIS X 0208 with the high bit set; given when already
 * made): iconv-lite has no ISO-2022-JP encoder.
 */
export function iso2022Jp(text: string, eucJp?: Buffer): string | null {
  if (/[\u00a5\u203e]/.test(text)) return null;
  const euc = eucJp ?? encodeMultiByte('euc-jp', text);
  if (!euc) return null;
  let out = '';
  let jis = false;
  try {
    for (let i = 0; i < euc.length; i++) {
      const b = euc[i] as number;
      if (b < 0x80) {
        if (jis) out += TO_ASCII;
        jis = false;
        out += String.fromCharCode(b);
      } else if (b >= 0xa1 && b <= 0xfe && i + 1 < euc.length) {
        if (!jis) out += TO_JIS;
        jis = true;
        out += String.fromCharCode(b & 0x7f, (euc[++i] as number) & 0x7f);
      } else {
        return null; // 0x8E half-width katakana, 0x8F JIS X 0212
      }
    }
  } finally {
    if (!eucJp) euc.fill(0);
  }
  return jis ? out + TO_ASCII : out;
}
