/**
 * `boundQuery` (db/database.ts): a statement compiled once, bound to each
 * call's values by slot. Its SQL is Kysely's own for the shape, and each
 * value lands where its slot was — whatever order Kysely emits parameters in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boundQuery } from '../../src/db/database.js';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp } from '../support/harness.js';

describe.each(DATABASES)('boundQuery on $kind', ({ kind, available }) => {
  let t: TestApp;
  let workspaceId = '';

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind);
    ({ workspaceId } = await setupOwner(t));
  });
  afterAll(async () => {
    if (available) await t.close();
  });

  it.skipIf(!available)('compiles to the SQL Kysely builds for the same shape', () => {
    const db = t.ctx.db;
    const bound = boundQuery((slot) =>
      db
        .updateTable('audit_heads')
        .set({ hash: slot(0) })
        .where('chain', '=', slot(1)),
    );
    const direct = db.updateTable('audit_heads').set({ hash: 'h' }).where('chain', '=', 'c').compile();
    const query = bound(['h', 'c']);
    expect(query.sql).toBe(direct.sql);
    expect(query.parameters).toEqual(direct.parameters);
  });

  it.skipIf(!available)('binds each value to its slot, used in any order, and runs in a transaction', async () => {
    const db = t.ctx.db;
    const select = boundQuery((slot) =>
      db
        .selectFrom('audit_heads')
        .select(['chain', 'seq'])
        .where('seq', '>=', slot(1) as unknown as number)
        .where('chain', '=', slot(0)),
    );
    const [head] = (await db.selectFrom('audit_heads').select(['seq']).where('chain', '=', workspaceId).execute()) as {
      seq: number | string;
    }[];
    const seq = Number(head?.seq);
    await db.transaction().execute(async (trx) => {
      const rows = (await trx.executeQuery(select([workspaceId, seq]))).rows as { chain: string; seq: unknown }[];
      expect(rows.map((row) => ({ chain: row.chain, seq: Number(row.seq) }))).toEqual([{ chain: workspaceId, seq }]);
      expect((await trx.executeQuery(select([workspaceId, seq + 1]))).rows).toEqual([]);
    });
  });

  it.skipIf(!available)('refuses a shape with a value that is not a slot', () => {
    const db = t.ctx.db;
    expect(() =>
      boundQuery((slot) => db.selectFrom('secrets').select('id').where('name', '=', 'fixed').where('id', '=', slot(0))),
    ).toThrow(/not a slot/);
  });
});
