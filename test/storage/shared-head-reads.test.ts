/**
 * Shared reads of the workspace head (workspace-cache.ts, on both
 * databases): requests asking in the same turn of the event loop share one
 * query, and a request that asks after a change committed always sees it —
 * it never joins a read that was already sent.
 */
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { createWorkspaceCache } from '../../src/modules/workspaces/workspace-cache.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

/** Counts the queries a Kysely instance runs. */
function counting(db: Db): { db: Db; count(): number } {
  let n = 0;
  const plugin: KyselyPlugin = {
    transformQuery: (args: PluginTransformQueryArgs) => args.node,
    transformResult: async (args: PluginTransformResultArgs) => {
      n += 1;
      return args.result;
    },
  };
  return { db: db.withPlugin(plugin), count: () => n };
}

const SYSTEM = { actorId: null, actorType: 'system', ip: null, requestId: null } as const;

describe.each(DATABASES)('shared head reads on $kind', ({ kind, available }) => {
  let t: TestApp;
  const workspaces: string[] = [];

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    const { owner, workspaceId } = await setupOwner(t);
    workspaces.push(workspaceId);
    for (const name of ['Second', 'Third']) {
      const res = await owner.post('/api/v1/workspaces', { name });
      expect(res.status, res.text).toBe(201);
      workspaces.push(res.body.id);
    }
  });
  afterAll(async () => t?.close());

  /** One audited change in `ws` (moves its epoch and sequence), committed when this resolves. */
  const change = (ws: string) =>
    t.ctx.db.transaction().execute((trx) => t.ctx.audit(trx, SYSTEM, { workspaceId: ws, action: 'test.changed' }));
  const readHead = (ws: string) =>
    t.ctx.db.selectFrom('audit_heads').select(['epoch', 'seq']).where('chain', '=', ws).executeTakeFirstOrThrow();

  it.runIf(available)('requests asking in the same turn share one query and each gets its own workspace', async () => {
    const { db, count } = counting(t.ctx.db);
    const cache = createWorkspaceCache(db);
    const asked = Array.from({ length: 30 }, (_, i) => workspaces[i % 3] as string);
    const heads = await Promise.all(asked.map((ws) => cache.head(ws)));
    expect(count()).toBe(1);
    for (const [i, ws] of asked.entries()) {
      const row = await readHead(ws);
      expect(heads[i], ws).toEqual({ epoch: Number(row.epoch), seq: Number(row.seq) });
    }
    // A workspace with no chain yet reads as epoch 0, seq 0.
    expect(await cache.head('ws_never_written')).toEqual({ epoch: 0, seq: 0 });
  });

  // PostgreSQL only: on SQLite a read holds the one connection until its answer is delivered, so
  // nothing can commit while it is in flight.
  it.runIf(available && kind === 'postgres')(
    'a request asking after a change committed sees it, though a read is still in flight',
    async () => {
      // The first head read's answer is held back (as if still on the wire) until released.
      let reached!: () => void;
      const firstRead = new Promise<void>((resolve) => {
        reached = resolve;
      });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let reads = 0;
      const slow: Db = t.ctx.db.withPlugin({
        transformQuery: (args) => args.node,
        transformResult: async (args) => {
          reads += 1;
          if (reads === 1) {
            reached();
            await gate;
          }
          return args.result;
        },
      });
      const cache = createWorkspaceCache(slow);
      const ws = workspaces[0] as string;
      const before = await readHead(ws);

      const early = cache.head(ws);
      await firstRead; // the shared read has run against the database, its answer not yet delivered
      await change(ws);
      const committed = await readHead(ws);
      expect(Number(committed.seq)).toBe(Number(before.seq) + 1);
      // Released later in any case, so a wrong implementation fails the assertion instead of hanging.
      const timer = setTimeout(release, 300);
      const late = await cache.head(ws);
      expect(late).toEqual({ epoch: Number(committed.epoch), seq: Number(committed.seq) });
      release();
      clearTimeout(timer);
      // The early request raced the change and read before it.
      expect(await early).toEqual({ epoch: Number(before.epoch), seq: Number(before.seq) });
    },
  );

  it.runIf(available)('a failed read fails every request that shared it, and the next read works', async () => {
    const cache = createWorkspaceCache(t.ctx.db);
    const failing: Db = t.ctx.db.withPlugin({
      transformQuery: (args) => args.node,
      transformResult: async () => {
        throw new Error('connection lost');
      },
    });
    const broken = createWorkspaceCache(failing);
    const outcomes = await Promise.allSettled([
      broken.head(workspaces[0] as string),
      broken.head(workspaces[1] as string),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    expect((await cache.head(workspaces[0] as string)).seq).toBeGreaterThan(0);
  });
});
