/**
 * Writing bulk-generated rows (support/seed.ts seedWorkspaces) fast: one
 * transaction per chunk, multi-row statements. SQLite writes on a second
 * connection to the same file, in a child process (support/sqlite-bulk-worker.ts)
 * so that the next chunk is encrypted while this one is written; PostgreSQL
 * gets one `INSERT … SELECT * FROM unnest($1::text[], …)` per table.
 */
import { type ChildProcess, fork } from 'node:child_process';
import SQLite from 'better-sqlite3';
import pg from 'pg';

/** The rows of one chunk, per table, each row in the column order of COLUMNS. */
export interface ChunkRows {
  workspaces: unknown[][];
  keys: unknown[][];
  members: unknown[][];
  names: unknown[][];
  secrets: unknown[][];
  versions: unknown[][];
}

export const COLUMNS = {
  workspaces: ['id', 'name', 'secret_host_binding', 'active_key_version', 'created_at', 'updated_at', 'deleted_at'],
  workspace_keys: ['workspace_id', 'version', 'root_key_id', 'wrapped_key', 'created_at'],
  members: ['workspace_id', 'user_id', 'role', 'created_at', 'updated_at'],
  variable_names: ['workspace_id', 'name_lower', 'owner_kind', 'owner_id'],
  secrets: [
    'id',
    'workspace_id',
    'name',
    'visibility',
    'description',
    'allowed_hosts',
    'hosts_pinned_at',
    'version',
    'created_at',
    'created_by',
    'updated_at',
    'updated_by',
    'last_used_at',
    'deleted_at',
    'deleted_by',
  ],
  secret_versions: ['secret_id', 'version', 'workspace_id', 'key_version', 'ciphertext', 'created_at', 'created_by'],
} as const;

type Table = keyof typeof COLUMNS;

/** Parents before children. */
const ORDER: [Table, keyof ChunkRows][] = [
  ['workspaces', 'workspaces'],
  ['workspace_keys', 'keys'],
  ['members', 'members'],
  ['variable_names', 'names'],
  ['secrets', 'secrets'],
  ['secret_versions', 'versions'],
];

export function rowCount(rows: ChunkRows): number {
  return ORDER.reduce((sum, [, field]) => sum + rows[field].length, 0);
}

export interface BulkWriter {
  write(rows: ChunkRows): Promise<void>;
  close(): Promise<void>;
}

const ROWS_PER_STATEMENT = 100;

/** Synchronous SQLite writer (used inside the worker). */
export function openSqliteBulk(file: string): { write(rows: ChunkRows): void; close(): void } {
  const db = new SQLite(file);
  db.pragma('busy_timeout = 10000');
  // As a restore would: the rows reference each other correctly by construction, and a
  // crash mid-load only loses the benchmark's data (this connection only; Hush's keeps its settings).
  db.pragma('foreign_keys = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -131072');
  const statements = new Map<string, SQLite.Statement>();
  const statement = (table: Table, n: number) => {
    const key = `${table}:${n}`;
    let s = statements.get(key);
    if (!s) {
      const cols = COLUMNS[table];
      const tuple = `(${cols.map(() => '?').join(', ')})`;
      s = db.prepare(
        `insert into ${table} (${cols.join(', ')}) values ${Array.from({ length: n }, () => tuple).join(', ')}`,
      );
      statements.set(key, s);
    }
    return s;
  };
  const write = db.transaction((rows: ChunkRows) => {
    for (const [table, field] of ORDER) {
      const all = rows[field];
      for (let i = 0; i < all.length; i += ROWS_PER_STATEMENT) {
        const part = all.slice(i, i + ROWS_PER_STATEMENT);
        statement(table, part.length).run(part.flat());
      }
    }
  });
  return { write: (rows) => write(rows), close: () => db.close() };
}

/** The SQLite writer in a child process: chunks are sent to it and written in order. */
export function sqliteWorkerWriter(file: string): BulkWriter {
  // fork() reuses process.execArgv (tsx's loader): the child runs TypeScript too. The
  // "advanced" serialisation (structured clone) carries the Buffers of the rows.
  const child: ChildProcess = fork(new URL('./sqlite-bulk-worker.ts', import.meta.url), [file], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 0;
  let failure: Error | null = null;
  const waiting = new Map<number, { resolve(): void; reject(e: Error): void }>();
  const fail = (error: Error) => {
    failure ??= error;
    for (const w of waiting.values()) w.reject(error);
    waiting.clear();
  };
  child.on('message', (m: { id: number; error?: string }) => {
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.error) w?.reject(new Error(m.error));
    else w?.resolve();
  });
  child.on('error', fail);
  child.on('exit', (code) => fail(new Error(`the SQLite bulk writer exited (code ${code})`)));
  const send = (message: object) =>
    new Promise<void>((resolve, reject) => {
      if (failure) return reject(failure);
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      child.send({ ...message, id });
    });
  return {
    write: (rows) => send({ type: 'write', rows }),
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await send({ type: 'close' });
      child.disconnect();
      await exited;
    },
  };
}

/** PostgreSQL column types, for `unnest($n::type[])`. */
const PG_TYPES: Record<string, string> = {
  active_key_version: 'int',
  version: 'int',
  key_version: 'int',
  wrapped_key: 'bytea',
  ciphertext: 'bytea',
};

export async function openPostgresBulk(url: string): Promise<BulkWriter> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  // As pg_restore --disable-triggers would (needs a superuser, as the bench's admin URL is): no
  // per-row foreign-key triggers; the rows reference each other correctly by construction.
  await client.query('set session_replication_role = replica');
  await client.query('set synchronous_commit = off');
  return {
    async write(rows) {
      await client.query('begin');
      try {
        for (const [table, field] of ORDER) {
          const all = rows[field];
          if (all.length === 0) continue;
          const cols = COLUMNS[table];
          const arrays = cols.map((_, c) => all.map((r) => r[c]));
          const params = cols.map((col, c) => `$${c + 1}::${PG_TYPES[col] ?? 'text'}[]`);
          await client.query(
            `insert into ${table} (${cols.join(', ')}) select * from unnest(${params.join(', ')})`,
            arrays,
          );
        }
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => {});
        throw error;
      }
    },
    async close() {
      await client.end();
    },
  };
}
