/**
 * Every encoded form of a secret value that a redactor must catch (SPEC §3
 * "Redaction"): raw; JSON-string-escaped (once, or twice as JSON inside a
 * JSON string; also as Go writes JSON, with `\u0026` for `&`, and with
 * upper-case `\uXXXX`; as Gson writes it, with `\u003d` for `=`); percent-encoded (and form `+`; also RFC 3986's
 * strict set as Python's `quote`, Go's `QueryEscape` and PHP's
 * `rawurlencode` write it, and `encodeURI`'s); HTML/XML-escaped; base64 and
 * base64url, also at the three byte alignments inside a longer base64
 * string, padded or not; hex in both cases; the value without surrounding
 * white space (HTTP drops it from a header value) when 8 or more characters
 * remain; and for a multi-line value each trimmed line of 8 or more
 * characters. Also PHP's `\/` with `\uXXXX`, and the value's bytes in
 * another charset as a UTF-8 decoder reads them (an answer in another
 * charset that does not say so, or says one Hush does not read it in):
 * ISO-8859-1, the common single-byte charsets (windows-1251…), the common
 * multi-byte ones (Shift_JIS, EUC-JP, GBK, GB18030, Big5, EUC-KR: a CJK
 * value reads as runs of U+FFFD with its ASCII part as it is), ISO-2022-JP
 * and UTF-16 — each as the bytes read alone and as they read whatever
 * bytes surround them (misdecodedForms).
 */

import {
  COMMON_MULTI_BYTE,
  COMMON_SINGLE_BYTE,
  encodeMultiByte,
  encodeSingleByte,
  iso2022Jp,
  singleByte,
  TO_ASCII,
  TO_JIS,
} from './charsets.js';

/** Derived forms shorter than this would blank out ordinary text; the raw value is always kept. */
export const MIN_DERIVED_FORM_LENGTH = 4;
export const MIN_LINE_LENGTH = 8;

const HTML_SPECIAL = /[&<>"']/;
/** What JSON.stringify escapes: quote, backslash, control characters, (lone) surrogates. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters JSON escapes
const JSON_SPECIAL = /["\\\u0000-\u001f\ud800-\udfff]/;
/** What the ASCII-only JSON escaping (`\\uXXXX`) rewrites. */
const JSON_ASCII_ESCAPED = /[\u007f-\uffff]/;
/** Characters encodeURIComponent leaves alone but URLSearchParams escapes. */
const FORM_EXTRA = /[!'()~]/g;

function htmlEscape(value: string, quote: string, apos: string): string {
  return value.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? quote : apos,
  );
}

function jsonAsciiEscape(json: string): string {
  return json.replace(/[\u007f-\uffff]/g, unicodeEscape);
}

/**
 * Characters that every encoding below except base64 and hex leaves as they
 * are: encodeURIComponent and form encoding, JSON and HTML escaping alike.
 */
const PLAIN = /^[A-Za-z0-9._-]*$/;
/** What RFC 3986's strict percent-encoding escapes beyond encodeURIComponent. */
const RFC3986_EXTRA = /[!'()*]/g;
/** What Go's encoding/json escapes beyond JSON.stringify (HTML-safe output). */
const GO_JSON_EXTRA = /[&<>\u2028\u2029]/g;
const DOTNET_JSON_EXTRA = /[&<>'+`]/g;
/** What Gson (Java; HTML-safe by default) escapes beyond JSON.stringify: `=` of base64 padding among them. */
const GSON_JSON_EXTRA = /[<>&='\u2028\u2029]/g;

const hexEscape = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`;
const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * The base64 and hex forms, all from one buffer: the value's UTF-8 bytes
 * after two zero bytes, encoded from offset 2, 1 and 0 for the three
 * alignments (one encoding call each instead of a buffer per alignment). The
 * buffer is zeroed before it is let go.
 */
function binaryForms(value: string, add: (form: string) => void): void {
  const length = Buffer.byteLength(value, 'utf8');
  // From the shared pool: a buffer of its own would cost more than the encodings.
  const buffer = Buffer.allocUnsafe(length + 2);
  buffer[0] = 0;
  buffer[1] = 0;
  buffer.write(value, 2, 'utf8');
  try {
    const b64 = buffer.toString('base64', 2);
    const b64url = buffer.toString('base64url', 2);
    const hex = buffer.toString('hex', 2);
    add(b64);
    add(b64url);
    add(hex);
    add(hex.toUpperCase());
    if (b64.endsWith('=')) add(b64.replace(/=+$/, ''));
    // The characters fixed by the value's bits alone, when the value starts 0, 1 or 2 bytes
    // into a longer base64-encoded byte string (at 0, the leading part of the encodings above).
    for (const shift of [0, 1, 2]) {
      const first = Math.ceil((shift * 8) / 6);
      const last = Math.floor(((shift + length) * 8) / 6);
      if (last <= first) continue;
      add((shift === 0 ? b64 : buffer.toString('base64', 2 - shift)).slice(first, last));
      add((shift === 0 ? b64url : buffer.toString('base64url', 2 - shift)).slice(first, last));
    }
    if (length !== value.length) add(buffer.toString('latin1', 2)); // UTF-8 bytes read as latin1 (header decoding)
  } finally {
    buffer.fill(0);
  }
}

const NOT_ASCII = /[\u0080-\uffff]/;
const NUL = String.fromCharCode(0);

/**
 * A mis-decoded form worth matching: with 4 or more characters besides U+FFFD
 * and NUL. One that is (nearly) all replacement characters shows nothing of
 * the value, and would match any run of stray bytes — redacting unrelated
 * binary answers and telling whoever controls one the value's length.
 */
function tellsSomething(form: string): boolean {
  // Counted in UTF-16 units, as every form's length is (MIN_DERIVED_FORM_LENGTH).
  let told = 0;
  for (let i = 0; i < form.length; i++) {
    const c = form[i];
    if (c !== '\ufffd' && c !== NUL && ++told >= MIN_DERIVED_FORM_LENGTH) return true;
  }
  return false;
}

/** Whether a byte continues a UTF-8 sequence (10xxxxxx): a decoder may join it to the bytes before it. */
const continues = (b: number) => (b & 0xc0) === 0x80;

/**
 * A value's bytes in another charset as a UTF-8 decoder reads them — how
 * they read alone, and how they read whatever bytes come before and after
 * them: a lead byte just before can take the value's first continuation
 * bytes into one character, and the value's last, unfinished sequence can
 * take the bytes after it (both then read otherwise than alone, and a form
 * that starts or ends there would not match). So also the reading from the
 * first byte a decoder starts afresh at (any but a continuation byte) up to
 * a last unfinished sequence: every ASCII byte is in it.
 */
function misread(bytes: Buffer, keep: (form: string) => void): void {
  keep(bytes.toString('utf8'));
  misreadInContext(bytes, keep);
}

/** The part of misread that reads the same whatever surrounds the bytes, when it is not all of them. */
function misreadInContext(bytes: Buffer, keep: (form: string) => void): void {
  let start = 0;
  while (start < bytes.length && continues(bytes[start] as number)) start++;
  let last = bytes.length - 1;
  while (last >= start && continues(bytes[last] as number)) last--;
  let end = bytes.length;
  if (last >= start) {
    const lead = bytes[last] as number;
    // Bytes in the sequence it starts (C0, C1, F5–FF start none: each reads as U+FFFD alone).
    const length = lead >= 0xf5 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc2 ? 2 : 1;
    if (last + length > bytes.length) end = last;
  }
  if (start > 0 || end < bytes.length) keep(bytes.toString('utf8', start, end));
}

/**
 * Each byte string a non-ASCII value is written as in a charset other than
 * UTF-8 that an answer may be in, with the charset's name: its ISO-8859-1
 * bytes (a header value as it went out, echoed raw), and its bytes in each
 * common single-byte and multi-byte charset that can write all its
 * characters. Each is zeroed once `visit` returns.
 */
function eachForeignEncoding(value: string, visit: (bytes: Buffer, charset: string) => void): void {
  const seen = (bytes: Buffer, charset: string) => {
    try {
      visit(bytes, charset);
    } finally {
      bytes.fill(0);
    }
  };
  seen(Buffer.from(value, 'latin1'), 'iso-8859-1');
  for (const name of COMMON_SINGLE_BYTE) {
    const charset = singleByte(name);
    const bytes = charset && encodeSingleByte(charset, value);
    if (bytes) seen(bytes, name);
  }
  for (const name of COMMON_MULTI_BYTE) {
    const bytes = encodeMultiByte(name, value);
    if (bytes) seen(bytes, name);
  }
}

/**
 * The value's bytes in another encoding, read as UTF-8 (how Hush reads a
 * body that declares no other charset it can read, executor.ts bodyText):
 * its ISO-8859-1 bytes, its bytes in each common single-byte charset
 * (windows-1251, koi8-r, windows-1252…) and multi-byte charset (Shift_JIS,
 * EUC-JP, GBK, GB18030, Big5, EUC-KR) it can be written in — what a decoder
 * makes of those bytes depends on the bytes, so each is computed, not
 * guessed —, alone and whatever bytes surround them (misread); its
 * ISO-2022-JP bytes (seven bits: they read as ASCII), with and without the
 * switches into and out of JIS X 0208 at its ends (text before it may have
 * switched already, text after it may not switch back); and its UTF-16
 * bytes, little- and big-endian (an ASCII value reads as its characters with
 * NULs between). Only forms that still show some of the value count
 * (tellsSomething). An ASCII value has the UTF-16 forms only: in every other
 * charset its bytes are its UTF-8 bytes.
 */
function misdecodedForms(value: string, add: (form: string) => void): void {
  const keep = (form: string) => {
    if (tellsSomething(form)) add(form);
  };
  const utf16 = Buffer.from(value, 'utf16le');
  if (NOT_ASCII.test(value)) {
    eachForeignEncoding(value, (bytes, charset) => {
      misread(bytes, keep);
      const jis = charset === 'euc-jp' && iso2022Jp(value, bytes);
      if (jis) {
        keep(jis);
        const from = jis.startsWith(TO_JIS) ? TO_JIS.length : 0;
        const to = jis.endsWith(TO_ASCII) ? jis.length - TO_ASCII.length : jis.length;
        if (from > 0 || to < jis.length) keep(jis.slice(from, to));
      }
    });
    // Read alone just below (with a NUL less at the end, or at the start).
    misreadInContext(utf16, keep);
    misreadInContext(Buffer.from(utf16).swap16(), keep);
  }
  const le = utf16.toString('utf8');
  keep(le.endsWith(NUL) ? le.slice(0, -1) : le);
  const be = utf16.swap16().toString('utf8');
  keep(be.startsWith(NUL) ? be.slice(1) : be);
}

/**
 * Whether `bytes` hold a non-ASCII value written in a charset other than
 * UTF-8 (eachForeignEncoding, UTF-16LE and BE): 4 bytes or more, exactly.
 * For a body read in a charset it declares, taken back to its bytes: a
 * value there in yet another charset would be spelt by characters no form
 * matches, yet give the value back to whoever writes them in that charset
 * and reads the bytes in the other. (An ASCII value's bytes, and UTF-8
 * bytes, show in the bytes' UTF-8 reading.)
 */
export function holdsForeignEncoding(values: Iterable<string>, bytes: Buffer): boolean {
  for (const value of values) {
    if (!NOT_ASCII.test(value)) continue;
    let found = false;
    const look = (encoded: Buffer) => {
      if (!found && encoded.length >= MIN_DERIVED_FORM_LENGTH && bytes.includes(encoded)) found = true;
    };
    eachForeignEncoding(value, look);
    const utf16 = Buffer.from(value, 'utf16le');
    look(utf16);
    look(utf16.swap16());
    utf16.fill(0);
    if (found) return true;
  }
  return false;
}

/**
 * The forms of one value, each passed to `add`. Most credentials are
 * printable ASCII without quotes or markup, and most encodings leave such a
 * value unchanged: those are not computed again (the result is the same set
 * either way).
 */
function valueForms(value: string, add: (form: string) => void): void {
  add(value);
  binaryForms(value, add);
  misdecodedForms(value, add);
  if (PLAIN.test(value)) return; // every other encoding gives the value itself
  const percent = encodeURIComponent(value);
  add(percent);
  const json = JSON_SPECIAL.test(value) ? JSON.stringify(value).slice(1, -1) : value;
  if (json !== value) {
    add(json);
    // A JSON string holding JSON (an echoed body embedded in another): escaped twice.
    add(JSON.stringify(json).slice(1, -1));
  }
  const ascii = JSON_ASCII_ESCAPED.test(json) ? jsonAsciiEscape(json) : json;
  if (ascii !== json) add(ascii);
  // The same with upper-case hex in its \u escapes (Java and .NET serialisers write them so).
  const asciiUpper = ascii.includes('\\u')
    ? ascii.replace(/\\u[0-9a-f]{4}/g, (m) => m.toUpperCase().replace('\\U', '\\u'))
    : ascii;
  if (asciiUpper !== ascii) add(asciiUpper);
  const go = json.replace(GO_JSON_EXTRA, unicodeEscape);
  if (go !== json) add(go);
  // .NET's System.Text.Json (ASP.NET Core's default encoder): also " & < > ' + ` as \u00XX,
  // every escape's hex in upper case.
  const dotnet = ascii
    .replaceAll('\\"', '\\u0022')
    .replace(DOTNET_JSON_EXTRA, unicodeEscape)
    .replace(/\\u[0-9a-f]{4}/g, (m) => `\\u${m.slice(2).toUpperCase()}`);
  if (dotnet !== json) add(dotnet);
  // Gson's default (HTML-safe) writer: < > & = ' as \u00XX in lower-case hex, non-ASCII as is.
  const gson = json.replace(GSON_JSON_EXTRA, unicodeEscape);
  if (gson !== json) add(gson);
  if (json.includes('/')) {
    // `\/` as PHP's json_encode writes it by default — with \uXXXX for non-ASCII, too.
    for (const form of [json, ascii, asciiUpper]) add(form.replaceAll('/', '\\/'));
  }
  if (percent.length !== value.length) {
    // Lower-case hex, and form encoding's `+` for spaces.
    add(percent.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
    add(percent.replaceAll('%20', '+'));
  }
  // application/x-www-form-urlencoded as URLSearchParams writes it: also escapes ! ' ( ) ~.
  add(percent.replace(FORM_EXTRA, hexEscape).replaceAll('%20', '+'));
  // RFC 3986's unreserved set only (Python's quote keeps "/", Go's QueryEscape writes " " as "+").
  const strict = percent.replace(RFC3986_EXTRA, hexEscape);
  add(strict);
  add(strict.replaceAll('%2F', '/'));
  add(strict.replaceAll('%20', '+'));
  add(encodeURI(value));
  if (HTML_SPECIAL.test(value)) {
    add(htmlEscape(value, '&quot;', '&#39;'));
    add(htmlEscape(value, '&#34;', '&#x27;'));
    add(htmlEscape(value, '&quot;', '&apos;'));
  }
}

/** Forms a list holds before it keeps an index too (a linear check is cheaper below that). */
const LINEAR_DISTINCT = 32;

/** All distinct forms of `value` worth matching, in no particular order. */
export function secretFormList(value: string): string[] {
  const forms: string[] = [];
  // Most values have a dozen forms or fewer: comparing them is cheaper than
  // hashing each new string into a set. Many-line values get an index.
  let index: Set<string> | undefined;
  const add = (form: string) => {
    if (form.length < MIN_DERIVED_FORM_LENGTH && form !== value) return;
    if (index) {
      if (index.has(form)) return;
      index.add(form);
    } else {
      if (forms.includes(form)) return;
      if (forms.length === LINEAR_DISTINCT) index = new Set(forms).add(form);
    }
    forms.push(form);
  };
  valueForms(value, add);
  const trimmed = value.trim();
  if (trimmed !== value && trimmed.length >= MIN_LINE_LENGTH) valueForms(trimmed, add);
  if (/[\r\n]/.test(value)) {
    for (const line of value.split(/\r\n|\r|\n/)) {
      const trimmed = line.trim();
      if (trimmed.length >= MIN_LINE_LENGTH) valueForms(trimmed, add);
    }
  }
  return forms;
}

/** All distinct forms of `value` worth matching, longest first. */
export function secretForms(value: string): string[] {
  return secretFormList(value).sort((a, b) => b.length - a.length);
}
