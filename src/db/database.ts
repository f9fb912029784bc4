/**
 * Opens the database: embedded SQLite (better-sqlite3, WAL) by default, or
 * PostgreSQL (pg pool) when HUSH_DATABASE_URL is set. Both behind one Kysely
 * instance; the rest of Hush never knows which.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import {
  type Compilable,
  CompiledQuery,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  Kysely,
  type MigrationResult,
  Migrator,
  PostgresAdapter,
  PostgresDialect,
  SqliteAdapter,
  type SqliteDatabase,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  sql,
} from 'kysely';
import type pg from 'pg';
import type { Config } from '../app/config.js';
import { type Checkpointer, type CheckpointerOptions, createCheckpointer } from './checkpointer.js';
import { migrations } from './migrations/index.js';
import { withPreparedStatements } from './pg-prepared.js';
import type { Database } from './schema.js';

let pgModule: typeof pg | undefined;

/**
 * The PostgreSQL driver, loaded on first use: a server on SQLite never needs
 * it (it would hold ~3 MiB of an idle server's memory for nothing).
 */
export function pgDriver(): typeof pg {
  if (pgModule === undefined) {
    pgModule = createRequire(import.meta.url)('pg') as typeof pg;
    // BIGINT (e.g. COUNT(*)) as a number rather than a string.
    pgModule.types.setTypeParser(pgModule.types.builtins.INT8, (v) => Number(v));
  }
  return pgModule;
}

export type Db = Kysely<Database>;

const SLOT = '\u0000hush-slot:';

/**
 * A query of one shape built and compiled once, then bound to each call's
 * values: for statements on a hot path whose parts vary (a multi-row INSERT
 * of n rows: one shape per n). `build(slot)` builds it with `slot(i)` — a
 * stand-in for the call's i-th value — wherever a value goes; every
 * parameter of the compiled query must be a stand-in. Run the result with
 * `db.executeQuery` or `trx.executeQuery`.
 */
export function boundQuery<Row>(
  build: (slot: (index: number) => string) => Compilable<Row>,
): (values: readonly unknown[]) => CompiledQuery<Row> {
  const compiled = build((index) => `${SLOT}${index}`).compile();
  const positions = compiled.parameters.map((parameter) => {
    if (typeof parameter !== 'string' || !parameter.startsWith(SLOT))
      throw new Error(`boundQuery: a parameter of "${compiled.sql}" is not a slot`);
    return Number(parameter.slice(SLOT.length));
  });
  return (values) => ({ ...compiled, parameters: positions.map((i) => values[i]) });
}

/**
 * `boundQuery` for a statement of several shapes (an INSERT of n rows, one
 * shape per n): `shaped(key, build)` binds the shape named `key`, built and
 * compiled by `build` the first time that key is asked for.
 */
export function boundQueryShapes<Key>(): (
  key: Key,
  build: (slot: (index: number) => string) => Compilable<unknown>,
) => (values: readonly unknown[]) => CompiledQuery {
  const shapes = new Map<Key, (values: readonly unknown[]) => CompiledQuery>();
  return (key, build) => {
    let shape = shapes.get(key);
    if (!shape) {
      shape = boundQuery(build);
      shapes.set(key, shape);
    }
    return shape;
  };
}

/**
 * SQLite transactions start with BEGIN IMMEDIATE: a transaction that reads
 * and then writes takes the write lock up front (waiting busy_timeout for
 * it), instead of failing with SQLITE_BUSY when another process — a CLI
 * rotation, a second server — wrote in between.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  constructor(
    settings: SqliteDialectConfig,
    private readonly onCommit: () => void,
  ) {
    super(settings);
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  override async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await super.commitTransaction(connection);
    this.onCommit();
  }
}

/**
 * SQLite runs DDL inside transactions, and Kysely's migrator uses one when the
 * adapter says so: every pending migration then runs in one BEGIN IMMEDIATE
 * transaction. A process killed half-way leaves the schema as it was (a column
 * added but its migration unrecorded made every later start fail), and two
 * processes starting at once migrate one after the other (the write lock).
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class HushSqliteDialect extends SqliteDialect {
  constructor(
    private readonly settings: SqliteDialectConfig,
    private readonly onCommit: () => void,
  ) {
    super(settings);
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.settings, this.onCommit);
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

/** How long a SQLite statement waits for another process's write lock. */
const BUSY_TIMEOUT_MS = 5000;

/** Prepared statements kept per connection; the SQL Hush issues is a few hundred distinct strings. */
const STATEMENT_CACHE_SIZE = 500;

/**
 * better-sqlite3 behind Kysely with its prepared statements reused: Kysely
 * prepares every query afresh, and compiling SQL is most of what a short
 * query costs in SQLite. Safe to share: Kysely's SQLite driver runs one query
 * at a time on its single connection, and SQLite re-prepares a cached
 * statement by itself after a schema change. Least recently used first out.
 */
export function withStatementCache(sqlite: SQLite.Database, size = STATEMENT_CACHE_SIZE): SqliteDatabase {
  const statements = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql) {
      let statement = statements.get(sql);
      if (statement) {
        statements.delete(sql);
      } else {
        statement = sqlite.prepare(sql);
        if (statements.size >= size) statements.delete(statements.keys().next().value as string);
      }
      statements.set(sql, statement);
      return statement;
    },
  };
}

export type DatabaseKind = Config['database']['kind'];

export interface OpenDatabase {
  db: Db;
  kind: DatabaseKind;
  /** SQLite only. */
  checkpointer?: Checkpointer;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** PostgreSQL connections. */
  poolSize?: number;
  /** SQLite: the WAL checkpoint helper, for a busy server (src/db/checkpointer.ts). */
  checkpoints?: CheckpointerOptions;
}

export function openDatabase(database: Config['database'], options: OpenDatabaseOptions = {}): OpenDatabase {
  if (database.kind === 'sqlite') {
    mkdirSync(path.dirname(database.file), { recursive: true, mode: 0o700 });
    // Owner-only from the start: SQLite gives its -wal and -shm files the same mode.
    closeSync(openSync(database.file, 'a', 0o600));
    const sqlite = new SQLite(database.file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const checkpointer = createCheckpointer(sqlite, options.checkpoints);
    const db = new Kysely<Database>({
      dialect: new HushSqliteDialect({ database: withStatementCache(sqlite) }, checkpointer.noteCommit),
    });
    return {
      db,
      kind: 'sqlite',
      checkpointer,
      close: async () => {
        await checkpointer.close();
        await db.destroy();
      },
    };
  }
  const timeoutMs = database.timeoutMs ?? 0;
  const pool = new (pgDriver().Pool)({
    connectionString: database.url,
    max: options.poolSize ?? 10,
    // Bounds making a connection and waiting for a free one (all held by slow requests).
    ...(timeoutMs > 0 ? { connectionTimeoutMillis: timeoutMs } : {}),
  });
  // A client losing its connection must not crash the process: pg emits 'error' on it, and
  // the pool listens only while the client is idle. One in use (a query under way, a
  // transaction between statements, the retention sweep's lock) had no listener: the
  // database going away at that moment was an uncaught exception, and the server exited.
  // Its query fails on its own; a dead client is dropped when it is released.
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', () => {});
    // A statement waiting on a row lock or a slow database is cancelled by PostgreSQL (57014),
    // the connection kept. Set by a statement, not a startup parameter, which poolers refuse;
    // queued ahead of the client's first query. If it fails, the connection is lost anyway.
    if (timeoutMs > 0) client.query(`set statement_timeout = ${timeoutMs}`).catch(() => {});
  });
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: withPreparedStatements(pool, {
        limit: database.preparedStatements === false ? 0 : undefined,
        ...(timeoutMs > 0 ? { giveUpMs: timeoutMs + GIVE_UP_MARGIN_MS } : {}),
      }),
    }),
  });
  return { db, kind: 'postgres', close: () => db.destroy() };
}

/**
 * How long past the statement timeout a query may go unanswered before its connection
 * is dropped: PostgreSQL cancels a statement itself at the timeout, so silence beyond
 * it means the network or the server is gone (a connection that drops packets would
 * otherwise hold the request, and a pool slot, until TCP gives up — many minutes).
 */
const GIVE_UP_MARGIN_MS = 5000;

export interface MigrationOutcome {
  applied: string[];
  error?: unknown;
}

/** How long a SQLite process waits for another one's migration (a large database's takes minutes). */
const MIGRATION_WAIT_MS = 30 * 60_000;

/**
 * Brings the schema up to date; returns what ran (a result, not a throw).
 * Every pending migration runs in one transaction, on SQLite too (see
 * TransactionalDdlSqliteAdapter); there a process arriving while another
 * migrates waits for it rather than the usual busy timeout.
 */
export function migrateToLatest(db: Db): Promise<MigrationOutcome> {
  return migrate(db, (migrator) => migrator.migrateToLatest());
}

/**
 * Moves the schema to just after migration `name`, down or up (`restore` of
 * an older backup into an empty database), in one transaction likewise.
 */
export function migrateTo(db: Db, name: string): Promise<MigrationOutcome> {
  return migrate(db, (migrator) => migrator.migrateTo(name));
}

async function migrate(
  db: Db,
  run: (migrator: Migrator) => Promise<{ error?: unknown; results?: readonly MigrationResult[] }>,
): Promise<MigrationOutcome> {
  const sqlite = !(db.getExecutor().adapter instanceof PostgresAdapter);
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'hush_migrations',
    migrationLockTableName: 'hush_migrations_lock',
  });
  if (sqlite) await sql`PRAGMA busy_timeout = ${sql.lit(MIGRATION_WAIT_MS)}`.execute(db);
  const { error, results } = await run(migrator).finally(async () => {
    if (sqlite) await sql`PRAGMA busy_timeout = ${sql.lit(BUSY_TIMEOUT_MS)}`.execute(db);
  });
  const applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  return error === undefined ? { applied } : { applied, error };
}

/**
 * The migrations the database has applied that this build does not know (it
 * was migrated by a newer Hush); empty when there are none or no table yet.
 */
export async function migrationsFromNewerHush(db: Db): Promise<string[]> {
  const applied = await db
    .selectFrom('hush_migrations' as never)
    .select(sql<string>`name`.as('name'))
    .execute()
    .catch(() => [] as { name: string }[]);
  return applied.map((a) => a.name).filter((name) => !Object.hasOwn(migrations, name));
}

/** True when the error is a unique-constraint violation on either database. */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/**
 * True when SQLite could not have the write lock within the busy timeout: another
 * process (a CLI command, a second server on the file, an operator's open
 * `BEGIN IMMEDIATE`) holds it. Nothing of the statement was written, and it passes
 * once that process commits: the server answers 503 `database_busy`. Also the
 * extended codes (`SQLITE_BUSY_SNAPSHOT`, `_RECOVERY`, `_TIMEOUT`).
 */
export function isDatabaseBusy(error: unknown): boolean {
  return error instanceof SQLite.SqliteError && /^SQLITE_BUSY(?:_|$)/.test(error.code);
}

/** Socket errors of a database that cannot be reached or went away. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a database not answering, or not in time: a connection exception
 * (class 08) — but not 08P01, a protocol violation, which is Hush's bug (e.g. a
 * statement with more parameters than the protocol allows) and stays a 500 —,
 * shutting down or restarting (57P01–57P03: an administrator's
 * `pg_terminate_backend` too), too many connections (53300), a statement
 * cancelled by `statement_timeout` (57014) and a lock not had within
 * `lock_timeout` (55P03).
 */
const UNAVAILABLE_SQLSTATES = /^(?:08(?!P01)[0-9A-Z]{3}|57P0[123]|53300|57014|55P03)$/;

/** What pg throws, as plain Errors, for a connection lost, closed or never made in time. */
const PG_CONNECTION_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'is not queryable',
  'Query read timeout',
];

/**
 * True when `error` says the database is unreachable, gone, or did not answer in
 * time — a condition that passes by itself (the client may retry), not a fault
 * of the request or of Hush: the server answers 503 `database_unavailable`.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || UNAVAILABLE_SQLSTATES.test(code))) return true;
  // An AggregateError (a host name with several addresses, all refused) carries the codes inside.
  const inner = (error as { errors?: unknown }).errors;
  if (Array.isArray(inner) && inner.some(isDatabaseUnavailable)) return true;
  return (
    error instanceof Error &&
    typeof message === 'string' &&
    !('severity' in error) &&
    PG_CONNECTION_MESSAGES.some((m) => message.includes(m))
  );
}
