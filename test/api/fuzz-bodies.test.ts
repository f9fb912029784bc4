/**
 * Property-based fuzzing of the secrets and variables routes, on both
 * databases: random JSON, wrongly typed records, huge strings, deep nesting,
 * prototype-pollution keys, malformed JSON text, bad cursors, random query
 * strings and If-Match headers. Whatever arrives, the server answers below
 * 500, every 4xx is application/problem+json with a string `code`, a
 * refused request changes nothing, and the seeded secrets and variables keep
 * their exact values.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';

const FUZZ_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------- arbitraries

/** Strings that tend to break things: NUL, lone surrogates, SQL/LIKE/escape characters. */
const nastyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({
    unit: fc.constantFrom(
      '\u0000',
      '\ud800',
      '\udfff',
      '\uffff',
      '%',
      '_',
      '\\',
      "'",
      '"',
      '{',
      '}',
      'a',
      'Z',
      '💥',
      ' ',
    ),
    maxLength: 40,
  }),
  fc.constantFrom('', ' ', '\u0000', 'a\u0000b', '\ud800', "'; drop table secrets; --", '{{secret:X}}', '__proto__'),
);

const HUGE = 'h'.repeat(3 * 1024 * 1024);
const hugeString = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 65_530, max: 70_000 }).map((n) => 'x'.repeat(n)) },
  { weight: 5, arbitrary: fc.integer({ min: 32_760, max: 32_780 }).map((n) => 'é'.repeat(n)) },
  { weight: 1, arbitrary: fc.constant(HUGE) },
);

function nestedArrays(depth: number, leaf: unknown = 'leaf'): unknown {
  let v: unknown = [leaf];
  for (let i = 1; i < depth; i++) v = [v];
  return v;
}
function nestedObjects(depth: number): unknown {
  let v: unknown = { k: 'leaf' };
  for (let i = 1; i < depth; i++) v = { k: v };
  return v;
}
const deepValue = fc.oneof(
  fc.integer({ min: 50, max: 2_000 }).map((d) => nestedArrays(d)),
  fc.integer({ min: 50, max: 2_000 }).map((d) => nestedObjects(d)),
  fc.integer({ min: 50, max: 2_000 }).map((d) => nestedArrays(d, '{{secret:X}}')),
);
/** Nesting far beyond what a recursive walk survives, as raw JSON text. */
const deepRawArray = fc.integer({ min: 50, max: 100_000 }).map((d) => `${'['.repeat(d)}"leaf"${']'.repeat(d)}`);

const wrongType = fc.oneof(
  fc.anything({ maxDepth: 2 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
  nastyString,
);

const validName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/);
const hostEntry = fc.oneof(
  fc.domain(),
  fc.webUrl(),
  fc.ipV4(),
  fc.ipV6(),
  nastyString,
  fc.constantFrom(
    '*.com',
    '*.example.com',
    'a.com:443',
    '[::1]',
    '[zz]',
    '',
    '.',
    '*',
    '-a.com',
    'xn--',
    '1.2.3',
    '0x7f.1',
  ),
);
const hostList = fc.oneof(fc.array(hostEntry, { maxLength: 25 }), wrongType);
const ifMatch = fc.oneof(
  fc.string({ maxLength: 50 }),
  fc.nat().map(String),
  fc.constantFrom('*', '1', '"1"', 'W/"1"', '0', '-1', '1.0', ' 1 ', '99999999999', '', '"', 'W/'),
);

const secretRecord = fc.record(
  {
    name: fc.oneof(validName, wrongType),
    visibility: fc.oneof(fc.constantFrom('masked', 'restricted'), wrongType),
    value: fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), nastyString, hugeString, wrongType),
    description: fc.oneof(fc.string({ unit: 'binary', maxLength: 600 }), nastyString, wrongType),
    allowedHosts: hostList,
    extra: wrongType,
  },
  { requiredKeys: [] },
);

const variableValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  wrongType,
  nastyString,
  deepValue,
  fc.constantFrom('2026-02-30T09:00:00Z', '2026-01-31T09:00:00Z', '{{ secret : X }}', 1e308, -0),
);
const variableRecord = fc.record(
  {
    name: fc.oneof(validName, wrongType),
    type: fc.oneof(fc.constantFrom('text', 'number', 'boolean', 'datetime', 'map', 'list'), wrongType),
    description: fc.oneof(fc.string({ unit: 'binary', maxLength: 600 }), nastyString, wrongType),
    testValue: variableValue,
    fallbackValue: variableValue,
    kind: wrongType,
  },
  { requiredKeys: [] },
);

/** JSON text that is malformed, or well-formed but hostile. */
const rawJson = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.json({ maxDepth: 3 }).chain((s) => fc.nat({ max: Math.max(0, s.length - 1) }).map((n) => s.slice(0, n))),
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  deepRawArray,
  fc.constantFrom(
    '',
    ' ',
    '{',
    '}',
    '[',
    '{"name":',
    '{"a":1,}',
    "{'a':1}",
    '{"a":1}{"b":2}',
    '\uFEFF{}',
    'NaN',
    'undefined',
    'null',
    'true',
    '0',
    '"string"',
    '[]',
    '{"__proto__":{"polluted":"yes"}}',
    '{"constructor":{"prototype":{"polluted":"yes"}}}',
    '{"name":"PROTO","visibility":"masked","value":"proto-value","__proto__":{"isAdmin":true}}',
    '{"name":"CTOR","type":"map","testValue":{"constructor":{"prototype":{"polluted":"yes"}}}}',
    '{"value":"\\ud800"}',
    '{"value":"\\u0000"}',
    '{"description":"\\u0000"}',
    '{"name":"A","name":"B"}',
    '{"value":1e999}',
    '\u0000',
  ),
);

const anyBody = fc.oneof(
  fc.anything({ maxDepth: 3 }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.object({ maxDepth: 3 }),
  fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf'), fc.anything(), {
    maxKeys: 3,
  }),
  deepValue,
);

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=latin1',
  'APPLICATION/JSON',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/problem+json',
  'application/octet-stream',
  ';;;',
];

/** What a request sends: JSON (stringified here) or raw text, with a content type. */
type Payload = { kind: 'json'; value: unknown } | { kind: 'raw'; text: string; contentType: string } | { kind: 'none' };

function payloadArb(record: fc.Arbitrary<unknown>): fc.Arbitrary<Payload> {
  return fc.oneof(
    { weight: 4, arbitrary: record.map((value): Payload => ({ kind: 'json', value })) },
    { weight: 3, arbitrary: anyBody.map((value): Payload => ({ kind: 'json', value })) },
    { weight: 3, arbitrary: rawJson.map((text): Payload => ({ kind: 'raw', text, contentType: 'application/json' })) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.oneof(rawJson, fc.json()), fc.constantFrom(...CONTENT_TYPES))
        .map(([text, contentType]): Payload => ({ kind: 'raw', text, contentType })),
    },
    { weight: 1, arbitrary: fc.constant<Payload>({ kind: 'none' }) },
  );
}

/** Percent-encodes every UTF-8 byte that is not unreserved; never throws (lone surrogates too). */
function encodeBytes(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const base64url = (v: unknown) => Buffer.from(JSON.stringify(v) ?? 'null', 'utf8').toString('base64url');
const cursorArb = fc.oneof(
  fc.base64String({ maxLength: 120 }),
  fc.string({
    unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_='.split('')),
    maxLength: 150,
  }),
  fc.jsonValue({ maxDepth: 2 }).map(base64url),
  fc.record({ name: nastyString, id: nastyString }, { requiredKeys: [] }).map(base64url),
  fc.record({ name: fc.anything({ maxDepth: 1 }), id: fc.anything({ maxDepth: 1 }) }).map(base64url),
  fc.constantFrom('', '=', 'e30', base64url({ name: 'A', id: 'sec_x' }), base64url({ name: '\u0000', id: '\u0000' })),
);
const queryValue = fc.oneof(
  nastyString,
  fc.integer().map(String),
  fc.constantFrom(
    '',
    '0',
    '1',
    '2',
    '200',
    '201',
    '-1',
    '1.5',
    '1e2',
    '0x10',
    'NaN',
    'Infinity',
    'true',
    'false',
    'yes',
  ),
);
/** Raw query text: unescaped and possibly broken percent escapes, repeated keys. */
const rawQuery = fc
  .array(
    fc.tuple(
      fc.constantFrom('limit', 'cursor', 'q', 'deleted', 'kind', 'purge', 'x', '__proto__', 'q[]', ''),
      fc.string({ unit: fc.constantFrom(...'ab%2Fzz0=&+;#[]'.split('')), maxLength: 12 }),
    ),
    { maxLength: 5 },
  )
  .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('&'));

function queryArb(keys: Record<string, fc.Arbitrary<string>>): fc.Arbitrary<string> {
  const structured = fc.record(keys, { requiredKeys: [] }).map((r) =>
    Object.entries(r)
      .map(([k, v]) => `${k}=${encodeBytes(v ?? '')}`)
      .join('&'),
  );
  return fc.oneof({ weight: 4, arbitrary: structured }, { weight: 1, arbitrary: rawQuery });
}

// --------------------------------------------------------------------- suite

describe.each(DATABASES)('fuzzed requests on $kind', ({ kind, available }) => {
  let t: TestApp;
  let owner: TestClient;
  let ws: string;
  let cases = 0;
  /** Seeded secrets no fuzzed request may change. */
  const sentinels: { id: string; name: string; value: string; visibility: string }[] = [];
  /** Seeded variables no fuzzed request may change. */
  const sentinelVariables: { id: string; view: unknown }[] = [];
  /** Fuzz targets that may legitimately change. */
  let playSecret = '';
  let playVariable = '';
  const disposable: string[] = [];

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind, { HUSH_REVEAL_LIMIT_PER_MIN: '100000', HUSH_LOG_LEVEL: 'warn' });
    ({ owner, workspaceId: ws } = await setupOwner(t));
    const seeds = [
      { name: 'SEED_PLAIN', value: 'seed-plain-value-0001', visibility: 'masked' },
      { name: 'Seed_Unicode', value: 'sëéd 🔑 密码 "q" \\ \n end', visibility: 'masked' },
      { name: 'seed_big', value: 'B'.repeat(65_536), visibility: 'masked' },
      { name: 'SEED_RESTRICTED', value: 'seed-restricted-value-0002', visibility: 'restricted' },
    ];
    for (const s of seeds) {
      const res = await owner.post(`/api/v1/workspaces/${ws}/secrets`, { ...s, allowedHosts: ['api.example.com'] });
      expect(res.status, res.text).toBe(201);
      sentinels.push({ ...s, id: res.body.id });
    }
    const play = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
      name: 'PLAYGROUND',
      visibility: 'masked',
      value: 'playground-value',
    });
    playSecret = play.body.id;
    for (let i = 0; i < 6; i++) {
      const d = await owner.post(`/api/v1/workspaces/${ws}/secrets`, {
        name: `DISPOSABLE_${i}`,
        visibility: 'masked',
        value: `disposable-value-${i}`,
      });
      disposable.push(d.body.id);
    }
    for (const v of [
      { name: 'SEED_TEXT', type: 'text', testValue: 'seed text', fallbackValue: 'fallback' },
      { name: 'SEED_MAP', type: 'map', testValue: { a: [1, { b: 'c' }] } },
      { name: 'SEED_LIST', type: 'list', fallbackValue: [1, 'two', null] },
      { name: 'SEED_DATE', type: 'datetime', testValue: '2026-01-31T09:00:00Z' },
    ]) {
      const res = await owner.post(`/api/v1/workspaces/${ws}/variables`, v);
      expect(res.status, res.text).toBe(201);
      sentinelVariables.push({ id: res.body.id, view: res.body });
    }
    const pv = await owner.post(`/api/v1/workspaces/${ws}/variables`, { name: 'PLAY_VAR', type: 'text' });
    playVariable = pv.body.id;
  }, 120_000);
  afterAll(async () => {
    if (available) console.info(`[fuzz] ${kind}: ${cases} fuzz cases sent`);
    await t?.close();
  });

  const base = () => `/api/v1/workspaces/${ws}`;

  /** Sends one fuzzed request and checks the invariants every response must hold. */
  async function send(method: string, url: string, payload: Payload, headers: Record<string, string> = {}) {
    cases += 1;
    const h = { ...headers };
    let body: string | undefined;
    if (payload.kind === 'json') {
      body = JSON.stringify(payload.value) ?? 'null';
      h['content-type'] = 'application/json';
    } else if (payload.kind === 'raw') {
      body = payload.text;
      h['content-type'] = payload.contentType;
    }
    const res = await owner.request(method, url, body, h);
    const context = `${method} ${url.slice(0, 300)} [${JSON.stringify(h).slice(0, 200)}] body=${(body ?? '').slice(0, 300)} → ${res.status} ${res.text.slice(0, 400)}`;
    expect(res.status, context).toBeLessThan(500);
    if (res.status >= 400) {
      expect(String(res.headers['content-type']), context).toMatch(/^application\/problem\+json/);
      expect(typeof res.body?.code, context).toBe('string');
      expect(res.body.status, context).toBe(res.status);
    }
    // Nothing but a reveal of that very secret may carry a seeded value.
    for (const s of sentinels) {
      if (url.endsWith(`/secrets/${s.id}/reveal`) && res.status === 200) continue;
      expect(res.text.includes(s.value), `${context} leaks ${s.name}`).toBe(false);
    }
    return { res, context };
  }

  const RUNS = { fast: 400, medium: 300, slow: 200 };
  const sentinelId = () => fc.constantFrom(...sentinels.map((s) => s.id));
  const randomId = fc.oneof(
    fc.stringMatching(/^sec_[0-9a-z]{26}$/),
    fc.stringMatching(/^var_[0-9a-z]{26}$/),
    nastyString.map(encodeBytes),
    fc.constantFrom('..', '%2e%2e', 'sec_', 'x', '$env', '%00', 'sec_0000000000', encodeURIComponent(' sec_1 ')),
  );

  it.runIf(available)(
    'POST secrets: any body is answered below 500 with a problem',
    async () => {
      await fc.assert(
        fc.asyncProperty(payloadArb(secretRecord), async (payload) => {
          const { res, context } = await send('POST', `${base()}/secrets`, payload);
          if (res.status === 201) expect(res.body).not.toHaveProperty('value');
          else expect(res.status, context).toBeGreaterThanOrEqual(400);
        }),
        { numRuns: RUNS.fast },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'PATCH secrets: any body and If-Match is answered below 500, and never changes a seeded secret',
    async () => {
      const target = fc.oneof(
        { weight: 3, arbitrary: fc.constant('play') },
        { weight: 2, arbitrary: sentinelId() },
        { weight: 1, arbitrary: randomId },
      );
      const patchRecord = fc.record(
        {
          value: fc.oneof(fc.string({ unit: 'binary', maxLength: 100 }), nastyString, hugeString, wrongType),
          description: fc.oneof(fc.string({ unit: 'binary', maxLength: 600 }), nastyString, wrongType),
          allowedHosts: hostList,
          name: fc.oneof(validName, wrongType, fc.constantFrom(...sentinels.map((s) => s.name))),
          visibility: fc.oneof(fc.constantFrom('masked', 'restricted'), wrongType),
        },
        { requiredKeys: [] },
      );
      await fc.assert(
        fc.asyncProperty(target, payloadArb(patchRecord), fc.option(ifMatch), async (id, payload, im) => {
          const isSentinel = sentinels.some((s) => s.id === id);
          const headers: Record<string, string> = {};
          // A seeded secret is only ever sent a stale version, so it must refuse.
          if (isSentinel) headers['if-match'] = im === null ? '"999999"' : `${im}x`;
          else if (im !== null) headers['if-match'] = im;
          const url = `${base()}/secrets/${id === 'play' ? playSecret : id}`;
          const { res, context } = await send('PATCH', url, payload, headers);
          if (isSentinel) expect(res.status, context).toBeGreaterThanOrEqual(400);
          if (res.status === 200) expect(res.body).not.toHaveProperty('value');
        }),
        { numRuns: RUNS.fast },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'POST variables: any body is answered below 500 with a problem',
    async () => {
      const deepListVariable = deepRawArray.map(
        (deep): Payload => ({
          kind: 'raw',
          text: `{"name":"DEEP_${Math.random().toString(36).slice(2, 10)}","type":"list","testValue":${deep}}`,
          contentType: 'application/json',
        }),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.oneof({ weight: 6, arbitrary: payloadArb(variableRecord) }, { weight: 1, arbitrary: deepListVariable }),
          async (payload) => {
            await send('POST', `${base()}/variables`, payload);
          },
        ),
        { numRuns: RUNS.fast },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'PATCH variables: any body is answered below 500',
    async () => {
      const target = fc.oneof({ weight: 4, arbitrary: fc.constant('play') }, { weight: 1, arbitrary: randomId });
      const patchRecord = fc.record(
        {
          name: fc.oneof(validName, wrongType, fc.constantFrom('SEED_TEXT', 'seed_map', 'PLAYGROUND')),
          type: fc.oneof(fc.constantFrom('text', 'number', 'boolean', 'datetime', 'map', 'list'), wrongType),
          description: fc.oneof(nastyString, wrongType),
          testValue: variableValue,
          fallbackValue: variableValue,
        },
        { requiredKeys: [] },
      );
      await fc.assert(
        fc.asyncProperty(target, payloadArb(patchRecord), async (id, payload) => {
          await send('PATCH', `${base()}/variables/${id === 'play' ? playVariable : id}`, payload);
        }),
        { numRuns: RUNS.medium },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'reveal: any body and id is answered below 500; a seeded secret reveals exactly its value',
    async () => {
      const target = fc.oneof({ weight: 3, arbitrary: sentinelId() }, { weight: 1, arbitrary: randomId });
      await fc.assert(
        fc.asyncProperty(target, payloadArb(fc.anything({ maxDepth: 2 })), async (id, payload) => {
          const { res, context } = await send('POST', `${base()}/secrets/${id}/reveal`, payload);
          const seeded = sentinels.find((s) => s.id === id);
          if (res.status === 200) {
            expect(seeded, context).toBeDefined();
            expect(seeded?.visibility, context).toBe('masked');
            expect(res.body.value === seeded?.value, context).toBe(true);
          }
          if (seeded?.visibility === 'restricted') expect(res.status, context).toBeGreaterThanOrEqual(400);
        }),
        { numRuns: RUNS.medium },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'restore: any body and id is answered below 500, and a live secret stays as it was',
    async () => {
      const target = fc.oneof(
        { weight: 2, arbitrary: sentinelId() },
        { weight: 2, arbitrary: fc.constantFrom(...disposable) },
        { weight: 1, arbitrary: randomId },
      );
      await fc.assert(
        fc.asyncProperty(target, payloadArb(fc.anything({ maxDepth: 2 })), async (id, payload) => {
          const { res, context } = await send('POST', `${base()}/secrets/${id}/restore`, payload);
          if (sentinels.some((s) => s.id === id)) expect(res.status, context).toBeGreaterThanOrEqual(400);
        }),
        { numRuns: RUNS.slow },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'DELETE ?purge: any query, id and body is answered below 500; a bad purge flag deletes nothing',
    async () => {
      const purgeFlag = fc.oneof(
        queryValue.filter((v) => v !== 'true' && v !== 'false'),
        fc.constantFrom('TRUE', '1', 'yes', 'true ', ' true', 'true,true', ''),
      );
      const target = fc.oneof(
        {
          weight: 2,
          arbitrary: fc.tuple(sentinelId(), purgeFlag).map(([id, p]) => `${id}?purge=${encodeBytes(p)}`),
        },
        {
          weight: 2,
          arbitrary: fc
            .tuple(fc.constantFrom(...disposable), fc.oneof(fc.constantFrom('true', 'false'), purgeFlag))
            .map(([id, p]) => `${id}?purge=${encodeBytes(p)}`),
        },
        {
          weight: 1,
          arbitrary: fc
            .tuple(randomId, fc.oneof(fc.constantFrom('true', 'false'), purgeFlag))
            .map(([id, p]) => `${id}?purge=${encodeBytes(p)}`),
        },
        // Raw query text after an invalid flag: never a valid purge=true|false (an absent flag deletes).
        { weight: 1, arbitrary: fc.tuple(sentinelId(), rawQuery).map(([id, q]) => `${id}?purge=maybe&${q}`) },
      );
      await fc.assert(
        fc.asyncProperty(target, payloadArb(fc.anything({ maxDepth: 2 })), async (path, payload) => {
          const { res, context } = await send('DELETE', `${base()}/secrets/${path}`, payload);
          if (sentinels.some((s) => path.startsWith(s.id))) expect(res.status, context).toBeGreaterThanOrEqual(400);
        }),
        { numRuns: RUNS.medium },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'list secrets: any query string is answered below 500; a 200 is a well-formed page',
    async () => {
      const query = queryArb({
        limit: queryValue,
        cursor: cursorArb,
        q: queryValue,
        deleted: queryValue,
        x: queryValue,
      });
      await fc.assert(
        fc.asyncProperty(query, async (qs) => {
          const { res, context } = await send('GET', `${base()}/secrets?${qs}`, { kind: 'none' });
          if (res.status === 200) {
            expect(Array.isArray(res.body.items), context).toBe(true);
            expect(res.body.nextCursor === null || typeof res.body.nextCursor === 'string', context).toBe(true);
            for (const s of res.body.items) expect(s, context).not.toHaveProperty('value');
          }
        }),
        { numRuns: RUNS.fast },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'list variables: any query string is answered below 500',
    async () => {
      const query = queryArb({ limit: queryValue, cursor: cursorArb, q: queryValue, kind: queryValue });
      await fc.assert(
        fc.asyncProperty(query, async (qs) => {
          const { res, context } = await send('GET', `${base()}/variables?${qs}`, { kind: 'none' });
          if (res.status === 200) expect(Array.isArray(res.body.items), context).toBe(true);
        }),
        { numRuns: RUNS.medium },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'reading one secret, its versions or one variable by a random id is answered below 500',
    async () => {
      const path = fc.oneof(
        randomId.map((id) => `secrets/${id}`),
        randomId.map((id) => `secrets/${id}/versions`),
        randomId.map((id) => `variables/${id}`),
      );
      await fc.assert(
        fc.asyncProperty(path, async (p) => {
          await send('GET', `${base()}/${p}`, { kind: 'none' });
        }),
        { numRuns: RUNS.slow },
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  it.runIf(available)(
    'prototype-pollution keys change no object and no seeded record',
    async () => {
      const hostile = [
        '{"__proto__":{"polluted":"yes"},"name":"POLLUTE_A","visibility":"masked","value":"pollute-value-a"}',
        '{"constructor":{"prototype":{"polluted":"yes"}},"name":"POLLUTE_B","visibility":"masked","value":"x-value-b"}',
        '{"name":"POLLUTE_C","type":"map","testValue":{"__proto__":{"polluted":"yes"}}}',
        '{"name":"POLLUTE_D","type":"map","testValue":{"constructor":{"prototype":{"polluted":"yes"}}}}',
        '{"name":"POLLUTE_E","type":"list","testValue":[{"__proto__":{"polluted":"yes"}}]}',
        '{"description":"x","__proto__":{"value":"injected-by-proto"}}',
      ];
      for (const text of hostile) {
        for (const url of [
          `${base()}/secrets`,
          `${base()}/variables`,
          `${base()}/secrets/${playSecret}`,
          `${base()}/variables/${playVariable}`,
        ]) {
          const method = url.endsWith('/secrets') || url.endsWith('/variables') ? 'POST' : 'PATCH';
          await send(method, url, { kind: 'raw', text, contentType: 'application/json' });
        }
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty('polluted');
      expect(Object.prototype).not.toHaveProperty('isAdmin');
    },
    FUZZ_TIMEOUT_MS,
  );

  describe('inputs the fuzzing turned up, pinned as examples', () => {
    const nulCursor = (name: string, id: string) =>
      Buffer.from(JSON.stringify({ name, id }), 'utf8').toString('base64url');

    it.runIf(available)('a NUL character in ?q= or in a cursor is answered below 500 and matches nothing', async () => {
      for (const list of ['secrets', 'variables']) {
        for (const qs of [
          'q=%00',
          'q=a%00',
          `cursor=${nulCursor('a\u0000', 'sec_x')}`,
          `cursor=${nulCursor('', '\u0000')}`,
          `kind=custom&q=%00`,
        ]) {
          if (list === 'secrets' && qs.startsWith('kind')) continue;
          const { res, context } = await send('GET', `${base()}/${list}?${qs}`, { kind: 'none' });
          expect(res.status, context).toBeLessThan(500);
          if (res.status === 200 && qs.includes('q=')) {
            // No name holds a NUL, so a search for one finds nothing.
            expect(res.body.items, context).toEqual([]);
          }
        }
      }
    });

    it.runIf(available)('a NUL character in a description is stored as sent or refused, never a 5xx', async () => {
      const description = 'before\u0000after';
      const cases: [string, string, Record<string, unknown>][] = [
        [
          'POST',
          `${base()}/secrets`,
          { name: 'NUL_DESC_S', visibility: 'masked', value: 'nul-desc-value', description },
        ],
        ['PATCH', `${base()}/secrets/${playSecret}`, { description }],
        ['POST', `${base()}/variables`, { name: 'NUL_DESC_V', type: 'text', description }],
        ['PATCH', `${base()}/variables/${playVariable}`, { description }],
      ];
      for (const [method, url, body] of cases) {
        const { res, context } = await send(method, url, { kind: 'json', value: body });
        expect(res.status, context).toBeLessThan(500);
        if (res.status < 300) {
          const got = await owner.get(method === 'POST' ? `${url}/${res.body.id}` : url);
          expect(got.body.description, context).toBe(description);
        }
      }
    });

    it.runIf(available)('a variable value nested thousands deep is refused or stored, never a 5xx', async () => {
      for (const [type, depth, open, close] of [
        ['list', 5_000, '[', ']'],
        ['list', 100_000, '[', ']'],
        ['map', 10_000, '{"k":', '}'],
      ] as const) {
        const nested = `${open.repeat(depth)}1${close.repeat(depth)}`;
        const { res, context } = await send('POST', `${base()}/variables`, {
          kind: 'raw',
          text: `{"name":"DEEP_${type}_${depth}","type":"${type}","testValue":${nested}}`,
          contentType: 'application/json',
        });
        expect(res.status, context).toBeLessThan(500);
        const patched = await send('PATCH', `${base()}/variables/${playVariable}`, {
          kind: 'raw',
          text: `{"type":"${type}","testValue":${nested}}`,
          contentType: 'application/json',
        });
        expect(patched.res.status, patched.context).toBeLessThan(500);
      }
    });
  });

  it.runIf(available)('after the fuzzing, the seeded secrets and variables are intact', async () => {
    const list = await owner.get(`${base()}/secrets?limit=200&q=seed`);
    expect(list.status, list.text).toBe(200);
    const listed = new Map<string, { name: string; version: number; visibility: string; deletedAt: unknown }>(
      list.body.items.map((s: { id: string }) => [s.id, s]),
    );
    for (const s of sentinels) {
      const row = listed.get(s.id);
      expect(row, s.name).toBeDefined();
      expect(row).toMatchObject({ name: s.name, version: 1, visibility: s.visibility, deletedAt: null });
      const revealed = await owner.post(`${base()}/secrets/${s.id}/reveal`);
      if (s.visibility === 'masked') {
        expect(revealed.status, revealed.text).toBe(200);
        expect(revealed.body.value === s.value, s.name).toBe(true);
      } else {
        expect(revealed.status).toBe(403);
      }
      const versions = await t.ctx.db
        .selectFrom('secret_versions')
        .select('version')
        .where('secret_id', '=', s.id)
        .execute();
      expect(versions).toHaveLength(1);
    }
    for (const v of sentinelVariables) {
      const got = await owner.get(`${base()}/variables/${v.id}`);
      expect(got.status, got.text).toBe(200);
      expect(got.body).toEqual(v.view);
    }
    expect(Object.prototype).not.toHaveProperty('polluted');
    // No audit event holds a seeded value, and the chain still verifies.
    const audit = JSON.stringify(await t.ctx.db.selectFrom('audit_events').selectAll().execute());
    for (const s of sentinels) expect(audit.includes(s.value), s.name).toBe(false);
    const verify = await owner.get(`${base()}/audit/verify`);
    expect(verify.status, verify.text).toBe(200);
    expect(verify.body.ok).toBe(true);
    expect(cases).toBeGreaterThan(1000);
  });
});
