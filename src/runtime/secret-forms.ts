/**
 * Every encoded form of a secret value that a redactor must catch (SPEC §3
 * "Redaction"): raw; JSON-string-escaped (once, or twice as JSON inside a
 * JSON string); percent-encoded (and form `+`);
 * HTML/XML-escaped; base64 and base64url, also at the three byte alignments
 * inside a longer base64 string, padded or not; hex in both cases; and for a
 * multi-line value each trimmed line of 8 or more characters.
 */

/** Derived forms shorter than this would blank out ordinary text; the raw value is always kept. */
export const MIN_DERIVED_FORM_LENGTH = 4;
export const MIN_LINE_LENGTH = 8;

/**
 * The base64 characters determined by the value's bytes alone when the value
 * starts `shift` bytes (0–2) into a longer base64-encoded byte string.
 */
export function base64Core(bytes: Buffer, shift: 0 | 1 | 2): string {
  const padded = Buffer.alloc(shift + bytes.length + 2);
  bytes.copy(padded, shift);
  const text = padded.toString('base64');
  const startBit = shift * 8;
  const endBit = (shift + bytes.length) * 8;
  const first = Math.ceil(startBit / 6);
  const last = Math.floor(endBit / 6); // exclusive
  return last > first ? text.slice(first, last) : '';
}

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
  return json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The forms of one value. Most credentials are printable ASCII without
 * quotes or markup, and most encodings leave such a value unchanged: those
 * are not computed again (the result is the same set either way).
 */
function valueForms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const percent = encodeURIComponent(value);
  const b64 = bytes.toString('base64');
  const hex = bytes.toString('hex');
  const forms = [value, percent, b64, bytes.toString('base64url'), hex, hex.toUpperCase()];
  if (b64.endsWith('=')) forms.push(b64.replace(/=+$/, ''));
  if (bytes.length !== value.length) forms.push(bytes.toString('latin1')); // UTF-8 bytes read as latin1 (header decoding)
  const json = JSON_SPECIAL.test(value) ? JSON.stringify(value).slice(1, -1) : value;
  if (json !== value) {
    forms.push(json);
    // A JSON string holding JSON (an echoed body embedded in another): escaped twice.
    forms.push(JSON.stringify(json).slice(1, -1));
  }
  if (JSON_ASCII_ESCAPED.test(json)) forms.push(jsonAsciiEscape(json));
  if (json.includes('/')) forms.push(json.replaceAll('/', '\\/'));
  if (percent.length !== value.length) {
    // Lower-case hex, and form encoding's `+` for spaces.
    forms.push(
      percent.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
      percent.replaceAll('%20', '+'),
    );
  }
  // application/x-www-form-urlencoded as URLSearchParams writes it: also escapes ! ' ( ) ~.
  forms.push(
    percent.replace(FORM_EXTRA, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replaceAll('%20', '+'),
  );
  if (HTML_SPECIAL.test(value)) {
    forms.push(
      htmlEscape(value, '&quot;', '&#39;'),
      htmlEscape(value, '&#34;', '&#x27;'),
      htmlEscape(value, '&quot;', '&apos;'),
    );
  }
  const core0 = b64.slice(0, Math.floor((bytes.length * 8) / 6)); // shift 0: the leading characters of b64
  forms.push(core0, core0.replaceAll('+', '-').replaceAll('/', '_'));
  for (const shift of [1, 2] as const) {
    const core = base64Core(bytes, shift);
    forms.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return forms;
}

/** All distinct forms of `value` worth matching, in no particular order. */
export function secretFormSet(value: string): Set<string> {
  const forms = new Set<string>();
  if (value.length > 0) forms.add(value);
  const sources = [value];
  if (/[\r\n]/.test(value)) {
    for (const line of value.split(/\r\n|\r|\n/)) {
      const trimmed = line.trim();
      if (trimmed.length >= MIN_LINE_LENGTH) sources.push(trimmed);
    }
  }
  for (const source of sources) {
    for (const form of valueForms(source)) {
      if (form.length >= MIN_DERIVED_FORM_LENGTH || form === value) forms.add(form);
    }
  }
  return forms;
}

/** All distinct forms of `value` worth matching, longest first. */
export function secretForms(value: string): string[] {
  return [...secretFormSet(value)].sort((a, b) => b.length - a.length);
}
