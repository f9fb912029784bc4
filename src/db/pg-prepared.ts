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
 * A prepared statement fails with "cached plan must not change result type"
 * when a table it reads (`select *`) gains or loses a column while the
 * server runs — another node migrating during a rolling upgrade — and with
 * "prepared statement does not exist" when something between Hush and
 * PostgreSQL discarded it (a pooler's `DISCARD ALL`). The text then gets a
 * fresh name, prepared anew on its next use; outside a transaction the call
 * is retried at once under it, inside one the error stands (the transaction
 * is aborted already) and the caller's next attempt succeeds. After 50
 * such losses the process stops naming statements altogether (a pooler
 * that hands out another server connection per transaction would otherwise
 * make every call a loss). `HUSH_DATABASE_PREPARED=false` turns naming off
 * from the start, for a pooler that cannot keep prepared statements
 * (PgBouncer before 1.21 in transaction mode).
 */
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import type pg from 'pg';

/** Distinct statement texts named per process; the SQL Hush issues is a few hundred. */
const NAMED_STATEMENT_LIMIT = 1000;
/** Statements with more parameters run unnamed (multi-row INSERTs: one text per row count). */
const MAX_NAMED_PARAMETERS = 100;
/**
 * Statements found gone or unusable after which a process stops naming any:
 * that many means something keeps discarding them (a pooler that hands each
 * transaction another server connection), and renaming would only pile up
 * statements on both sides.
 */
const STALE_LIMIT = 50;

/** The statement behind a name is gone or no longer fits: prepare the text again. */
function isStalePrepared(error: unknown): boolean {
  const e = error as { code?: unknown; routine?: unknown } | null;
  // 26000: no statement by that name on this connection. SQLSTATE 0A000 is broad (feature
  // not supported); the routine pins it to the plan cache's result-type check.
  return e?.code === '26000' || (e?.code === '0A000' && e.routine === 'RevalidateCachedQuery');
}

export interface PreparedStatementsPool extends PostgresPool {
  /** How many distinct texts have a name (for tests and diagnostics). */
  readonly namedCount: number;
}

export function withPreparedStatements(pool: pg.Pool, limit = NAMED_STATEMENT_LIMIT): PreparedStatementsPool {
  const names = new Map<string, string>();
  let serial = 0;
  /** Statements found gone or unusable so far; past STALE_LIMIT naming stops for good. */
  let stale = 0;
  const nameOf = (text: string): string | undefined => {
    if (stale >= STALE_LIMIT) return undefined;
    let name = names.get(text);
    if (name === undefined && names.size < limit) {
      name = `hush_${serial++}`;
      names.set(text, name);
    }
    return name;
  };
  /** The statement behind `old` is gone or unusable: a new name, so the next use parses the text again. */
  const rename = (text: string, old: string): string | undefined => {
    stale += 1;
    if (stale >= STALE_LIMIT) return undefined;
    let name = names.get(text) as string;
    if (name === old) {
      name = `hush_${serial++}`;
      names.set(text, name);
    }
    return name;
  };

  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    async function run<R>(text: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>> {
      const values = parameters as unknown[];
      const name = values.length > 0 && values.length <= MAX_NAMED_PARAMETERS ? nameOf(text) : undefined;
      if (name === undefined) return (await client.query(text, values)) as unknown as PostgresQueryResult<R>;
      try {
        return (await client.query({ name, text, values })) as unknown as PostgresQueryResult<R>;
      } catch (error) {
        if (!isStalePrepared(error)) throw error;
        const fresh = rename(text, name);
        // 'I': idle, outside a transaction (inside one it is 'E' now: aborted).
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
