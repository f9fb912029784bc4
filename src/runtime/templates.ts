/**
 * Templates in block fields (SPEC §1): `{{name}}`, `{{map.key}}`,
 * `{{list[0]}}`, `{{$run_id}}` and the protected `{{secret:NAME}}`.
 * `\{{` writes a literal `{{`. Parsing is separate from rendering so a
 * workflow is validated once, at save, and rendered many times.
 *
 * Rendering never re-parses its output: text that arrives at run time (a
 * variable's value, a captured response) is data, so a `{{secret:…}}`
 * smuggled inside it is never resolved.
 */

import { AppError } from '../app/errors.js';

export type PathStep = { key: string } | { index: number };

/**
 * The most characters one block renders into its fields, all together (a
 * Set Values block: into all its values): the size of the largest answer a
 * block may receive. A template repeating a big variable, or a Set Values
 * block that doubles a value on a loop, stops here with 422
 * `value_too_large` instead of exhausting memory.
 */
export const MAX_RENDERED_CHARS = 5 * 1024 * 1024;
/**
 * How many times one block may insert a secret. Secrets are counted, not
 * measured: a budget charged by a secret's length would let anyone who may
 * use a restricted secret find that length by padding a block until it no
 * longer fits. At most 64 KiB each (secret-service MAX_SECRET_BYTES), they
 * add at most 16 MiB to a block's 5 MiB of other text.
 */
export const MAX_SECRET_USES = 256;

/** What a block may still render (see MAX_RENDERED_CHARS, MAX_SECRET_USES). */
export interface RenderBudget {
  left: number;
  secretUses: number;
}

export function renderBudget(): RenderBudget {
  return { left: MAX_RENDERED_CHARS, secretUses: 0 };
}

/** Takes `chars` from `budget` if there is room for them (a spent budget takes nothing more). */
export function fits(budget: RenderBudget, chars: number): boolean {
  if (budget.left < 0) return false;
  budget.left -= chars;
  return budget.left >= 0;
}

/** Takes `chars` from `budget`; 422 `value_too_large` once it is spent. */
export function charge(budget: RenderBudget | undefined, chars: number): void {
  if (budget && !fits(budget, chars)) {
    throw new AppError(
      422,
      'value_too_large',
      `The block's rendered values are longer than ${MAX_RENDERED_CHARS} characters in all.`,
    );
  }
}

/** About how many characters `value` takes once written into text (strings as is, the rest as JSON). */
export function renderedSize(value: unknown): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'string') return value.length;
  if (typeof value === 'object') return JSON.stringify(value).length;
  return 24;
}

export type TemplatePart =
  | { kind: 'text'; text: string }
  | { kind: 'variable'; name: string; path: PathStep[]; source: string }
  | { kind: 'secret'; name: string };

export interface Template {
  parts: TemplatePart[];
  /** Names of secrets referenced, in order of appearance (may repeat). */
  secrets: string[];
  /** Names of variables referenced (system ones with their `$`). */
  variables: string[];
}

export class TemplateError extends Error {
  override name = 'TemplateError';
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
  }
}

const NAME = /^\$?[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const SECRET = /^secret\s*:\s*([A-Za-z_][A-Za-z0-9_]{0,63})$/i;

function parsePath(expr: string, position: number): { name: string; path: PathStep[] } {
  const head = /^\$?[A-Za-z_][A-Za-z0-9_]*/.exec(expr);
  if (!head || !NAME.test(head[0])) throw new TemplateError(`"{{${expr}}}" is not a variable reference`, position);
  const path: PathStep[] = [];
  let rest = expr.slice(head[0].length);
  while (rest.length > 0) {
    const dot = /^\.([A-Za-z0-9_-]+)/.exec(rest);
    const index = /^\[(\d{1,9})\]/.exec(rest);
    const quoted = /^\["((?:[^"\\]|\\.)*)"\]/.exec(rest);
    if (dot?.[1] !== undefined) {
      path.push({ key: dot[1] });
      rest = rest.slice(dot[0].length);
    } else if (index?.[1] !== undefined) {
      path.push({ index: Number(index[1]) });
      rest = rest.slice(index[0].length);
    } else if (quoted?.[1] !== undefined) {
      let key: string;
      try {
        key = JSON.parse(`"${quoted[1]}"`) as string;
      } catch {
        throw new TemplateError(`"{{${expr}}}" has a quoted key that is not a valid JSON string`, position);
      }
      path.push({ key });
      rest = rest.slice(quoted[0].length);
    } else {
      throw new TemplateError(`"{{${expr}}}" has an invalid path after "${head[0]}"`, position);
    }
    if (path.length > 32) throw new TemplateError(`"{{${expr}}}" is nested too deeply`, position);
  }
  return { name: head[0], path };
}

/** Parses a template; throws TemplateError with the position of the problem. */
export function parseTemplate(source: string): Template {
  const parts: TemplatePart[] = [];
  const secrets: string[] = [];
  const variables: string[] = [];
  let text = '';
  let i = 0;
  while (i < source.length) {
    if (source.startsWith('\\{{', i)) {
      text += '{{';
      i += 3;
      continue;
    }
    if (!source.startsWith('{{', i)) {
      text += source[i];
      i += 1;
      continue;
    }
    const end = source.indexOf('}}', i + 2);
    if (end === -1) throw new TemplateError('"{{" is not closed by "}}" (write \\{{ for a literal)', i);
    const expr = source.slice(i + 2, end).trim();
    if (text) parts.push({ kind: 'text', text });
    text = '';
    const secret = SECRET.exec(expr);
    if (secret?.[1]) {
      parts.push({ kind: 'secret', name: secret[1] });
      secrets.push(secret[1]);
    } else if (/^secret\s*:/i.test(expr)) {
      throw new TemplateError(`"{{${expr}}}" does not name a secret`, i);
    } else {
      const { name, path } = parsePath(expr, i);
      parts.push({ kind: 'variable', name, path, source: expr });
      variables.push(name);
    }
    i = end + 2;
  }
  if (text) parts.push({ kind: 'text', text });
  return { parts, secrets, variables };
}

/** Follows a path into a value; undefined when it leads nowhere. */
export function resolvePath(value: unknown, path: readonly PathStep[]): unknown {
  let current = value;
  for (const step of path) {
    if (current === null || current === undefined) return undefined;
    if ('index' in step) {
      if (!Array.isArray(current)) return undefined;
      current = current[step.index];
    } else {
      if (typeof current !== 'object' || Array.isArray(current) || !Object.hasOwn(current, step.key)) return undefined;
      current = (current as Record<string, unknown>)[step.key];
    }
  }
  return current;
}

/** How a resolved value is written into text: strings as is, the rest as JSON. */
export function stringify(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

export interface RenderContext {
  variable(name: string): unknown;
  /** The plaintext of a secret the block declared; throws when unavailable. */
  secret(name: string): string;
  /** Shared by every field the block renders; unlimited without. */
  budget?: RenderBudget;
}

/** Renders to text. Substituted values are never parsed again. */
export function renderTemplate(template: Template, ctx: RenderContext): string {
  let out = '';
  for (const part of template.parts) {
    const piece =
      part.kind === 'text'
        ? part.text
        : part.kind === 'secret'
          ? ctx.secret(part.name)
          : stringify(resolvePath(ctx.variable(part.name), part.path));
    if (part.kind !== 'secret') charge(ctx.budget, piece.length);
    else if (ctx.budget && ++ctx.budget.secretUses > MAX_SECRET_USES) {
      // Counted, not measured (see MAX_SECRET_USES): whether a block fits tells nothing of a secret.
      throw new AppError(422, 'value_too_large', `A block may insert secrets at most ${MAX_SECRET_USES} times.`);
    }
    out += piece;
  }
  return out;
}

/**
 * When the whole template is one variable reference, its typed value (for a
 * JSON body: `"{{count}}"` becomes the number, not a string).
 */
export function soleVariable(template: Template): Extract<TemplatePart, { kind: 'variable' }> | undefined {
  const [only, ...rest] = template.parts;
  return rest.length === 0 && only?.kind === 'variable' ? only : undefined;
}
