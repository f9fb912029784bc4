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
 * characters. Also PHP's `\/` with `\uXXXX`, and the value's ISO-8859-1 and
 * UTF-16 bytes as read by a UTF-8 decoder (an answer in another charset that
 * does not say so).
 */

import { COMMON_SINGLE_BYTE, encodeSingleByte, singleByte } from './charsets.js';

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

/**
 * The value's bytes in another encoding, read as UTF-8 (how Hush reads a
 * body that declares no single-byte charset, executor.ts bodyText): its
 * ISO-8859-1 bytes (a header value as it went out, echoed raw), its bytes in
 * each common single-byte charset it can be written in (windows-1251,
 * koi8-r, windows-1252…: what a decoder makes of those bytes depends on the
 * bytes, so each is computed, not guessed), and its UTF-16 bytes, little-
 * and big-endian (an ASCII value reads as its characters with NULs between).
 * Only forms that still show some of the value count (tellsSomething).
 */
function misdecodedForms(value: string, add: (form: string) => void): void {
  const keep = (form: string) => {
    if (tellsSomething(form)) add(form);
  };
  if (NOT_ASCII.test(value)) {
    keep(Buffer.from(value, 'latin1').toString('utf8'));
    for (const name of COMMON_SINGLE_BYTE) {
      const charset = singleByte(name);
      const bytes = charset && encodeSingleByte(charset, value);
      if (bytes) keep(bytes.toString('utf8'));
    }
  }
  const utf16 = Buffer.from(value, 'utf16le');
  const le = utf16.toString('utf8');
  keep(le.endsWith(NUL) ? le.slice(0, -1) : le);
  const be = utf16.swap16().toString('utf8');
  keep(be.startsWith(NUL) ? be.slice(1) : be);
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
