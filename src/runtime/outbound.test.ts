import { createServer, type Server } from 'node:http';
import { type AddressInfo, BlockList, createServer as createNetServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOutboundClient, OutboundFailure } from './outbound.js';

let server: Server;
let port = 0;
let connections = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/slow') return void setTimeout(() => res.end('late'), 2000);
    if (req.url === '/big') return void res.end(Buffer.alloc(64 * 1024, 97));
    if (req.url === '/drip') {
      // A chunk every 60 ms: each gap is well inside the timeout, the whole body is not.
      let sent = 0;
      const timer = setInterval(() => {
        if (res.destroyed || sent === 20) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(`chunk ${sent++}\n`);
      }, 60);
      return;
    }
    if (req.url === '/late-byte') {
      // A byte at once, one more just before a 5 s timeout, then silence.
      res.write('a');
      const timer = setTimeout(() => res.write('b'), 4_000);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    if (req.url === '/hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      res.setHeader('x-final', 'yes');
      return void setTimeout(() => res.end('after hints'), 20);
    }
    if (req.url === '/cookies') {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      return void res.end('two cookies');
    }
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      return void req.on('end', () => res.end(`got ${req.headers['content-length']} bytes: ${body}`));
    }
    res.setHeader('x-echo', String(req.headers['x-token'] ?? ''));
    res.end(`hello ${req.method}`);
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
const hop = (path: string, host = '127.0.0.1') => ({
  method: 'GET',
  url: new URL(`http://${host}:${port}${path}`),
  headers: [['x-token', 't'] as [string, string]],
  timeoutMs: 1000,
  maxResponseBytes: 16 * 1024,
});

async function failure(p: Promise<unknown>): Promise<OutboundFailure> {
  try {
    await p;
  } catch (error) {
    if (error instanceof OutboundFailure) return error;
    throw error;
  }
  throw new Error('expected an OutboundFailure');
}

describe('the outbound client', () => {
  it('reaches an allowed address and returns status, headers and body', async () => {
    const client = createOutboundClient({ allow: loopback });
    const res = await client.send(hop('/'));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('hello GET');
    expect(res.headers).toContainEqual(['x-echo', 't']);
    await client.close();
  });

  it.each(['127.0.0.1', 'localhost', '2130706433', '0x7f.1', '[::ffff:127.0.0.1]'])(
    'refuses loopback written as %s without opening a connection',
    async (host) => {
      const client = createOutboundClient({ allow: new BlockList() });
      const before = connections;
      const f = await failure(client.send(hop('/', host)));
      expect(f.code).toBe('outbound_blocked');
      expect(connections).toBe(before);
      await client.close();
    },
  );

  it("gives up after the timeout — a short one when it is due, not at undici's next one-second tick", async () => {
    const client = createOutboundClient({ allow: loopback });
    const t0 = Date.now();
    const f = await failure(client.send({ ...hop('/slow'), timeoutMs: 100 }));
    expect(f.code).toBe('upstream_timeout');
    expect(f.message).toContain('within 100 ms');
    // undici's header timer alone answered after about a second.
    expect(Date.now() - t0).toBeLessThan(900);
    // The connection it used is not handed out half-read: the next call gets its own answer.
    const next = await client.send({ ...hop('/'), timeoutMs: 2_000 });
    expect(next.status).toBe(200);
    await client.close();
  });

  it('bounds the whole body by the timeout, not only the gaps between its chunks', async () => {
    const client = createOutboundClient({ allow: loopback });
    const t0 = Date.now();
    const f = await failure(client.send({ ...hop('/drip'), timeoutMs: 300 }));
    expect(f.code).toBe('upstream_timeout');
    expect(Date.now() - t0).toBeLessThan(1000); // the drip lasts 1.2 s
    await client.close();
  });

  it('a long timeout is the whole call too: a byte just before it, then silence, does not restart it', async () => {
    const client = createOutboundClient({ allow: loopback });
    const t0 = Date.now();
    const f = await failure(client.send({ ...hop('/late-byte'), timeoutMs: 5_000 }));
    expect(f.code).toBe('upstream_timeout');
    // undici's body timer alone restarted at the second byte: about 9 s.
    expect(Date.now() - t0).toBeLessThan(6_500);
    await client.close();
  }, 15_000);

  it('bounds the wait for a connection by the timeout too: a peer that stalls the TLS handshake', async () => {
    // Accepts the TCP connection and never answers: connecting (TLS included) never completes.
    const held = new Set<Socket>();
    const stall = createNetServer((socket) => {
      held.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => stall.listen(0, '127.0.0.1', resolve));
    const { port: stalled } = stall.address() as AddressInfo;
    const client = createOutboundClient({ allow: loopback, connectTimeoutMs: 3_000 });
    const t0 = Date.now();
    const f = await failure(
      client.send({ ...hop('/'), url: new URL(`https://127.0.0.1:${stalled}/`), timeoutMs: 300 }),
    );
    expect(f.code).toBe('upstream_timeout');
    expect(f.message).toContain('within 300 ms');
    expect(Date.now() - t0).toBeLessThan(2_000); // the connector alone waits 3 s
    await client.close(); // once the connector gives up on the queued request
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => stall.close(resolve));
  });

  it('returns the final answer after informational (1xx) ones, with its own headers', async () => {
    const client = createOutboundClient({ allow: loopback });
    const res = await client.send(hop('/hints'));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('after hints');
    expect(res.headers).toContainEqual(['x-final', 'yes']);
    expect(res.headers.some(([k]) => k === 'link')).toBe(false);
    await client.close();
  });

  it('keeps each value of a repeated response header', async () => {
    const client = createOutboundClient({ allow: loopback });
    const res = await client.send(hop('/cookies'));
    expect(res.headers.filter(([k]) => k === 'set-cookie')).toEqual([
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
    ]);
    await client.close();
  });

  it('sends a request body with its length', async () => {
    const client = createOutboundClient({ allow: loopback });
    const res = await client.send({ ...hop('/'), method: 'POST', body: 'héllo' });
    expect(res.body.toString()).toBe('got 6 bytes: héllo');
    await client.close();
  });

  it('stops reading past the response cap', async () => {
    const client = createOutboundClient({ allow: loopback });
    const f = await failure(client.send(hop('/big')));
    expect(f.code).toBe('response_too_large');
    await client.close();
  });

  it('a request carrying a secret over plain http: only to the opened ranges (allowed-cidrs), nowhere with never', async () => {
    const opened = createOutboundClient({ allow: loopback });
    expect((await opened.send({ ...hop('/'), carriesSecret: true })).status).toBe(200);
    const public4 = await failure(opened.checkDestination(new URL('http://93.184.215.14/'), 1000, true));
    expect([public4.code, public4.message]).toEqual([
      'insecure_transport',
      'Refused to send a secret to 93.184.215.14 over plain http: use https, or open the address range with HUSH_OUTBOUND_ALLOW_CIDRS.',
    ]);
    // Without a secret, or over https, the rule does not apply (the SSRF guard does).
    await opened.checkDestination(new URL('http://93.184.215.14/'), 1000, false);
    await opened.checkDestination(new URL('https://93.184.215.14/'), 1000, true);
    await opened.close();

    const never = createOutboundClient({ allow: loopback, secretsOverHttp: 'never' });
    // A connection opened by a request without a secret is not reused unchecked for one with a secret.
    expect((await never.send(hop('/'))).status).toBe(200);
    const before = connections;
    for (const host of ['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]']) {
      const f = await failure(never.send({ ...hop('/', host), carriesSecret: true }));
      expect(f.code).toBe('insecure_transport');
      expect(f.message).not.toContain('HUSH_OUTBOUND_ALLOW_CIDRS');
    }
    expect(connections).toBe(before);
    await never.close();

    const anywhere = createOutboundClient({ allow: loopback, secretsOverHttp: 'anywhere' });
    await anywhere.checkDestination(new URL('http://93.184.215.14/'), 1000, true);
    await anywhere.close();
  });

  it('reports an unreachable upstream', async () => {
    const client = createOutboundClient({ allow: loopback });
    const f = await failure(client.send({ ...hop('/'), url: new URL('http://127.0.0.1:1/') }));
    expect(f.code).toBe('upstream_unreachable');
    await client.close();
  });
});
