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
  const padded = Buffer.concat([Buffer.alloc(shift), bytes, Buffer.alloc(2)]);
  const text = padded.toString('base64');
  const startBit = shift * 8;
  const endBit = (shift + bytes.length) * 8;
  const first = Math.ceil(startBit / 6);
  const last = Math.floor(endBit / 6); // exclusive
  return last > first ? text.slice(first, last) : '';
}

function htmlEscape(value: string, quote: string, apos: string): string {
  return value.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? quote : apos,
  );
}

function jsonAsciiEscape(value: string): string {
  return JSON.stringify(value)
    .slice(1, -1)
    .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function valueForms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const percent = encodeURIComponent(value);
  const b64 = bytes.toString('base64');
  const json = JSON.stringify(value).slice(1, -1);
  const forms = [
    value,
    // application/x-www-form-urlencoded as URLSearchParams writes it (also escapes ' ! ( ) ~).
    new URLSearchParams([['', value]]).toString().slice(1),
    // UTF-8 bytes read as latin1, as HTTP header values are decoded.
    bytes.toString('latin1'),
    json,
    jsonAsciiEscape(value),
    json.replaceAll('/', '\\/'),
    // A JSON string holding JSON (an echoed body embedded in another): escaped twice.
    JSON.stringify(json).slice(1, -1),
    percent,
    percent.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    percent.replaceAll('%20', '+'),
    htmlEscape(value, '&quot;', '&#39;'),
    htmlEscape(value, '&#34;', '&#x27;'),
    htmlEscape(value, '&quot;', '&apos;'),
    b64,
    b64.replace(/=+$/, ''),
    bytes.toString('base64url'),
    bytes.toString('hex'),
    bytes.toString('hex').toUpperCase(),
  ];
  for (const shift of [0, 1, 2] as const) {
    const core = base64Core(bytes, shift);
    forms.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return forms;
}

/** All distinct forms of `value` worth matching, longest first. */
export function secretForms(value: string): string[] {
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
  return [...forms].sort((a, b) => b.length - a.length);
}
