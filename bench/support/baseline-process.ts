/**
 * The ceilings Hush is compared with, each in its own process (started by
 * support/baselines.ts), listening on 127.0.0.1:
 *
 *   bare       a bare Fastify app with one route, `GET /hello`, answering a
 *              small JSON object (the size of a reveal's answer): the
 *              framework's ceiling for reveal and list. `GET /page` answers
 *              a copy of a real list page (for information: the same
 *              payload without Hush's work).
 *   forwarder  a bare Fastify app whose `POST /forward` sends one
 *              `GET <upstream>` with `Authorization: Bearer <value>`
 *              through an undici Agent (configured like Hush's outbound
 *              client) and returns the upstream's body: the executor's
 *              ceiling for Send request. `POST /forward2` makes two such
 *              calls one after the other (a run of two API blocks).
 *
 * argv: <mode> [upstreamUrl authorization]. Reports its port over IPC.
 */
import Fastify from 'fastify';
import { Agent, request } from 'undici';

const [mode, upstreamUrl, authorization] = process.argv.slice(2);
const app = Fastify({ logger: false });

if (mode === 'bare') {
  const answer = { value: 'sk_bench_000000_q7Zp2xVw9LmT4sRbq7Zp2xVw9LmT4sRb' };
  app.get('/hello', async () => answer);
  // A copy of a real list answer (100 secrets), sent over IPC once Hush is set up:
  // the same payload serialised by Fastify alone (JSON.stringify, no schema).
  let page: unknown = { items: [] };
  process.on('message', (m: { type?: string; page?: unknown }) => {
    if (m.type === 'list-page') page = m.page;
  });
  app.get('/page', async () => page);
} else if (mode === 'forwarder' && upstreamUrl && authorization) {
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 128 });
  const forward = async () => {
    const res = await request(upstreamUrl, { method: 'GET', headers: { authorization }, dispatcher: agent });
    return { status: res.statusCode, text: await res.body.text() };
  };
  app.post('/forward', async (_request, reply) => {
    const { status, text } = await forward();
    return reply.code(status).type('application/json').send(text);
  });
  app.post('/forward2', async (_request, reply) => {
    await forward();
    const { status, text } = await forward();
    return reply.code(status).type('application/json').send(text);
  });
} else {
  throw new Error(`baseline-process: unknown mode ${mode}`);
}

await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.send?.({ type: 'ready', port: typeof address === 'object' && address ? address.port : 0 });
process.on('disconnect', () => {
  void app.close().finally(() => process.exit(0));
});
