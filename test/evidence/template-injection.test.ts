/**
 * Evidence (issue 8): template injection attempts never resolve a secret the
 * block did not declare.
 *
 * Against real upstreams on 127.0.0.1 and 127.0.0.2 that record every byte
 * they receive. Every secret below lists 127.0.0.1 as an allowed host, so a
 * wrongly resolved secret WOULD be allowed to leave — the host rules cannot
 * hide an injection from these tests.
 *
 *  - text that arrives at run time (input variables, captured responses, Set
 *    values, a secret's own value) is data: `{{secret:OTHER}}` in it reaches
 *    the upstream as those literal characters, in every field kind;
 *  - a stored variable cannot hold a secret reference (422
 *    `secret_not_allowed_here`), and what it may hold is sent literally;
 *  - nested, escaped, `$`-prefixed, unicode look-alike and zero-width
 *    variants in block fields are refused or sent literally;
 *  - the oracle, fuzzed: whatever the server resolves it also *declares* —
 *    a caller without `secrets.use` can never get a secret sent (the server
 *    refuses any block it counts as using one), and every secret whose value
 *    reaches the upstream in a run is listed in that secret's usages for that
 *    block (so case variations like `{{SECRET:other}}` are declared
 *    references, consistently);
 *  - values captured from a response that echoed a declared secret (raw,
 *    base64, hex, percent, JSON) are redacted before a later block can carry
 *    them to a host the secret is not allowed on.
 * No response (Send, run, run record) ever holds a secret value in any form.
 *
 * Both databases: the case-insensitive secret lookup (`lower(name)`) and the
 * usages table (`secret_name_lower`) are SQL, so PostgreSQL runs it too.
 */
import type { ServerResponse } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryForms, makeCanary } from '../support/canary.js';
import { DATABASES } from '../support/databases.js';
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { assertProperty } from '../support/hostile.js';
import { type Received, startUpstream, type Upstream } from '../support/upstream.js';

const SEED = Number(process.env.HUSH_FUZZ_SEED ?? '') || 0x7e3a_2026;
const RUNS = Number(process.env.HUSH_FUZZ_RUNS ?? '') || 60;
const TIMEOUT_MS = 120_000;

/** Text smuggled in as data: none of it may ever be resolved. */
const SMUGGLED = [
  '{{secret:OTHER}}',
  '{{ secret : OTHER }}',
  '{{SECRET:other}}',
  '{{secret:NESTED}}',
  '\\{{secret:OTHER}}',
  '{{secret:OTHER}}{{secret:DECLARED}}',
  '{{secret:DECLARED}}',
  '{{v}}',
  '{{$run_id}}',
  '{{ {{secret:OTHER}} }}',
  '｛｛secret:OTHER｝｝',
  '[secret:OTHER]',
];

/** Not references to OTHER, whatever they look like: refused, or sent as text. */
const NOT_REFERENCES = [
  '{{ {{secret:OTHER}} }}',
  '{{secret:{{name}}}}',
  '{{secret:{{secret:OTHER}}}}',
  '{{{secret:OTHER}}}',
  '{{{{secret:OTHER}}}}',
  '{ {secret:OTHER} }',
  '\\{{secret:OTHER}}',
  '\\\\{{secret:OTHER}}',
  '{{secret:OTHER',
  'secret:OTHER}}',
  '{{secret::OTHER}}',
  '{{secret:OTHER.x}}',
  '{{secret:OTHER[0]}}',
  '{{secret:"OTHER"}}',
  '{{secret:OTHER;DECLARED}}',
  '{{secret:OTH}}ER}}',
  '{{$secret:OTHER}}',
  '{{$secret}}',
  '{{$OTHER}}',
  '{{secret}}',
  '{{secret.OTHER}}',
  '{{OTHER}}',
  '{{other}}',
  '{{name}}',
  '｛｛secret:OTHER｝｝',
  '{{secret：OTHER}}',
  '{{ѕecret:OTHER}}',
  '{{secret:ОTHER}}',
  '{{secret:OTHEＲ}}',
  '{{sec\u200bret:OTHER}}',
  '{{secret\u200b:OTHER}}',
  '{{secret:OTHER\u200b}}',
  '{\u200b{secret:OTHER}}',
  '{{secret:OT\u00adHER}}',
  '{{secret:OTHER}\u200b}',
];

describe.each(DATABASES)('template injection on $kind', ({ kind, available }) => {
  let t: TestApp;
  let up: Upstream;
  let upB: Upstream;
  let owner: TestClient;
  let limited: TestClient;
  let ws = '';
  const values: Record<string, string> = {};
  const ids: Record<string, string> = {};
  let cases = 0;

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream('127.0.0.1');
    upB = await startUpstream('127.0.0.2');
    const echo = (req: Received, res: ServerResponse) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, url: req.url }));
    };
    up.handle(echo);
    upB.handle(echo);
    t = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8', HUSH_LOG_LEVEL: 'warn' });
    let workspaceId: string;
    ({ owner, workspaceId } = await setupOwner(t));
    ws = `/api/v1/workspaces/${workspaceId}`;
    values.DECLARED = makeCanary('declared');
    values.OTHER = makeCanary('other');
    // A secret whose value is itself a template naming another secret.
    values.NESTED = `${makeCanary('nested')} {{secret:OTHER}}`;
    for (const name of ['DECLARED', 'OTHER', 'NESTED']) {
      const res = await owner.post(`${ws}/secrets`, {
        name,
        visibility: 'masked',
        value: values[name],
        allowedHosts: ['127.0.0.1'],
      });
      expect(res.status, res.text).toBe(201);
      ids[name] = res.body.id;
    }
    const greeting = await owner.post(`${ws}/variables`, {
      name: 'greeting',
      type: 'text',
      testValue: 'hello',
      fallbackValue: 'hello',
    });
    expect(greeting.status, greeting.text).toBe(201);
    // May edit and send blocks, but not use secrets.
    const role = await owner.post(`${ws}/roles`, {
      name: 'Sender',
      permissions: ['workflows.read', 'workflows.edit', 'workflows.run', 'variables.read'],
    });
    expect(role.status, role.text).toBe(201);
    ({ client: limited } = await inviteAndJoin(t, owner, workspaceId, 'sender@example.com', role.body.id));
  }, TIMEOUT_MS);

  afterAll(async () => {
    if (available) console.log(`template-injection ${kind}: ${cases} cases`);
    await t?.close();
    await up?.close();
    await upB?.close();
  });

  // ------------------------------------------------------------- helpers

  const wire = (r: Received) =>
    `${r.method} ${r.url}\n${Object.entries(r.headers)
      .map(([k, v]) => `${k}: ${String(v)}`)
      .join('\n')}\n\n${r.body}`;

  /** Names of the secrets any encoded form of which occurs in `text`. */
  function secretsIn(text: string): string[] {
    const buf = Buffer.from(text, 'utf8');
    const latin1 = Buffer.from(text, 'latin1');
    return Object.keys(values).filter((name) =>
      Object.values(canaryForms(values[name] as string)).some((form) => {
        const needle = Buffer.from(form, 'utf8');
        return buf.includes(needle) || latin1.includes(needle);
      }),
    );
  }

  /** No response may hold any secret value, in any form. */
  function expectClean(res: Reply, context: string): void {
    expect(res.status, `${context} → ${res.text.slice(0, 300)}`).toBeLessThan(500);
    expect(secretsIn(res.text), `${context}: a secret value in the response`).toEqual([]);
    if (res.status >= 400) {
      expect(String(res.headers['content-type']), context).toMatch(/^application\/problem\+json/);
      expect(res.body.code, context).toMatch(/^[a-z_]+$/);
    }
  }

  /** Sends a draft block and returns what the upstream(s) received for it. */
  async function send(client: TestClient, block: Record<string, unknown>, variables: Record<string, unknown> = {}) {
    const a = up.received.length;
    const b = upB.received.length;
    const res = await client.post(`${ws}/blocks/send`, { block: { id: 'probe', type: 'api', ...block }, variables });
    cases += 1;
    const arrived = [...up.received.slice(a), ...upB.received.slice(b)];
    return { res, arrived };
  }

  const bearer = [{ key: 'Authorization', value: 'Bearer {{secret:DECLARED}}' }];

  // ------------------------------------------------------------- data is never a template

  it.runIf(available)(
    'a {{secret:…}} smuggled in an input variable reaches the upstream as literal text, in every field kind',
    async () => {
      for (const smuggled of SMUGGLED) {
        const placements: [string, Record<string, unknown>, (r: Received) => unknown][] = [
          ['header', { headers: [...bearer, { key: 'X-V', value: '{{v}}' }] }, (r) => r.headers['x-v']],
          ['query', { query: [{ key: 'v', value: '{{v}}' }] }, (r) => new URL(r.url, 'http://x').searchParams.get('v')],
          ['text body', { method: 'POST', body: { mode: 'text', content: '<{{v}}>' } }, (r) => r.body.slice(1, -1)],
          [
            'json body (in a string)',
            { method: 'POST', body: { mode: 'json', content: '{"a":"x{{v}}"}' } },
            (r) => (JSON.parse(r.body) as { a: string }).a.slice(1),
          ],
          [
            'json body (whole value)',
            { method: 'POST', body: { mode: 'json', content: '{"a":"{{v}}"}' } },
            (r) => (JSON.parse(r.body) as { a: string }).a,
          ],
          [
            'json key',
            { method: 'POST', body: { mode: 'json', content: '{"{{v}}":1}' } },
            (r) => Object.keys(JSON.parse(r.body) as object)[0],
          ],
          [
            'form value',
            { method: 'POST', body: { mode: 'form', content: [{ key: 'v', value: '{{v}}' }] } },
            (r) => new URLSearchParams(r.body).get('v'),
          ],
          [
            'url path',
            { url: `${up.url}/p/{{v}}` },
            (r) => decodeURIComponent(r.url.slice('/p/'.length).split('?')[0] ?? ''),
          ],
        ];
        for (const [where, extra, read] of placements) {
          const block = { method: 'GET', url: `${up.url}/data`, headers: bearer, ...extra };
          const { res, arrived } = await send(owner, block, { v: smuggled });
          const context = `${where} ← ${JSON.stringify(smuggled)}`;
          expectClean(res, context);
          // A header value beyond Latin-1 cannot go on the wire at all: refused before any connection.
          if (where === 'header' && !/^[\t\x20-\x7e\x80-\xff]*$/.test(smuggled)) {
            expect(res.status, `${context} → ${res.text.slice(0, 300)}`).toBe(422);
            expect(res.body.code, context).toBe('invalid_header');
            expect(arrived, context).toEqual([]);
            continue;
          }
          expect(res.status, `${context} → ${res.text.slice(0, 300)}`).toBe(200);
          expect(arrived.length, context).toBe(1);
          const r = arrived[0] as Received;
          // The declared secret went where it was declared; nothing else did.
          expect(secretsIn(wire(r)), context).toEqual(['DECLARED']);
          expect(read(r), context).toBe(smuggled);
        }
      }
    },
    TIMEOUT_MS,
  );

  it.runIf(available)('a secret whose value is a template is sent as its exact value, not expanded', async () => {
    const { res, arrived } = await send(owner, {
      method: 'GET',
      url: `${up.url}/nested`,
      headers: [{ key: 'X-Nested', value: '{{secret:NESTED}}' }],
    });
    expectClean(res, 'NESTED');
    expect(res.status, res.text).toBe(200);
    expect(arrived[0]?.headers['x-nested']).toBe(values.NESTED);
    expect(secretsIn(wire(arrived[0] as Received))).toEqual(['NESTED']);
    expect(res.body.request.headers['x-nested']).toBe('[secret:NESTED]');
  });

  it.runIf(available)(
    'run input: {{secret:…}} and $-variables in POST …/runs variables are data or refused',
    async () => {
      const wf = await owner.post(`${ws}/workflows`, {
        name: 'input echo',
        startBlockId: 'call',
        blocks: [
          {
            id: 'call',
            type: 'api',
            method: 'POST',
            url: `${up.url}/run-input`,
            body: { mode: 'json', content: '{"who":"{{who}}","env":"{{$env}}","map":"{{m}}"}' },
          },
        ],
      });
      expect(wf.status, wf.text).toBe(201);
      for (const smuggled of SMUGGLED) {
        const before = up.received.length;
        const run = await owner.post(`${ws}/workflows/${wf.body.id}/runs`, {
          variables: { who: smuggled, m: { k: smuggled, [smuggled]: [smuggled] } },
        });
        cases += 1;
        expectClean(run, `run ← ${smuggled}`);
        expect(run.status, run.text).toBe(201);
        const r = up.received[before] as Received;
        expect(JSON.parse(r.body)).toEqual({
          who: smuggled,
          env: 'PRODUCTION',
          map: { k: smuggled, [smuggled]: [smuggled] },
        });
        expect(secretsIn(wire(r))).toEqual([]);
        const record = await owner.get(`${ws}/runs/${run.body.id}`);
        expectClean(record, 'run record');
      }
      // System variables cannot be overridden, not even spelled as a secret.
      for (const name of ['$env', '$run_id', '$secret', 'secret:OTHER', '{{secret:OTHER}}']) {
        const run = await owner.post(`${ws}/workflows/${wf.body.id}/runs`, { variables: { [name]: 'x' } });
        cases += 1;
        expectClean(run, `variables.${name}`);
        expect(run.status, `${name} → ${run.text}`).toBe(422);
        expect(run.body.code).toBe('validation_failed');
      }
    },
    TIMEOUT_MS,
  );

  // ------------------------------------------------------------- stored variables

  it.runIf(available)(
    'a stored variable cannot hold a secret reference; what it may hold is sent literally',
    async () => {
      const refused = [
        '{{secret:OTHER}}',
        '{{ SeCrEt :OTHER}}',
        'a {{secret:OTHER}} b',
        '\\{{secret:OTHER}}',
        '{{\tsecret\u00a0:OTHER}}',
      ];
      let n = 0;
      for (const value of refused) {
        for (const [type, wrap] of [
          ['text', (v: string) => v],
          ['map', (v: string) => ({ deep: { k: v } })],
          ['map', (v: string) => ({ [v]: 1 })],
          ['list', (v: string) => [1, [v]]],
        ] as const) {
          for (const field of ['testValue', 'fallbackValue']) {
            const res = await owner.post(`${ws}/variables`, { name: `ref_${n++}`, type, [field]: wrap(value) });
            cases += 1;
            expectClean(res, `${type}.${field} = ${value}`);
            expect(res.status, `${type}.${field} = ${JSON.stringify(value)} → ${res.text}`).toBe(422);
            expect(res.body.code).toBe('secret_not_allowed_here');
          }
        }
      }
      // Look-alikes are not references: stored, and sent as the characters they are.
      const lookalikes = [
        '｛｛secret:OTHER｝｝',
        '{ {secret:OTHER}}',
        '{{sec\u200bret:OTHER}}',
        '[secret:OTHER]',
        'secret:OTHER',
      ];
      for (const [i, value] of lookalikes.entries()) {
        const name = `look_${i}`;
        const res = await owner.post(`${ws}/variables`, { name, type: 'map', testValue: { k: value } });
        cases += 1;
        expectClean(res, `look-alike ${value}`);
        if (res.status !== 201) {
          expect(res.body.code, res.text).toBe('secret_not_allowed_here');
          continue;
        }
        const { res: sent, arrived } = await send(owner, {
          method: 'POST',
          url: `${up.url}/look`,
          headers: bearer,
          body: { mode: 'json', content: `{"look":"{{${name}.k}}"}` },
        });
        expectClean(sent, `send look-alike ${value}`);
        expect(sent.status, sent.text).toBe(200);
        expect(JSON.parse(arrived[0]?.body ?? '{}')).toEqual({ look: value });
        expect(secretsIn(wire(arrived[0] as Received))).toEqual(['DECLARED']);
      }
    },
    TIMEOUT_MS,
  );

  // ------------------------------------------------------------- block fields

  it.runIf(available)(
    'nested, escaped, $-prefixed, look-alike and zero-width templates in a block field never resolve OTHER',
    async () => {
      for (const template of NOT_REFERENCES) {
        for (const [where, extra] of [
          ['header', { headers: [...bearer, { key: 'X-T', value: template }] }],
          ['query', { headers: bearer, query: [{ key: 't', value: template }] }],
          [
            'json',
            { method: 'POST', headers: bearer, body: { mode: 'json', content: JSON.stringify({ t: template }) } },
          ],
        ] as const) {
          for (const client of [owner, limited]) {
            const who = client === owner ? 'owner' : 'no secrets.use';
            const block: Record<string, unknown> = { method: 'GET', url: `${up.url}/t`, ...extra };
            // Without secrets.use the declared Authorization is left out (it would be refused, rightly).
            if (client === limited) {
              block.headers = (block.headers as { key: string }[]).filter((h) => h.key !== 'Authorization');
            }
            const { res, arrived } = await send(client, block, { name: 'OTHER' });
            const context = `${who} ${where} ${JSON.stringify(template)}`;
            expectClean(res, context);
            if (res.status !== 200) {
              expect(res.status, `${context} → ${res.text}`).toBeGreaterThanOrEqual(400);
              expect(arrived, context).toEqual([]);
              continue;
            }
            for (const r of arrived) {
              const found = secretsIn(wire(r));
              expect(found.includes('OTHER'), `${context}: OTHER's value reached the upstream`).toBe(false);
              expect(found, context).toEqual(client === owner ? ['DECLARED'] : []);
            }
          }
        }
      }
    },
    TIMEOUT_MS,
  );

  it.runIf(available)(
    'JSON escapes and case variations are declared references: counted as secret use, listed in usages',
    async () => {
      // [label, block part, strict]: strict variants must be references; the others (invisible
      // characters) may be references or refused, but the two answers below must agree.
      const declaredVariants: [string, Record<string, unknown>, boolean][] = [
        [
          'json \\u escapes',
          { method: 'POST', body: { mode: 'json', content: '{"a":"\\u007b\\u007bsecret:OTHER\\u007d\\u007d"}' } },
          true,
        ],
        ['lower-case name', { headers: [{ key: 'X-T', value: '{{secret:other}}' }] }, true],
        ['mixed case', { headers: [{ key: 'X-T', value: '{{Secret:Other}}' }] }, true],
        ['upper-case keyword', { headers: [{ key: 'X-T', value: '{{SECRET:OTHER}}' }] }, true],
        ['spaces', { headers: [{ key: 'X-T', value: '{{  secret  :  OTHER  }}' }] }, true],
        [
          'form value',
          { method: 'POST', body: { mode: 'form', content: [{ key: 'k', value: '{{secret:oThEr}}' }] } },
          true,
        ],
        ['BOM inside', { headers: [{ key: 'X-T', value: '{{secret:OTHER\ufeff}}' }] }, false],
        ['no-break space', { headers: [{ key: 'X-T', value: '{{secret\u00a0:OTHER}}' }] }, false],
      ];
      for (const [label, extra, strict] of declaredVariants) {
        const block = { method: 'GET', url: `${up.url}/declared`, ...extra };
        // Without secrets.use: refused before any connection.
        const refused = await send(limited, block);
        expectClean(refused.res, `limited ${label}`);
        expect(refused.arrived, label).toEqual([]);
        expect(strict ? [403] : [403, 422], `${label} → ${refused.res.text}`).toContain(refused.res.status);
        // Saved by the owner: the usages of OTHER name this block, exactly when it was refused as secret use.
        const wf = await owner.post(`${ws}/workflows`, {
          name: `declared ${label}`,
          startBlockId: 'probe',
          blocks: [{ id: 'probe', type: 'api', ...block }],
        });
        cases += 1;
        expectClean(wf, `save ${label}`);
        expect(wf.status, `${label} → ${wf.text}`).toBe(refused.res.status === 403 ? 201 : 422);
        if (wf.status !== 201) continue;
        const usages = await owner.get(`${ws}/secrets/${ids.OTHER}/usages`);
        expect(
          usages.body.items.some((u: { workflowId: string }) => u.workflowId === wf.body.id),
          `${label}: a reference the server counts as secret use is not listed as a usage`,
        ).toBe(true);
      }
    },
    TIMEOUT_MS,
  );

  // ------------------------------------------------------------- the oracle, fuzzed

  const FRAGMENTS = [
    '{{',
    '}}',
    '{',
    '}',
    'secret',
    'SECRET',
    'Secret',
    ':',
    ' ',
    '\\',
    '$',
    'OTHER',
    'other',
    'DECLARED',
    'NESTED',
    'name',
    '.',
    '[0]',
    '｛',
    '｝',
    '：',
    '\u200b',
    '\ufeff',
    '\u00a0',
    '\t',
    'ѕ',
    '"',
    'x',
  ];
  /** Templates built from fragments, or a well-formed reference with a few fragments spliced in. */
  const template: fc.Arbitrary<string> = fc.oneof(
    fc.array(fc.constantFrom(...FRAGMENTS), { minLength: 1, maxLength: 10 }).map((a) => a.join('')),
    fc
      .tuple(
        fc.constantFrom<string>('{{secret:OTHER}}', '{{secret:DECLARED}}', '{{name}}', '{{secret:NESTED}}'),
        fc.array(fc.tuple(fc.nat(20), fc.constantFrom(...FRAGMENTS, '')), { minLength: 1, maxLength: 3 }),
      )
      .map(([base, edits]) =>
        edits.reduce((s, [at, frag]) => {
          const i = at % (s.length + 1);
          return frag === '' ? s.slice(0, i) + s.slice(i + 1) : s.slice(0, i) + frag + s.slice(i);
        }, base),
      ),
  );
  const placement: fc.Arbitrary<string> = fc.constantFrom('header', 'query', 'json', 'form');
  function blockWith(tpl: string, where: string): Record<string, unknown> {
    if (where === 'header') return { method: 'GET', headers: [{ key: 'X-T', value: tpl }] };
    if (where === 'query') return { method: 'GET', query: [{ key: 't', value: tpl }] };
    if (where === 'json') return { method: 'POST', body: { mode: 'json', content: JSON.stringify({ t: tpl }) } };
    return { method: 'POST', body: { mode: 'form', content: [{ key: 't', value: tpl }] } };
  }

  it.runIf(available)(
    'fuzzed: a caller without secrets.use never gets any secret sent, whatever the template',
    async () => {
      await assertProperty(
        fc.asyncProperty(template, placement, async (tpl, where) => {
          const { res, arrived } = await send(
            limited,
            { url: `${up.url}/fuzz`, ...blockWith(tpl, where) },
            { name: 'OTHER' },
          );
          const context = `${where} ${JSON.stringify(tpl)}`;
          expectClean(res, context);
          if (res.status === 200) {
            for (const r of arrived) expect(secretsIn(wire(r)), `${context}: sent a secret`).toEqual([]);
          } else {
            expect(arrived, context).toEqual([]);
          }
        }),
        { numRuns: RUNS * 2, seed: SEED },
      );
    },
    TIMEOUT_MS,
  );

  it.runIf(available)(
    'fuzzed: every secret whose value reaches the upstream in a run is a declared usage of that block',
    async () => {
      const created = await owner.post(`${ws}/workflows`, { name: 'oracle', startBlockId: null, blocks: [] });
      expect(created.status, created.text).toBe(201);
      const wfId = created.body.id as string;
      await assertProperty(
        fc.asyncProperty(template, placement, async (tpl, where) => {
          cases += 1;
          const context = `${where} ${JSON.stringify(tpl)}`;
          const saved = await owner.put(`${ws}/workflows/${wfId}`, {
            name: 'oracle',
            startBlockId: 'probe',
            blocks: [{ id: 'probe', type: 'api', url: `${up.url}/oracle`, ...blockWith(tpl, where) }],
          });
          expectClean(saved, `save ${context}`);
          if (saved.status !== 200) return;
          const before = up.received.length;
          const run = await owner.post(`${ws}/workflows/${wfId}/runs`, { variables: { name: 'OTHER' } });
          expectClean(run, `run ${context}`);
          expect(run.status, run.text).toBe(201);
          const sent = up.received.slice(before).flatMap((r) => secretsIn(wire(r)));
          for (const name of new Set(sent)) {
            const usages = await owner.get(`${ws}/secrets/${ids[name]}/usages`);
            const declared = usages.body.items.some(
              (u: { workflowId: string; blockId: string }) => u.workflowId === wfId && u.blockId === 'probe',
            );
            expect(declared, `${context}: ${name}'s value was sent but the block does not declare it`).toBe(true);
          }
        }),
        { numRuns: RUNS, seed: SEED + 1 },
      );
    },
    TIMEOUT_MS,
  );

  // ------------------------------------------------------------- captured responses

  it.runIf(available)(
    'a captured {{secret:…}} or an echoed secret, carried into a later block of the run, is never resolved or sent',
    async () => {
      up.handle((req, res) => {
        res.setHeader('content-type', 'application/json');
        const auth = String(req.headers.authorization ?? '');
        res.end(
          JSON.stringify({
            smuggle: '{{secret:OTHER}}',
            smuggleDeclared: '{{secret:DECLARED}}',
            escaped: '\\{{secret:OTHER}}',
            echo: auth,
            b64: Buffer.from(auth).toString('base64'),
            b64url: Buffer.from(`user:${auth.slice(7)}`).toString('base64url'),
            hex: Buffer.from(auth).toString('hex'),
            pct: encodeURIComponent(auth),
          }),
        );
      });
      try {
        const caps = ['smuggle', 'smuggleDeclared', 'escaped', 'echo', 'b64', 'b64url', 'hex', 'pct'];
        const wf = await owner.post(`${ws}/workflows`, {
          name: 'launder',
          startBlockId: 'first',
          blocks: [
            {
              id: 'first',
              type: 'api',
              method: 'GET',
              url: `${up.url}/first`,
              headers: bearer,
              capture: caps.map((c) => ({ variable: `c_${c}`, path: `$.${c}` })),
              onSuccess: 'copy',
            },
            {
              id: 'copy',
              type: 'set',
              assignments: [
                { variable: 'copied', value: '{{c_smuggle}}' },
                { variable: 'literal', value: '\\{{secret:OTHER}}' },
              ],
              onSuccess: 'second',
            },
            {
              // Another host, where DECLARED is not allowed, and no secret declared.
              id: 'second',
              type: 'api',
              method: 'POST',
              url: `${upB.url}/second`,
              headers: [
                { key: 'X-Copied', value: '{{copied}}' },
                { key: 'X-Literal', value: '{{literal}}' },
                { key: 'X-Declared', value: '{{c_smuggleDeclared}}' },
              ],
              body: { mode: 'json', content: JSON.stringify(Object.fromEntries(caps.map((c) => [c, `{{c_${c}}}`]))) },
            },
          ],
        });
        expect(wf.status, wf.text).toBe(201);
        const a = up.received.length;
        const b = upB.received.length;
        const run = await owner.post(`${ws}/workflows/${wf.body.id}/runs`, {});
        cases += 1;
        expectClean(run, 'launder run');
        expect(run.status, run.text).toBe(201);
        expect(run.body.status, run.text).toBe('succeeded');
        expect(up.received.slice(a).map((r) => r.url)).toEqual(['/first']);
        const second = upB.received.slice(b);
        expect(second.length).toBe(1);
        const r = second[0] as Received;
        expect(r.headers['x-copied']).toBe('{{secret:OTHER}}');
        expect(r.headers['x-literal']).toBe('{{secret:OTHER}}');
        expect(r.headers['x-declared']).toBe('{{secret:DECLARED}}');
        const body = JSON.parse(r.body) as Record<string, string>;
        expect(body.smuggle).toBe('{{secret:OTHER}}');
        expect(body.escaped).toBe('\\{{secret:OTHER}}');
        expect(body.echo).toBe('Bearer [secret:DECLARED]');
        // The second host got no form of any secret.
        expect(secretsIn(wire(r)), wire(r).slice(0, 2_000)).toEqual([]);
        const record = await owner.get(`${ws}/runs/${run.body.id}`);
        expectClean(record, 'launder record');
      } finally {
        up.handle((req, res) => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ ok: true, url: req.url }));
        });
      }
    },
    TIMEOUT_MS,
  );

  it.runIf(available)(
    'a declared secret echoed back inside a JSON-encoded string (escaped twice) is redacted from the step record',
    async () => {
      // Many APIs return JSON inside a JSON string ("payload": "{\"auth\":…}"). A value holding
      // a quote or a backslash is then escaped twice, a form the redactor must also catch.
      up.handle((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ payload: JSON.stringify({ auth: String(req.headers.authorization ?? '') }) }));
      });
      try {
        const { res, arrived } = await send(owner, {
          method: 'GET',
          url: `${up.url}/double`,
          headers: bearer,
          capture: [{ variable: 'payload', path: '$.payload' }],
        });
        expect(arrived.length).toBe(1);
        expect(res.status, res.text).toBe(200);
        expectClean(res, 'Send request whose response holds the secret JSON-escaped twice');
      } finally {
        up.handle((req, res) => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ ok: true, url: req.url }));
        });
      }
    },
  );

  it.runIf(available)(
    'input variables named like secrets are plain data, names in any case; unknown names render empty',
    async () => {
      const block = {
        method: 'GET',
        url: `${up.url}/names`,
        headers: [
          { key: 'X-A', value: '[{{OTHER}}]' },
          { key: 'X-B', value: '[{{secret.OTHER}}]' },
          { key: 'X-C', value: '[{{DECLARED}}]' },
          { key: 'X-D', value: '[{{other}}]' },
          {
            key: 'X-E',
            value: '[{{greeting.__proto__}}{{greeting.constructor}}{{__proto__}}{{constructor}}{{toString}}]',
          },
        ],
      };
      const withInput = await send(owner, block, { OTHER: 'data-1', secret: { OTHER: 'data-2' }, DECLARED: 'data-3' });
      expectClean(withInput.res, 'named like secrets');
      expect(withInput.res.status, withInput.res.text).toBe(200);
      const r = withInput.arrived[0] as Received;
      // `{{other}}` is the input OTHER: variable names are one name space regardless of case.
      expect([r.headers['x-a'], r.headers['x-b'], r.headers['x-c'], r.headers['x-d'], r.headers['x-e']]).toEqual([
        '[data-1]',
        '[data-2]',
        '[data-3]',
        '[data-1]',
        '[]',
      ]);
      expect(secretsIn(wire(r))).toEqual([]);
      const without = await send(owner, block);
      expectClean(without.res, 'no input');
      expect(secretsIn(wire(without.arrived[0] as Received))).toEqual([]);
      expect(without.arrived[0]?.headers['x-a']).toBe('[]');
    },
  );

  it.runIf(available)(
    'a secret name cannot be taken by a variable in any case, so {{name}} can never mean a secret',
    async () => {
      for (const name of ['OTHER', 'other', 'Other', 'declared']) {
        const res = await owner.post(`${ws}/variables`, { name, type: 'text', testValue: 'x' });
        cases += 1;
        expectClean(res, name);
        expect(res.status, res.text).toBe(409);
        expect(res.body.code).toBe('name_taken');
      }
    },
  );
  it.runIf(available)(
    'a value of "." or ".." in the URL path cannot move a call to another path (422 invalid_url, nothing sent); dots inside a value, and the author\'s own "..", go as written',
    async () => {
      const url = `${up.url}/v1/orgs/{{org}}/users/{{user}}/sessions`;
      for (const [org, user] of [
        ['..', '..'],
        ['.', 'u1'],
        ['acme', '..'],
      ]) {
        const { res, arrived } = await send(owner, { method: 'DELETE', url, headers: bearer }, { org, user });
        expectClean(res, `org=${org} user=${user}`);
        expect(res.status, res.text).toBe(422);
        expect(res.body.code).toBe('invalid_url');
        expect(arrived).toEqual([]);
      }
      // Two values that together make "..", and a value next to the author's own dot.
      for (const [template, variables] of [
        [`${up.url}/a/{{x}}{{y}}/b`, { x: '.', y: '.' }],
        [`${up.url}/a/.{{x}}/b`, { x: '.' }],
      ] as const) {
        const { res, arrived } = await send(owner, { method: 'GET', url: template, headers: bearer }, variables);
        expect(res.status, res.text).toBe(422);
        expect(arrived).toEqual([]);
      }
      const fine = await send(owner, { method: 'DELETE', url, headers: bearer }, { org: 'a.b', user: '...' });
      expect(fine.res.status, fine.res.text).toBe(200);
      expect(fine.arrived.map((r) => r.url)).toEqual(['/v1/orgs/a.b/users/.../sessions']);
      const authored = await send(owner, { method: 'GET', url: `${up.url}/a/../b/{{x}}`, headers: bearer }, { x: 'c' });
      expect(authored.res.status, authored.res.text).toBe(200);
      expect(authored.arrived.map((r) => r.url)).toEqual(['/b/c']);
    },
  );
  it.runIf(available)(
    "query rows are appended to the URL's own query, which goes exactly as its author wrote it",
    async () => {
      const { res, arrived } = await send(
        owner,
        {
          method: 'GET',
          url: `${up.url}/q?fields=id,name&flag&sig=ab~c%20d*e&q=a+b`,
          headers: bearer,
          query: [
            { key: 'page', value: '{{page}}' },
            { key: 'key', value: '{{secret:DECLARED}}' },
          ],
        },
        { page: '2 & x=1' },
      );
      expect(res.status, res.text).toBe(200);
      expect(arrived.map((r) => r.url)).toEqual([
        `/q?fields=id,name&flag&sig=ab~c%20d*e&q=a+b&page=2+%26+x%3D1&${new URLSearchParams({ key: values.DECLARED as string })}`,
      ]);
      expectClean(res, 'query rows');
    },
  );
});
