/**
 * Executes one API block (SPEC §3 "Outbound calls"): renders its fields,
 * checks every secret's allowed hosts (pinning on first use), sends it hop by
 * hop through the guarded outbound client, follows at most 5 redirects —
 * dropping every secret-bearing part when a hop leaves the original origin —
 * captures values from the response, and redacts everything it returns.
 *
 * Refusals (the call is never made) throw AppError; failures on the way
 * (timeout, size cap, unreachable) come back as `ok: false` with an error.
 * Plaintext secret values live only inside this function's scope.
 */
import { domainToUnicode } from 'node:url';
import { AppError } from '../app/errors.js';
import type { ApiBlock } from '../modules/workflows/block-schema.js';
import {
  analyzeBlock,
  type BlockAnalysis,
  type BlockField,
  headerNameValid,
  headerValueProblem,
  parseCallUrl,
  pathSegment,
  RESERVED_HEADERS,
  reservedHeaderMessage,
} from './block-fields.js';
import { type MultiByte, multiByte, type SingleByte, singleByte } from './charsets.js';
import { keepNumbers, parseJsonExact } from './json-numbers.js';
import { MAX_VARIABLE_DEPTH, nestsWithin, parseJsonPath, setOwn, wellFormedDeep } from './json-path.js';
import { type OutboundClient, OutboundFailure } from './outbound.js';
import { Redactor } from './redactor.js';
import {
  charge,
  fits,
  MAX_RENDERED_CHARS,
  type RenderContext,
  renderBudget,
  renderedSize,
  renderTemplate,
  resolvePath,
  soleVariable,
  type Template,
} from './templates.js';

export const MAX_REDIRECTS = 5;
export const DEFAULT_MAX_RESPONSE_BYTES = 5 * 1024 * 1024;

/** A secret as the executor needs it: decrypted, for this run only. */
export interface SecretMaterial {
  id: string;
  name: string;
  value: string;
  allowedHosts: string[];
}

export interface ExecutionEnv {
  /** The run's variables (custom, captured, set) and system variables (`$run_id`…). */
  variables: Map<string, unknown>;
  /**
   * A captured value as its variable's declared type (converted, or why it
   * cannot be: the step fails `type_mismatch`); absent, values are kept as they are.
   */
  asDeclared?(name: string, value: unknown): { value: unknown } | { error: { code: string; message: string } };
  /** Loads a secret the block names; throws AppError `secret_unavailable` when it cannot. */
  loadSecret(name: string): Promise<SecretMaterial>;
  /**
   * Whether `secret` may go to `host`; pins an empty list on first use —
   * unless `pin` is false, which answers whether it could be pinned there
   * without pinning it.
   */
  checkHost(secret: SecretMaterial, host: string, blockId: string, pin?: boolean): Promise<boolean>;
  /**
   * Secrets that may have been sent to `host` by any execution (its allowed
   * hosts match): an upstream there may answer a stored one back, so every
   * answer from `host` is redacted of them too. Never sent by this call.
   */
  hostSecrets?(host: string): Promise<readonly SecretMaterial[]>;
  client: OutboundClient;
  maxResponseBytes?: number;
  /**
   * Secrets an earlier step of the same run loaded: redacted from this
   * block's response and captures too, so an upstream that replays a value
   * it was sent before cannot hand it to a later step (or another host).
   */
  earlierSecrets?: () => readonly SecretMaterial[];
  /**
   * Records the use of the secrets this call is about to send (audit
   * `secret.used`), once every check has passed and before anything goes
   * out: a call whose use cannot be recorded is not made.
   */
  recordUse?(sent: ApiStepResult['secretsSent']): Promise<void>;
}

export interface RequestSnapshot {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | null;
}

export interface ResponseSnapshot {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface ApiStepResult {
  ok: boolean;
  request: RequestSnapshot;
  response: ResponseSnapshot | null;
  captures: Record<string, unknown>;
  error?: { code: string; message: string };
  durationMs: number;
  /** Which secrets went to which host (for the audit trail): never values. */
  secretsSent: { id: string; name: string; host: string }[];
  /** Every secret value loaded, so the caller can redact anything else it records. */
  redactor: Redactor;
}

/** What a step came to, before the parts every result shares. */
type StepOutcome = Omit<ApiStepResult, 'request' | 'durationMs' | 'secretsSent' | 'redactor'>;

interface Rendered {
  url: URL;
  method: string;
  headers: [string, string][];
  body: string | null;
  /** Header names and query keys whose value carries a secret; whether the body does. */
  secretHeaders: Set<string>;
  secretQuery: Set<string>;
  bodyHasSecret: boolean;
  secrets: SecretMaterial[];
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Outbound failures that, before anything went out, refuse the call (403) rather than fail it. */
const REFUSALS: ReadonlySet<string> = new Set(['outbound_blocked', 'insecure_transport']);

function refuse(code: string, message: string, status = 422): AppError {
  return new AppError(status, code, message);
}

function toRecord(headers: [string, string][], redactor: Redactor): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of headers) {
    // Field names arrive lower-cased: a value echoed as one is matched whatever its case.
    const key = redactor.redactFolded(k.toLowerCase());
    const value = redactor.redact(v);
    setOwn(out, key, Object.hasOwn(out, key) ? `${out[key]}, ${value}` : value);
  }
  return out;
}

async function render(block: ApiBlock, env: ExecutionEnv, analysis: BlockAnalysis): Promise<Rendered> {
  const { fields, problems } = analysis;
  const first = problems[0];
  if (first)
    throw new AppError(422, first.code, `${first.path}: ${first.message}`, {
      errors: problems.map((p) => ({ path: p.path, message: p.message })),
    });

  const secrets = new Map<string, SecretMaterial>();
  for (const f of fields) {
    for (const name of f.template.secrets) if (!secrets.has(name)) secrets.set(name, await env.loadSecret(name));
  }
  const ctx: RenderContext = {
    variable: (name) => env.variables.get(name),
    secret: (name) => {
      const s = secrets.get(name);
      if (!s) throw refuse('secret_unavailable', `The secret "${name}" is not available.`);
      return s.value;
    },
    budget: renderBudget(),
  };
  const byPath = new Map<string, BlockField>(fields.map((f) => [f.path, f]));
  const text = (path: string) => {
    const f = byPath.get(path) as BlockField;
    return renderTemplate(f.template, ctx);
  };

  // URL: a leading variable is a base URL, inserted as is; later values are encoded.
  const urlField = byPath.get('url') as BlockField;
  let urlText = '';
  /** The same text with each later value as a letter: what the author's own text makes of the path. */
  let probeText = '';
  urlField.template.parts.forEach((part, index) => {
    if (part.kind === 'text') {
      urlText += part.text;
      probeText += part.text;
    } else {
      const value = renderTemplate({ parts: [part], secrets: [], variables: [] }, ctx);
      urlText += index === 0 ? value : encodeURIComponent(value);
      probeText += index === 0 ? value : 'v';
    }
  });
  // encodeURIComponent leaves "." alone, and a URL parser removes dot segments ("..", and
  // "%2e" spelled ones too): a value of "." or ".." would move the call to another path.
  if (probeText !== urlText && movesPath(urlText, probeText))
    throw refuse('invalid_url', 'A value in the URL\'s path makes a "." or ".." segment, which would change the path.');
  const url = parseCallUrl(urlText);
  if (typeof url === 'string') throw refuse('invalid_url', url);

  const secretQuery = new Set<string>();
  if (block.query.length > 0) {
    const rows = new URLSearchParams();
    block.query.forEach((_q, i) => {
      const key = text(`query.${i}.key`);
      const valueField = byPath.get(`query.${i}.value`) as BlockField;
      rows.append(key, renderTemplate(valueField.template, ctx));
      if (valueField.template.secrets.length > 0) secretQuery.add(key);
    });
    // Appended as text: the query written in the URL goes as its author wrote it (searchParams
    // would write it again — `%20` as `+`, `flag` as `flag=`, breaking signed query strings).
    url.search = url.search ? `${url.search}&${rows}` : `?${rows}`;
  }

  const headers: [string, string][] = [];
  const secretHeaders = new Set<string>();
  block.headers.forEach((_h, i) => {
    const key = text(`headers.${i}.key`).trim();
    const valueField = byPath.get(`headers.${i}.value`) as BlockField;
    const value = renderTemplate(valueField.template, ctx);
    if (!headerNameValid(key)) throw refuse('invalid_header', `Header name "${key.slice(0, 64)}" is not valid.`);
    // A name may come from a variable: checked again once rendered.
    if (RESERVED_HEADERS.has(key.toLowerCase()))
      throw refuse('invalid_header', `Header "${key}": ${reservedHeaderMessage(key)}.`);
    // HTTP/1.1 carries header values as ISO-8859-1 bytes; anything beyond must be encoded first.
    const wrongValue = headerValueProblem(value);
    if (wrongValue) throw refuse('invalid_header', `The value of header "${key}" ${wrongValue}.`);
    headers.push([key, value]);
    if (valueField.template.secrets.length > 0) secretHeaders.add(key.toLowerCase());
  });
  const hasHeader = (name: string) => headers.some(([k]) => k.toLowerCase() === name);

  let body: string | null = null;
  let bodyHasSecret = false;
  if (block.body.mode === 'text') {
    const f = byPath.get('body.content') as BlockField;
    body = renderTemplate(f.template, ctx);
    bodyHasSecret = f.template.secrets.length > 0;
  } else if (block.body.mode === 'form') {
    const form = new URLSearchParams();
    block.body.content.forEach((_p, i) => {
      const f = byPath.get(`body.content.${i}.value`) as BlockField;
      form.append(text(`body.content.${i}.key`), renderTemplate(f.template, ctx));
      bodyHasSecret ||= f.template.secrets.length > 0;
    });
    body = form.toString();
    if (!hasHeader('content-type')) headers.push(['content-type', 'application/x-www-form-urlencoded']);
  } else if (block.body.mode === 'json') {
    const numbers = keepNumbers(block.body.content);
    const parsed: unknown = JSON.parse(numbers.text);
    const renderString = (source: string, path: string, isKey: boolean): unknown => {
      const f = byPath.get(`body.content${path || '/'}${isKey ? '#key' : ''}`);
      const template: Template | undefined = f?.template;
      if (!template) return source;
      if (template.secrets.length > 0) bodyHasSecret = true;
      const sole = isKey ? undefined : soleVariable(template);
      if (sole) {
        const value = resolvePath(env.variables.get(sole.name), sole.path) ?? null;
        charge(ctx.budget, renderedSize(value));
        return value;
      }
      return renderTemplate(template, ctx);
    };
    body = numbers.restore(JSON.stringify(renderJson(parsed, '', renderString)));
    if (!hasHeader('content-type')) headers.push(['content-type', 'application/json']);
  }
  return {
    url,
    method: block.method,
    headers,
    body,
    secretHeaders,
    secretQuery,
    bodyHasSecret,
    secrets: [...secrets.values()],
  };
}

const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/** The path segments of URL text that are dot segments (values never hold "/", "?", "#" or "\\": they are encoded). */
function dotSegments(text: string): boolean[] {
  const end = text.search(/[?#]/);
  return (end === -1 ? text : text.slice(0, end)).split(/[/\\]/).map((segment) => DOT_SEGMENT.test(segment));
}

/** Whether the values in `text` make a dot segment where the author's text (`probe`) has none. */
function movesPath(text: string, probe: string): boolean {
  const probed = dotSegments(probe);
  return dotSegments(text).some((dot, i) => dot && !probed[i]);
}

/** Rebuilds a JSON body, rendering each string value (and key) through `renderString`. */
function renderJson(
  value: unknown,
  path: string,
  renderString: (s: string, path: string, isKey: boolean) => unknown,
): unknown {
  if (typeof value === 'string') return renderString(value, path, false);
  if (Array.isArray(value)) return value.map((v, i) => renderJson(v, `${path}/${i}`, renderString));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const childPath = `${path}/${pathSegment(k)}`;
      setOwn(out, String(renderString(k, childPath, true)), renderJson(v, childPath, renderString));
    }
    return out;
  }
  return value;
}

/** Executes `block` once; `analysis` is `analyzeBlock(block)` when the caller has it already. */
export async function executeApiBlock(
  block: ApiBlock,
  env: ExecutionEnv,
  analysis: BlockAnalysis = analyzeBlock(block),
): Promise<ApiStepResult> {
  const started = performance.now();
  const rendered = await render(block, env, analysis);
  // Everything redacted, by value (the first secret with a value names it): this block's
  // secrets, the run's earlier ones, and every secret the hosts it talks to may hold.
  const toRedact = new Map<string, SecretMaterial>();
  const redactAlso = (secrets: readonly SecretMaterial[]): boolean => {
    const before = toRedact.size;
    for (const s of secrets) if (!toRedact.has(s.value)) toRedact.set(s.value, s);
    return toRedact.size > before;
  };
  const redactorOfAll = () => new Redactor([...toRedact.values()].map((s) => ({ name: s.name, value: s.value })));
  redactAlso(rendered.secrets);
  redactAlso(env.earlierSecrets?.() ?? []);
  redactAlso((await env.hostSecrets?.(rendered.url.hostname)) ?? []);
  let redactor = redactorOfAll();
  const origin = rendered.url.origin;

  const snapshot: RequestSnapshot = {
    method: rendered.method,
    url: redactor.redact(rendered.url.toString()),
    headers: toRecord(rendered.headers, redactor),
    body: rendered.body === null ? null : redactor.redact(rendered.body),
  };
  const secretsSent: ApiStepResult['secretsSent'] = [];
  const finish = (partial: StepOutcome): ApiStepResult => {
    const result: ApiStepResult = {
      ok: partial.ok,
      request: snapshot,
      response: partial.response,
      captures: partial.captures,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      secretsSent,
      redactor,
    };
    if (partial.error) result.error = partial.error;
    return result;
  };
  const failed = (error: OutboundFailure) =>
    finish({
      ok: false,
      response: null,
      captures: {},
      error: { code: error.code, message: redactor.redact(error.message) },
    });

  // The destination must pass the SSRF rules before a secret is pinned to it,
  // and every secret must be allowed to go there, before any connection.
  let unresolvable: OutboundFailure | undefined;
  if (rendered.secrets.length > 0) {
    try {
      await env.client.checkDestination(rendered.url, block.timeoutMs, true);
    } catch (error) {
      if (error instanceof OutboundFailure && REFUSALS.has(error.code)) throw refuse(error.code, error.message, 403);
      if (!(error instanceof OutboundFailure)) throw error;
      unresolvable = error;
    }
  }
  let unpinned = false;
  for (const secret of rendered.secrets) {
    // A secret is never pinned to a host nobody could check: while it does not resolve, only asked.
    const pin = !(unresolvable && secret.allowedHosts.length === 0);
    if (!(await env.checkHost(secret, rendered.url.hostname, block.id, pin))) {
      throw refuse('host_not_allowed', `The secret "${secret.name}" may not be sent to ${rendered.url.hostname}.`, 403);
    }
    unpinned ||= !pin;
    secretsSent.push({ id: secret.id, name: secret.name, host: rendered.url.hostname });
  }
  if (unresolvable && unpinned) {
    // It could be pinned there, but was not: nothing is sent (and nothing counts as used).
    secretsSent.length = 0;
    return failed(unresolvable);
  }
  // Audited before it leaves: no secret is sent without its `secret.used` record.
  if (secretsSent.length > 0) await env.recordUse?.(secretsSent);

  let url = rendered.url;
  let method = rendered.method;
  let headers = rendered.headers;
  let body = rendered.body;
  let carriesSecrets = rendered.secrets.length > 0;
  // The timeout is the block's, redirects included: each hop gets what is left of it.
  const deadline = performance.now() + block.timeoutMs;
  const timedOut = () =>
    new OutboundFailure('upstream_timeout', `No complete answer from ${url.host} within ${block.timeoutMs} ms.`);

  let hop = 0;
  /** Whether a request has gone out (an answer came back): from then on nothing is a refusal. */
  let answered = false;
  try {
    for (; ; hop++) {
      const left = Math.ceil(deadline - performance.now());
      if (left <= 0) return failed(timedOut());
      const res = await env.client.send({
        method,
        url,
        headers,
        body: body ?? undefined,
        carriesSecret: carriesSecrets,
        timeoutMs: left,
        maxResponseBytes: env.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      });
      answered = true;
      const location = res.headers.find(([k]) => k === 'location')?.[1];
      if (!REDIRECTS.has(res.status) || location === undefined || hop >= MAX_REDIRECTS) {
        if (REDIRECTS.has(res.status) && location !== undefined && hop >= MAX_REDIRECTS) {
          return finish({
            ok: false,
            response: null,
            captures: {},
            error: { code: 'too_many_redirects', message: `More than ${MAX_REDIRECTS} redirects.` },
          });
        }
        return finish(respond(block, res.status, res.headers, res.body, redactor, env));
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        return finish({
          ok: false,
          response: null,
          captures: {},
          error: { code: 'invalid_redirect', message: 'The upstream redirected to an invalid URL.' },
        });
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        return finish({
          ok: false,
          response: null,
          captures: {},
          error: { code: 'invalid_redirect', message: 'The upstream redirected to a non-HTTP URL.' },
        });
      }
      if (next.hostname !== url.hostname && redactAlso((await env.hostSecrets?.(next.hostname)) ?? [])) {
        redactor = redactorOfAll();
      }
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method !== 'GET' && method !== 'HEAD')) {
        method = method === 'HEAD' ? 'HEAD' : 'GET';
        body = null;
        headers = headers.filter(([k]) => !['content-type', 'content-length'].includes(k.toLowerCase()));
      }
      if (next.origin !== origin) {
        // Leaving the origin: nothing that carries a secret goes along.
        if (carriesSecrets) {
          headers = headers.filter(([k]) => !rendered.secretHeaders.has(k.toLowerCase()));
          for (const key of rendered.secretQuery) next.searchParams.delete(key);
          if (rendered.bodyHasSecret) {
            body = null;
            headers = headers.filter(([k]) => !['content-type', 'content-length'].includes(k.toLowerCase()));
          }
          carriesSecrets = false;
        }
        // Whether this call sent a secret or not: an upstream may put one it holds (a host's bound
        // secret, in the redactor) into the next URL, and following would carry it to another origin.
        if (urlCarriesSecret(next, redactor) || hostCarriesSecret(next, redactor)) {
          return finish({
            ...respondRedirect(res.status, res.headers, redactor),
            error: {
              code: 'unsafe_redirect',
              message: 'The upstream redirected to another origin with a secret in the URL; Hush did not follow it.',
            },
          });
        }
      } else if (carriesSecrets) {
        for (const secret of rendered.secrets) {
          if (!(await env.checkHost(secret, next.hostname, block.id))) {
            // The first hop has gone out already: a failed call (its secrets audited), not a refusal.
            const message = `The secret "${secret.name}" may not be sent to ${next.hostname}.`;
            return finish({ ok: false, response: null, captures: {}, error: { code: 'host_not_allowed', message } });
          }
        }
      }
      url = next;
    }
  } catch (error) {
    if (error instanceof OutboundFailure) {
      // Refused before the first connection: nothing was sent. On a later hop the first one went
      // out, so it is a failed call whose secrets count as sent (audited), not a refusal.
      if (REFUSALS.has(error.code) && hop === 0) throw refuse(error.code, redactor.redact(error.message), 403);
      return failed(error.code === 'upstream_timeout' ? timedOut() : error);
    }
    // A refusal on a later hop (a secret purged or not pinnable there): the first request went
    // out, so it is a failed call whose secrets are audited as used, not a refusal.
    if (answered && error instanceof AppError && error.status < 500)
      return finish({
        ok: false,
        response: null,
        captures: {},
        error: { code: error.code, message: redactor.redact(error.message) },
      });
    throw error;
  }
}

/**
 * Whether a URL holds a secret in any form, also after up to three rounds of
 * percent-decoding — each reading `+` both as itself and as a space (a value
 * may hold a `+`), and decoding every valid escape even where another one is
 * broken (a stray `%` must not hide the rest).
 */
function urlCarriesSecret(url: URL, redactor: Redactor): boolean {
  let texts = [url.href];
  for (let round = 0; texts.length > 0; round++) {
    const next: string[] = [];
    for (const text of texts) {
      if (redactor.redact(text) !== text) return true;
      if (round === 3) continue;
      for (const candidate of [text, text.replaceAll('+', ' ')]) {
        const decoded = percentDecoded(candidate);
        if (decoded !== text && !next.includes(decoded)) next.push(decoded);
      }
    }
    texts = next;
  }
  return false;
}

/** `text` with each run of %XX escapes decoded as UTF-8 (a byte that starts no character becomes U+FFFD, the rest decode). */
function percentDecoded(text: string): string {
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replaceAll('%', ''), 'hex').toString('utf8'));
}

/**
 * Whether a URL's host name holds a secret in any form, whatever its case:
 * the URL parser lower-cases a host (and percent-decodes it), so a value put
 * there comes out case-folded — also read back from punycode.
 */
function hostCarriesSecret(url: URL, redactor: Redactor): boolean {
  return redactor.occursFolded(url.hostname) || redactor.occursFolded(domainToUnicode(url.hostname));
}

/** The redirect answer itself, with its Location withheld (it holds a secret in some encoding). */
function respondRedirect(status: number, rawHeaders: [string, string][], redactor: Redactor) {
  const headers = toRecord(
    rawHeaders.map(([k, v]): [string, string] =>
      k.toLowerCase() === 'location' ? [k, '[withheld: it carries a secret]'] : [k, v],
    ),
    redactor,
  );
  return { ok: false, response: { status, headers, body: '' }, captures: {} };
}

const WITHHELD_BODY = '[withheld: the answer holds secrets in two character encodings]';
/** `charset=` of a Content-Type, without quotes. */
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)/i;

/**
 * A response body as text: UTF-8, unless the answer declares another charset
 * Node.js reads — and nothing the UTF-8 reading would hide shows in the
 * declared one. The label alone never decides: a reading the upstream (or a
 * caller, through an echo service) picks could turn a value's bytes into
 * other characters, unmatched yet reversible, so the declared text is
 * returned only if, redacted and written back in that charset, its bytes
 * read as UTF-8 show no value (a value in two encodings at once withholds
 * the body).
 *
 * - A single-byte charset (windows-1251, ISO-8859-1…) is used only where it
 *   shows a value, a value echoed in it.
 * - A multi-byte charset (Shift_JIS, EUC-JP, GBK, GB18030, Big5, EUC-KR,
 *   UTF-16; TextDecoder reads it, iconv-lite writes it back) is used
 *   whenever it is safe — a Japanese answer reads as Japanese — and only if
 *   its text goes back to exactly the bytes it came from: Node's decoders
 *   replace or drop a byte they cannot read (ICU's Big5 even drops the ASCII
 *   byte after a bad one), which could cut a value's bytes apart and leave a
 *   readable remainder no form matches. The bytes written back must also
 *   hold no non-ASCII value in any other charset (Redactor.holdsEncodedValue:
 *   a value of Hangul alone, echoed in EUC-KR in an answer that says GBK,
 *   reads as Chinese characters that GBK writes back to it).
 *
 * Every other charset (ISO-2022-JP, which iconv-lite cannot write, and
 * labels nothing reads) is read as UTF-8; an answer in another charset read
 * so shows the value's mis-decoded forms, which the redactor matches too
 * (secret-forms.ts misdecodedForms).
 */
function bodyText(rawBody: Buffer, rawHeaders: [string, string][], redactor: Redactor): string {
  const utf8 = rawBody.toString('utf8');
  const label = CHARSET.exec(rawHeaders.find(([k]) => k === 'content-type')?.[1] ?? '')?.[1]?.toLowerCase();
  if (!label || label === 'utf-8' || rawBody.length === 0) return utf8;
  const single = singleByte(label);
  if (single) return singleByteText(rawBody, utf8, single, redactor);
  const multi = multiByte(label);
  return multi ? multiByteText(rawBody, utf8, multi, redactor) : utf8;
}

/** bodyText in a single-byte charset: its reading where it shows a value and loses nothing, else UTF-8's. */
function singleByteText(rawBody: Buffer, utf8: string, charset: SingleByte, redactor: Redactor): string {
  const declared = charset.decode(rawBody);
  if (declared === utf8) return utf8;
  const marked = redactor.redact(declared);
  if (marked === declared) return utf8;
  // Back to bytes (one per character; a mark is ASCII) and read as UTF-8: nothing may show there.
  const bytes = Buffer.allocUnsafe(marked.length);
  for (let i = 0; i < marked.length; i++) bytes[i] = charset.bytes.get(marked[i] as string) ?? 0x3f;
  const back = bytes.toString('utf8');
  return redactor.redact(back) === back ? declared : WITHHELD_BODY;
}

/** bodyText in a multi-byte charset: its reading whenever it is safe (see bodyText), else UTF-8's, or withheld. */
function multiByteText(rawBody: Buffer, utf8: string, charset: MultiByte, redactor: Redactor): string {
  const declared = charset.decode(rawBody);
  if (declared === utf8) return utf8;
  const again = charset.encode(declared);
  if (!again.equals(rawBody)) return utf8; // a byte read as U+FFFD, or dropped
  const marked = redactor.redact(declared);
  const bytes = marked === declared ? again : charset.encode(marked);
  const back = bytes.toString('utf8');
  if (redactor.redact(back) === back && !redactor.holdsEncodedValue(bytes)) return declared;
  // A value the declared reading leaves spelt in the bytes: if that reading shows none, the UTF-8
  // one (what every answer got before) — else each reading shows a value the other would not hide.
  return marked === declared ? utf8 : WITHHELD_BODY;
}

/** A `\u00XX` escape of a printable ASCII character (`\u0073` for "s"), which no encoder needs to write. */
const ASCII_ESCAPE = /\\u00[2-7][0-9a-fA-F]/;

/**
 * A JSON body whose strings, once decoded, still spell a value — its ASCII
 * characters written as `\u00XX` escapes, mixed in any way (an upstream may:
 * no list of forms can hold them all) — comes back re-serialised from its
 * redacted decoded value, as any JSON reader (the UI's tree, a client) would
 * have shown it; every other body as it is, byte for byte.
 */
function redactDecodedJson(body: string, redactor: Redactor): string {
  if (!ASCII_ESCAPE.test(body)) return body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return body;
  }
  const before = JSON.stringify(parsed);
  const after = JSON.stringify(redactor.redactDeep(parsed));
  return after === before ? body : after;
}

function respond(
  block: ApiBlock,
  status: number,
  rawHeaders: [string, string][],
  rawBody: Buffer,
  redactor: Redactor,
  env: ExecutionEnv,
): StepOutcome {
  const text = bodyText(rawBody, rawHeaders, redactor);
  const response: ResponseSnapshot = {
    status,
    headers: toRecord(rawHeaders, redactor),
    body: redactDecodedJson(redactor.redact(text), redactor),
  };
  const captures: Record<string, unknown> = {};
  let captureError: { code: string; message: string } | undefined;
  if (block.capture.length > 0) {
    let json: unknown;
    try {
      json = parseJsonExact(text);
    } catch {
      json = undefined;
    }
    // What the captures may hold together, like the block's rendered fields (and the record they go to).
    const budget = renderBudget();
    for (const rule of block.capture) {
      let value = json === undefined ? undefined : resolvePath(json, parseJsonPath(rule.path));
      if (!nestsWithin(value)) {
        captureError ??= {
          code: 'capture_too_deep',
          message: `The value at ${rule.path} nests deeper than ${MAX_VARIABLE_DEPTH} levels.`,
        };
        value = null;
      } else if (!fits(budget, renderedSize(value))) {
        captureError ??= {
          code: 'value_too_large',
          message: `The captured values are longer than ${MAX_RENDERED_CHARS} characters in all; ${rule.path} was not captured.`,
        };
        value = null;
      }
      // Captured values are data from now on: redacted as captured, then converted to the
      // variable's type (a value that held a secret does not read as a number any more), then
      // redacted again — a map's or list's JSON text decoded spells out escapes the redactor
      // never saw as text.
      let captured: unknown = redactor.redactDeep(wellFormedDeep(value ?? null));
      const typed = env.asDeclared?.(rule.variable, captured);
      if (typed && 'error' in typed) {
        captureError ??= typed.error;
        captured = null;
      } else if (typed && typed.value !== captured) captured = redactor.redactDeep(typed.value); // decoded JSON is well-formed already
      setOwn(captures, rule.variable, captured);
      env.variables.set(rule.variable, captured);
    }
  }
  const ok = status >= 200 && status < 400;
  if (!ok)
    return { ok, response, captures, error: { code: 'upstream_error', message: `The upstream answered ${status}.` } };
  return captureError ? { ok: false, response, captures, error: captureError } : { ok, response, captures };
}
