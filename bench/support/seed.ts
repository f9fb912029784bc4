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
import { encryptSecretValue } from '../../src/crypto/envelope.js';
import type { SecretsTable, SecretVersionsTable, VariableNamesTable } from '../../src/db/schema.js';

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
 * Refreshes planner statistics after a bulk load on PostgreSQL, as autovacuum
 * would within a minute or so; done explicitly so plans do not change in the
 * middle of a measurement. SQLite is left as Hush leaves it (no ANALYZE).
 */
export async function refreshStatistics(ctx: AppContext): Promise<void> {
  if (ctx.dbKind === 'postgres') await sql`analyze`.execute(ctx.db);
}
