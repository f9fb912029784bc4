/**
 * Bulk creation of secrets for benchmarks: the same rows the secret service's
 * `create` writes (secrets, secret_versions, variable_names), values
 * encrypted with the real envelope code under the workspace's data key, but
 * written with multi-row INSERTs in large transactions instead of one
 * request per secret. No audit events are written for these rows.
 */
import { sql } from 'kysely';
import type { AppContext } from '../../src/app/context.js';
import { newId, nowIso } from '../../src/app/ids.js';
import { encryptSecretValue, generateDataKey, wrapWorkspaceKey } from '../../src/crypto/envelope.js';
import type { SecretsTable, SecretVersionsTable, VariableNamesTable } from '../../src/db/schema.js';
import { type BulkWriter, type ChunkRows, openPostgresBulk, rowCount, sqliteWorkerWriter } from './bulk-write.js';
import { progress } from './progress.js';

/** `secret_000123`: names sort in index order. */
export function secretName(index: number): string {
  return `secret_${String(index).padStart(6, '0')}`;
}

/** A deterministic ~40-byte value per index, so a reveal can be checked. */
export function secretValue(index: number): string {
  return `sk_bench_${index.toString(36).padStart(6, '0')}_${'q7Zp2xVw9LmT4sRb'.repeat(2)}`;
}

export interface SeededSecret {
  id: string;
  name: string;
}

export interface SeedOptions {
  workspaceId: string;
  /** created_by / updated_by of the rows. */
  userId: string;
  /** Indexes [from, to) are created, named secretName(i). */
  from: number;
  to: number;
  /** Rows per INSERT statement. */
  batchSize?: number;
  onBatch?(done: number): void;
}

/**
 * Creates secrets [from, to) in one transaction and returns them in index
 * order. SQLite allows 32 766 bound parameters per statement and PostgreSQL
 * 65 535: 500 rows × 15 columns stays well inside both.
 */
export async function seedSecrets(ctx: AppContext, options: SeedOptions): Promise<SeededSecret[]> {
  const { workspaceId, userId, from, to } = options;
  const batchSize = options.batchSize ?? 500;
  const ws = await ctx.db
    .selectFrom('workspaces')
    .select('active_key_version')
    .where('id', '=', workspaceId)
    .executeTakeFirstOrThrow();
  const keyVersion = Number(ws.active_key_version);
  const dek = await ctx.keyring.dataKey(workspaceId, keyVersion);
  const created: SeededSecret[] = [];

  await ctx.db.transaction().execute(async (trx) => {
    for (let start = from; start < to; start += batchSize) {
      const end = Math.min(to, start + batchSize);
      const now = nowIso();
      const secrets: SecretsTable[] = [];
      const versions: SecretVersionsTable[] = [];
      const names: VariableNamesTable[] = [];
      for (let i = start; i < end; i++) {
        const id = newId('sec');
        const name = secretName(i);
        secrets.push({
          id,
          workspace_id: workspaceId,
          name,
          visibility: 'masked',
          description: '',
          allowed_hosts: '[]',
          hosts_pinned_at: null,
          revision: 0,
          version: 1,
          created_at: now,
          created_by: userId,
          updated_at: now,
          updated_by: userId,
          last_used_at: null,
          deleted_at: null,
          deleted_by: null,
        });
        versions.push({
          secret_id: id,
          version: 1,
          workspace_id: workspaceId,
          key_version: keyVersion,
          ciphertext: encryptSecretValue(dek, secretValue(i), { workspaceId, secretId: id, version: 1, keyVersion }),
          created_at: now,
          created_by: userId,
        });
        names.push({ workspace_id: workspaceId, name_lower: name.toLowerCase(), owner_kind: 'secret', owner_id: id });
        created.push({ id, name });
      }
      await trx.insertInto('variable_names').values(names).execute();
      await trx.insertInto('secrets').values(secrets).execute();
      await trx.insertInto('secret_versions').values(versions).execute();
      options.onBatch?.(end - from);
    }
  });
  return created;
}

/**
 * Lets the database settle after a bulk load, as it would on its own within a
 * minute or so, so that the measurement that follows does not share the
 * machine with the load's aftermath. PostgreSQL: planner statistics refreshed
 * (autovacuum's job), so plans do not change in the middle of a measurement.
 * SQLite: the WAL (hundreds of MB after 1M secrets) copied back into the
 * database file now — otherwise the checkpoint helper does it during the
 * first measurement (seen: list p50 1.46 ms at 1M in the full suite against
 * 0.93 ms alone). SQLite gets no ANALYZE: Hush does not run one.
 */
export async function refreshStatistics(ctx: AppContext): Promise<void> {
  if (ctx.dbKind === 'postgres') {
    await sql`analyze`.execute(ctx.db);
    // The bulk load's pages written out now (0.4 s after 1M secrets here), not while the measurements commit.
    // Needs superuser or pg_checkpoint; without, the writes settle on PostgreSQL's own schedule.
    await sql`checkpoint`.execute(ctx.db).catch((error: unknown) => {
      if ((error as { code?: string }).code !== '42501') throw error; // insufficient_privilege only
      progress('CHECKPOINT refused (the role may not checkpoint); measuring without it');
    });
  } else await sql`pragma wal_checkpoint(TRUNCATE)`.execute(ctx.db);
}

export interface WorkspaceSeedOptions {
  /** The owner of every workspace (a member with role owner, so the API lets them in). */
  userId: string;
  /** Workspaces to create, named `ws_000123` by index [from, to). */
  from: number;
  to: number;
  secretsPerWorkspace: number;
  /** Workspaces per transaction (default 100). */
  chunk?: number;
  onChunk?(workspacesDone: number): void;
}

export interface WorkspaceSeedResult {
  workspaces: number;
  secrets: number;
  /** Rows written in all tables (workspaces, keys, members, secrets, versions, names). */
  rows: number;
  seconds: number;
  /** Time spent building the rows (ids, key wrapping, encryption) and writing them (may overlap). */
  buildSeconds: number;
  writeSeconds: number;
}

/** The rows of workspaces [from, to): each with key version 1 (wrapped by the root key), its owner and its secrets. */
async function chunkRows(ctx: AppContext, options: WorkspaceSeedOptions, from: number, to: number): Promise<ChunkRows> {
  const rows: ChunkRows = { workspaces: [], keys: [], members: [], names: [], secrets: [], versions: [] };
  const now = nowIso();
  const { userId } = options;
  for (let w = from; w < to; w++) {
    const workspaceId = newId('ws');
    const dek = generateDataKey();
    const wrapped = await wrapWorkspaceKey(ctx.rootKeys, dek, { workspaceId, keyVersion: 1 });
    rows.workspaces.push([workspaceId, `ws_${String(w).padStart(6, '0')}`, 'pin-on-first-use', 1, now, now, null]);
    rows.keys.push([workspaceId, 1, wrapped.rootKeyId, wrapped.ciphertext, now]);
    rows.members.push([workspaceId, userId, 'owner', now, now]);
    for (let i = 0; i < options.secretsPerWorkspace; i++) {
      const id = newId('sec');
      const name = secretName(i);
      rows.names.push([workspaceId, name.toLowerCase(), 'secret', id]);
      rows.secrets.push([
        id,
        workspaceId,
        name,
        'masked',
        '',
        '[]',
        null,
        1,
        now,
        userId,
        now,
        userId,
        null,
        null,
        null,
      ]);
      const ciphertext = encryptSecretValue(dek, secretValue(i), {
        workspaceId,
        secretId: id,
        version: 1,
        keyVersion: 1,
      });
      rows.versions.push([id, 1, workspaceId, 1, ciphertext, now, userId]);
    }
    dek.fill(0);
  }
  return rows;
}

/**
 * Many workspaces with their secrets, fast: the rows the services write
 * (workspace, key version 1 wrapped by the root key, owner membership, and per
 * secret its row, version 1 encrypted with the production envelope code under
 * the workspace key, and its reserved name), without audit events, written
 * with multi-row statements, one transaction per chunk of workspaces.
 */
export async function seedWorkspaces(ctx: AppContext, options: WorkspaceSeedOptions): Promise<WorkspaceSeedResult> {
  const chunk = options.chunk ?? 100;
  const db = ctx.config.database;
  // SQLite: one writer process (the rows of the next chunk are built meanwhile); PostgreSQL: two connections.
  const writers =
    db.kind === 'sqlite'
      ? [sqliteWorkerWriter(db.file)]
      : await Promise.all([1, 2].map(() => openPostgresBulk(db.url)));
  const t0 = performance.now();
  let rowsWritten = 0;
  let buildMs = 0;
  let writeMs = 0;
  try {
    // Build the next chunk while the previous ones are being written (by another thread or process).
    const pending: Promise<void>[] = writers.map(() => Promise.resolve());
    let done = 0;
    let n = 0;
    for (let start = options.from; start < options.to; start += chunk, n++) {
      const end = Math.min(options.to, start + chunk);
      const b0 = performance.now();
      const rows = await chunkRows(ctx, options, start, end);
      buildMs += performance.now() - b0;
      const slot = n % writers.length;
      await pending[slot];
      rowsWritten += rowCount(rows);
      const w0 = performance.now();
      const count = end - start;
      pending[slot] = (writers[slot] as BulkWriter).write(rows).then(() => {
        writeMs += performance.now() - w0;
        done += count;
        options.onChunk?.(done);
      });
    }
    await Promise.all(pending);
  } finally {
    for (const w of writers) await w.close();
  }
  const workspaces = options.to - options.from;
  return {
    workspaces,
    secrets: workspaces * options.secretsPerWorkspace,
    rows: rowsWritten,
    seconds: (performance.now() - t0) / 1000,
    buildSeconds: buildMs / 1000,
    writeSeconds: writeMs / 1000,
  };
}
