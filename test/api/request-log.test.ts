/**
 * The per-request log: at `info` one line per request once answered
 * (method, path without its query, status, time, request id); the arrival
 * line and successful probes only at `debug`. The request log is about the
 * HTTP layer, so one database (SQLite) is enough.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { raw, startTestApp, type TestApp } from '../support/harness.js';

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  req?: { method: string; url: string };
  res?: { statusCode: number };
  responseTime?: number;
}

const INFO = 30;
const DEBUG = 20;

const REQUEST_LINES = new Set(['incoming request', 'request completed', 'request errored']);

/** The request-log lines `t` wrote for the request whose id is `reqId` (not what handlers logged). */
function linesOf(t: TestApp, reqId: string): Line[] {
  return t.logs.map((l) => JSON.parse(l) as Line).filter((l) => l.reqId === reqId && REQUEST_LINES.has(l.msg));
}

describe('request log', () => {
  let info: TestApp;
  let debug: TestApp;

  beforeAll(async () => {
    info = await startTestApp('sqlite', { HUSH_LOG_LEVEL: 'info' });
    debug = await startTestApp('sqlite', { HUSH_LOG_LEVEL: 'debug' });
  }, 60_000);
  afterAll(async () => {
    await info?.close();
    await debug?.close();
  });

  it('at info: one line per answered request, with method, path without the query, status and time', async () => {
    const res = await raw(info, 'GET', '/api/v1/workspaces?cursor=pasted-token-0123456789', {
      headers: { 'x-request-id': 'log-test-1' },
    });
    expect(res.status).toBe(401);
    const lines = linesOf(info, 'log-test-1');
    expect(lines).toHaveLength(1);
    const [line] = lines as [Line];
    expect(line).toMatchObject({
      level: INFO,
      msg: 'request completed',
      req: { method: 'GET', url: '/api/v1/workspaces?…' },
      res: { statusCode: 401 },
    });
    expect(typeof line.responseTime).toBe('number');
    expect(JSON.stringify(line)).not.toContain('pasted-token');
  });

  it('at info: successful probes are not logged, refused ones are', async () => {
    for (const [url, id] of [
      ['/healthz', 'log-probe-1'],
      ['/readyz', 'log-probe-2'],
      ['/metrics', 'log-probe-3'],
    ] as const) {
      expect((await raw(info, 'GET', url, { headers: { 'x-request-id': id } })).status).toBe(200);
      expect(linesOf(info, id), url).toEqual([]);
    }
    // No POST route: the probe's path, refused.
    expect((await raw(info, 'POST', '/healthz', { headers: { 'x-request-id': 'log-probe-4' } })).status).toBe(404);
    expect(linesOf(info, 'log-probe-4').map((l) => [l.level, l.res?.statusCode])).toEqual([[INFO, 404]]);
  });

  it('at info: a malformed URL, refused before routing, still gets its one line', async () => {
    const res = await raw(info, 'GET', '/api/v1/workspaces/%zz', { headers: { 'x-request-id': 'log-bad-url' } });
    expect(res.status).toBe(400);
    expect(linesOf(info, 'log-bad-url').map((l) => [l.level, l.msg, l.res?.statusCode])).toEqual([
      [INFO, 'request completed', 400],
    ]);
  });

  it('at debug: the arrival line too, and probes', async () => {
    await raw(debug, 'GET', '/api/v1/me', { headers: { 'x-request-id': 'log-debug-1' } });
    expect(linesOf(debug, 'log-debug-1').map((l) => [l.level, l.msg])).toEqual([
      [DEBUG, 'incoming request'],
      [INFO, 'request completed'],
    ]);
    await raw(debug, 'GET', '/healthz', { headers: { 'x-request-id': 'log-debug-2' } });
    expect(linesOf(debug, 'log-debug-2').map((l) => [l.level, l.msg])).toEqual([
      [DEBUG, 'incoming request'],
      [DEBUG, 'request completed'],
    ]);
  });
});
