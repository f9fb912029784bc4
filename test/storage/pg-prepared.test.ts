/**
 * Prepared PostgreSQL statements (src/db/pg-prepared.ts), against a real
 * PostgreSQL: a statement with parameters is parsed once per connection and
 * reused; fixed statements, large ones and texts past the limit run
 * unnamed; a table that changes its columns under a prepared statement, or
 * a statement discarded behind Hush's back, is prepared again (at once
 * outside a transaction, on the next attempt inside one); off means off.
 */
import { createHash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { withPreparedStatements } from '../../src/db/pg-prepared.js';
import { createPostgresDatabase, DATABASES } from '../support/databases.js';

const postgres = DATABASES.find((d) => d.kind === 'postgres');

/** The name a text is prepared under (a hash of the text: the same in every process). */
const nameFor = (text: string) => `hush_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;

/** The statements prepared on the connection that runs this query. */
const PREPARED = 'select name, statement from pg_prepared_statements order by name';

describe.skipIf(!postgres?.available)('prepared PostgreSQL statements', () => {
  let database: { url: string; drop(): Promise<void> };
  const pools: pg.Pool[] = [];
  /** A pool of one connection, so every call below lands on the same one. */
  const onePool = () => {
    const pool = new pg.Pool({ connectionString: database.url, max: 1 });
    // pool.end() resolves before its clients have closed; the forced drop may end them first.
    pool.on('error', () => {});
    pools.push(pool);
    return pool;
  };

  beforeAll(async () => {
    database = await createPostgresDatabase();
    const setup = new pg.Client({ connectionString: database.url });
    await setup.connect();
    await setup.query('create table items (id integer primary key, name text not null)');
    await setup.query("insert into items values (1, 'one'), (2, 'two')");
    await setup.end();
  });

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await database?.drop();
  });

  it('parses a statement with parameters once per connection and reuses it', async () => {
    const prepared = withPreparedStatements(onePool());
    const client = await prepared.connect();
    try {
      const text = 'select name from items where id = $1';
      const first = await client.query<{ name: string }>(text, [1]);
      const second = await client.query<{ name: string }>(text, [2]);
      expect(first.rows).toEqual([{ name: 'one' }]);
      expect(second.rows).toEqual([{ name: 'two' }]);
      const { rows } = await client.query<{ name: string; statement: string }>(PREPARED, []);
      expect(rows).toEqual([{ name: nameFor(text), statement: text }]);
      expect(prepared.namedCount).toBe(1);
    } finally {
      client.release();
    }
  });

  it('gives a text the same name in every process, and different texts different names', async () => {
    // Behind a pooler, a name prepared by one process may be met on another's connection:
    // it must be the same SQL, never another statement that happens to share a counter.
    const [a, b] = [withPreparedStatements(onePool()), withPreparedStatements(onePool())];
    const [ca, cb] = await Promise.all([a.connect(), b.connect()]);
    try {
      await ca.query('select id from items where name = $1', ['one']);
      await ca.query('select name from items where id = $1', [1]);
      await cb.query('select name from items where id = $1', [2]);
      const [pa, pb] = await Promise.all([
        ca.query<{ name: string }>(PREPARED, []),
        cb.query<{ name: string }>(PREPARED, []),
      ]);
      const name = nameFor('select name from items where id = $1');
      expect(pa.rows.map((r) => r.name).sort()).toEqual([name, nameFor('select id from items where name = $1')].sort());
      expect(pb.rows).toEqual([{ name, statement: 'select name from items where id = $1' }]);
    } finally {
      ca.release();
      cb.release();
    }
  });

  it('prepares a text again under its next name when the connection already has one by that name', async () => {
    const prepared = withPreparedStatements(onePool());
    const client = await prepared.connect();
    const text = 'select name from items where id = $1 and 3 = 3';
    try {
      // Prepared there behind the client's back (another client through a pooler, say).
      await client.query(`prepare ${nameFor(text)} as ${text}`, []);
      expect((await client.query(text, [2])).rows).toEqual([{ name: 'two' }]);
      const names = (await client.query<{ name: string }>(PREPARED, [])).rows.map((r) => r.name);
      expect(names.sort()).toEqual([nameFor(text), `${nameFor(text)}_1`]);
    } finally {
      client.release();
    }
  });

  it('leaves transaction control and statements without parameters unnamed', async () => {
    const prepared = withPreparedStatements(onePool());
    const client = await prepared.connect();
    try {
      await client.query('begin', []);
      await client.query('select count(*) from items', []);
      await client.query('commit', []);
      expect((await client.query(PREPARED, [])).rows).toEqual([]);
      expect(prepared.namedCount).toBe(0);
    } finally {
      client.release();
    }
  });

  it('names no more than its limit of distinct texts; the rest still run, unnamed', async () => {
    const prepared = withPreparedStatements(onePool(), { limit: 2 });
    const client = await prepared.connect();
    try {
      const texts = [
        'select name from items where id = $1',
        'select id from items where name = $1',
        'select name from items where id = $1 and name = name',
      ];
      const answers = [];
      for (const text of texts) answers.push((await client.query(text, [text.includes('id = $1') ? 1 : 'two'])).rows);
      expect(answers).toEqual([[{ name: 'one' }], [{ id: 2 }], [{ name: 'one' }]]);
      const names = (await client.query<{ statement: string }>(PREPARED, [])).rows.map((r) => r.statement);
      expect(names.sort()).toEqual(texts.slice(0, 2).sort());
      expect(prepared.namedCount).toBe(2);
    } finally {
      client.release();
    }
  });

  it('follows a table that gains a column: at once outside a transaction, on the next attempt inside one', async () => {
    const setup = new pg.Client({ connectionString: database.url });
    await setup.connect();
    await setup.query('create table changing (id integer primary key)');
    await setup.query('insert into changing values (1)');
    const prepared = withPreparedStatements(onePool());
    const client = await prepared.connect();
    const text = 'select * from changing where id = $1';
    try {
      expect((await client.query(text, [1])).rows).toEqual([{ id: 1 }]);

      await setup.query("alter table changing add column label text not null default 'a'");
      // Outside a transaction: answered under a fresh name, with the new column.
      expect((await client.query(text, [1])).rows).toEqual([{ id: 1, label: 'a' }]);

      await setup.query("alter table changing add column note text not null default 'b'");
      await client.query('start transaction isolation level read committed', []);
      // Inside one the transaction is already aborted: the error stands, with PostgreSQL's own code.
      await expect(client.query(text, [1])).rejects.toMatchObject({ code: '0A000' });
      await client.query('rollback', []);
      await client.query('begin', []);
      expect((await client.query(text, [1])).rows).toEqual([{ id: 1, label: 'a', note: 'b' }]);
      await client.query('commit', []);
    } finally {
      client.release();
      await setup.end();
    }
  });

  it("prepares a statement again when something discarded it (a pooler's DISCARD ALL)", async () => {
    const prepared = withPreparedStatements(onePool());
    const client = await prepared.connect();
    const text = 'select name from items where id = $1 and 1 = 1';
    try {
      expect((await client.query(text, [1])).rows).toEqual([{ name: 'one' }]);
      await client.query('deallocate all', []);
      expect((await client.query(text, [2])).rows).toEqual([{ name: 'two' }]);
      await client.query('deallocate all', []);
      await client.query('begin', []);
      await expect(client.query(text, [1])).rejects.toMatchObject({ code: '26000' });
      await client.query('rollback', []);
      expect((await client.query(text, [1])).rows).toEqual([{ name: 'one' }]);
    } finally {
      client.release();
    }
  });

  it('stops naming statements once they keep disappearing (a pooler that swaps connections)', async () => {
    const prepared = withPreparedStatements(onePool());
    const client = await prepared.connect();
    const text = 'select name from items where id = $1 and 2 = 2';
    try {
      for (let i = 0; i < 60; i++) {
        await client.query('deallocate all', []);
        expect((await client.query(text, [1])).rows).toEqual([{ name: 'one' }]);
      }
      // Past the limit the text runs unnamed: nothing is left prepared after the last call.
      expect((await client.query(PREPARED, [])).rows).toEqual([]);
      await client.query(text, [2]);
      expect((await client.query(PREPARED, [])).rows).toEqual([]);
    } finally {
      client.release();
    }
  });

  it('leaves statements with more than 100 parameters unnamed (a multi-row INSERT per row count)', async () => {
    const prepared = withPreparedStatements(onePool());
    const client = await prepared.connect();
    try {
      const ids = Array.from({ length: 101 }, (_, i) => i + 1);
      const text = `select count(*)::int as n from items where id in (${ids.map((i) => `$${i}`).join(', ')})`;
      expect((await client.query(text, ids)).rows).toEqual([{ n: 2 }]);
      expect((await client.query(PREPARED, [])).rows).toEqual([]);
      expect(prepared.namedCount).toBe(0);
    } finally {
      client.release();
    }
  });

  it('is what a PostgreSQL database opened by Hush uses, and off when configured off', async () => {
    for (const preparedStatements of [undefined, false]) {
      const opened = openDatabase({ kind: 'postgres', url: database.url, preparedStatements }, { poolSize: 1 });
      try {
        const db = opened.db as unknown as Kysely<{ items: { id: number; name: string } }>;
        const ids = await db.selectFrom('items').select('id').where('name', '=', 'two').execute();
        expect(ids).toEqual([{ id: 2 }]);
        const { rows } = await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(
          opened.db,
        );
        expect(rows.map((r) => r.statement)).toEqual(
          preparedStatements === false ? [] : ['select "id" from "items" where "name" = $1'],
        );
      } finally {
        await opened.close();
      }
    }
  });
});
