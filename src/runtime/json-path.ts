/**
 * Capture paths into a JSON response: `$`, `$.data.id`, `$.items[0].name`,
 * `$['odd key']`. A small, safe subset (no filters, no wildcards, no code).
 */
import type { PathStep } from './templates.js';

/** How deep a variable's value (stored, given as run input or captured) may nest. */
export const MAX_VARIABLE_DEPTH = 32;

/** Whether a JSON value nests at most `max` arrays/objects deep (walked without recursion). */
export function nestsWithin(value: unknown, max = MAX_VARIABLE_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [unknown, number];
    if (current === null || typeof current !== 'object') continue;
    if (depth >= max) return false;
    for (const v of Object.values(current)) stack.push([v, depth + 1]);
  }
  return true;
}

export class JsonPathError extends Error {
  override name = 'JsonPathError';
}

export function parseJsonPath(path: string): PathStep[] {
  if (!path.startsWith('$')) throw new JsonPathError(`"${path}" must start with "$"`);
  const steps: PathStep[] = [];
  let rest = path.slice(1);
  while (rest.length > 0) {
    const dot = /^\.([A-Za-z_$][A-Za-z0-9_$-]*)/.exec(rest);
    const index = /^\[(\d{1,9})\]/.exec(rest);
    const quoted = /^\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]/.exec(rest);
    if (dot?.[1] !== undefined) {
      steps.push({ key: dot[1] });
      rest = rest.slice(dot[0].length);
    } else if (index?.[1] !== undefined) {
      steps.push({ index: Number(index[1]) });
      rest = rest.slice(index[0].length);
    } else if (quoted) {
      steps.push({ key: (quoted[1] ?? quoted[2] ?? '').replace(/\\(.)/g, '$1') });
      rest = rest.slice(quoted[0].length);
    } else {
      throw new JsonPathError(`"${path}" is not a JSON path such as $.data.items[0].id`);
    }
    if (steps.length > 64) throw new JsonPathError(`"${path}" is too deep`);
  }
  return steps;
}

/**
 * Sets `record[key]` as an own property whatever the key: `__proto__` would
 * otherwise replace the prototype (and vanish from the record) instead.
 */
export function setOwn(record: Record<string, unknown>, key: string, value: unknown): void {
  // Every other property of Object.prototype is a writable data property, which an
  // assignment shadows with an own one (and plain assignment keeps the object fast).
  if (key === '__proto__')
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  else record[key] = value;
}

/**
 * The value with every string in it, keys too, made well-formed Unicode (a
 * lone surrogate, which JSON's `\ud800` escapes can carry, becomes U+FFFD):
 * the very same value when it is already. A captured value is used as text
 * from then on (encoded into a URL, stored), and only well-formed text can
 * be. Recursive: for values `nestsWithin` has passed.
 */
export function wellFormedDeep(value: unknown): unknown {
  if (typeof value === 'string') return value.isWellFormed() ? value : value.toWellFormed();
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const items = value.map(wellFormedDeep);
    return items.every((item, i) => item === value[i]) ? value : items;
  }
  const out: Record<string, unknown> = {};
  let changed = false;
  for (const [key, item] of Object.entries(value)) {
    const k = key.isWellFormed() ? key : key.toWellFormed();
    const v = wellFormedDeep(item);
    if (k !== key || v !== item) changed = true;
    setOwn(out, k, v);
  }
  return changed ? out : value;
}
