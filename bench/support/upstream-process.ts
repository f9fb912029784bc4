/**
 * The benchmark's upstream, run as a child process by support/upstream.ts:
 * a plain node:http server on 127.0.0.1 that answers every request with a
 * JSON body of exactly UPSTREAM_BODY_BYTES bytes echoing the request's
 * Authorization header (so a secret sent upstream comes back in the
 * response and must be redacted). It reports its port, then answers
 * `stats` messages with the number of requests served and its CPU time.
 */
import { createServer } from 'node:http';

/** Must match UPSTREAM_BODY_BYTES in support/upstream.ts (no import: keep the child minimal). */
const BODY_BYTES = 1024;
const FILLER =
  'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. '.repeat(
    16,
  );

let served = 0;

function body(authorization: string, n: number): Buffer {
  const base = { authorization, request: n, status: 'ok', data: '' };
  const room = BODY_BYTES - Buffer.byteLength(JSON.stringify(base));
  // An Authorization header too long for the budget still gets echoed whole.
  return Buffer.from(JSON.stringify({ ...base, data: FILLER.slice(0, Math.max(0, room)) }));
}

const server = createServer((req, res) => {
  served += 1;
  const payload = body(String(req.headers.authorization ?? ''), served);
  // Drain any request body before answering.
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': payload.length });
    res.end(payload);
  });
});
server.keepAliveTimeout = 30_000;

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.send?.({ type: 'ready', port });
});

process.on('message', (message: { type?: string }) => {
  if (message.type === 'stats') {
    const cpu = process.cpuUsage();
    process.send?.({ type: 'stats', served, cpuUs: cpu.user + cpu.system });
  }
});
// The parent is gone (finished or killed): do not linger.
process.on('disconnect', () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
});
