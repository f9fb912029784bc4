/**
 * Custom variable types and their values (SPEC §1): text, number, boolean,
 * datetime, map, list. Values are checked against the type and refused when
 * they hold the protected secret syntax — a secret never lives in a variable.
 */
import { AppError, ValidationError } from '../../app/errors.js';
import { jsonStrings } from '../../runtime/block-fields.js';
import { inexactInteger } from '../../runtime/json-numbers.js';
import { MAX_VARIABLE_DEPTH, nestsWithin, wellFormedDeep } from '../../runtime/json-path.js';
import { SECRET_REFERENCE } from './variable-names.js';
import { VARIABLE_TYPES, type VariableType } from './variable-schemas.js';

export { VARIABLE_TYPES, type VariableType };

export const MAX_VARIABLE_VALUE_BYTES = 64 * 1024;
const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** ISO-8601 with a zone, and a date that exists (no 30 February). */
function isRealDateTime(value: string): boolean {
  const m = ISO_DATETIME.exec(value);
  if (!m || Number.isNaN(Date.parse(value))) return false;
  const [year, month, day] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  // setUTCFullYear, not Date.UTC: that reads years 0–99 as 1900–1999.
  const probe = new Date(0);
  probe.setUTCFullYear(year, month - 1, day);
  return probe.getUTCFullYear() === year && probe.getUTCMonth() === month - 1 && probe.getUTCDate() === day;
}

function typeMismatch(type: VariableType): string {
  const what: Record<VariableType, string> = {
    text: 'a string',
    number:
      'a finite number (a whole one within ±2^53: past that a number loses digits, so keep it in a text variable)',
    boolean: 'true or false',
    datetime: 'an ISO-8601 date-time with a zone, e.g. 2026-01-31T09:00:00Z',
    map: 'a JSON object',
    list: 'a JSON array',
  };
  return `must be ${what[type]} for a ${type} variable`;
}

function matchesType(type: VariableType, value: unknown): boolean {
  switch (type) {
    case 'text':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'datetime':
      return typeof value === 'string' && isRealDateTime(value);
    case 'map':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'list':
      return Array.isArray(value);
  }
}

/** Whether any number inside a value is not finite (JSON's 1e400 parses to Infinity, and is stored as null). */
function holdsNonFinite(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    if (typeof current === 'number' && !Number.isFinite(current)) return true;
    if (current !== null && typeof current === 'object') for (const v of Object.values(current)) stack.push(v);
  }
  return false;
}

/**
 * Whether a value nests deeper than MAX_VARIABLE_DEPTH, holds a number that
 * is not finite, and whether any string (or key) holds a secret reference.
 */
function inspect(value: unknown): { secretReference: boolean; tooDeep: boolean; nonFinite: boolean } {
  if (!nestsWithin(value)) return { secretReference: false, tooDeep: true, nonFinite: false };
  let secretReference = false;
  jsonStrings(value, (text) => {
    secretReference ||= SECRET_REFERENCE.test(text);
  });
  return { secretReference, tooDeep: false, nonFinite: holdsNonFinite(value) };
}

/**
 * Checks one value (`field` names it in errors) and returns its JSON text,
 * or null for null/undefined.
 */
export function encodeVariableValue(type: VariableType, value: unknown, field: string): string | null {
  if (value === null || value === undefined) return null;
  if (!matchesType(type, value))
    throw new ValidationError(`${field}: ${typeMismatch(type)}`, [{ path: field, message: typeMismatch(type) }]);
  const found = inspect(value);
  if (found.tooDeep) {
    const message = `must not nest deeper than ${MAX_VARIABLE_DEPTH} levels`;
    throw new ValidationError(`${field}: ${message}`, [{ path: field, message }]);
  }
  if (found.nonFinite) {
    const message = 'must hold finite numbers only (JSON has no Infinity: it would be stored as null)';
    throw new ValidationError(`${field}: ${message}`, [{ path: field, message }]);
  }
  if (found.secretReference) {
    throw new AppError(
      422,
      'secret_not_allowed_here',
      'A {{secret:…}} reference can only be used in an API block field.',
      {
        errors: [{ path: field, message: 'holds a {{secret:…}} reference' }],
      },
    );
  }
  const json = JSON.stringify(value);
  if (Buffer.byteLength(json, 'utf8') > MAX_VARIABLE_VALUE_BYTES) {
    const message = `must be at most ${MAX_VARIABLE_VALUE_BYTES} bytes as JSON`;
    throw new ValidationError(`${field}: ${message}`, [{ path: field, message }]);
  }
  return json;
}

export function decodeVariableValue(json: string | null): unknown {
  return json === null ? null : (JSON.parse(json) as unknown);
}

/**
 * A value a run puts into a declared variable (Set Values, a capture, run
 * input), as the variable's type (a map or list decoded from JSON text holds
 * what the text's escapes spelled: callers redact the result, not the text): kept when it has the type already; text
 * that reads as the type is converted (`"42"` → 42, `"true"` → true, a JSON
 * object's or array's text → the map or list, a real ISO date-time kept);
 * text takes any value, a non-string as its JSON text. Null is always
 * allowed (no value). `undefined` when the value cannot be that type.
 */
export function asVariableType(type: VariableType, value: unknown): { value: unknown } | undefined {
  if (value === null || value === undefined) return { value: null };
  if (matchesType(type, value)) return { value };
  switch (type) {
    case 'text':
      return { value: JSON.stringify(value) };
    case 'number': {
      if (typeof value !== 'string' || !/^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/.test(value))
        return undefined;
      const number = Number(value);
      // A whole number past ±2^53 would lose digits (an id naming another record): text only.
      return Number.isFinite(number) && !inexactInteger(value.trim().replace(/^\+/, ''))
        ? { value: number }
        : undefined;
    }
    case 'boolean': {
      const text = typeof value === 'string' ? value.trim().toLowerCase() : undefined;
      return text === 'true' ? { value: true } : text === 'false' ? { value: false } : undefined;
    }
    case 'datetime':
      return undefined; // a string that is not a real ISO date-time, or not a string
    case 'map':
    case 'list': {
      if (typeof value !== 'string') return undefined;
      try {
        const parsed: unknown = JSON.parse(value);
        // Its `\ud800` escapes can make lone surrogates again: text from here on is well-formed.
        return matchesType(type, parsed) && nestsWithin(parsed) ? { value: wellFormedDeep(parsed) } : undefined;
      } catch {
        return undefined;
      }
    }
  }
}

/** Why `asVariableType` refused a value for `name`. */
export function typeMismatchError(name: string, type: VariableType): { code: string; message: string } {
  return { code: 'type_mismatch', message: `${name} ${typeMismatch(type)}.` };
}
