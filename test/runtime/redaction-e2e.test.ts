/**
 * Redaction end to end (SPEC §3 "Where a value may appear", "Redaction"):
 * the upstream receives the real value in every field a secret may occupy
 * (header, query value, text body, JSON body string, form value), echoes it
 * back in every encoded form the SPEC lists, and the caller — Send request,
 * run record (POST and GET), captured variables, the stored row — sees only
 * `[secret:NAME]`. Also: text that arrives at run time is data, never a
 * template, and header values cannot smuggle line breaks.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryForms, makeCanary } from '../support/canary.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { type Received, startUpstream, type Upstream } from '../support/upstream.js';

const NAME = 'redact_token';
const MARK = `[secret:${NAME}]`;

/** Every form of `value` that occurs in `text`. */
function formsIn(text: string, value: string): string[] {
  return Object.entries(canaryForms(value))
    .filter(([, form]) => text.includes(form))
    .map(([name]) => name);
}

/** Every string (keys included) inside a JSON value, one per line. */
function allStrings(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(allStrings).join('\n');
  if (value !== null && typeof value === 'object')
    return Object.entries(value)
      .map(([k, v]) => `${k}\n${allStrings(v)}`)
      .join('\n');
  return '';
}

/** A reply carries no form of `value`: not in its raw text, its decoded strings, nor its headers. */
function expectNoForm(reply: Reply, value: string): void {
  expect(formsIn(reply.text, value), reply.text.slice(0, 2000)).toEqual([]);
  expect(formsIn(allStrings(reply.body), value)).toEqual([]);
  expect(formsIn(JSON.stringify(reply.headers), value)).toEqual([]);
}

function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;',
  );
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
const PREFIXES = ['', 'u', 'us', 'use', 'user', 'user:'];

/**
 * Echoes `got` back in every form the SPEC lists: response headers and a JSON or HTML body.
 * Bodies go out as Buffers so Node writes the header block in latin1 (one byte per character).
 */
function echoEverything(req: Received, res: ServerResponse, got: string): void {
  res.setHeader('x-raw', got);
  res.setHeader('x-b64', b64(got));
  res.setHeader('x-pct', encodeURIComponent(got));
  res.setHeader('x-basic', `Basic ${b64(`user:${got}`)}`);
  res.setHeader('www-authenticate', `Bearer realm="x", error_description="${got.replaceAll('"', '\\"')}"`);
  if (req.url.startsWith('/html')) {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(
      Buffer.from(
        `<p title="${htmlEscape(got)}">${got}</p>\n${b64(got).replace(/=+$/, '')} ${hex(got).toUpperCase()}\n` +
          `&quot;${got.replaceAll('"', '&quot;')}&quot;`,
      ),
    );
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.end(
    Buffer.from(
      JSON.stringify({
        echo: got,
        nested: { deeper: [got, { again: `prefix ${got} suffix` }] },
        b64: b64(got),
        b64url: b64url(got),
        b64NoPad: b64(got).replace(/=+$/, ''),
        hex: hex(got),
        HEX: hex(got).toUpperCase(),
        pct: encodeURIComponent(got),
        pctLower: encodeURIComponent(got).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
        form: encodeURIComponent(got).replaceAll('%20', '+'),
        html: htmlEscape(got),
        basic: PREFIXES.map((p) => b64(`${p}${got}`)),
        basicUrl: PREFIXES.map((p) => b64url(`${p}${got}`)),
        basicHeader: `Basic ${b64(`user:${got}`)}`,
        received: { url: req.url, headers: req.headers },
      }),
    ),
  );
}

describe.each(DATABASES)('redaction end to end on $kind', ({ kind, available }) => {
  let t: TestApp;
  let up: Upstream;
  let owner: TestClient;
  let ws: string;
  const VALUE = makeCanary('redact');

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    t = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    const o = await setupOwner(t);
    owner = o.owner;
    ws = `/api/v1/workspaces/${o.workspaceId}`;
    const s = await owner.post(`${ws}/secrets`, { name: NAME, visibility: 'masked', value: VALUE });
    expect(s.status, s.text).toBe(201);
    // The upstream finds the value wherever the block put it and echoes it in every form.
    up.handle((req, res) => {
      const url = new URL(req.url, 'http://x');
      const fromHeader = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
      const fromQuery = url.searchParams.get('key') ?? '';
      const ct = String(req.headers['content-type'] ?? '');
      let fromBody = '';
      if (ct.startsWith('application/json')) fromBody = String(JSON.parse(req.body || '{}').token ?? '');
      else if (ct.startsWith('application/x-www-form-urlencoded'))
        fromBody = new URLSearchParams(req.body).get('token') ?? '';
      else if (req.body.startsWith('token=')) fromBody = req.body.slice('token='.length);
      const got = fromHeader || fromQuery || fromBody;
      if (req.url.startsWith('/escaped')) {
        // Every other ASCII character of the value as a \u00XX escape: JSON, and the value to any JSON reader.
        const mixed = [...got]
          .map((c, i) => (i % 2 === 0 && c < '\u0080' ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c))
          .join('');
        res.setHeader('content-type', 'application/json');
        return void res.end(Buffer.from(`{"token":"${mixed}","note":"\\u0041 plain \\u0026 escape"}`));
      }
      if (req.url.startsWith('/utf8-header')) {
        // Many servers (Go's net/http, for one) write header text as UTF-8 bytes: é goes out as C3 A9.
        res.setHeader('x-raw', Buffer.from(got, 'utf8').toString('latin1'));
        return void res.end(Buffer.from('{}'));
      }
      echoEverything(req, res, got);
    });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await up?.close();
  });

  const apiBlock = (extra: Record<string, unknown> = {}) => ({
    id: 'call',
    type: 'api',
    method: 'POST',
    url: `${up.url}/echo`,
    headers: [{ key: 'Authorization', value: `Bearer {{secret:${NAME}}}` }],
    query: [{ key: 'key', value: `{{secret:${NAME}}}` }],
    body: { mode: 'json', content: `{"token":"{{secret:${NAME}}}","who":"{{who}}"}` },
    capture: [
      { variable: 'echo', path: '$.echo' },
      { variable: 'b64', path: '$.b64' },
      { variable: 'deep', path: '$.nested' },
    ],
    ...extra,
  });

  it.runIf(available)(
    'forms other libraries write are redacted too: Go JSON, upper-case \\u, strict percent-encoding, encodeURI, and the value trimmed',
    async () => {
      const value = `AKIA+x/y&z<w>'(q)*é ${makeCanary('libs').slice(-24)}`;
      const padded = `  padded-${makeCanary('pad').slice(-24)}  `;
      for (const [name, v] of [
        ['lib_forms', value],
        ['padded', padded],
      ]) {
        const created = await owner.post(`${ws}/secrets`, { name, visibility: 'masked', value: v });
        expect(created.status, created.text).toBe(201);
      }
      const strict = (x: string) =>
        encodeURIComponent(x).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
      const libs = await startUpstream();
      try {
        libs.handle((req, res) => {
          const got = String(JSON.parse(req.body).token);
          const trimmedHeader = String(req.headers['x-pad'] ?? '');
          const json = JSON.stringify(got).slice(1, -1);
          res.setHeader('content-type', 'text/plain');
          res.end(
            [
              json.replace(/[&<>]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`), // Go
              json.replace(
                /[\u007f-\uffff]/g,
                (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`,
              ),
              strict(got), // PHP rawurlencode
              strict(got).replaceAll('%2F', '/'), // Python quote
              strict(got).replaceAll('%20', '+'), // Go QueryEscape, Python quote_plus
              encodeURI(got),
              trimmedHeader, // HTTP dropped the spaces around the header value
            ].join('\n'),
          );
        });
        const res = await owner.post(`${ws}/blocks/send`, {
          block: {
            id: 'libs',
            type: 'api',
            method: 'POST',
            url: `${libs.url}/libs`,
            headers: [{ key: 'X-Pad', value: '{{secret:padded}}' }],
            body: { mode: 'json', content: '{"token":"{{secret:lib_forms}}"}' },
          },
        });
        expect(res.status, res.text).toBe(200);
        expect(libs.received.at(-1)?.headers['x-pad']).toBe(padded.trim());
        const lines = (res.body.response.body as string).split('\n');
        expect(lines).toEqual([...Array(6).fill('[secret:lib_forms]'), '[secret:padded]']);
      } finally {
        await libs.close();
      }
    },
  );

  it.runIf(available)('the value is canary-shaped, so its encoded forms differ from the raw one', () => {
    const f = canaryForms(VALUE);
    for (const c of ['"', '+', '/', 'é', ' ']) expect(VALUE).toContain(c);
    for (const form of [f.json, f.percent, f.form, f.base64, f.hex]) expect(form).not.toBe(VALUE);
    expect(f.form).not.toBe(f.percent);
    expect(f.core).not.toBe(VALUE);
  });

  it.runIf(available)(
    'header, query and JSON body: the upstream gets the real value; Send returns only [secret:NAME]',
    async () => {
      const res = await owner.post(`${ws}/blocks/send`, { block: apiBlock(), variables: { who: 'Ada' } });
      expect(res.status, res.text).toBe(200);
      const got = up.received.at(-1) as Received;
      expect(got.headers.authorization).toBe(`Bearer ${VALUE}`);
      expect(new URL(got.url, 'http://x').searchParams.get('key')).toBe(VALUE);
      expect(JSON.parse(got.body)).toEqual({ token: VALUE, who: 'Ada' });

      expectNoForm(res, VALUE);
      expect(res.body.ok).toBe(true);
      expect(res.text).toContain(MARK);
      expect(res.body.request.headers.authorization).toBe(`Bearer ${MARK}`);
      expect(new URL(res.body.request.url).searchParams.get('key')).toBe(MARK);
      expect(JSON.parse(res.body.request.body)).toEqual({ token: MARK, who: 'Ada' });
      // Response headers: raw, base64, percent-encoded, Basic blob, and the value inside a quoted header parameter.
      const h = res.body.response.headers;
      expect(h['x-raw']).toBe(MARK);
      expect(h['x-b64']).toBe(MARK);
      expect(h['x-pct']).toBe(MARK);
      expect(h['x-basic']).toMatch(/^Basic [A-Za-z0-9+/=]{0,8}\[secret:redact_token\][A-Za-z0-9+/=]{0,4}$/);
      expect(h['www-authenticate']).toContain(MARK);
      // Every encoded form in the JSON body.
      const body = JSON.parse(res.body.response.body);
      for (const key of ['echo', 'b64', 'b64url', 'b64NoPad', 'hex', 'HEX', 'pct', 'pctLower', 'form', 'html'])
        expect(body[key], key).toBe(MARK);
      expect(body.nested).toEqual({ deeper: [MARK, { again: `prefix ${MARK} suffix` }] });
      for (const blob of [...body.basic, ...body.basicUrl, body.basicHeader]) expect(blob).toContain(MARK);
      expect(body.received.headers.authorization).toBe(`Bearer ${MARK}`);
      expect(new URL(body.received.url, 'http://x').searchParams.get('key')).toBe(MARK);
      // Captured variables are redacted too.
      expect(res.body.captures).toEqual({
        echo: MARK,
        b64: MARK,
        deep: { deeper: [MARK, { again: `prefix ${MARK} suffix` }] },
      });
    },
  );

  it.runIf(available)(
    'a JSON answer spelling the value with \\u00XX escapes of its ASCII characters: no JSON reader finds it',
    async () => {
      const res = await owner.post(`${ws}/blocks/send`, { block: apiBlock({ url: `${up.url}/escaped`, capture: [] }) });
      expect(res.status, res.text).toBe(200);
      expect((up.received.at(-1) as Received).headers.authorization).toBe(`Bearer ${VALUE}`);
      expectNoForm(res, VALUE);
      const body = res.body.response.body as string;
      const decoded = JSON.parse(body);
      expect(formsIn(allStrings(decoded), VALUE)).toEqual([]);
      expect(decoded).toEqual({ token: MARK, note: 'A plain & escape' });

      // A body with such escapes and no value in it comes back byte for byte.
      const plain = await owner.post(`${ws}/blocks/send`, {
        block: apiBlock({
          url: `${up.url}/escaped`,
          headers: [],
          query: [],
          body: { mode: 'none' },
          method: 'GET',
          capture: [],
        }),
      });
      expect(plain.status, plain.text).toBe(200);
      expect(plain.body.response.body).toBe('{"token":"","note":"\\u0041 plain \\u0026 escape"}');
    },
  );

  it.runIf(available)('a form body value and a text body: the upstream gets the value; the caller never', async () => {
    const form = await owner.post(`${ws}/blocks/send`, {
      block: apiBlock({
        headers: [],
        query: [],
        body: {
          mode: 'form',
          content: [
            { key: 'token', value: `{{secret:${NAME}}}` },
            { key: 'who', value: 'Bo' },
          ],
        },
      }),
    });
    expect(form.status, form.text).toBe(200);
    const formGot = up.received.at(-1) as Received;
    expect(formGot.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(new URLSearchParams(formGot.body).get('token')).toBe(VALUE);
    expectNoForm(form, VALUE);
    expect(form.body.request.body).toBe(`token=${MARK}&who=Bo`);
    expect(JSON.parse(form.body.response.body).echo).toBe(MARK);

    const text = await owner.post(`${ws}/blocks/send`, {
      block: apiBlock({
        url: `${up.url}/html`,
        headers: [{ key: 'Content-Type', value: 'text/plain; charset=utf-8' }],
        query: [],
        body: { mode: 'text', content: `token={{secret:${NAME}}}` },
        capture: [],
      }),
    });
    expect(text.status, text.text).toBe(200);
    expect((up.received.at(-1) as Received).body).toBe(`token=${VALUE}`);
    expectNoForm(text, VALUE);
    expect(text.body.request.body).toBe(`token=${MARK}`);
    // HTML-escaped in an attribute, raw, unpadded base64, upper-case hex, and HTML-escaped between entities.
    expect(text.body.response.body).toBe(`<p title="${MARK}">${MARK}</p>\n${MARK} ${MARK}\n&quot;${MARK}&quot;`);
  });

  it.runIf(available)(
    'a run record (POST, GET, list and the stored row) and its variables hold only [secret:NAME]',
    async () => {
      const wf = await owner.post(`${ws}/workflows`, {
        name: 'Redaction',
        startBlockId: 'call',
        blocks: [
          apiBlock({ onSuccess: 'after' }),
          { id: 'after', type: 'set', assignments: [{ variable: 'copy', value: 'got {{echo}} / {{b64}}' }] },
        ],
      });
      expect(wf.status, wf.text).toBe(201);
      expectNoForm(wf, VALUE);
      const run = await owner.post(`${ws}/workflows/${wf.body.id}/runs`, { variables: { who: 'Cy' } });
      expect(run.status, run.text).toBe(201);
      expect(run.body.status).toBe('succeeded');
      expect((up.received.at(-1) as Received).headers.authorization).toBe(`Bearer ${VALUE}`);
      expectNoForm(run, VALUE);
      expect(run.text).toContain(MARK);
      expect(run.body.variables.echo).toBe(MARK);
      expect(run.body.variables.b64).toBe(MARK);
      expect(run.body.variables.copy).toBe(`got ${MARK} / ${MARK}`);
      const [step] = run.body.steps;
      expect(step.request.headers.authorization).toBe(`Bearer ${MARK}`);
      expect(step.response.headers['x-raw']).toBe(MARK);
      expect(JSON.parse(step.response.body).echo).toBe(MARK);
      expect(step.captures.echo).toBe(MARK);

      const again = await owner.get(`${ws}/runs/${run.body.id}`);
      expect(again.status).toBe(200);
      expectNoForm(again, VALUE);
      expect(again.body.variables.copy).toBe(`got ${MARK} / ${MARK}`);
      const list = await owner.get(`${ws}/workflows/${wf.body.id}/runs`);
      expect(list.status).toBe(200);
      expect(list.body.items.map((r: { id: string }) => r.id)).toContain(run.body.id);
      expectNoForm(list, VALUE);

      const row = await t.ctx.db.selectFrom('runs').selectAll().where('id', '=', run.body.id).executeTakeFirstOrThrow();
      expect(formsIn(JSON.stringify(row), VALUE)).toEqual([]);
      expect(formsIn(`${row.steps}\n${row.variables}`, VALUE)).toEqual([]);
    },
  );

  it.runIf(available)('a non-ASCII value echoed in a response header as UTF-8 bytes is redacted too', async () => {
    const res = await owner.post(`${ws}/blocks/send`, {
      block: apiBlock({ url: `${up.url}/utf8-header`, query: [], body: { mode: 'none' }, capture: [] }),
    });
    expect(res.status, res.text).toBe(200);
    expect((up.received.at(-1) as Received).headers.authorization).toBe(`Bearer ${VALUE}`);
    expect(res.body.response.headers['x-raw']).toBe(MARK);
    expectNoForm(res, VALUE);
  });

  it.runIf(available)(
    "a value whose form encoding differs from encodeURIComponent (' ! ( ) ~ *) is still redacted in query and form",
    async () => {
      // URLSearchParams (how Hush writes query values and form bodies) escapes ' ! ( ) ~
      // where encodeURIComponent leaves them alone: that form must be redacted too.
      const value = `${makeCanary('qs').replace(/"é\+ \/x$/, '')}'!(~)* é`;
      const created = await owner.post(`${ws}/secrets`, { name: 'qs_token', visibility: 'masked', value });
      expect(created.status, created.text).toBe(201);
      const res = await owner.post(`${ws}/blocks/send`, {
        block: apiBlock({
          headers: [],
          query: [{ key: 'key', value: '{{secret:qs_token}}' }],
          body: { mode: 'form', content: [{ key: 'token', value: '{{secret:qs_token}}' }] },
          capture: [],
        }),
      });
      expect(res.status, res.text).toBe(200);
      const got = up.received.at(-1) as Received;
      expect(new URL(got.url, 'http://x').searchParams.get('key')).toBe(value);
      expect(new URLSearchParams(got.body).get('token')).toBe(value);
      const core = canaryForms(value).core as string;
      expect({
        requestUrl: String(res.body.request.url).includes(core),
        requestBody: String(res.body.request.body).includes(core),
        responseBody: String(res.body.response.body).includes(core),
      }).toEqual({ requestUrl: false, requestBody: false, responseBody: false });
      expect(res.body.request.body).toBe('token=[secret:qs_token]');
      expect(new URL(res.body.request.url).searchParams.get('key')).toBe('[secret:qs_token]');
      expectNoForm(res, value);
    },
  );

  it.runIf(available)(
    'a {{secret:…}} passed in variables is data: the upstream receives the literal braces',
    async () => {
      const literal = `{{secret:${NAME}}}`;
      const res = await owner.post(`${ws}/blocks/send`, {
        block: {
          id: 'inject',
          type: 'api',
          method: 'POST',
          url: `${up.url}/inject`,
          headers: [{ key: 'X-Name', value: '{{name}}' }],
          query: [{ key: 'q', value: 'hi {{name}}' }],
          body: { mode: 'json', content: '{"n":"{{name}}","m":"pre {{name}} post"}' },
        },
        variables: { name: literal },
      });
      expect(res.status, res.text).toBe(200);
      const got = up.received.at(-1) as Received;
      expect(got.headers['x-name']).toBe(literal);
      expect(new URL(got.url, 'http://x').searchParams.get('q')).toBe(`hi ${literal}`);
      expect(JSON.parse(got.body)).toEqual({ n: literal, m: `pre ${literal} post` });
      expect(formsIn(JSON.stringify(got), VALUE)).toEqual([]);
      expect(res.body.request.headers['x-name']).toBe(literal);
    },
  );

  it.runIf(available)(
    'a {{secret:…}} captured from a response is data: the next block sends the literal braces',
    async () => {
      const literal = `{{secret:${NAME}}}`;
      const wf = await owner.post(`${ws}/workflows`, {
        name: 'Injection',
        startBlockId: 'source',
        blocks: [
          {
            id: 'source',
            type: 'api',
            method: 'GET',
            url: `${up.url}/source`,
            capture: [{ variable: 'payload', path: '$.echo' }],
            onSuccess: 'sink',
          },
          {
            id: 'sink',
            type: 'api',
            method: 'POST',
            url: `${up.url}/sink`,
            headers: [
              { key: 'Authorization', value: `Bearer {{secret:${NAME}}}` },
              { key: 'X-Next', value: '{{payload}}' },
            ],
            query: [{ key: 'q', value: '{{payload}}' }],
            body: { mode: 'text', content: 'next={{payload}}' },
          },
        ],
      });
      expect(wf.status, wf.text).toBe(201);
      // The source answers with the template text itself (it finds no value in a GET without secrets).
      up.handle((req, res) => {
        if (req.url.startsWith('/source')) return void res.end(JSON.stringify({ echo: literal }));
        res.end('{}');
      });
      const before = up.received.length;
      const run = await owner.post(`${ws}/workflows/${wf.body.id}/runs`, {});
      expect(run.status, run.text).toBe(201);
      expect(run.body.status).toBe('succeeded');
      const sink = up.received.slice(before).find((r) => r.url.startsWith('/sink')) as Received;
      expect(sink.headers.authorization).toBe(`Bearer ${VALUE}`);
      expect(sink.headers['x-next']).toBe(literal);
      expect(new URL(sink.url, 'http://x').searchParams.get('q')).toBe(literal);
      expect(sink.body).toBe(`next=${literal}`);
      expect(run.body.variables.payload).toBe(literal);
      expectNoForm(run, VALUE);
    },
  );

  it.runIf(available)(
    'a header value with a control character from a variable is refused before any connection',
    async () => {
      const block = {
        id: 'hdr',
        type: 'api',
        method: 'GET',
        url: `${up.url}/hdr`,
        headers: [
          { key: 'Authorization', value: `Bearer {{secret:${NAME}}}` },
          { key: 'X-Name', value: 'v {{evil}}' },
        ],
      };
      // Line breaks and NUL (header injection), and characters HTTP/1.1 cannot carry (beyond ISO-8859-1).
      for (const evil of [
        'a\r\nX-Injected: 1',
        'a\nX-Injected: 1',
        'a\rb',
        'a\u0000b',
        'a\u0001b',
        'a\u001fb',
        'a\u007fb',
        '\r\n\r\nGET / HTTP/1.1',
        '☃',
        '漢字',
      ]) {
        const before = up.connections;
        const received = up.received.length;
        const res = await owner.post(`${ws}/blocks/send`, { block, variables: { evil } });
        expect(res.status, res.text).toBe(422);
        expect(res.body.code).toBe('invalid_header');
        expectNoForm(res, VALUE);
        expect(up.connections).toBe(before);
        expect(up.received.length).toBe(received);
      }
      // A header name from a variable is checked too.
      const before = up.connections;
      const res = await owner.post(`${ws}/blocks/send`, {
        block: { ...block, headers: [{ key: '{{evilKey}}', value: 'x' }] },
        variables: { evilKey: 'X-A\r\nX-Injected' },
      });
      expect(res.status, res.text).toBe(422);
      expect(res.body.code).toBe('invalid_header');
      expect(up.connections).toBe(before);
      // In a run the step fails with the same code, and nothing is sent.
      const wf = await owner.post(`${ws}/workflows`, {
        name: 'Header injection',
        startBlockId: 'hdr',
        blocks: [block],
      });
      expect(wf.status, wf.text).toBe(201);
      const run = await owner.post(`${ws}/workflows/${wf.body.id}/runs`, { variables: { evil: 'a\r\nX-Injected: 1' } });
      expect(run.status, run.text).toBe(201);
      expect(run.body.status).toBe('failed');
      expect(run.body.steps[0].error.code).toBe('invalid_header');
      expect(up.connections).toBe(before);
    },
  );
});
