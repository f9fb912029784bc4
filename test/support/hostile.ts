/**
 * Hostile input for the evidence suites: the server's route list (taken from
 * the app itself, so a new route is fuzzed without touching the tests),
 * fast-check arbitraries for hostile bodies, raw payloads, query strings,
 * path parameters and headers, schema-guided bodies built from the OpenAPI
 * document, a raw inject client that keeps one session, and snapshots of
 * the whole stored state to prove a refused request changed nothing.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'kysely';
import type { AppContext } from '../../src/app/context.js';
import type { App } from '../../src/app/http.js';
import { hashToken, newToken, nowIso } from '../../src/app/ids.js';

// ------------------------------------------------------------------ routes

export interface RouteInfo {
  method: string;
  /** Fastify form: /api/v1/workspaces/:ws/secrets/:id, or /* for the wildcard. */
  path: string;
  params: string[];
  /** The JSON schema of the request body, when the OpenAPI document has one. */
  bodySchema?: JsonSchema;
  query: { name: string; schema: JsonSchema }[];
  headers: { name: string; schema: JsonSchema }[];
  /** Whether the OpenAPI document lists it (hidden routes come from the router only). */
  documented: boolean;
}

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
}

interface OpenApiOperation {
  parameters?: { in: string; name: string; schema: JsonSchema }[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}

/**
 * Every method and path fastify serves, from its own route tree
 * (`printRoutes`), joined with the OpenAPI document for schemas. HEAD is
 * left out (fastify derives it from GET; the fuzz sends HEAD on GET routes).
 */
export async function listRoutes(app: App): Promise<RouteInfo[]> {
  const doc = app.swagger() as unknown as { paths: Record<string, Record<string, OpenApiOperation>> };
  const documented = new Map<string, OpenApiOperation>();
  for (const [p, ops] of Object.entries(doc.paths)) {
    const fastifyPath = p.replace(/\{([^}]+)\}/g, ':$1');
    for (const [m, op] of Object.entries(ops)) documented.set(`${m.toUpperCase()} ${fastifyPath}`, op);
  }
  const routes: RouteInfo[] = [];
  const seen = new Set<string>();
  for (const { method, path } of parseRouteTree(app.printRoutes({ commonPrefix: false }))) {
    if (method === 'HEAD') continue;
    const key = `${method} ${path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const op = documented.get(key);
    const params = [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1] as string);
    if (path.endsWith('*')) params.push('*');
    const parameters = op?.parameters ?? [];
    routes.push({
      method,
      path,
      params,
      bodySchema: op?.requestBody?.content?.['application/json']?.schema,
      query: parameters.filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema })),
      headers: parameters.filter((p) => p.in === 'header').map((p) => ({ name: p.name, schema: p.schema })),
      documented: op !== undefined,
    });
  }
  // Every documented operation must be one fastify serves.
  for (const key of documented.keys()) {
    if (!seen.has(key)) throw new Error(`OpenAPI lists ${key}, which the router does not serve`);
  }
  return routes;
}

/** Parses fastify's printRoutes tree ("│   ├── /path (GET, HEAD)") into full paths. */
export function parseRouteTree(tree: string): { method: string; path: string }[] {
  const out: { method: string; path: string }[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const connector = line.search(/[├└]── /);
    if (connector < 0) continue;
    const level = connector / 4;
    const m = /^(\S+?)(?: \(([A-Z, ]+)\))?$/.exec(line.slice(connector + 4).trim());
    if (!m?.[1]) continue;
    stack.length = level;
    stack[level] = m[1];
    const full = `/${stack.join('')}`.replace(/\/\/+/g, '/');
    if (m[2]) for (const method of m[2].split(',').map((x) => x.trim())) out.push({ method, path: full });
  }
  return out;
}

// ------------------------------------------------------------ inject client

export interface HostileRequest {
  method: string;
  url: string;
  headers?: Record<string, string | string[]>;
  payload?: string | Buffer;
}

export interface HostileReply {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  text: string;
  raw: Buffer;
  // biome-ignore lint/suspicious/noExplicitAny: tests read the JSON freely
  body: any;
}

/**
 * A client that holds one session (cookie + CSRF header) fixed: responses
 * never change it, so a hostile login or accept cannot switch identity.
 * A case may override any header, the cookie and CSRF ones included.
 */
export class SessionInjector {
  session = '';
  csrf = '';

  constructor(private readonly app: App) {}

  async login(email: string, password: string): Promise<void> {
    const res = await this.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } });
    if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
    for (const c of res.cookies) {
      if (c.name === 'hush_session') this.session = c.value;
      if (c.name === 'hush_csrf') this.csrf = c.value;
    }
  }

  /**
   * A new session for `userId`, written straight to the store (as sign-in
   * does, minus the argon2 cost): used when a fuzzed logout ended the last one.
   */
  async adopt(db: AppContext['db'], userId: string): Promise<void> {
    const sessionToken = newToken();
    const csrfToken = newToken();
    const now = Date.now();
    await db
      .insertInto('sessions')
      .values({
        id_hash: hashToken(sessionToken),
        user_id: userId,
        csrf_hash: hashToken(csrfToken),
        created_at: nowIso(now),
        last_seen_at: nowIso(now),
        idle_expires_at: nowIso(now + 3_600_000),
        absolute_expires_at: nowIso(now + 86_400_000),
      })
      .execute();
    this.session = sessionToken;
    this.csrf = csrfToken;
  }

  async send(req: HostileRequest): Promise<HostileReply> {
    const headers: Record<string, string | string[]> = {
      cookie: `hush_session=${this.session}; hush_csrf=${this.csrf}`,
      'x-hush-csrf': this.csrf,
      ...req.headers,
    };
    const res = await this.app.inject({
      method: req.method as 'GET',
      url: req.url,
      headers,
      ...(req.payload === undefined ? {} : { payload: req.payload }),
    });
    let body: unknown;
    try {
      body = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.statusCode, headers: res.headers, text: res.body, raw: res.rawPayload, body };
  }
}

// ---------------------------------------------------------------- snapshots

const stable = (rows: unknown[]) => JSON.stringify(rows, (_k, v) => (Buffer.isBuffer(v) ? sha(v) : v));
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/**
 * One round trip: counts and high-water marks of every stored table, for a
 * per-request "nothing changed" check. A refused sign-in is the one refusal
 * that writes (audit `auth.login_failed`), so those events are left out.
 */
export async function quickFingerprint(db: AppContext['db']): Promise<string> {
  const { rows } = await sql<Record<string, unknown>>`
    select
      (select count(*) from audit_events where action <> 'auth.login_failed') as audit,
      (select max(id) from audit_events where action <> 'auth.login_failed') as audit_max,
      (select count(*) from users) as users,
      (select count(*) from sessions) as sessions,
      (select count(*) from api_tokens) as tokens,
      (select count(*) from workspaces) as workspaces,
      (select max(updated_at) from workspaces) as workspaces_at,
      (select count(*) from workspace_keys) as workspace_keys,
      (select count(*) from roles) as roles,
      (select max(updated_at) from roles) as roles_at,
      (select count(*) from members) as members,
      (select max(updated_at) from members) as members_at,
      (select count(*) from invitations) as invitations,
      (select count(accepted_at) from invitations) as accepted,
      (select count(*) from variable_names) as names,
      (select count(*) from variables) as variables,
      (select max(updated_at) from variables) as variables_at,
      (select count(*) from secrets) as secrets,
      (select sum(version) from secrets) as secret_versions_sum,
      (select max(updated_at) from secrets) as secrets_at,
      (select count(deleted_at) from secrets) as secrets_deleted,
      (select count(*) from secret_versions) as versions,
      (select count(*) from workflows) as workflows,
      (select max(updated_at) from workflows) as workflows_at,
      (select count(*) from workflow_secret_refs) as refs,
      (select count(*) from runs) as runs,
      (select count(*) from settings) as settings
  `.execute(db);
  return JSON.stringify(rows[0], (_k, v) => (typeof v === 'bigint' ? String(v) : v === null ? null : String(v)));
}

/**
 * The whole stored state, row by row (ciphertexts and wrapped keys as
 * hashes), without the columns a read legitimately touches (session
 * last-seen times, token last use). Audit events and runs, which only grow,
 * are summarised by count and newest id.
 */
export async function fullSnapshot(db: AppContext['db']): Promise<Record<string, string>> {
  // Independent reads, issued together (PostgreSQL spreads them over its pool).
  const parts: Record<string, Promise<unknown[]>> = {
    users: db.selectFrom('users').selectAll().orderBy('id').execute(),
    sessions: db.selectFrom('sessions').select(['id_hash', 'user_id', 'csrf_hash']).orderBy('id_hash').execute(),
    tokens: db
      .selectFrom('api_tokens')
      .select(['id', 'user_id', 'workspace_id', 'name', 'token_hash', 'expires_at'])
      .orderBy('id')
      .execute(),
    workspaces: db.selectFrom('workspaces').selectAll().orderBy('id').execute(),
    workspaceKeys: db.selectFrom('workspace_keys').selectAll().orderBy('workspace_id').orderBy('version').execute(),
    roles: db.selectFrom('roles').selectAll().orderBy('id').execute(),
    members: db.selectFrom('members').selectAll().orderBy('workspace_id').orderBy('user_id').execute(),
    invitations: db.selectFrom('invitations').selectAll().orderBy('id').execute(),
    names: db.selectFrom('variable_names').selectAll().orderBy('workspace_id').orderBy('name_lower').execute(),
    variables: db.selectFrom('variables').selectAll().orderBy('id').execute(),
    secrets: db.selectFrom('secrets').selectAll().orderBy('id').execute(),
    secretVersions: db.selectFrom('secret_versions').selectAll().orderBy('secret_id').orderBy('version').execute(),
    workflows: db.selectFrom('workflows').selectAll().orderBy('id').execute(),
    refs: db
      .selectFrom('workflow_secret_refs')
      .selectAll()
      .orderBy('workflow_id')
      .orderBy('block_id')
      .orderBy('field')
      .execute(),
    settings: db.selectFrom('settings').selectAll().orderBy('key').execute(),
    audit: sql<{ n: unknown; last: unknown }>`
      select count(*) as n, max(id) as last from audit_events where action <> 'auth.login_failed'`
      .execute(db)
      .then((r) => r.rows.map((x) => ({ n: String(x.n), last: x.last }))),
    runs: sql<{ n: unknown; last: unknown }>`select count(*) as n, max(id) as last from runs`
      .execute(db)
      .then((r) => r.rows.map((x) => ({ n: String(x.n), last: x.last }))),
  };
  const keys = Object.keys(parts);
  const rows = await Promise.all(Object.values(parts));
  return Object.fromEntries(keys.map((k, i) => [k, stable(rows[i] as unknown[])]));
}

/**
 * fc.assert with a short report: the counterexample of a hostile case can be
 * megabytes (a 100k-deep body), so the message keeps the seed, the path and
 * the first characters of the value and of the failure.
 */
export async function assertProperty<Ts>(
  property: fc.IAsyncPropertyWithHooks<Ts>,
  params: fc.Parameters<Ts>,
): Promise<void> {
  const out = await fc.check(property, params);
  if (!out.failed) return;
  const example = JSON.stringify(out.counterexample, (_k, v) =>
    Buffer.isBuffer(v)
      ? `<Buffer ${v.toString('hex').slice(0, 80)}>`
      : typeof v === 'string' && v.length > 300
        ? `${v.slice(0, 300)}…(${v.length} chars)`
        : v,
  );
  const error = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
  throw new Error(
    `Property failed after ${out.numRuns} runs (seed ${out.seed}, path "${out.counterexamplePath}")\n` +
      `Counterexample: ${(example ?? '').slice(0, 2_000)}\nFailure: ${error.slice(0, 4_000)}`,
  );
}

/** The tables whose snapshot differs. */
export function diffSnapshots(a: Record<string, string>, b: Record<string, string>): string[] {
  return Object.keys({ ...a, ...b }).filter((k) => a[k] !== b[k]);
}

/** Own property names of the built-in prototypes, to prove none was polluted. */
export function prototypeSurface(): Record<string, string[]> {
  const of = (o: object) => Object.getOwnPropertyNames(o).sort();
  return {
    object: of(Object.prototype),
    array: of(Array.prototype),
    function: of(Function.prototype),
    string: of(String.prototype),
    number: of(Number.prototype),
  };
}

// ------------------------------------------------------------- arbitraries

/** Builds an object with `key` as an own property, `__proto__` included. */
export function withOwn(target: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  return target;
}

export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype'] as const;

export const HUGE_STRING = 'h'.repeat(2 * 1024 * 1024 + 16);

/** Strings that tend to break parsers, SQL, logs, headers and file systems. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({
    unit: fc.constantFrom(
      '\u0000',
      '\r',
      '\n',
      '\ud800',
      '\udfff',
      '\uffff',
      '\u202e',
      '\u200b',
      '\ufeff',
      '%',
      '_',
      '\\',
      '/',
      '.',
      "'",
      '"',
      '{',
      '}',
      '$',
      'a',
      'Z',
      '💥',
      ' ',
    ),
    maxLength: 40,
  }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '\ud800',
    "'; drop table secrets; --",
    '" or 1=1 --',
    '%',
    '%%',
    '_%',
    '{{secret:SEED_PLAIN}}',
    '{{$run_id}}',
    '__proto__',
    'constructor',
    '../../etc/passwd',
    '..%2f..%2fetc%2fpasswd',
    '..\\..\\windows\\win.ini',
    '%00',
    'a\r\nX-Injected: 1',
    '\u2028\u2029',
    'NaN',
    '-0',
    '1e309',
    'ａｄｍｉｎ',
    'ǅ',
  ),
);

const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(0, -1, 2 ** 53, -(2 ** 53), 1e308, Number.MIN_VALUE),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
  nastyString,
);

const hugeValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: 60_000, max: 70_000 }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: 30_000, max: 40_000 }).map((n) => 'é'.repeat(n)),
  fc.integer({ min: 1_000, max: 120_000 }).map((n) => new Array<number>(n).fill(7)),
  fc
    .integer({ min: 100, max: 5_000 })
    .map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))),
  fc.constant(HUGE_STRING),
);

function nestedArrays(depth: number, leaf: unknown): unknown {
  let v: unknown = [leaf];
  for (let i = 1; i < depth; i++) v = [v];
  return v;
}
function nestedObjects(depth: number, key: string): unknown {
  let v: unknown = { [key]: 'leaf' };
  for (let i = 1; i < depth; i++) v = withOwn({}, key, v);
  return v;
}
/** Deep values that JSON.stringify still handles (deeper ones go as raw text). */
const deepValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: 40, max: 3_000 }).map((d) => nestedArrays(d, 'leaf')),
  fc.integer({ min: 40, max: 3_000 }).map((d) => nestedObjects(d, 'k')),
  fc.integer({ min: 40, max: 500 }).map((d) => nestedObjects(d, '__proto__')),
);

/** Any hostile JSON value: wrong types, huge, deep, with prototype keys. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: wrongType },
  { weight: 2, arbitrary: hugeValue },
  { weight: 2, arbitrary: deepValue },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...PROTO_KEYS, 'toString', 'valueOf', 'hasOwnProperty', 'then'), wrongType)
      .map(([k, v]) => withOwn({}, k, k === 'constructor' ? { prototype: { polluted: 'yes' } } : { polluted: v })),
  },
  { weight: 2, arbitrary: fc.anything({ maxDepth: 3 }) },
);

/** A JSON path into a value (object keys and array indexes), root = []. */
type Path = (string | number)[];
function paths(value: unknown, prefix: Path = [], out: Path[] = [], budget = { n: 400 }): Path[] {
  out.push(prefix);
  if (budget.n-- <= 0) return out;
  if (Array.isArray(value)) {
    for (const [i, v] of value.slice(0, 20).entries()) paths(v, [...prefix, i], out, budget);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out, budget);
  }
  return out;
}
function clone(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clone);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) withOwn(out, k, clone(v));
    return out;
  }
  return value;
}
function setAt(root: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const copy = clone(root);
  let cur = copy as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) cur = cur[step] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (Array.isArray(cur)) cur[last as number] = value;
  else withOwn(cur as Record<string, unknown>, String(last), value);
  return copy;
}

/** Adds `__proto__`, `constructor` and `prototype` keys at every object level of `value`. */
export function pollutedEverywhere(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(pollutedEverywhere);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) withOwn(out, k, pollutedEverywhere(v));
    withOwn(out, '__proto__', { polluted: 'yes', isAdmin: true });
    withOwn(out, 'constructor', { prototype: { polluted: 'yes' } });
    withOwn(out, 'prototype', { polluted: 'yes' });
    return out;
  }
  return value;
}

/** Hints for string fields the schema alone cannot make useful (a URL that reaches the test upstream). */
export interface SchemaHints {
  strings?: Record<string, fc.Arbitrary<string>>;
}

function tryPattern(pattern: string): fc.Arbitrary<string> | undefined {
  for (const flags of ['', 'u']) {
    try {
      const re = new RegExp(pattern, flags);
      const arb = fc.stringMatching(re);
      fc.sample(arb, { numRuns: 1, seed: 1 });
      return arb;
    } catch {
      // try the next flags, then give up
    }
  }
  return undefined;
}

/** Values that satisfy `schema` (as far as fast-check can generate them). */
export function validFor(
  schema: JsonSchema | undefined,
  hints: SchemaHints = {},
  name = '',
  depth = 0,
): fc.Arbitrary<unknown> {
  if (!schema || depth > 8) return fc.constant(null);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const alts = schema.anyOf ?? schema.oneOf;
  if (alts && alts.length > 0) return fc.oneof(...alts.map((s) => validFor(s, hints, name, depth + 1)));
  if (schema.allOf?.[0]) return validFor(schema.allOf[0], hints, name, depth + 1);
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.length > 1) return fc.oneof(...types.map((t) => validFor({ ...schema, type: t }, hints, name, depth + 1)));
  switch (types[0]) {
    case 'string': {
      const hinted = hints.strings?.[name];
      if (hinted) return hinted;
      if (schema.format === 'email') return fc.emailAddress();
      if (schema.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      if (schema.pattern) {
        const arb = tryPattern(schema.pattern);
        if (arb)
          return arb.filter((s) => s.length <= (schema.maxLength ?? 10_000) && s.length >= (schema.minLength ?? 0));
        return fc.constantFrom('Name_1', 'valid name');
      }
      return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 30, 30) });
    }
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1_000_000, max: schema.maximum ?? 1_000_000 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(validFor(schema.items, hints, name, depth + 1), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.max(schema.minItems ?? 0, Math.min(schema.maxItems ?? 3, 3)),
      });
    case 'object': {
      const props = schema.properties ?? {};
      if (Object.keys(props).length === 0 && typeof schema.additionalProperties === 'object') {
        const key = schema.propertyNames?.pattern
          ? (tryPattern(schema.propertyNames.pattern) ?? fc.constant('k'))
          : fc.string();
        return fc.dictionary(key, validFor(schema.additionalProperties, hints, '', depth + 1), { maxKeys: 3 });
      }
      const shape: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, s] of Object.entries(props)) shape[k] = validFor(s, hints, k, depth + 1);
      return fc.record(shape, { requiredKeys: (schema.required ?? []).filter((k) => k in props) });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A valid body with one place replaced by (or given an extra key holding) a hostile value. */
export function mutatedFor(schema: JsonSchema | undefined, hints: SchemaHints = {}): fc.Arbitrary<unknown> {
  return fc
    .tuple(
      validFor(schema, hints),
      fc.nat(),
      hostileValue,
      fc.constantFrom('replace', 'replace', 'replace', 'extra'),
      fc.constantFrom(...PROTO_KEYS, 'extra', 'toString', ''),
    )
    .map(([valid, pick, hostile, how, extraKey]) => {
      const all = paths(valid);
      const target = all[pick % all.length] as Path;
      if (how === 'replace') return setAt(valid, target, hostile);
      const objects = all.filter((p) => {
        let cur: unknown = valid;
        for (const s of p) cur = (cur as Record<string | number, unknown>)[s];
        return cur !== null && typeof cur === 'object' && !Array.isArray(cur);
      });
      const at = objects[pick % Math.max(1, objects.length)];
      if (!at) return hostile;
      let cur: unknown = valid;
      for (const s of at) cur = (cur as Record<string | number, unknown>)[s];
      return setAt(valid, at, withOwn(clone(cur) as Record<string, unknown>, extraKey, hostile));
    });
}

/** What goes on the wire as the body. */
export type Payload =
  | { kind: 'none'; label: string }
  | { kind: 'json'; value: unknown; label: string }
  | { kind: 'raw'; bytes: string | Buffer; contentType: string | undefined; label: string };

export function payloadToWire(p: Payload): { payload?: string | Buffer; contentType?: string } {
  if (p.kind === 'none') return {};
  if (p.kind === 'json') return { payload: JSON.stringify(p.value) ?? 'null', contentType: 'application/json' };
  return { payload: p.bytes, ...(p.contentType === undefined ? {} : { contentType: p.contentType }) };
}

export function deepText(depth: number, open = '[', close = ']', leaf = '1'): string {
  return `${open.repeat(depth)}${leaf}${close.repeat(depth)}`;
}

const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'application/octet-stream',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/jsonx',
  'application/vnd.api+json',
  'application/problem+json',
  'APPLICATION/JSON',
  'application/json;;;;',
  'application/json; boundary=',
  '*/*',
  ';',
  '',
  ' ',
  `application/json; x=${'y'.repeat(5_000)}`,
];

/** Byte sequences that are not UTF-8. */
const INVALID_UTF8: Buffer[] = [
  Buffer.from([0xff, 0xfe, 0xfd]),
  Buffer.from([0xc3, 0x28]),
  Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xe0, 0x80, 0xaf]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0x80]),
];

/** Raw payloads: invalid UTF-8, NUL bytes, deep nesting, non-JSON, wrong or missing content types. */
export function rawPayloadFor(validBody: fc.Arbitrary<unknown>): fc.Arbitrary<Payload> {
  const json = 'application/json';
  const injectIntoValid = (valid: unknown, replacement: Buffer): Buffer => {
    // Puts `replacement` bytes inside the first string of a valid body, or as the whole body.
    const text = JSON.stringify(valid) ?? 'null';
    const at = text.indexOf('"', text.indexOf(':') + 1);
    if (at < 0) return Buffer.concat([Buffer.from('{"x":"'), replacement, Buffer.from('"}')]);
    return Buffer.concat([Buffer.from(text.slice(0, at + 1)), replacement, Buffer.from(text.slice(at + 1))]);
  };
  const deepInside = (valid: unknown, deep: string): string => {
    const text = JSON.stringify(valid) ?? 'null';
    const m = /:("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*|true|false|null)/.exec(text);
    return m ? `${text.slice(0, m.index + 1)}${deep}${text.slice(m.index + m[0].length)}` : deep;
  };
  return fc.oneof(
    fc.tuple(validBody, fc.constantFrom(...INVALID_UTF8)).map(
      ([v, bad]): Payload => ({
        kind: 'raw',
        bytes: injectIntoValid(v, bad),
        contentType: json,
        label: 'invalid-utf8-inside',
      }),
    ),
    fc
      .uint8Array({ minLength: 1, maxLength: 200 })
      .map((a): Payload => ({ kind: 'raw', bytes: Buffer.from(a), contentType: json, label: 'random-bytes' })),
    validBody.map(
      (v): Payload => ({
        kind: 'raw',
        bytes: injectIntoValid(v, Buffer.from([0])),
        contentType: json,
        label: 'raw-nul-byte',
      }),
    ),
    validBody.map(
      (v): Payload => ({
        kind: 'raw',
        bytes: Buffer.from(JSON.stringify(v) ?? 'null', 'utf16le'),
        contentType: json,
        label: 'utf16-json',
      }),
    ),
    validBody.map(
      (v): Payload => ({
        kind: 'raw',
        bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(v) ?? 'null')]),
        contentType: json,
        label: 'bom-json',
      }),
    ),
    fc.tuple(validBody, fc.constantFrom(10_000, 20_000, 100_000), fc.constantFrom(['[', ']'], ['{"a":', '}'])).map(
      ([v, d, [o, c]]): Payload => ({
        kind: 'raw',
        bytes: deepInside(v, deepText(d, o, c)),
        contentType: json,
        label: `deep-${d}-inside`,
      }),
    ),
    fc
      .constantFrom(10_000, 100_000)
      .map((d): Payload => ({ kind: 'raw', bytes: deepText(d), contentType: json, label: `deep-${d}` })),
    fc.tuple(validBody, fc.constantFrom(...CONTENT_TYPES)).map(
      ([v, ct]): Payload => ({
        kind: 'raw',
        bytes: JSON.stringify(v) ?? 'null',
        contentType: ct,
        label: `content-type ${ct.slice(0, 40)}`,
      }),
    ),
    validBody.map(
      (v): Payload => ({
        kind: 'raw',
        bytes: JSON.stringify(v) ?? 'null',
        contentType: undefined,
        label: 'no-content-type',
      }),
    ),
    fc
      .constantFrom(
        '',
        ' ',
        '\u0000',
        'null',
        'true',
        '0',
        '"str"',
        '[]',
        '{',
        '{"a":1,}',
        "{'a':1}",
        '{"a":1}{"b":2}',
        '{"a":NaN}',
        '{"a":1e999}',
        '{"a":"\\ud800"}',
        '{"a":"\\u0000"}',
        '<xml/>',
        'a=1&b=2',
        '---\na: 1\n',
        '{"__proto__":{"polluted":"yes"}}',
        '{"constructor":{"prototype":{"polluted":"yes"}}}',
        '{"a":{"__proto__":{"polluted":"yes"}}}',
        '[{"__proto__":{"polluted":"yes"}}]',
        '{"a":1,"a":2}',
      )
      .map(
        (text): Payload => ({
          kind: 'raw',
          bytes: text,
          contentType: json,
          label: `text ${JSON.stringify(text).slice(0, 30)}`,
        }),
      ),
    fc.constant<Payload>({ kind: 'raw', bytes: Buffer.alloc(0), contentType: json, label: 'empty-json' }),
    fc.constant<Payload>({ kind: 'raw', bytes: `{"a":"${HUGE_STRING}"}`, contentType: json, label: 'over-body-limit' }),
  );
}

/** The bodies a route is sent: valid, mutated, hostile, polluted, raw. */
export function payloadFor(schema: JsonSchema | undefined, hints: SchemaHints = {}): fc.Arbitrary<Payload> {
  const valid = validFor(schema, hints);
  return fc.oneof(
    { weight: 2, arbitrary: valid.map((value): Payload => ({ kind: 'json', value, label: 'valid' })) },
    {
      weight: 5,
      arbitrary: mutatedFor(schema, hints).map((value): Payload => ({ kind: 'json', value, label: 'mutated' })),
    },
    { weight: 2, arbitrary: hostileValue.map((value): Payload => ({ kind: 'json', value, label: 'hostile' })) },
    {
      weight: 1,
      arbitrary: valid.map((v): Payload => ({ kind: 'json', value: pollutedEverywhere(v), label: 'proto-everywhere' })),
    },
    { weight: 4, arbitrary: rawPayloadFor(valid) },
    { weight: 1, arbitrary: fc.constant<Payload>({ kind: 'none', label: 'no-body' }) },
  );
}

/** Percent-encodes every UTF-8 byte that is not unreserved; never throws (lone surrogates too). */
export function encodeBytes(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Hostile query strings: repeated keys, arrays, huge values, broken % escapes, prototype keys. */
export function queryFor(known: { name: string; schema: JsonSchema }[]): fc.Arbitrary<string> {
  const names = [...known.map((k) => k.name), 'x', 'limit', 'cursor', 'q'];
  const key = fc.constantFrom(...names);
  const validValue = (name: string) => {
    const s = known.find((k) => k.name === name)?.schema;
    return validFor(s).map((v) => (typeof v === 'string' ? v : (JSON.stringify(v) ?? '')));
  };
  const rawValue = fc.oneof(
    nastyString.map(encodeBytes),
    fc.string({ unit: fc.constantFrom(...'ab%2Fzz0=&+;#[]%E0%A4%ff'.split('')), maxLength: 16 }),
    fc.constantFrom('%', '%%', '%zz', '%E0%A4%A', '%ff', '%C0%AF', '%00', '%u0000', '+', '%2B', '', '[]', '1,2'),
    fc.integer({ min: 10_000, max: 200_000 }).map((n) => 'q'.repeat(n)),
  );
  const pair = fc.oneof(
    fc.tuple(key, rawValue).map(([k, v]) => `${k}=${v}`),
    key.chain((k) => validValue(k).map((v) => `${k}=${encodeBytes(v)}`)),
    fc.tuple(key, rawValue).map(([k, v]) => `${k}[]=${v}`),
    fc.tuple(key, rawValue).map(([k, v]) => `${k}[0]=${v}&${k}[1]=${v}`),
    fc.tuple(key, rawValue, rawValue).map(([k, a, b]) => `${k}=${a}&${k}=${b}`),
    fc.constantFrom(
      '__proto__[polluted]=1',
      '__proto__.polluted=1',
      '__proto__=1',
      'constructor[prototype][polluted]=1',
      'constructor.prototype.polluted=1',
      'prototype[polluted]=1',
      'toString=1',
      'hasOwnProperty=1',
      '=',
      '&&&',
      '==x',
      'a=b=c',
      '%=1',
      '%zz=1',
      `${'k'.repeat(50_000)}=1`,
    ),
    rawValue,
  );
  return fc.array(pair, { minLength: 1, maxLength: 6 }).map((pairs) => pairs.join('&'));
}

/** Hostile path parameter text (already as it goes in the URL). */
export const hostileParam: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '..',
    '.',
    '../..',
    '..%2f..%2f',
    '..%2F..%2Fetc%2Fpasswd',
    '%2e%2e',
    '%2e%2e%2f%2e%2e%2f',
    '..%5c..%5c',
    '%c0%ae%c0%ae',
    '%00',
    'a%00b',
    'sec_0123456789abcdef%00',
    '%',
    '%zz',
    '%ff%fe',
    '%E2%80%AE',
    '%F0%9F%92%A5',
    '%20',
    '+',
    '*',
    '%2A',
    '$env',
    '{{secret:SEED_PLAIN}}'.replaceAll('{', '%7B').replaceAll('}', '%7D'),
    'null',
    'undefined',
    '__proto__',
    'constructor',
    'prototype',
    'x'.repeat(64),
    'x'.repeat(201),
    `ws_${'0'.repeat(40)}`,
    `sec_${'z'.repeat(41)}`,
    'SEC_0123456789ABCDEF',
  ),
  fc.stringMatching(/^[a-z]{2,4}_[0-9a-z]{10,40}$/),
  nastyString.map(encodeBytes),
);

/** Headers a route is sent; may override the session's cookie, CSRF and authorization. */
export function headersFor(ifMatchCurrent: () => string): fc.Arbitrary<Record<string, string | string[]>> {
  const ifMatch = fc.oneof(
    fc.constantFrom(
      '*',
      '"1"',
      'W/"1"',
      '1, 2',
      '"1", "2"',
      '0',
      '-1',
      '1.0',
      '1e3',
      '0x1',
      ' 1 ',
      '\t1',
      '',
      '"',
      'W/',
      'null',
      '999999999',
      '9999999999',
      '1'.repeat(41),
      '１',
      '٣',
    ),
    fc.string({ maxLength: 50 }).filter((s) => !/[\r\n\0]/.test(s) && /^[\t\x20-\x7e]*$/.test(s)),
    fc.constant('@current'),
  );
  const printable = (s: string) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
  const one = fc.oneof(
    ifMatch.map((v) => ({ 'if-match': v === '@current' ? ifMatchCurrent() : v })),
    fc
      .array(
        ifMatch.filter((v) => v !== '@current'),
        { minLength: 2, maxLength: 3 },
      )
      .map((v) => ({ 'if-match': v })),
    fc.integer({ min: 8_000, max: 200_000 }).map((n) => ({ 'x-huge': 'a'.repeat(n) })),
    fc
      .integer({ min: 100, max: 600 })
      .map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']))),
    fc
      .constantFrom('application/xml', '*/*;q=0', 'text/html', 'garbage', '', 'application/json;q=abc')
      .map((v) => ({ accept: v })),
    fc.constantFrom('gzip', 'br', 'identity;q=0', 'x'.repeat(1000)).map((v) => ({ 'accept-encoding': v })),
    fc.constantFrom(...CONTENT_TYPES).map((v) => ({ 'content-type': v })),
    fc
      .constantFrom(
        'Bearer',
        'Bearer ',
        'Bearer hush_',
        `Bearer hush_${'a'.repeat(64)}`,
        'Bearer a b',
        'Basic YTpi',
        'bearer  hush_x  ',
        `Bearer ${'x'.repeat(10_000)}`,
        'Bearer ../../etc/passwd',
        'Bearer %00',
      )
      .map((v) => ({ authorization: v })),
    fc
      .constantFrom(
        'hush_session=',
        'hush_session=%',
        'hush_session=%zz; hush_csrf=%',
        `hush_session=${'a'.repeat(10_000)}`,
        'hush_session=a; hush_session=b',
        '=; ;;; =x',
        '__proto__=1; constructor=2',
        'hush_session="quoted"',
      )
      .map((v) => ({ cookie: v })),
    fc.constantFrom('', 'wrong', 'a'.repeat(5_000)).map((v) => ({ 'x-hush-csrf': v })),
    fc
      .constantFrom('ok-id', 'a'.repeat(65), '../x', '<script>', '%00', 'ü', 'id with space', '{{secret:x}}')
      .map((v) => ({ 'x-request-id': printable(v) })),
    fc.constantFrom('1.2.3.4', 'garbage', '::1, 127.0.0.1', 'x'.repeat(2_000)).map((v) => ({ 'x-forwarded-for': v })),
    fc.constantFrom('ü€', 'Ã©', '\x7f', 'a\tb').map((v) => ({ 'x-weird': printable(v) })),
  );
  return fc.array(one, { minLength: 1, maxLength: 3 }).map((list) => Object.assign({}, ...list));
}
