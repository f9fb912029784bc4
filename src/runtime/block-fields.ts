/**
 * Reads a block's template-bearing fields (SPEC §3 "Outbound calls"): each
 * header value, query value, the text body, each string value of a JSON body
 * and each form value is one field that may hold at most one secret. The URL,
 * every key, Set Values assignments and capture rules may hold none.
 */
import type { Block } from '../modules/workflows/block-schema.js';
import { JsonPathError, parseJsonPath } from './json-path.js';
import { parseTemplate, type Template, TemplateError } from './templates.js';

export type FieldKind =
  | 'url'
  | 'query.key'
  | 'query.value'
  | 'header.key'
  | 'header.value'
  | 'body.text'
  | 'body.json.key'
  | 'body.json.value'
  | 'form.key'
  | 'form.value'
  | 'set.value';

const SECRET_FIELDS: ReadonlySet<FieldKind> = new Set([
  'query.value',
  'header.value',
  'body.text',
  'body.json.value',
  'form.value',
]);

/** A header name as HTTP allows it (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** HTTP/1.1 header values are ISO-8859-1 bytes. */
const BEYOND_LATIN1 = /[\u0100-\uffff]/;
/** Control characters HTTP does not allow in a field value (tab is allowed). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters refused
const FORBIDDEN_HEADER_CHARS = /[\0-\x08\n-\x1f\x7f]/;

export const headerNameValid = (name: string): boolean => HEADER_NAME.test(name);

/** What is wrong with a header value as HTTP would carry it, if anything. */
export function headerValueProblem(value: string): string | undefined {
  if (FORBIDDEN_HEADER_CHARS.test(value)) return 'holds a control character (line break, NUL…)';
  if (BEYOND_LATIN1.test(value)) return 'holds characters beyond ISO-8859-1; encode them';
  return undefined;
}

const NOT_HTTP = 'Only http:// and https:// URLs can be called.';

/** `text` parsed (once) as a call's destination, or what is wrong with it. */
export function parseCallUrl(text: string): URL | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'The URL is not a valid absolute URL (http:// or https://).';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return NOT_HTTP;
  if (url.username || url.password) return 'Credentials in the URL are not allowed: use a header with a secret.';
  return url;
}

/** The text of a template that holds no reference (what it renders to), else undefined. */
function literal(template: Template): string | undefined {
  let text = '';
  for (const part of template.parts) {
    if (part.kind !== 'text') return undefined;
    text += part.text;
  }
  return text;
}

export interface BlockField {
  /** Where in the block, e.g. "headers.0.value" or "body.content/data/token". */
  path: string;
  kind: FieldKind;
  template: Template;
}

export interface FieldProblem {
  path: string;
  code: 'validation_failed' | 'one_secret_per_field' | 'secret_not_allowed_here' | 'invalid_header' | 'invalid_url';
  message: string;
}

const MAX_JSON_DEPTH = 64;

/** Every string value (and key) of a parsed JSON body, with JSON-pointer-ish paths. */
/**
 * One key as a segment of a field path: JSON Pointer's escapes (`~0`, `~1`)
 * and `#` as `~2`, so the `#key` that marks a key's own field can never be
 * read as part of another key's name (`"a"`'s key and `"a#key"`'s value
 * would otherwise share a path).
 */
export function pathSegment(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1').replaceAll('#', '~2');
}

export function jsonStrings(value: unknown, visit: (text: string, path: string, isKey: boolean) => void): void {
  const stack: [unknown, string, number][] = [[value, '', 0]];
  while (stack.length > 0) {
    const [current, path, depth] = stack.pop() as [unknown, string, number];
    if (typeof current === 'string') visit(current, path, false);
    else if (current !== null && typeof current === 'object') {
      if (depth > MAX_JSON_DEPTH) throw new Error('too deep');
      for (const [k, v] of Object.entries(current)) {
        const childPath = `${path}/${pathSegment(k)}`;
        if (!Array.isArray(current)) visit(k, childPath, true);
        stack.push([v, childPath, depth + 1]);
      }
    }
  }
}

/**
 * Headers a block may not set: `Host` would point the call at another virtual
 * host than the URL's — whose name the allowed hosts were checked against —
 * behind a shared front end; the rest describe the connection and the
 * message framing, which the HTTP client owns.
 */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
  'expect',
]);

export function reservedHeaderMessage(name: string): string {
  return name.toLowerCase() === 'host'
    ? 'the Host header comes from the URL and cannot be set'
    : `the ${name} header is set by the HTTP client and cannot be set`;
}

/** A block's template fields and what is wrong with them (`analyzeBlock`). */
export interface BlockAnalysis {
  fields: BlockField[];
  problems: FieldProblem[];
}

export function analyzeBlock(block: Block, prefix = ''): BlockAnalysis {
  const fields: BlockField[] = [];
  const problems: FieldProblem[] = [];
  const add = (path: string, kind: FieldKind, source: string): Template | undefined => {
    const full = `${prefix}${path}`;
    let template: Template;
    try {
      template = parseTemplate(source);
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      problems.push({
        path: full,
        code: 'validation_failed',
        message: `${error.message} at character ${error.position + 1}`,
      });
      return;
    }
    if (template.secrets.length > 0 && !SECRET_FIELDS.has(kind)) {
      problems.push({
        path: full,
        code: 'secret_not_allowed_here',
        message:
          kind === 'url'
            ? 'a secret cannot go in the URL: put it in a query value instead'
            : 'a secret can only go in a header value, query value or body field of an API block',
      });
    } else if (template.secrets.length > 1) {
      problems.push({
        path: full,
        code: 'one_secret_per_field',
        message: 'holds more than one secret: use one secret per field',
      });
    }
    fields.push({ path: full, kind, template });
    return template;
  };
  /** A literal field's text broken for HTTP is refused now, not at every run. */
  const refuseLiteral = (
    path: string,
    code: FieldProblem['code'],
    template: Template | undefined,
    problem: (text: string) => string | undefined,
  ) => {
    const text = template && literal(template);
    const message = text === undefined ? undefined : problem(text);
    if (message) problems.push({ path: `${prefix}${path}`, code, message });
  };

  if (block.type === 'set') {
    for (const [i, a] of block.assignments.entries()) add(`assignments.${i}.value`, 'set.value', a.value);
    return { fields, problems };
  }
  if ((block.method === 'GET' || block.method === 'HEAD') && block.body.mode !== 'none') {
    problems.push({
      path: `${prefix}body.mode`,
      code: 'validation_failed',
      message: `a ${block.method} request cannot have a body`,
    });
  }
  const url = add('url', 'url', block.url);
  refuseLiteral('url', 'invalid_url', url, (text) => {
    const parsed = parseCallUrl(text);
    return typeof parsed === 'string' ? parsed : undefined;
  });
  // A URL that starts with literal text names its scheme there.
  const head = url?.parts[0];
  if (url && literal(url) === undefined && head?.kind === 'text') {
    const scheme = /^\s*([a-z][a-z0-9+.-]*):/i.exec(head.text)?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== 'http' && scheme !== 'https')
      problems.push({
        path: `${prefix}url`,
        code: 'invalid_url',
        message: NOT_HTTP,
      });
  }
  block.query.forEach((q, i) => {
    add(`query.${i}.key`, 'query.key', q.key);
    add(`query.${i}.value`, 'query.value', q.value);
  });
  block.headers.forEach((h, i) => {
    const key = add(`headers.${i}.key`, 'header.key', h.key);
    const value = add(`headers.${i}.value`, 'header.value', h.value);
    refuseLiteral(`headers.${i}.key`, 'invalid_header', key, (text) =>
      headerNameValid(text.trim()) ? undefined : `"${text.trim().slice(0, 64)}" is not a valid header name`,
    );
    refuseLiteral(`headers.${i}.value`, 'invalid_header', value, headerValueProblem);
    const name = h.key.trim();
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      problems.push({
        path: `${prefix}headers.${i}.key`,
        code: 'invalid_header',
        message: reservedHeaderMessage(name),
      });
    }
  });
  if (block.body.mode === 'text') add('body.content', 'body.text', block.body.content);
  if (block.body.mode === 'form') {
    block.body.content.forEach((f, i) => {
      add(`body.content.${i}.key`, 'form.key', f.key);
      add(`body.content.${i}.value`, 'form.value', f.value);
    });
  }
  if (block.body.mode === 'json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(block.body.content);
      jsonStrings(parsed, (text, path, isKey) => {
        // A key names its field (and a secret's reference to it): text that cannot be stored as
        // such — a NUL (PostgreSQL text refuses it) or a lone surrogate (stored altered) — is refused.
        if (isKey && (text.includes('\u0000') || !text.isWellFormed())) {
          problems.push({
            path: `${prefix}body.content`,
            code: 'validation_failed',
            message: 'holds a key with a NUL character or a lone surrogate (\\u0000, \\ud800…); keys cannot hold them',
          });
          return;
        }
        add(`body.content${path || '/'}${isKey ? '#key' : ''}`, isKey ? 'body.json.key' : 'body.json.value', text);
      });
    } catch {
      problems.push({
        path: `${prefix}body.content`,
        code: 'validation_failed',
        message: 'is not valid JSON (nested at most 64 levels; templates go inside strings, e.g. "{{count}}")',
      });
    }
  }
  block.capture.forEach((c, i) => {
    if (/\{\{\s*secret\s*:/i.test(c.path)) {
      problems.push({
        path: `${prefix}capture.${i}.path`,
        code: 'secret_not_allowed_here',
        message: 'a capture rule cannot name a secret',
      });
      return;
    }
    try {
      parseJsonPath(c.path);
    } catch (error) {
      if (!(error instanceof JsonPathError)) throw error;
      problems.push({ path: `${prefix}capture.${i}.path`, code: 'validation_failed', message: error.message });
    }
  });
  return { fields, problems };
}
