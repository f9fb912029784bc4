/**
 * An audit append on PostgreSQL whose one autocommitted statement committed,
 * but whose reply never came: the server ended the session (pg_terminate_backend,
 * SQLSTATE 57P01 — a `pg.DatabaseError`) after the commit and before its
 * ReadyForQuery reached Hush. The same bytes reach a client when a pooler loses
 * its server connection after the commit and says so in an error of its own.
 *
 * Modelled on the wire: Hush reaches PostgreSQL through a relay that, once the
 * append's statement is sent, withholds that statement's ReadyForQuery (and checks
 * it says idle: the statement's transaction is over) and lets what follows pass;
 * the test then checks the events are in the database and terminates that backend,
 * whose FATAL 57P01 is what Hush's connection gets for its query.
 */
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { sql } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/modules/audit/audit-service.js';
import { createPostgresDatabase, DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

const pgAvailable = DATABASES.some((d) => d.kind === 'postgres' && d.available);
const VALUE = 'lost-reply-secret-value-19b4';

/** A relay to PostgreSQL that can lose one statement's ReadyForQuery (see above). */
class ReplyLosingRelay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private marker: Buffer | undefined;
  private onLost: ((lost: { pid: number; status: string }) => void) | undefined;
  /** While set, what PostgreSQL answers on every other connection waits here. */
  private held: (() => void)[] | undefined;
  port = 0;

  /** Holds PostgreSQL's answers on every connection but the one whose reply was lost. */
  holdOthers(): void {
    this.held ??= [];
  }

  releaseOthers(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const send of held) send();
  }

  /** The next statement whose parameters contain `marker` has its ReadyForQuery withheld. */
  loseReplyTo(marker: string): Promise<{ pid: number; status: string }> {
    this.marker = Buffer.from(marker);
    return new Promise((resolve) => {
      this.onLost = resolve;
    });
  }

  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(5432, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      let pid = 0;
      let watching = false;
      let lostHere = false;
      let pending = Buffer.alloc(0);
      client.on('data', (chunk: Buffer) => {
        if (this.marker && chunk.includes(this.marker)) {
          this.marker = undefined;
          watching = true;
        }
        upstream.write(chunk);
      });
      // Server to client: whole messages (type, length, body); no TLS is asked for.
      upstream.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        const out: Buffer[] = [];
        while (pending.length >= 5 && pending.length >= 1 + pending.readInt32BE(1)) {
          const message = pending.subarray(0, 1 + pending.readInt32BE(1));
          pending = pending.subarray(message.length);
          const type = String.fromCharCode(message[0] as number);
          if (type === 'K') pid = message.readInt32BE(5); // BackendKeyData: the backend's pid
          if (watching && type === 'Z') {
            watching = false;
            lostHere = true;
            this.onLost?.({ pid, status: String.fromCharCode(message[5] as number) });
            continue;
          }
          out.push(message);
        }
        if (out.length === 0) return;
        const data = Buffer.concat(out);
        if (this.held && !lostHere) this.held.push(() => client.write(data));
        else client.write(data);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe.runIf(pgAvailable)('an audit append whose reply is lost after it committed', () => {
  let relay: ReplyLosingRelay | undefined;
  let t: TestApp | undefined;
  let drop: (() => Promise<void>) | undefined;

  afterEach(async () => {
    await t?.close();
    await relay?.down();
    await drop?.();
  });

  it('is not appended a second time: the reveal answers 503 and no value, its event is there once', async () => {
    const pgDb = await createPostgresDatabase();
    drop = pgDb.drop;
    relay = new ReplyLosingRelay();
    await relay.up();
    const url = new URL(pgDb.url);
    url.port = String(relay.port);
    t = await startTestApp('sqlite', { HUSH_DATABASE_URL: url.toString() });
    const app = t;
    const { owner, workspaceId } = await setupOwner(app);
    const created = await owner.post(`/api/v1/workspaces/${workspaceId}/secrets`, {
      name: 'k',
      visibility: 'masked',
      value: VALUE,
    });
    expect(created.status, created.text).toBe(201);
    const reveal = `/api/v1/workspaces/${workspaceId}/secrets/${created.body.id}/reveal`;
    // The first reveal takes the locked path and teaches the server the chain's head: the
    // next one appends in one autocommitted statement.
    expect((await owner.post(reveal)).body).toEqual({ value: VALUE });
    const revealed = async () =>
      Number(
        (
          await app.ctx.db
            .selectFrom('audit_events')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('action', '=', 'secret.revealed')
            .executeTakeFirstOrThrow()
        ).n,
      );
    expect(await revealed()).toBe(1);

    const admin = new pg.Client({ connectionString: pgDb.url });
    await admin.connect();
    try {
      const lost = relay.loseReplyTo('secret.revealed');
      const answer = owner.post(reveal);
      const { pid, status } = await lost;
      // 'I': idle, no transaction open — the statement's own transaction is over, and it committed.
      expect(status).toBe('I');
      const { rows } = await admin.query(
        "select count(*)::int as n from audit_events where action = 'secret.revealed'",
      );
      expect(rows[0].n).toBe(2);
      // The pool full, one query waiting for a connection (a busy server): the connection that
      // failed goes to that query, and whatever the append does next gets a new one.
      relay.holdOthers();
      const others = Array.from({ length: 10 }, () =>
        sql`select 1`.execute(app.ctx.db).then(
          () => 'answered',
          () => 'failed',
        ),
      );
      await admin.query('select pg_terminate_backend($1)', [pid]);
      // The waiting query took the failed connection.
      expect(await Promise.race(others)).toBe('failed');
      relay.releaseOthers();
      expect(new Set(await Promise.all(others))).toContain('answered');
      const refused = await answer;
      expect(refused.status, refused.text).toBe(503);
      expect(refused.body.code).toBe('database_unavailable');
      expect(refused.text).not.toContain(VALUE);
    } finally {
      await admin.end();
    }
    // Recorded once (answered or not), never twice.
    expect(await revealed()).toBe(2);
    expect(await verifyChain(app.ctx.db, workspaceId, { mustExist: true })).toMatchObject({ ok: true });
    // And the next reveal is served.
    expect((await owner.post(reveal)).body).toEqual({ value: VALUE });
    expect(await revealed()).toBe(3);
  }, 60_000);
});
