/**
 * Secrets for one execution (a run or a Send request): loads a secret by
 * name and decrypts it for the executor, enforces and pins allowed hosts,
 * and records which secrets were sent where. Plaintext lives in the returned
 * materials only for the execution's lifetime; nothing here logs it.
 */
import { sql } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { AppError } from '../../app/errors.js';
import { nowIso } from '../../app/ids.js';
import { decryptSecretValue } from '../../crypto/envelope.js';
import type { SecretMaterial } from '../../runtime/executor.js';
import type { AuditContext } from '../audit/audit-log.js';
import { hostAllowed, parseHostPattern } from '../secrets/allowed-hosts.js';
import type { UsageRecorder } from './usage-recorder.js';

type Deps = Pick<AppContext, 'db' | 'keyring' | 'audit'> & { usage: UsageRecorder };

export function secretUnavailable(name: string): AppError {
  return new AppError(422, 'secret_unavailable', `The secret "${name}" does not exist or is deleted.`);
}

export interface SecretVault {
  loadSecret(name: string): Promise<SecretMaterial>;
  checkHost(secret: SecretMaterial, host: string, blockId: string): Promise<boolean>;
  /** Every secret loaded so far (for a run-wide redactor). */
  loaded(): SecretMaterial[];
  /** Marks secrets as used (lastUsedAt) and audits one `secret.used` per secret per execution. */
  recordUse(sent: { id: string; name: string; host: string }[], blockId: string): Promise<void>;
}

export function createSecretVault(
  deps: Deps,
  workspaceId: string,
  audit: AuditContext,
  executionId: string,
): SecretVault {
  const { db } = deps;
  const cache = new Map<string, SecretMaterial>();
  const audited = new Set<string>();

  return {
    async loadSecret(name) {
      const hit = cache.get(name.toLowerCase());
      if (hit) return hit;
      const row = await db
        .selectFrom('secrets')
        .select(['id', 'name', 'version', 'allowed_hosts'])
        .where('workspace_id', '=', workspaceId)
        .where(sql<boolean>`lower(name) = ${name.toLowerCase()}`)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      if (!row) throw secretUnavailable(name);
      const version = Number(row.version);
      const stored = await db
        .selectFrom('secret_versions')
        .select(['key_version', 'ciphertext'])
        .where('secret_id', '=', row.id)
        .where('version', '=', version)
        .executeTakeFirst();
      if (!stored) throw secretUnavailable(name);
      const keyVersion = Number(stored.key_version);
      const dek = await deps.keyring.dataKey(workspaceId, keyVersion);
      const plaintext = decryptSecretValue(dek, Buffer.from(stored.ciphertext), {
        workspaceId,
        secretId: row.id,
        version,
        keyVersion,
      });
      const material: SecretMaterial = {
        id: row.id,
        name: row.name,
        value: plaintext.toString('utf8'),
        allowedHosts: JSON.parse(row.allowed_hosts) as string[],
      };
      plaintext.fill(0);
      cache.set(name.toLowerCase(), material);
      return material;
    },

    async checkHost(secret, host, blockId) {
      if (secret.allowedHosts.length > 0) return hostAllowed(secret.allowedHosts, host);
      const ws = await db
        .selectFrom('workspaces')
        .select('secret_host_binding')
        .where('id', '=', workspaceId)
        .executeTakeFirstOrThrow();
      if (ws.secret_host_binding === 'off') return true;
      if (ws.secret_host_binding === 'required') return false;
      const canonical = parseHostPattern(host);
      if (!canonical.ok) return false;
      // Pin on first use: only if the list is still empty (another call may have pinned it).
      const pinnedAt = nowIso();
      const pinned = await db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('secrets')
          .set({ allowed_hosts: JSON.stringify([canonical.pattern]), hosts_pinned_at: pinnedAt })
          .where('id', '=', secret.id)
          .where('allowed_hosts', '=', '[]')
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        await deps.audit(trx, audit, {
          workspaceId,
          action: 'secret.host_pinned',
          targetType: 'secret',
          targetId: secret.id,
          data: { name: secret.name, host: canonical.pattern, blockId, executionId },
        });
        return true;
      });
      if (pinned) {
        secret.allowedHosts = [canonical.pattern];
        return true;
      }
      const row = await db
        .selectFrom('secrets')
        .select('allowed_hosts')
        .where('id', '=', secret.id)
        .executeTakeFirstOrThrow();
      secret.allowedHosts = JSON.parse(row.allowed_hosts) as string[];
      return hostAllowed(secret.allowedHosts, host);
    },

    loaded: () => [...cache.values()],

    async recordUse(sent, blockId) {
      const fresh = sent.filter((s) => !audited.has(s.id));
      for (const s of fresh) audited.add(s.id);
      await deps.usage.record(
        fresh.map((s) => ({ workspaceId, secretId: s.id, name: s.name, blockId, host: s.host, executionId, audit })),
      );
    },
  };
}
