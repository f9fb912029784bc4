/**
 * PostgreSQL statements prepared once per connection instead of parsed and
 * planned on every call: Kysely sends each query as an unnamed statement, so
 * PostgreSQL parses and plans even a point read every time — on the path of
 * every reveal, list and Send, and on the same cores as Hush. Giving each
 * distinct SQL text a name makes `pg` parse it once per connection and
 * reuse it after (the counterpart of the SQLite statement cache in
 * database.ts). Values still travel as bound parameters, never in the text.
 *
 * Only statements with 1 to 100 parameters are named — transaction control,
 * DDL and other fixed statements, and the large multi-row INSERTs whose text
 * changes with their row count, run unnamed as before — and at most `limit`
 * distinct texts per process, so the statements a connection keeps stay
 * bounded.
 *
 * A statement is named from a hash of its text, so a name means the same
 * SQL in every process: a pooler that hands a client another server
 * connection can make a name missing there, never make it run other SQL.
 *
 * A prepared statement fails with "cached plan must not change result type"
 * when a table it reads (`select *`) gains or loses a column while the
 * server runs — another node migrating during a rolling upgrade — and with
 * "prepared statement does not exist" (or "already exists") when something
 * between Hush and PostgreSQL discarded or swapped it (a pooler's `DISCARD
 * ALL`, a pooler moving clients between server connections). The text then
 * gets its next name, prepared anew on its next use; outside a transaction
 * the call is retried at once under it, inside one the error stands (the
 * transaction is aborted already) and the caller's next attempt succeeds.
 * After 50 missing or swapped statements the process stops naming
 * statements altogether: something keeps losing them, and every call would
 * pay for it. `HUSH_DATABASE_PREPARED=false` turns naming off from the
 * start, for a pooler that cannot keep prepared statements (PgBouncer
 * before 1.21 in transaction mode).
 */
import { createHash } from 'node:crypto';
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import type pg from 'pg';

/** Distinct statement texts named per process; the SQL Hush issues is a few hundred. */
const NAMED_STATEMENT_LIMIT = 1000;
/** Statements with more parameters run unnamed (multi-row INSERTs: one text per row count). */
const MAX_NAMED_PARAMETERS = 100;
/**
 * Statements found missing or swapped after which a process stops naming
 * any: that many means something keeps losing them (a pooler that hands
 * each transaction another server connection), and renaming would only pile
 * up statements on both sides.
 */
const STALE_LIMIT = 50;

/**
 * The statement behind a name cannot be used: prepare the text again under
 * another name. `lost` → it is missing (26000), or the name is taken by one
 * this connection did not expect (42P05) — what a pooler that moves clients
 * between server connections causes; such losses are counted (STALE_LIMIT).
 * Not counted: "cached plan must not change result type" (0A000 from the
 * plan cache), a table whose columns changed under the statement.
 */
function staleness(error: unknown): 'lost' | 'changed' | undefined {
  const e = error as { code?: unknown; routine?: unknown } | null;
  if (e?.code === '26000' || e?.code === '42P05') return 'lost';
  // SQLSTATE 0A000 is broad (feature not supported); the routine pins it to the plan cache's check.
  if (e?.code === '0A000' && e.routine === 'RevalidateCachedQuery') return 'changed';
  return undefined;
}

export interface PreparedStatementsPool extends PostgresPool {
  /** How many distinct texts have a name (for tests and diagnostics). */
  readonly namedCount: number;
}

interface Named {
  /** From a hash of the text: the same name means the same SQL in every process. */
  base: string;
  /** Bumped when the statement had to be prepared again. */
  generation: number;
}

const nameOfNamed = (n: Named) => (n.generation === 0 ? n.base : `${n.base}_${n.generation}`);

export interface PreparedStatementsOptions {
  /** Distinct texts named at most (0: none, every statement runs unnamed). */
  limit?: number | undefined;
  /**
   * A query unanswered this long has its connection dropped: it fails with pg's
   * "Connection terminated", and the pool replaces the connection (unset: no bound).
   */
  giveUpMs?: number;
}

export function withPreparedStatements(
  pool: pg.Pool,
  { limit = NAMED_STATEMENT_LIMIT, giveUpMs }: PreparedStatementsOptions = {},
): PreparedStatementsPool {
  const names = new Map<string, Named>();
  /** Statements found lost so far; past STALE_LIMIT naming stops for good. */
  let lost = 0;
  const nameOf = (text: string): string | undefined => {
    if (lost >= STALE_LIMIT) return undefined;
    let named = names.get(text);
    if (named === undefined && names.size < limit) {
      named = { base: `hush_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`, generation: 0 };
      names.set(text, named);
    }
    return named && nameOfNamed(named);
  };
  /** The statement behind `old` cannot be used: the text's next name, or undefined to run it unnamed. */
  const rename = (text: string, old: string, why: 'lost' | 'changed'): string | undefined => {
    const named = names.get(text);
    if (!named) return undefined;
    // Several connections may report the same old name: the first one renames (and counts).
    if (nameOfNamed(named) === old) {
      named.generation += 1;
      if (why === 'lost') lost += 1;
    }
    return lost >= STALE_LIMIT ? undefined : nameOfNamed(named);
  };

  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    /** Drops the connection when `query` goes unanswered past `giveUpMs`. */
    function bounded<T>(query: Promise<T>): Promise<T> {
      if (giveUpMs === undefined) return query;
      const timer = setTimeout(() => {
        (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      }, giveUpMs);
      return query.finally(() => clearTimeout(timer));
    }
    async function run<R>(text: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>> {
      return bounded(runUnbounded<R>(text, parameters));
    }
    async function runUnbounded<R>(text: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>> {
      const values = parameters as unknown[];
      const name = values.length > 0 && values.length <= MAX_NAMED_PARAMETERS ? nameOf(text) : undefined;
      if (name === undefined) return (await client.query(text, values)) as unknown as PostgresQueryResult<R>;
      try {
        return (await client.query({ name, text, values })) as unknown as PostgresQueryResult<R>;
      } catch (error) {
        const why = staleness(error);
        if (!why) throw error;
        const fresh = rename(text, name, why);
        // 'I': idle, outside a transaction (inside one it is 'T' or 'E', and aborted).
        if (client.getTransactionStatus() !== 'I') throw error;
        const retry = fresh === undefined ? client.query(text, values) : client.query({ name: fresh, text, values });
        return (await retry) as unknown as PostgresQueryResult<R>;
      }
    }
    return {
      query: ((textOrCursor: string | PostgresCursor<unknown>, parameters?: readonly unknown[]) =>
        typeof textOrCursor === 'string'
          ? run(textOrCursor, parameters ?? [])
          : client.query(textOrCursor as never)) as PostgresPoolClient['query'],
      release: (destroy?: boolean) => client.release(destroy),
    };
  };

  // One wrapper per pg client: Kysely keeps its connection object per client it is given.
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  return {
    async connect() {
      const client = await pool.connect();
      let own = wrapped.get(client);
      if (!own) {
        own = wrap(client);
        wrapped.set(client, own);
      }
      return own;
    },
    end: () => pool.end(),
    get namedCount() {
      return names.size;
    },
  };
}
