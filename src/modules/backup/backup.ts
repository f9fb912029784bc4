/**
 * Backup and restore: a consistent, logical snapshot of every table —
 * ciphertext only, never plaintext — as gzip'd JSON lines: a header, one
 * line per row, and a trailer holding the row counts and a sha256 of all
 * lines before it. The same format serves SQLite and PostgreSQL (and moving
 * between them). Restore checks the checksum and the root key before it
 * writes anything, then writes everything in one transaction.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, constants, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip, createGzip } from 'node:zlib';
import { type Kysely, sql } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { unwrapWorkspaceKey } from '../../crypto/envelope.js';
import { migrateTo, migrateToLatest } from '../../db/database.js';
import { migrations } from '../../db/migrations/index.js';
import type { Database } from '../../db/schema.js';

export const BACKUP_FORMAT = 'hush-backup';
export const BACKUP_VERSION = 1;

/**
 * Tables in dependency order. Sessions are left out (restored users sign in
 * again), and so are SQLite's job locks (they name processes of this machine)
 * and rate-limit counts (they last a minute).
 */
export const BACKUP_TABLES = [
  'users',
  'workspaces',
  'workspace_keys',
  'api_tokens',
  'roles',
  'members',
  'invitations',
  'variable_names',
  'variables',
  'secrets',
  'secret_versions',
  'workflows',
  'workflow_secret_refs',
  'runs',
  'audit_heads',
  'audit_events',
  'settings',
] as const;

type Table = (typeof BACKUP_TABLES)[number];
/** Rows per read while backing up (runs: fewer, each may hold 32 MiB of steps). */
const PAGE = 1000;
const RUNS_PAGE = 8;
/** Characters of row lines per INSERT while restoring. */
const BATCH_CHARS = 16 * 1024 * 1024;

export class BackupError extends Error {
  override name = 'BackupError';
}

interface Header {
  format: string;
  version: number;
  createdAt: string;
  database: string;
  migrations: string[];
  rootKeyIds: string[];
}

function encodeRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row))
    out[k] = Buffer.isBuffer(v) || v instanceof Uint8Array ? { $b64: Buffer.from(v).toString('base64') } : v;
  return out;
}

function decodeRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] =
      v !== null && typeof v === 'object' && '$b64' in v
        ? Buffer.from(String((v as { $b64: string }).$b64), 'base64')
        : v;
  }
  return out;
}

/**
 * Creates `temp`, owner-only: exclusively (O_EXCL, which follows no link) with
 * mode 0600 — the mode given at creation is the only one it ever has, and
 * the rename makes it the backup. The name is this run's own, so two backups
 * to one file never write into, or remove, each other's temp file.
 */
async function createOwnerOnly(temp: string) {
  try {
    return await open(temp, 'wx', 0o600);
  } catch (error) {
    throw new BackupError(`cannot write ${temp}: ${(error as { code?: string }).code ?? 'unknown error'}`);
  }
}

/** Writes a backup to `file` (via a temp file, renamed when complete). */
export async function createBackup(
  deps: Pick<AppContext, 'db' | 'dbKind'>,
  file: string,
  progress?: (table: string, rows: number) => void,
): Promise<{ counts: Record<string, number>; sha256: string }> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.partial`;
  const hash = createHash('sha256');
  const counts: Record<string, number> = {};
  const out = createGzip();
  try {
    await access(path.dirname(path.resolve(file)), constants.W_OK);
  } catch {
    throw new BackupError(`cannot write ${file}: its directory does not exist or is not writable`);
  }
  const sink = pipeline(out, (await createOwnerOnly(temp)).createWriteStream());
  // A write error (a full disk) rejects it while rows are still being read: kept, reported below.
  let writeError: unknown;
  sink.catch((error: unknown) => {
    writeError ??= error;
  });
  try {
    const write = (line: string) =>
      new Promise<void>((resolve, reject) => {
        hash.update(`${line}\n`);
        out.write(`${line}\n`, (error) => (error ? reject(error) : resolve()));
      });
    const snapshot = async (trx: Kysely<Database>) => {
      const keys = await trx.selectFrom('workspace_keys').select('root_key_id').distinct().execute();
      // The schema the rows are in: what this database has applied (a restore starts from there).
      const applied = await sql<{ name: string }>`select name from hush_migrations order by name`.execute(trx);
      const header: Header = {
        format: BACKUP_FORMAT,
        version: BACKUP_VERSION,
        createdAt: new Date().toISOString(),
        database: deps.dbKind,
        migrations: applied.rows.map((r) => r.name),
        rootKeyIds: keys.map((k) => k.root_key_id),
      };
      await write(JSON.stringify(header));
      for (const table of BACKUP_TABLES) {
        let count = 0;
        // Paged by key (each page after the last row of the one before): reading page n does not
        // step over the n pages before it again, as an OFFSET would.
        const order = primaryOrder(table);
        const page = table === 'runs' ? RUNS_PAGE : PAGE;
        let after: unknown[] | undefined;
        for (;;) {
          let q = (trx as unknown as Kysely<Record<string, Record<string, unknown>>>).selectFrom(table).selectAll();
          if (after) q = q.where(sql<boolean>`(${sql.join(order.map((c) => sql.ref(c)))}) > (${sql.join(after)})`);
          for (const column of order) q = q.orderBy(column);
          const rows = (await q.limit(page).execute()) as Record<string, unknown>[];
          for (const row of rows) await write(JSON.stringify({ t: table, r: encodeRow(row) }));
          count += rows.length;
          const last = rows.at(-1);
          if (rows.length < page || !last) break;
          after = order.map((c) => last[c]);
        }
        counts[table] = count;
        progress?.(table, count);
      }
    };
    if (deps.dbKind === 'postgres') {
      await deps.db.transaction().setIsolationLevel('repeatable read').execute(snapshot);
    } else {
      // A deferred read transaction: a consistent WAL snapshot that does not block writers.
      await deps.db.connection().execute(async (conn) => {
        await sql`begin`.execute(conn);
        try {
          await snapshot(conn);
        } finally {
          await sql`commit`.execute(conn);
        }
      });
    }
    const sha256 = hash.digest('hex');
    out.end(`${JSON.stringify({ trailer: true, counts, sha256 })}\n`);
    await sink;
    // On disk before the rename makes it the backup (else a power cut could leave an empty one).
    const written = await open(temp, 'r');
    try {
      await written.sync();
    } finally {
      await written.close();
    }
    await rename(temp, file);
    return { counts, sha256 };
  } catch (error) {
    // The file's own failure, if that is what stopped the run (before the destroy below adds its own).
    const failedWrite = writeError;
    // Nothing of a failed run stays behind: its temp file goes, the target is untouched.
    out.destroy();
    await sink.catch(() => {});
    await rm(temp, { force: true });
    // The file's own trouble (a full disk: the stream reports only that it was destroyed) named.
    const code = (failedWrite as { code?: string } | undefined)?.code ?? (error as { code?: string }).code;
    if (failedWrite !== undefined || (code && /^E[A-Z]+$/.test(code) && !(error instanceof BackupError)))
      throw new BackupError(`cannot write ${file}: ${code ?? 'the write failed'}`);
    throw error;
  }
}

/** A total order for paging: the primary key, or every column where there is none. */
function primaryOrder(table: Table): string[] {
  switch (table) {
    case 'workspace_keys':
      return ['workspace_id', 'version'];
    case 'members':
      return ['workspace_id', 'user_id'];
    case 'variable_names':
      return ['workspace_id', 'name_lower'];
    case 'secret_versions':
      return ['secret_id', 'version'];
    case 'workflow_secret_refs':
      return ['workflow_id', 'block_id', 'field', 'secret_name_lower'];
    case 'audit_heads':
      return ['chain'];
    case 'settings':
      return ['key'];
    default:
      return ['id'];
  }
}

async function* lines(file: string): AsyncGenerator<string> {
  const source = createReadStream(file);
  const gunzip = createGunzip();
  source.on('error', (error) => gunzip.destroy(error));
  source.pipe(gunzip);
  // A character may be split across two chunks: the decoder keeps its first bytes for the next.
  const decoder = new StringDecoder('utf8');
  // The current line's pieces so far: each chunk is searched once (a run's line may span many).
  const pieces: string[] = [];
  try {
    for await (const chunk of gunzip) {
      const text = decoder.write(chunk as Buffer);
      let start = 0;
      for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
        pieces.push(text.slice(start, end));
        yield pieces.length === 1 ? (pieces[0] as string) : pieces.join('');
        pieces.length = 0;
        start = end + 1;
      }
      if (start < text.length) pieces.push(text.slice(start));
    }
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new BackupError(
      code === 'ENOENT' ? `${file} does not exist` : `${file} is not a readable Hush backup (damaged or not gzip)`,
    );
  }
  pieces.push(decoder.end());
  const last = pieces.join('');
  if (last) yield last;
}

/** Reads a backup end to end and checks its checksum; returns its header and counts. */
export async function verifyBackup(
  file: string,
  rootKeys?: AppContext['rootKeys'],
): Promise<{ header: Header; counts: Record<string, number> }> {
  const hash = createHash('sha256');
  /** Workspace key rows, to prove (with `rootKeys`) that the loaded root keys open them. */
  const workspaceKeys: Record<string, unknown>[] = [];
  let header: Header | undefined;
  let trailer: { counts: Record<string, number>; sha256: string } | undefined;
  let rows = 0;
  for await (const line of lines(file)) {
    if (trailer) throw new BackupError(`${file} has data after its trailer: it is damaged`);
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new BackupError(`${file} is damaged (a line is not JSON)`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new BackupError(`${file} is damaged (a line is not a JSON object)`);
    if (parsed.trailer === true) {
      const counts = parsed.counts;
      if (
        typeof parsed.sha256 !== 'string' ||
        counts === null ||
        typeof counts !== 'object' ||
        !Object.values(counts).every((n) => Number.isSafeInteger(n) && (n as number) >= 0)
      )
        throw new BackupError(`${file} is damaged (its trailer is malformed)`);
      trailer = parsed as unknown as { counts: Record<string, number>; sha256: string };
      continue;
    }
    hash.update(`${line}\n`);
    if (!header) {
      if (parsed.format !== BACKUP_FORMAT) throw new BackupError(`${file} is not a Hush backup`);
      if (parsed.version !== BACKUP_VERSION)
        throw new BackupError(
          `${file} is a backup of format version ${String(parsed.version)}, this Hush reads ${BACKUP_VERSION}`,
        );
      const strings = (value: unknown) => Array.isArray(value) && value.every((v) => typeof v === 'string');
      if (!strings(parsed.migrations) || !strings(parsed.rootKeyIds))
        throw new BackupError(`${file} is damaged (its header is malformed)`);
      header = parsed as unknown as Header;
    } else {
      if (typeof parsed.t !== 'string' || parsed.r === null || typeof parsed.r !== 'object' || Array.isArray(parsed.r))
        throw new BackupError(`${file} is damaged (a row line is malformed)`);
      rows += 1;
      if (rootKeys && parsed.t === 'workspace_keys') workspaceKeys.push(decodeRow(parsed.r as Record<string, unknown>));
    }
  }
  if (!header || !trailer) throw new BackupError(`${file} is incomplete (no header or trailer): it is damaged`);
  if (hash.digest('hex') !== trailer.sha256)
    throw new BackupError(`${file} fails its checksum: it is damaged or was changed`);
  const expected = Object.values(trailer.counts).reduce((a, b) => a + b, 0);
  if (expected !== rows)
    throw new BackupError(`${file} holds ${rows} rows but its trailer counts ${expected}: it is damaged`);
  if (rootKeys) {
    const missing = header.rootKeyIds.filter((id) => !rootKeys.hasKey(id));
    if (missing.length > 0) {
      throw new BackupError(
        `the root key ${missing.join(', ')} that protects this backup is not loaded: restore with the key file or HUSH_MASTER_KEY it was made with`,
      );
    }
    for (const row of workspaceKeys) {
      // Proof that the loaded root keys really open this backup, before anything is written.
      try {
        const dek = await unwrapWorkspaceKey(
          rootKeys,
          { rootKeyId: String(row.root_key_id), ciphertext: row.wrapped_key as Buffer },
          { workspaceId: String(row.workspace_id), keyVersion: Number(row.version) },
        );
        dek.fill(0);
      } catch {
        throw new BackupError(
          `the loaded root key does not open this backup's workspace keys (wrong key with the same id?)`,
        );
      }
    }
  }
  return { header, counts: trailer.counts };
}

/**
 * The schema level (last migration) a backup was made at; a BackupError when
 * this build cannot restore it (a newer Hush's, or a damaged list) — checked
 * before anything is opened or created.
 */
export function backupSchema(header: Pick<Header, 'migrations'>, file: string): string {
  const names = Object.keys(migrations);
  const unknown = header.migrations.filter((m) => !names.includes(m));
  if (unknown.length > 0)
    throw new BackupError(`the backup comes from a newer Hush (schema ${unknown.join(', ')}): upgrade first`);
  const level = header.migrations.at(-1);
  if (!level || header.migrations.some((m, i) => m !== names[i]))
    throw new BackupError(`${file} lists migrations out of order: it is damaged`);
  return level;
}

/**
 * Restores `file` into an empty, migrated database. Checks first (checksum,
 * emptiness, root keys — by unwrapping every workspace key); writes in one
 * transaction, so a failure changes nothing.
 *
 * A backup made at an older schema is restored at that schema — the empty
 * database is migrated down to it first — and then migrated up like any
 * older database, so every data migration since (renamed duplicate roles,
 * rewritten reference paths, counted steps…) applies to its rows too.
 */
export async function restoreBackup(
  deps: Pick<AppContext, 'db' | 'dbKind' | 'rootKeys'>,
  file: string,
  progress?: (rows: number) => void,
): Promise<{ counts: Record<string, number> }> {
  // Checked whole, and every workspace key opened with the loaded root keys, before the schema moves.
  const { header, counts } = await verifyBackup(file, deps.rootKeys);
  const existing = await deps.db.selectFrom('users').select('id').limit(1).execute();
  if (existing.length > 0) throw new BackupError('restore needs an empty database: this one already has users');
  const events = await deps.db.selectFrom('audit_events').select('id').limit(1).execute();
  if (events.length > 0)
    throw new BackupError('restore needs an empty database: this one already has an audit trail (failed sign-ins?)');
  const level = backupSchema(header, file);
  const older = level !== Object.keys(migrations).at(-1);
  if (older) {
    const down = await migrateTo(deps.db, level);
    if (down.error !== undefined)
      throw new BackupError(
        `could not prepare the empty database for a backup of schema ${level}: ${reason(down.error)}`,
      );
  }

  let written = 0;
  await deps.db.transaction().execute(async (trx) => {
    const anyTrx = trx as unknown as Kysely<Record<string, Record<string, unknown>>>;
    // The empty target's own settings (its setup token, its login-limit key) give way to the backup's.
    await trx.deleteFrom('settings').execute();
    let batch: { table: string; rows: Record<string, unknown>[]; chars: number } | undefined;
    const flush = async () => {
      if (!batch || batch.rows.length === 0) return;
      await anyTrx.insertInto(batch.table).values(batch.rows).execute();
      written += batch.rows.length;
      progress?.(written);
      batch = undefined;
    };
    let first = true;
    for await (const line of lines(file)) {
      if (first) {
        first = false;
        continue;
      }
      const parsed = JSON.parse(line) as { t?: string; r?: Record<string, unknown>; trailer?: boolean };
      if (parsed.trailer || !parsed.t || !parsed.r) continue;
      if (!(BACKUP_TABLES as readonly string[]).includes(parsed.t))
        throw new BackupError(`${file} names an unknown table "${parsed.t}"`);
      const row = decodeRow(parsed.r);
      if (batch && batch.table !== parsed.t) await flush();
      batch ??= { table: parsed.t, rows: [], chars: 0 };
      batch.rows.push(row);
      batch.chars += line.length;
      // Up to 200 rows, or fewer large ones (a run may hold 32 MiB of steps).
      if (batch.rows.length >= 200 || batch.chars >= BATCH_CHARS) await flush();
    }
    await flush();
  });
  if (older) {
    const up = await migrateToLatest(deps.db);
    if (up.error !== undefined)
      throw new BackupError(
        `${file} was restored at its schema ${level}, but bringing it up to date failed: ${reason(up.error)} — the database holds the backup at that schema; the next start tries again`,
      );
  }
  return { counts };
}

function reason(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] as string;
}
