/**
 * The world of the end-to-end leak test (test/evidence/leak-end-to-end.test.ts):
 * a real Hush on SQLite or PostgreSQL listening on 127.0.0.1 (logging at
 * debug, its root key known so `hush backup` and `hush audit export` can run
 * as separate processes on the same data), an "echo" upstream that sends back
 * whatever canary it received in every encoded form the SPEC's redaction
 * names — and fails in every way a call can fail — and a ledger of every
 * place a value could end up in, searched for every form of every canary.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { canaryForms, type Hit, LeakSearch } from './canary.js';
import type { DatabaseKindUnderTest } from './databases.js';
import { startTestApp, type TestApp } from './harness.js';
import { type Received, startUpstream, type Upstream } from './upstream.js';

/** Where a canary value may legitimately be found in a place: only this canary, and the place says why. */
export interface Place {
  where: string;
  content: Buffer;
  /** Canary names this place may carry (a permitted reveal answer); searched for every other one. */
  exempt: string[];
}

/**
 * Every place the test looked at, with the content it saw. `search()` looks
 * for every form of every canary in every place; `plantedControl()` proves,
 * place by place, that the same search finds a form planted in that content.
 */
export class LeakLedger {
  readonly places: Place[] = [];

  constructor(readonly canaries: Record<string, string>) {}

  add(where: string, content: string | Buffer, exempt: string[] = []): void {
    const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    this.places.push({ where, content: buf, exempt });
  }

  /** How many places have `prefix` as their category (the text before the first ':'). */
  count(prefix: string): number {
    return this.places.filter((p) => p.where.startsWith(`${prefix}:`)).length;
  }

  get formCount(): number {
    return Object.keys(canaryForms('x')).length;
  }

  search(): { hits: Hit[]; places: number; bytes: number } {
    const hits: Hit[] = [];
    let bytes = 0;
    for (const place of this.places) {
      const subject = Object.fromEntries(
        Object.entries(this.canaries).filter(([name]) => !place.exempt.includes(name)),
      );
      const s = new LeakSearch(subject);
      s.scan(place.where, place.content);
      hits.push(...s.hits);
      bytes += place.content.length;
    }
    return { hits, places: this.places.length, bytes };
  }

  /**
   * Plants, in the middle of each place's real content, one form of one
   * canary (cycling through every canary × form pair) and searches the
   * result exactly as `search()` does. Returns the plantings it missed and
   * how many distinct pairs were planted.
   */
  plantedControl(): { missed: string[]; pairs: number } {
    const names = Object.keys(this.canaries);
    const formNames = Object.keys(canaryForms('x'));
    const missed: string[] = [];
    const pairs = new Set<string>();
    this.places.forEach((place, i) => {
      const candidates = names.filter((n) => !place.exempt.includes(n));
      const name = candidates[i % candidates.length] as string;
      const form = formNames[Math.floor(i / names.length) % formNames.length] as string;
      const text = canaryForms(this.canaries[name] as string)[form] as string;
      const mid = Math.floor(place.content.length / 2);
      const planted = Buffer.concat([
        place.content.subarray(0, mid),
        Buffer.from(text, 'utf8'),
        place.content.subarray(mid),
      ]);
      const s = new LeakSearch(Object.fromEntries(candidates.map((n) => [n, this.canaries[n] as string])));
      s.scan(place.where, planted);
      pairs.add(`${name}/${form}`);
      if (!s.hits.some((h) => h.canary === name && h.form === form)) missed.push(`${place.where}: ${name}/${form}`);
    });
    return { missed, pairs: pairs.size };
  }

  /** The places (by name) where any form of `value` occurs: for positive controls with a value stored in plain text. */
  whereFound(value: string): string[] {
    const s = new LeakSearch({ control: value });
    for (const place of this.places) s.scan(place.where, place.content);
    return [...new Set(s.hits.map((h) => h.where))];
  }
}

/** Any form of `value` the SPEC's redaction covers, as an echo would write it. */
function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

export function htmlEscape(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": '#39' }[c]};`);
}

/** The values among `canaries` that a request carried, found by their ASCII core in any encoding. */
export function valuesIn(req: Received, canaries: Record<string, string>): string[] {
  const wire = JSON.stringify(req);
  return Object.values(canaries).filter((v) => wire.includes(canaryForms(v).core as string));
}

/** A JSON document holding `value` in every form SPEC §3 "Redaction" lists. */
export function jsonForms(value: string): Record<string, unknown> {
  const bytes = Buffer.from(value, 'utf8');
  return {
    echo: value,
    quoted: `token "${value}"`,
    b64: bytes.toString('base64'),
    b64NoPad: bytes.toString('base64').replace(/=+$/, ''),
    b64url: bytes.toString('base64url'),
    hex: bytes.toString('hex'),
    HEX: bytes.toString('hex').toUpperCase(),
    pct: encodeURIComponent(value),
    form: encodeURIComponent(value).replaceAll('%20', '+'),
    html: htmlEscape(value),
    // A Basic-auth blob, and the value at each byte alignment inside longer base64.
    basic: `Basic ${b64(`user:${value}`)}`,
    aligned: ['', 'u', 'us', 'use'].map((p) => b64(`${p}${value}`)),
    error: `invalid token ${value}`,
    nested: { deep: [{ value }] },
    // For a multi-line value: every line of 8+ characters on its own.
    lines: value
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length >= 8),
  };
}

/** Response headers carrying `value` in header-safe forms (raw too when it is one line). */
function setFormHeaders(res: ServerResponse, value: string): void {
  const oneLine = !/[\r\n]/.test(value);
  if (oneLine) res.setHeader('x-raw', value);
  res.setHeader('x-pct', encodeURIComponent(value));
  res.setHeader('x-b64', b64(value));
  res.setHeader('x-hex', Buffer.from(value).toString('hex'));
  res.setHeader('x-basic', `Basic ${b64(`user:${value}`)}`);
  res.setHeader('www-authenticate', `Bearer error="invalid_token", token="${encodeURIComponent(value)}"`);
  res.setHeader('set-cookie', `sid=${Buffer.from(value).toString('base64url')}; Path=/`);
}

export interface EchoUpstreams {
  /** 127.0.0.1: the allowed host; echoes and fails. */
  echo: Upstream;
  /** 127.0.0.2: another origin, never allowed; answers with what it received. */
  other: Upstream;
  close(): Promise<void>;
}

/**
 * The echo upstream. Paths:
 *  /echo, /fail (500), /html, /text — every form of every canary it received,
 *    in headers and body;
 *  /reset — starts an answer with the value, then resets the connection;
 *  /drip — headers and half a body with the value, then stalls (timeout);
 *  /hang — never answers;
 *  /big — the value, then more than the 5 MiB response cap;
 *  /away-carrying, /away-b64 — redirect to the other origin with the value in the URL;
 *  /away — redirect (307) to the other origin, with the value in the redirect's headers.
 */
export async function startEchoUpstreams(canaries: Record<string, string>): Promise<EchoUpstreams> {
  const echo = await startUpstream('127.0.0.1');
  const other = await startUpstream('127.0.0.2');
  other.handle((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ received: req }));
  });
  echo.handle((req, res) => {
    const values = valuesIn(req, canaries);
    const first = values[0] ?? '';
    const route = req.url.split('?')[0] ?? '';
    if (route.startsWith('/hang')) return;
    if (route.startsWith('/reset')) {
      res.socket?.write(`HTTP/1.1 200 OK\r\nx-pct: ${encodeURIComponent(first)}\r\ncontent-length: 100\r\n\r\n`);
      res.socket?.write(`{"echo":${JSON.stringify(first)}`);
      res.socket?.destroy();
      return;
    }
    for (const v of values) setFormHeaders(res, v);
    if (route.startsWith('/drip')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"echo":${JSON.stringify(first)},"more":"`);
      return;
    }
    if (route.startsWith('/big')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(`${first}\n`);
      const chunk = Buffer.alloc(1024 * 1024, 'a');
      for (let i = 0; i < 6; i++) res.write(chunk);
      res.end();
      return;
    }
    if (route.startsWith('/away-carrying')) {
      res.writeHead(302, { location: `${other.url}/land?stolen=${encodeURIComponent(first)}` }).end();
      return;
    }
    if (route.startsWith('/away-b64')) {
      res.writeHead(307, { location: `${other.url}/land/${Buffer.from(first).toString('base64url')}` }).end();
      return;
    }
    if (route.startsWith('/away')) {
      res.writeHead(307, { location: `${other.url}/land` }).end();
      return;
    }
    res.statusCode = route.startsWith('/fail') ? 500 : 200;
    // A status line carrying the value (percent-encoded: a reason phrase is latin1 only).
    res.statusMessage = `Bad token ${encodeURIComponent(first)}`;
    if (route.startsWith('/html')) {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      const html = values
        .map(
          (v) =>
            `<b title="${htmlEscape(v)}">${htmlEscape(v)}</b> <i>${v}</i> <s>${Buffer.from(v).toString('hex')}</s>`,
        )
        .join('\n');
      res.end(Buffer.from(`<html><body>${html}</body></html>`));
      return;
    }
    if (route.startsWith('/text')) {
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end(
        Buffer.from(
          values
            .map((v) => `token=${v}\nAuthorization: Basic ${b64(`user:${v}`)}\nhex=${Buffer.from(v).toString('hex')}`)
            .join('\n'),
        ),
      );
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(Buffer.from(JSON.stringify({ path: route, forms: values.map(jsonForms), ...jsonForms(first) })));
  });
  return {
    echo,
    other,
    async close() {
      await echo.close();
      await other.close();
    },
  };
}

export interface LeakWorld {
  t: TestApp;
  /** http://127.0.0.1:PORT — where a browser reaches this Hush. */
  baseUrl: string;
  /** The environment a `hush` process needs to work on the same database and root key. */
  cliEnv: Record<string, string>;
  /** A scratch directory outside the data directory (backups go there). */
  scratch: string;
  close(): Promise<void>;
}

/**
 * A Hush on `kind` with a root key given in the environment (so a `hush`
 * child process opens the same data), logging at debug, outbound calls
 * allowed to 127.0.0.0/8, listening on an ephemeral port so a browser can
 * reach it (the built UI is served when dist/web exists).
 */
export async function startLeakWorld(kind: DatabaseKindUnderTest): Promise<LeakWorld> {
  const masterKey = randomBytes(32).toString('base64');
  const t = await startTestApp(kind, {
    HUSH_MASTER_KEY: masterKey,
    HUSH_LOG_LEVEL: 'debug',
    HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8',
    HUSH_REVEAL_LIMIT_PER_MIN: '1000',
  });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  const db = t.ctx.config.database;
  const cliEnv: Record<string, string> = {
    HUSH_DATA_DIR: t.dataDir,
    HUSH_MASTER_KEY: masterKey,
    HUSH_LOG_LEVEL: 'debug',
    ...(db.kind === 'postgres' ? { HUSH_DATABASE_URL: db.url } : {}),
  };
  const scratch = mkdtempSync(path.join(tmpdir(), 'hush-leak-e2e-'));
  return {
    t,
    baseUrl: `http://127.0.0.1:${port}`,
    cliEnv,
    scratch,
    async close() {
      await t.close();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
