/**
 * Outbound calls end to end (SPEC §3 "Outbound calls", §1 "Secrets"):
 * allowed hosts and pin on first use, the workspace's secretHostBinding,
 * redirects (same origin keeps the secret, another origin gets none of it,
 * at most 5, 303 → GET), limits (timeout, size cap, unreachable: 200 with
 * ok:false, never a 500), and the SSRF guard with no allow list: every
 * spelling of a loopback, private or metadata address is refused with 403
 * `outbound_blocked` before any connection is opened.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../bench/support/ports.js';
import { canaryForms, makeCanary } from '../support/canary.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { type Received, startUpstream, type Upstream } from '../support/upstream.js';

function formsIn(text: string, value: string): string[] {
  return Object.entries(canaryForms(value))
    .filter(([, form]) => text.includes(form))
    .map(([name]) => name);
}

function expectNoForm(reply: Reply, value: string): void {
  expect(formsIn(reply.text, value), reply.text.slice(0, 1500)).toEqual([]);
  expect(formsIn(JSON.stringify(reply.body ?? null), value)).toEqual([]);
  expect(formsIn(JSON.stringify(reply.headers), value)).toEqual([]);
}

const snapshot = (u: Upstream) => ({ received: u.received.length, connections: u.connections });

describe.each(DATABASES)('outbound security on $kind', ({ kind, available }) => {
  /** Loopback opened with HUSH_OUTBOUND_ALLOW_CIDRS, so the upstreams are reachable. */
  let open: TestApp;
  /** No allow list: the SSRF guard's defaults. */
  let closed: TestApp;
  /** Loopback opened, but secrets over https only (HUSH_SECRETS_OVER_HTTP=never). */
  let tlsOnly: TestApp;
  let tlsOwner: TestClient;
  let tlsWs: string;
  let up: Upstream;
  let up2: Upstream;
  let up6: Upstream | undefined;
  let owner: TestClient;
  let ws: string;
  let closedOwner: TestClient;
  let closedWs: string;
  const BOUND = makeCanary('bound');
  const PIN = makeCanary('pin');
  const REDIR = makeCanary('redir');

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    up2 = await startUpstream('127.0.0.2');
    up6 = await startUpstream('::1').catch(() => undefined);
    open = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    closed = await startTestApp(kind);
    tlsOnly = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8', HUSH_SECRETS_OVER_HTTP: 'never' });
    const o = await setupOwner(open);
    owner = o.owner;
    ws = `/api/v1/workspaces/${o.workspaceId}`;
    const c = await setupOwner(closed);
    closedOwner = c.owner;
    closedWs = `/api/v1/workspaces/${c.workspaceId}`;
    const t = await setupOwner(tlsOnly);
    tlsOwner = t.owner;
    tlsWs = `/api/v1/workspaces/${t.workspaceId}`;
    for (const [name, value, allowedHosts] of [
      ['bound_token', BOUND, ['127.0.0.1']],
      ['redir_token', REDIR, ['127.0.0.1']],
      ['pin_token', PIN, []],
    ] as const) {
      const s = await owner.post(`${ws}/secrets`, { name, visibility: 'masked', value, allowedHosts });
      expect(s.status, s.text).toBe(201);
    }
  }, 120_000);
  afterAll(async () => {
    await open?.close();
    await closed?.close();
    await tlsOnly?.close();
    await up?.close();
    await up2?.close();
    await up6?.close();
  });

  const send = (block: Record<string, unknown>, variables: Record<string, unknown> = {}, client = owner, at = ws) =>
    client.post(`${at}/blocks/send`, { block: { id: 'b', type: 'api', method: 'GET', ...block }, variables });
  const auth = (name: string) => [{ key: 'Authorization', value: `Bearer {{secret:${name}}}` }];
  const secretByName = async (name: string, client = owner, at = ws) => {
    const list = await client.get(`${at}/secrets?q=${name}`);
    return list.body.items.find((s: { name: string }) => s.name === name);
  };
  const auditOf = (t: TestApp, action: string, targetId: string) =>
    t.ctx.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', action)
      .where('target_id', '=', targetId)
      .execute();

  describe('allowed hosts', () => {
    it.runIf(available)(
      'a secret bound to 127.0.0.1 goes there, and is refused for 127.0.0.2 and localhost before any connection',
      async () => {
        up.handle((_req, res) => res.end('ok'));
        up2.handle((_req, res) => res.end('ok'));
        const ok = await send({ url: `${up.url}/bound`, headers: auth('bound_token') });
        expect(ok.status, ok.text).toBe(200);
        expect((up.received.at(-1) as Received).headers.authorization).toBe(`Bearer ${BOUND}`);

        const positions: Record<string, unknown>[] = [
          { headers: auth('bound_token') },
          { query: [{ key: 'key', value: '{{secret:bound_token}}' }] },
          { method: 'POST', body: { mode: 'text', content: '{{secret:bound_token}}' } },
          { method: 'POST', body: { mode: 'json', content: '{"t":"{{secret:bound_token}}"}' } },
          { method: 'POST', body: { mode: 'form', content: [{ key: 't', value: '{{secret:bound_token}}' }] } },
        ];
        for (const position of positions) {
          const before2 = snapshot(up2);
          const res = await send({ url: `${up2.url}/other`, ...position });
          expect(res.status, res.text).toBe(403);
          expect(res.body.code).toBe('host_not_allowed');
          expectNoForm(res, BOUND);
          expect(snapshot(up2)).toEqual(before2);
        }
        const before = snapshot(up);
        const viaName = await send({ url: `http://localhost:${up.port}/other`, headers: auth('bound_token') });
        expect(viaName.status, viaName.text).toBe(403);
        expect(viaName.body.code).toBe('host_not_allowed');
        expect(snapshot(up)).toEqual(before);
      },
    );

    it.runIf(available)(
      'a secret with no hosts is pinned to the first host it is sent to, audited, and refused elsewhere',
      async () => {
        up.handle((_req, res) => res.end('ok'));
        const fresh = await secretByName('pin_token');
        expect(fresh.allowedHosts).toEqual([]);
        expect(fresh.hostsPinnedAt).toBeNull();

        const first = await send({ url: `${up.url}/pin`, headers: auth('pin_token') });
        expect(first.status, first.text).toBe(200);
        expect((up.received.at(-1) as Received).headers.authorization).toBe(`Bearer ${PIN}`);
        const pinned = await secretByName('pin_token');
        expect(pinned.allowedHosts).toEqual(['127.0.0.1']);
        expect(typeof pinned.hostsPinnedAt).toBe('string');
        const events = await auditOf(open, 'secret.host_pinned', pinned.id);
        expect(events).toHaveLength(1);
        expect(JSON.parse(events[0]?.data ?? '{}')).toMatchObject({ name: 'pin_token', host: '127.0.0.1' });
        expect(formsIn(JSON.stringify(events), PIN)).toEqual([]);

        const before2 = snapshot(up2);
        const elsewhere = await send({ url: `${up2.url}/pin`, headers: auth('pin_token') });
        expect(elsewhere.status, elsewhere.text).toBe(403);
        expect(elsewhere.body.code).toBe('host_not_allowed');
        expect(snapshot(up2)).toEqual(before2);
        const again = await send({ url: `${up.url}/pin`, headers: auth('pin_token') });
        expect(again.status, again.text).toBe(200);
        expect(await auditOf(open, 'secret.host_pinned', pinned.id)).toHaveLength(1);
        expect((await secretByName('pin_token')).allowedHosts).toEqual(['127.0.0.1']);
      },
    );

    it.runIf(available)(
      "the workspace's secretHostBinding: 'off' sends anywhere without pinning; 'required' refuses an empty list",
      async () => {
        up.handle((_req, res) => res.end('ok'));
        up2.handle((_req, res) => res.end('ok'));
        const created = await owner.post('/api/v1/workspaces', { name: 'Binding' });
        expect(created.status, created.text).toBe(201);
        const ws2 = `/api/v1/workspaces/${created.body.id}`;
        const value = makeCanary('loose');
        const s = await owner.post(`${ws2}/secrets`, { name: 'loose_token', visibility: 'masked', value });
        expect(s.status, s.text).toBe(201);

        const off = await owner.patch(ws2, { settings: { secretHostBinding: 'off' } });
        expect(off.status, off.text).toBe(200);
        expect(off.body.settings.secretHostBinding).toBe('off');
        for (const target of [up, up2]) {
          const res = await send({ url: `${target.url}/off`, headers: auth('loose_token') }, {}, owner, ws2);
          expect(res.status, res.text).toBe(200);
          expect(res.body.ok).toBe(true);
          expect((target.received.at(-1) as Received).headers.authorization).toBe(`Bearer ${value}`);
          expectNoForm(res, value);
        }
        const loose = await secretByName('loose_token', owner, ws2);
        expect(loose.allowedHosts).toEqual([]);
        expect(loose.hostsPinnedAt).toBeNull();
        expect(await auditOf(open, 'secret.host_pinned', loose.id)).toHaveLength(0);

        const required = await owner.patch(ws2, { settings: { secretHostBinding: 'required' } });
        expect(required.status, required.text).toBe(200);
        const before = snapshot(up);
        const refused = await send({ url: `${up.url}/required`, headers: auth('loose_token') }, {}, owner, ws2);
        expect(refused.status, refused.text).toBe(403);
        expect(refused.body.code).toBe('host_not_allowed');
        expect(snapshot(up)).toEqual(before);
        expect((await secretByName('loose_token', owner, ws2)).allowedHosts).toEqual([]);
        // Creating without a list is refused; a listed secret still goes to its host.
        const unlisted = await owner.post(`${ws2}/secrets`, {
          name: 'unlisted',
          visibility: 'masked',
          value: 'v-123456',
        });
        expect(unlisted.status, unlisted.text).toBe(422);
        const listed = await owner.post(`${ws2}/secrets`, {
          name: 'listed_token',
          visibility: 'masked',
          value: 'listed-value-123',
          allowedHosts: ['127.0.0.1'],
        });
        expect(listed.status, listed.text).toBe(201);
        const ok = await send({ url: `${up.url}/required`, headers: auth('listed_token') }, {}, owner, ws2);
        expect(ok.status, ok.text).toBe(200);
        expect((up.received.at(-1) as Received).headers.authorization).toBe('Bearer listed-value-123');
      },
    );
  });

  describe('redirects', () => {
    it.runIf(available)('a same-origin redirect keeps the secret (302 GET, 307 POST with its body)', async () => {
      up.handle((req, res) => {
        if (req.url === '/start') return void res.writeHead(302, { location: '/final' }).end();
        if (req.url === '/keep') return void res.writeHead(307, { location: '/final2' }).end();
        res.setHeader('content-type', 'application/json');
        const token = req.body ? JSON.parse(req.body).token : null;
        res.end(JSON.stringify({ auth: req.headers.authorization, method: req.method, token }));
      });
      const before = up.received.length;
      const res = await send({ url: `${up.url}/start`, headers: auth('redir_token') });
      expect(res.status, res.text).toBe(200);
      expect(res.body.ok).toBe(true);
      const hops = up.received.slice(before);
      expect(hops.map((r) => r.url)).toEqual(['/start', '/final']);
      expect(hops.map((r) => r.headers.authorization)).toEqual([`Bearer ${REDIR}`, `Bearer ${REDIR}`]);
      expect(JSON.parse(res.body.response.body).auth).toBe('Bearer [secret:redir_token]');
      expectNoForm(res, REDIR);

      const post = await send({
        method: 'POST',
        url: `${up.url}/keep`,
        headers: auth('redir_token'),
        body: { mode: 'json', content: '{"token":"{{secret:redir_token}}"}' },
      });
      expect(post.status, post.text).toBe(200);
      const last = up.received.at(-1) as Received;
      expect(last.url).toBe('/final2');
      expect(last.method).toBe('POST');
      expect(last.headers.authorization).toBe(`Bearer ${REDIR}`);
      expect(JSON.parse(last.body)).toEqual({ token: REDIR });
      expectNoForm(post, REDIR);
    });

    it.runIf(available)(
      'a redirect to another origin carries no secret in headers, query or body; the caller still sees it redacted',
      async () => {
        up.handle((req, res) => {
          const search = new URL(req.url, 'http://x').search;
          if (req.url.startsWith('/away'))
            return void res.writeHead(307, { location: `${up2.url}/land${search}` }).end();
          if (req.url.startsWith('/found'))
            return void res.writeHead(302, { location: `${up2.url}/land${search}` }).end();
          res.end('?');
        });
        up2.handle((req, res) => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify(req));
        });
        for (const [path, method] of [
          ['/away', 'POST'],
          ['/found', 'GET'],
        ] as const) {
          const before = up2.received.length;
          const res = await send(
            {
              method,
              url: `${up.url}${path}`,
              headers: [...auth('redir_token'), { key: 'X-Plain', value: 'plain {{who}}' }],
              query: [
                { key: 'key', value: '{{secret:redir_token}}' },
                { key: 'page', value: '2' },
              ],
              ...(method === 'POST'
                ? { body: { mode: 'json', content: '{"token":"{{secret:redir_token}}","n":"1"}' } }
                : {}),
              capture: [{ variable: 'landed', path: '$.url' }],
            },
            { who: 'Ada' },
          );
          expect(res.status, res.text).toBe(200);
          expect(res.body.ok).toBe(true);
          // The first hop had everything; the second origin got none of it.
          const first = up.received.at(-1) as Received;
          expect(first.headers.authorization).toBe(`Bearer ${REDIR}`);
          expect(new URL(first.url, 'http://x').searchParams.get('key')).toBe(REDIR);
          expect(up2.received.length).toBe(before + 1);
          const landed = up2.received.at(-1) as Received;
          expect(landed.method).toBe(method);
          expect(landed.headers.authorization).toBeUndefined();
          expect(landed.headers['x-plain']).toBe('plain Ada');
          expect(landed.url).toBe('/land?page=2');
          expect(landed.body).toBe('');
          expect(formsIn(JSON.stringify(landed), REDIR)).toEqual([]);
          // The caller's view: the request snapshot redacted, the response from the second origin.
          expect(res.body.request.headers.authorization).toBe('Bearer [secret:redir_token]');
          expect(res.body.captures).toEqual({ landed: '/land?page=2' });
          expectNoForm(res, REDIR);
        }
      },
    );

    it.runIf(available)(
      'once the secret is dropped it does not come back when a later hop returns to the origin',
      async () => {
        up.handle((req, res) => {
          if (req.url === '/bounce') return void res.writeHead(302, { location: `${up2.url}/bounce` }).end();
          res.end(JSON.stringify({ auth: req.headers.authorization ?? null }));
        });
        up2.handle((_req, res) => res.writeHead(302, { location: `${up.url}/back` }).end());
        const res = await send({ url: `${up.url}/bounce`, headers: auth('redir_token') });
        expect(res.status, res.text).toBe(200);
        const back = up.received.at(-1) as Received;
        expect(back.url).toBe('/back');
        expect(back.headers.authorization).toBeUndefined();
        expect(formsIn(JSON.stringify(up2.received.at(-1)), REDIR)).toEqual([]);
        expectNoForm(res, REDIR);
      },
    );

    it.runIf(available)(
      'a redirect to another origin that reflects the original URL (?next=…) does not carry the secret there',
      async () => {
        // A login or "moved" redirect that keeps the original URL in a parameter of another origin.
        up.handle((req, res) =>
          res.writeHead(302, { location: `${up2.url}/login?next=${encodeURIComponent(req.url)}` }).end(),
        );
        up2.handle((_req, res) => res.end('login page'));
        const before = up2.received.length;
        const res = await send({
          url: `${up.url}/reflect`,
          query: [{ key: 'key', value: '{{secret:redir_token}}' }],
        });
        expect(res.status, res.text).toBeLessThan(500);
        expect(new URL((up.received.at(-1) as Received).url, 'http://x').searchParams.get('key')).toBe(REDIR);
        expectNoForm(res, REDIR);
        const reached = up2.received.slice(before);
        expect(formsIn(JSON.stringify(reached), REDIR), JSON.stringify(reached)).toEqual([]);
      },
    );

    it.runIf(available)(
      'a redirect to another origin reflecting a value with + and characters the URL escapes is not followed, stray % or not',
      async () => {
        const value = "Sup3r'Secret+Pass-7Qx9";
        const created = await owner.post(`${ws}/secrets`, {
          name: 'plus_token',
          visibility: 'masked',
          value,
          allowedHosts: ['127.0.0.1'],
        });
        expect(created.status, created.text).toBe(201);
        // An open redirect on the allowed host that reflects the query as it arrived (the URL parser sent ' as %27).
        for (const stray of ['', 'x=%&', 'x=%E2%82&']) {
          up.handle((req, res) => {
            const raw = req.url.slice(req.url.indexOf('key=') + 4);
            res.writeHead(302, { location: `${up2.url}/cb?${stray}from_key=${raw}` }).end();
          });
          up2.handle((_req, res) => res.end('ok'));
          const before = up2.received.length;
          const res = await send({ url: `${up.url}/open`, query: [{ key: 'key', value: '{{secret:plus_token}}' }] });
          expect(res.status, res.text).toBe(200);
          expect(res.body.error?.code, `${stray} ${res.text}`).toBe('unsafe_redirect');
          expect(up2.received.length, stray).toBe(before);
          expect(res.text).not.toContain('Secret+Pass');
        }
      },
    );

    it.runIf(available)(
      'a redirect putting the value in another host name (lower-cased by the URL parser) or beside a broken escape is not followed',
      async () => {
        const mixed = 'K7f3A9c2E1b0D4f6A8c1E3';
        const accented = 'äpass-word-123456';
        for (const [name, value] of [
          ['mixed_case', mixed],
          ['accented', accented],
        ]) {
          const created = await owner.post(`${ws}/secrets`, {
            name,
            visibility: 'masked',
            value,
            allowedHosts: ['127.0.0.1'],
          });
          expect(created.status, created.text).toBe(201);
        }
        const cases: [string, (key: string) => string][] = [
          ['mixed_case', (key) => `http://${key}.attacker.invalid/`],
          ['accented', (key) => `${up2.url}/cb?x=%FF${encodeURIComponent(key).replace('%C3', '%c3')}`],
        ];
        for (const [name, location] of cases) {
          up.handle((req, res) => {
            const key = new URL(req.url, 'http://x').searchParams.get('key') ?? '';
            res.writeHead(302, { location: location(key) }).end();
          });
          up2.handle((_req, res) => res.end('ok'));
          const before = up2.received.length;
          const res = await send({ url: `${up.url}/open`, query: [{ key: 'key', value: `{{secret:${name}}}` }] });
          expect(res.status, res.text).toBe(200);
          expect(res.body.error?.code, `${name}: ${res.text}`).toBe('unsafe_redirect');
          expect(up2.received.length).toBe(before);
        }
      },
    );

    it.runIf(available)(
      'a call sending no secret is not redirected to another origin with a value the host holds (its bound secret) in the URL or host name',
      async () => {
        const value = 'TokABcdEFghIJkl9876';
        const created = await owner.post(`${ws}/secrets`, {
          name: 'replayed',
          visibility: 'masked',
          value,
          allowedHosts: ['127.0.0.1'],
        });
        expect(created.status, created.text).toBe(201);
        // The allowed host keeps what it was sent, and later answers it back in a redirect.
        let stored = '';
        for (const location of [
          () => `${up2.url}/cb?v=${stored}`,
          () => `${up2.url}/cb#${encodeURIComponent(encodeURIComponent(stored))}`,
          () => `http://${stored}.attacker.invalid/`,
        ]) {
          up.handle((req, res) => {
            const header = req.headers['x-k'];
            if (header) {
              stored = String(header);
              res.end('kept');
            } else res.writeHead(302, { location: location() }).end();
          });
          up2.handle((_req, res) => res.end('ok'));
          const kept = await send({ url: `${up.url}/keep`, headers: [{ key: 'X-K', value: '{{secret:replayed}}' }] });
          expect(kept.status, kept.text).toBe(200);
          expect(stored).toBe(value);
          const before = up2.received.length;
          const res = await send({ url: `${up.url}/later` });
          expect(res.status, res.text).toBe(200);
          expect(res.body.error?.code, `${location()}: ${res.text}`).toBe('unsafe_redirect');
          expect(up2.received.length).toBe(before);
          expect(res.text.toLowerCase()).not.toContain(value.toLowerCase());
        }
      },
    );

    it.runIf(available)('5 redirects are followed; a 6th gives 200 with ok:false and an error code', async () => {
      up.handle((req, res) => {
        const m = /^\/hops\/(\d+)\/(\d+)$/.exec(req.url);
        if (!m) return void res.end('?');
        const [limit, n] = [Number(m[1]), Number(m[2])];
        if (n < limit) return void res.writeHead(302, { location: `/hops/${limit}/${n + 1}` }).end();
        res.end(`done after ${n}`);
      });
      let before = up.received.length;
      const five = await send({ url: `${up.url}/hops/5/0`, headers: auth('redir_token') });
      expect(five.status, five.text).toBe(200);
      expect(five.body.ok).toBe(true);
      expect(five.body.response.body).toBe('done after 5');
      expect(up.received.length - before).toBe(6);

      before = up.received.length;
      const six = await send({ url: `${up.url}/hops/6/0`, headers: auth('redir_token') });
      expect(six.status, six.text).toBe(200);
      expect(six.body.ok).toBe(false);
      expect(six.body.error.code).toBe('too_many_redirects');
      expect(up.received.length - before).toBe(6);
      expectNoForm(six, REDIR);
    });

    it.runIf(available)('303 turns a POST into a GET without body (so do 301/302 after a POST)', async () => {
      up.handle((req, res) => {
        if (req.url === '/see-other') return void res.writeHead(303, { location: '/after' }).end();
        if (req.url === '/moved') return void res.writeHead(301, { location: '/after' }).end();
        res.end(JSON.stringify({ method: req.method }));
      });
      for (const path of ['/see-other', '/moved']) {
        const res = await send({
          method: 'POST',
          url: `${up.url}${path}`,
          headers: auth('redir_token'),
          body: { mode: 'json', content: '{"token":"{{secret:redir_token}}"}' },
        });
        expect(res.status, res.text).toBe(200);
        const after = up.received.at(-1) as Received;
        expect(after.url).toBe('/after');
        expect(after.method).toBe('GET');
        expect(after.body).toBe('');
        expect(after.headers['content-type']).toBeUndefined();
        expect(after.headers['content-length'] ?? '0').toBe('0');
        // Same origin: the header secret stays.
        expect(after.headers.authorization).toBe(`Bearer ${REDIR}`);
        expect(JSON.parse(res.body.response.body)).toEqual({ method: 'GET' });
        expectNoForm(res, REDIR);
      }
    });

    it.runIf(available)(
      'each hop is re-checked by the SSRF guard: a redirect to a metadata or private address is refused',
      async () => {
        up.handle((req, res) => {
          const to = req.url === '/to-metadata' ? 'http://169.254.169.254/latest/meta-data/' : 'http://10.0.0.1/admin';
          res.writeHead(302, { location: to }).end();
        });
        for (const path of ['/to-metadata', '/to-private']) {
          const res = await send({ url: `${up.url}${path}` });
          expect(res.status, res.text).toBeLessThan(500);
          expect(res.status === 200 ? res.body.error?.code : res.body.code).toBe('outbound_blocked');
        }
      },
    );
  });

  describe('after the first hop', () => {
    it.runIf(available)(
      'a later hop refused by the SSRF guard is a failed call: the secret that went out on the first is audited',
      async () => {
        up.handle((_req, res) => res.writeHead(302, { location: 'http://169.254.169.254/latest/' }).end());
        const id = (await secretByName('redir_token')).id as string;
        const usedBefore = (await auditOf(open, 'secret.used', id)).length;
        const res = await send({ url: `${up.url}/hop`, headers: auth('redir_token') });
        expect(res.status, res.text).toBe(200);
        expect(res.body).toMatchObject({ ok: false, error: { code: 'outbound_blocked' } });
        expect((up.received.at(-1) as Received).headers.authorization).toBe(`Bearer ${REDIR}`);
        expect((await auditOf(open, 'secret.used', id)).length).toBe(usedBefore + 1);
        expectNoForm(res, REDIR);
      },
    );

    it.runIf(available)(
      'an unpinned secret is not pinned to a host that does not resolve, and nothing is sent',
      async () => {
        const created = await owner.post(`${ws}/secrets`, {
          name: 'unresolved_pin',
          visibility: 'masked',
          value: makeCanary('unres'),
        });
        expect(created.status, created.text).toBe(201);
        const res = await send({ url: 'http://no-such-host.invalid/x', headers: auth('unresolved_pin') });
        expect(res.status, res.text).toBe(200);
        expect(res.body).toMatchObject({ ok: false, error: { code: 'upstream_unreachable' } });
        expect((await secretByName('unresolved_pin')).allowedHosts).toEqual([]);
        expect(await auditOf(open, 'secret.host_pinned', created.body.id)).toEqual([]);
      },
    );

    it.runIf(available)("the timeout is the block's, redirects included", async () => {
      // Each hop answers a redirect after 250 ms: five hops in a 600 ms block cannot all fit.
      up.handle((req, res) => {
        const n = Number(new URL(req.url, 'http://x').searchParams.get('n') ?? 0);
        setTimeout(() => res.writeHead(302, { location: `/slow-hop?n=${n + 1}` }).end(), 250);
      });
      const started = Date.now();
      const res = await send({ url: `${up.url}/slow-hop?n=0`, timeoutMs: 600 });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ ok: false, error: { code: 'upstream_timeout' } });
      expect(res.body.error.message).toContain('600 ms');
      expect(Date.now() - started).toBeLessThan(1200);
    });
  });

  describe('limits', () => {
    it.runIf(available)(
      'a block with timeoutMs 300 against a slow upstream: 200, ok:false, upstream_timeout',
      async () => {
        up.handle((req, res) => {
          if (req.url === '/slow-body') {
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.write('partial ');
            return; // never ends
          }
          // /slow: never answers
        });
        for (const path of ['/slow', '/slow-body']) {
          const started = Date.now();
          const res = await send({ url: `${up.url}${path}`, timeoutMs: 300, headers: auth('redir_token') });
          expect(res.status, res.text).toBe(200);
          expect(res.body.ok).toBe(false);
          expect(res.body.error.code).toBe('upstream_timeout');
          expect(Date.now() - started).toBeLessThan(5000);
          expect(res.body.request.headers.authorization).toBe('Bearer [secret:redir_token]');
          expectNoForm(res, REDIR);
        }
      },
    );

    it.runIf(available)('a response over 5 MiB: 200, ok:false, response_too_large', async () => {
      up.handle((req, res) => {
        if (req.url === '/big-chunked') {
          const chunk = Buffer.alloc(256 * 1024, 0x61);
          for (let i = 0; i < 24; i++) res.write(chunk);
          return void res.end();
        }
        res.end(Buffer.alloc(5 * 1024 * 1024 + 1, 0x61));
      });
      for (const path of ['/big', '/big-chunked']) {
        const res = await send({ url: `${up.url}${path}`, headers: auth('redir_token') });
        expect(res.status, res.text.slice(0, 500)).toBe(200);
        expect(res.body.ok).toBe(false);
        expect(res.body.error.code).toBe('response_too_large');
        expect(res.text.length).toBeLessThan(10_000);
      }
    });

    it.runIf(available)('a closed port: 200, ok:false, upstream_unreachable', async () => {
      // Free now and handed to no other test worker (bench/support/ports.ts): nothing listens on it.
      const port = await freePort();
      const res = await send({ url: `http://127.0.0.1:${port}/`, headers: auth('redir_token') });
      expect(res.status, res.text).toBe(200);
      expect(res.body.ok).toBe(false);
      expect(res.body.error.code).toBe('upstream_unreachable');
      expect(res.body.response).toBeNull();
      expectNoForm(res, REDIR);
    });

    it.runIf(available)('a timeout over 60 s or under 1 ms is refused with 422, never a 500', async () => {
      for (const timeoutMs of [60_001, 0, -5, 1.5]) {
        const res = await send({ url: `${up.url}/`, timeoutMs });
        expect(res.status, res.text).toBe(422);
      }
    });
  });

  describe('SSRF guard with no allow list', () => {
    const reachable: [
      string,
      (u: { up: Upstream; up2: Upstream; up6?: Upstream | undefined }) => Upstream | undefined,
      (p: number) => string,
    ][] = [
      ['127.0.0.1', (u) => u.up, (p) => `http://127.0.0.1:${p}/`],
      ['localhost', (u) => u.up, (p) => `http://localhost:${p}/`],
      ['decimal 2130706433', (u) => u.up, (p) => `http://2130706433:${p}/`],
      ['hex 0x7f000001', (u) => u.up, (p) => `http://0x7f000001:${p}/`],
      ['octal 0177.0.0.1', (u) => u.up, (p) => `http://0177.0.0.1:${p}/`],
      ['short 127.1', (u) => u.up, (p) => `http://127.1:${p}/`],
      ['IPv4-mapped [::ffff:127.0.0.1]', (u) => u.up, (p) => `http://[::ffff:127.0.0.1]:${p}/`],
      ['IPv4-mapped hex [::ffff:7f00:1]', (u) => u.up, (p) => `http://[::ffff:7f00:1]:${p}/`],
      ['0.0.0.0', (u) => u.up, (p) => `http://0.0.0.0:${p}/`],
      ['0', (u) => u.up, (p) => `http://0:${p}/`],
      ['127.0.0.2', (u) => u.up2, (p) => `http://127.0.0.2:${p}/`],
      ['[::1]', (u) => u.up6 ?? u.up, (p) => `http://[::1]:${p}/`],
    ];
    it.runIf(available).each(reachable)('%s → 403 outbound_blocked and no connection', async (_label, pick, url) => {
      const target = pick({ up, up2, up6 }) as Upstream;
      up.handle((_req, res) => res.end('reached'));
      const before = snapshot(target);
      const res = await send({ url: url(target.port) }, {}, closedOwner, closedWs);
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe('outbound_blocked');
      expect(snapshot(target)).toEqual(before);
    });

    it.runIf(available)('control: with loopback allowed, the same spellings do reach the upstream', async () => {
      up.handle((_req, res) => res.end('reached'));
      for (const host of ['127.1', '2130706433', '0x7f000001', 'localhost']) {
        const before = up.received.length;
        const res = await send({ url: `http://${host}:${up.port}/control` });
        expect(res.status, res.text).toBe(200);
        expect(res.body.response.body).toBe('reached');
        expect(up.received.length).toBe(before + 1);
      }
    });

    it
      .runIf(available)
      .each([
        'http://169.254.169.254/latest/meta-data/',
        'http://10.0.0.1/',
        'http://172.16.0.1/',
        'http://192.168.1.1/',
        'http://100.64.0.1/',
        'http://224.0.0.1/',
        'http://[fd00:ec2::254]/',
        'http://[fe80::1]/',
        'http://[::]/',
        'http://[::ffff:169.254.169.254]/',
        'http://[64:ff9b::a9fe:a9fe]/',
      ])('%s → 403 outbound_blocked', async (url) => {
      const res = await send({ url }, {}, closedOwner, closedWs);
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe('outbound_blocked');
    });

    it.runIf(available)(
      'a call refused by the guard does not pin, use or audit the secret it would have carried',
      async () => {
        const value = makeCanary('ssrf');
        const s = await closedOwner.post(`${closedWs}/secrets`, { name: 'ssrf_token', visibility: 'masked', value });
        expect(s.status, s.text).toBe(201);
        const res = await send({ url: 'http://10.0.0.1/', headers: auth('ssrf_token') }, {}, closedOwner, closedWs);
        expect(res.status, res.text).toBe(403);
        expect(res.body.code).toBe('outbound_blocked');
        expectNoForm(res, value);
        const after = await secretByName('ssrf_token', closedOwner, closedWs);
        expect({
          allowedHosts: after.allowedHosts,
          hostsPinnedAt: after.hostsPinnedAt,
          lastUsedAt: after.lastUsedAt,
          pinEvents: (await auditOf(closed, 'secret.host_pinned', after.id)).length,
          useEvents: (await auditOf(closed, 'secret.used', after.id)).length,
        }).toEqual({ allowedHosts: [], hostsPinnedAt: null, lastUsedAt: null, pinEvents: 0, useEvents: 0 });
      },
    );
  });
  describe('secrets over plain http', () => {
    const PLAIN = makeCanary('plain');
    const positions = (name: string): Record<string, unknown>[] => [
      { headers: auth(name) },
      { query: [{ key: 'key', value: `{{secret:${name}}}` }] },
      { method: 'POST', body: { mode: 'text', content: `{{secret:${name}}}` } },
      { method: 'POST', body: { mode: 'json', content: `{"t":"{{secret:${name}}}"}` } },
      { method: 'POST', body: { mode: 'form', content: [{ key: 't', value: `{{secret:${name}}}` }] } },
    ];

    it.runIf(available)(
      'with HUSH_SECRETS_OVER_HTTP=never a secret is not sent over http even to an opened range: 403 insecure_transport, no connection, nothing pinned, used or audited',
      async () => {
        const s = await tlsOwner.post(`${tlsWs}/secrets`, { name: 'plain_token', visibility: 'masked', value: PLAIN });
        expect(s.status, s.text).toBe(201);
        up.handle((_req, res) => res.end('reached'));
        for (const position of positions('plain_token')) {
          const before = snapshot(up);
          const res = await send({ url: `${up.url}/plain`, ...position }, {}, tlsOwner, tlsWs);
          expect(res.status, res.text).toBe(403);
          expect(res.body.code).toBe('insecure_transport');
          expect(res.body.detail).toContain('over plain http');
          expectNoForm(res, PLAIN);
          expect(snapshot(up)).toEqual(before);
        }
        const after = await secretByName('plain_token', tlsOwner, tlsWs);
        expect({
          allowedHosts: after.allowedHosts,
          lastUsedAt: after.lastUsedAt,
          pinEvents: (await auditOf(tlsOnly, 'secret.host_pinned', after.id)).length,
          useEvents: (await auditOf(tlsOnly, 'secret.used', after.id)).length,
        }).toEqual({ allowedHosts: [], lastUsedAt: null, pinEvents: 0, useEvents: 0 });

        // The same call without a secret goes out: the rule is about secrets, not http.
        const before = snapshot(up);
        const plain = await send(
          { url: `${up.url}/plain`, headers: [{ key: 'X-Note', value: 'no secret' }] },
          {},
          tlsOwner,
          tlsWs,
        );
        expect(plain.status, plain.text).toBe(200);
        expect(plain.body.response.body).toBe('reached');
        expect(up.received.length).toBe(before.received + 1);
      },
    );

    it.runIf(available)(
      'by default (allowed-cidrs) a secret goes over http to an opened range, and is refused for a public address before any connection',
      async () => {
        up.handle((_req, res) => res.end('ok'));
        const ok = await send({ url: `${up.url}/opened`, headers: auth('bound_token') });
        expect(ok.status, ok.text).toBe(200);
        expect((up.received.at(-1) as Received).headers.authorization).toBe(`Bearer ${BOUND}`);

        const value = makeCanary('public');
        const s = await owner.post(`${ws}/secrets`, {
          name: 'public_token',
          visibility: 'masked',
          value,
          allowedHosts: ['93.184.215.14', 'api.example.com'],
        });
        expect(s.status, s.text).toBe(201);
        for (const position of positions('public_token')) {
          // A public address: the SSRF guard lets it pass, so only the plain-http rule stops it
          // (this machine has no route out, so a connection attempt would fail differently).
          const res = await send({ url: 'http://93.184.215.14/v1', ...position });
          expect(res.status, res.text).toBe(403);
          expect(res.body.code).toBe('insecure_transport');
          expect(res.body.detail).toContain('HUSH_OUTBOUND_ALLOW_CIDRS');
          expectNoForm(res, value);
        }
        const after = await secretByName('public_token');
        expect([after.lastUsedAt, (await auditOf(open, 'secret.used', after.id)).length]).toEqual([null, 0]);
      },
    );

    it.runIf(available)(
      'in a run the refused step fails with insecure_transport and the upstream receives nothing',
      async () => {
        up.handle((_req, res) => res.end('reached'));
        const wf = await tlsOwner.post(`${tlsWs}/workflows`, {
          name: 'plain http run',
          startBlockId: 'call',
          blocks: [{ id: 'call', type: 'api', method: 'GET', url: `${up.url}/run`, headers: auth('plain_token') }],
        });
        expect(wf.status, wf.text).toBe(201);
        const before = snapshot(up);
        const run = await tlsOwner.post(`${tlsWs}/workflows/${wf.body.id}/runs`, {});
        expect(run.status, run.text).toBe(201);
        expect(run.body.status).toBe('failed');
        expect(run.body.steps[0].error.code).toBe('insecure_transport');
        expect(JSON.stringify(run.body)).not.toContain(PLAIN);
        expect(snapshot(up)).toEqual(before);
      },
    );
  });
});
