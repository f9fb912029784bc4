/**
 * Two app contexts (two servers) on one PostgreSQL database, each with its own
 * workspace cache: a request that is still arriving on one server while the
 * other changes something acts on the change, never on what the first
 * server's cache held when the request began.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAppContext } from '../../src/app/bootstrap.js';
import type { AppContext } from '../../src/app/context.js';
import type { App } from '../../src/app/http.js';
import { buildServer } from '../../src/app/server.js';
import { DATABASES } from '../support/databases.js';
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, TestClient } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const available = DATABASES.find((d) => d.kind === 'postgres')?.available ?? false;

/** Resolves once `check` holds, polling the database state (never a fixed wait). */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never happened: ${what}`);
}

/** An HTTP/1.1 request written in two parts: headers and the body's first half, then the rest. */
function slowRequest(port: number, path: string, headers: Record<string, string>, body: string) {
  const socket: Socket = connect(port, '127.0.0.1');
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    answer += chunk;
  });
  const ended = new Promise<string>((resolve, reject) => {
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
  const head = [
    `POST ${path} HTTP/1.1`,
    'host: 127.0.0.1',
    'connection: close',
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ].join('\r\n');
  const half = Math.floor(body.length / 2);
  socket.write(`${head}\r\n\r\n${body.slice(0, half)}`);
  return {
    async finish(): Promise<{ status: number; body: string }> {
      socket.write(body.slice(half));
      const text = await ended;
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      return { status, body: text.slice(text.indexOf('\r\n\r\n') + 4) };
    },
  };
}

describe('two servers on one PostgreSQL: stale epochs', () => {
  let t: TestApp;
  let other: { ctx: AppContext & { close(): Promise<void> }; app: App };
  let up: Upstream;
  let port: number;

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    up.handle((_req, res) => res.end('{"ok":true}'));
    t = await startTestApp('postgres', { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as { port: number }).port;
    const ctx = await createAppContext(t.ctx.config, t.ctx.log);
    const app = await buildServer(ctx);
    await app.ready();
    other = { ctx, app };
  }, 120_000);

  afterAll(async () => {
    await other?.app.close();
    await other?.ctx.close();
    await t?.close();
    await up?.close();
  });

  /** `client`'s session, on the other server. */
  const onOther = (client: TestClient) => {
    const moved = new TestClient(other.app);
    for (const [k, v] of client.cookies) moved.cookies.set(k, v);
    return moved;
  };

  it.runIf(available)(
    "an API token request whose body arrives after its member was removed on the other server sends nothing (the server's cache held the member and the secret)",
    async () => {
      const { owner, workspaceId } = await setupOwner(t);
      const ws = `/api/v1/workspaces/${workspaceId}`;
      const editor = await inviteAndJoin(t, owner, workspaceId, 'slow-editor@example.com', 'editor');
      const created = await owner.post(`${ws}/secrets`, {
        name: 'crm_key',
        visibility: 'restricted',
        value: 'crm-value-0123456789',
        allowedHosts: ['127.0.0.1'],
      });
      expect(created.status, created.text).toBe(201);
      const tokens: { id: string; token: string }[] = [];
      for (const name of ['warm', 'slow']) {
        const made = await editor.client.post('/api/v1/tokens', { name, workspaceId, expiresInDays: 1 });
        expect(made.status, made.text).toBe(201);
        tokens.push({ id: made.body.id, token: made.body.token });
      }
      const [warm, slow] = tokens as [{ id: string; token: string }, { id: string; token: string }];
      const send = {
        block: {
          id: 'call',
          type: 'api',
          method: 'GET',
          url: `${up.url}/call`,
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:crm_key}}' }],
        },
      };

      // This server's cache holds the editor's membership and the secret.
      const warmed = t.client();
      warmed.bearer = warm.token;
      const first = await warmed.post(`${ws}/blocks/send`, send);
      expect(first.status, first.text).toBe(200);
      expect(up.received.at(-1)?.headers.authorization).toBe('Bearer crm-value-0123456789');
      const sentBefore = up.received.length;

      // A Send with the other token: its headers are in (the token was checked: its first use is
      // recorded), its body is not yet.
      const request = slowRequest(
        port,
        `${ws}/blocks/send`,
        { authorization: `Bearer ${slow.token}` },
        JSON.stringify(send),
      );
      await until(async () => {
        const row = await t.ctx.db
          .selectFrom('api_tokens')
          .select('last_used_at')
          .where('id', '=', slow.id)
          .executeTakeFirst();
        return row?.last_used_at != null;
      }, 'the slow request was authenticated');

      // The other server removes the editor (their tokens go with the membership).
      const removed = await onOther(owner).delete(`${ws}/members/${editor.userId}`);
      expect(removed.status, removed.text).toBe(204);

      const answer = await request.finish();
      expect(answer.status, answer.body).toBe(401);
      expect(up.received.length, 'the upstream got a call from a removed member').toBe(sentBefore);
    },
    60_000,
  );
});
