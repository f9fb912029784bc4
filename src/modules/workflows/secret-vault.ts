/**
 * Secrets for one execution (a run or a Send request): loads a secret by
 * name and decrypts it for the executor, enforces and pins allowed hosts,
 * and records which secrets were sent where. Plaintext lives in the returned
 * materials only for the execution's lifetime; nothing here logs it.
 */
import { sql } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { AppError, CryptoError } from '../../app/errors.js';
import { nowIso } from '../../app/ids.js';
import { decryptSecretValue } from '../../crypto/envelope.js';
import type { SecretMaterial } from '../../runtime/executor.js';
import type { AuditContext } from '../audit/audit-log.js';
import { hostAllowed, parseHostPattern, patternsAllowing } from '../secrets/allowed-hosts.js';
import { secretsWithCurrentVersion } from '../secrets/secret-service.js';

type Deps = Pick<AppContext, 'db' | 'keyring' | 'audit' | 'auditQueue' | 'cache'>;

/** A secret as stored: the row and its current version's ciphertext (never plaintext), cacheable. */
interface StoredSecret {
  id: string;
  name: string;
  version: number;
  allowedHosts: readonly string[];
  keyVersion: number;
  ciphertext: Buffer;
}

/**
 * Bound secrets an answer is redacted of beyond the execution's own (the most
 * recently used): each is decrypted and matched per call, so the cost per
 * call stays bounded when many secrets share one host.
 */
export const MAX_HOST_SECRETS = 100;

export function secretUnavailable(name: string): AppError {
  return new AppError(422, 'secret_unavailable', `The secret "${name}" does not exist or is deleted.`);
}

export interface SecretVault {
  loadSecret(name: string): Promise<SecretMaterial>;
  /** Whether `secret` may go to `host`; pins an empty list on first use (unless `pin` is false: only asks). */
  checkHost(secret: SecretMaterial, host: string, blockId: string, pin?: boolean): Promise<boolean>;
  /**
   * The workspace's secrets whose allowed hosts let them go to `host` now,
   * deleted ones included until purged (their current values; the most
   * recently used MAX_HOST_SECRETS; one that cannot be decrypted is left
   * out): what another execution may have sent there. An upstream may store a
   * value and answer it back later, so its answers are redacted of them too.
   * Loaded for redaction only — never sent.
   */
  hostSecrets(host: string): Promise<SecretMaterial[]>;
  /** Every secret loaded so far, sent or for redaction (for a run-wide redactor). */
  loaded(): SecretMaterial[];
  /** Marks secrets as used (lastUsedAt) and audits one `secret.used` per secret per execution. */
  recordUse(sent: { id: string; name: string; host: string }[], blockId: string): Promise<void>;
  /**
   * A later step of a run begins: what it sends is read at the epoch of now,
   * its starter's access checked there (whether the step before sent anything
   * or was refused first).
   */
  nextStep(): void;
}

/**
 * `epoch` is the workspace change epoch the request was authorised at: the
 * secrets an execution loads before its first call are read at it (from
 * the workspace cache when warm). In each later step of a run (nextStep)
 * every secret is read again at the epoch of that moment — one already loaded too:
 * a secret changed, narrowed or deleted while a run is under way is never
 * sent in its old version, to a host it no longer allows, or at all. The old
 * value stays loaded for redaction only.
 */
export function createSecretVault(
  deps: Deps,
  workspace: { workspaceId: string; epoch: number },
  audit: AuditContext,
  executionId: string,
  options: {
    mayPin: boolean;
    /**
     * Whoever started the execution, checked again at `epoch` in a run's
     * later steps: still a member with the permission to run, and may they
     * pin — an answer good until `until` (ms; a token's expiry), or the next
     * epoch? null when not. Without it, access is the start's.
     */
    recheck?: (epoch: number) => Promise<{ mayPin: boolean; until: number } | null>;
  } = { mayPin: true },
): SecretVault {
  const { db } = deps;
  const { workspaceId } = workspace;
  const cache = new Map<string, SecretMaterial>();
  /** The version of each secret in `cache`, by id. */
  const versions = new Map<string, number>();
  /** Names in `cache` read in this step: sent as they are; the others are checked again first. */
  const current = new Set<string>();
  /** Loaded by hostSecrets, by id and version: kept apart so a later step still loads what it sends afresh. */
  const forRedaction = new Map<string, SecretMaterial>();
  const audited = new Set<string>();
  let requestEpoch: number | undefined = workspace.epoch;
  let mayPin = options.mayPin;
  /** The epoch the starter's access was last checked at (the request's own to begin with)… */
  let accessCheckedAt = workspace.epoch;
  /** …and until when that answer holds: the request's, until the first later step checks it. */
  let accessUntil = Number.NEGATIVE_INFINITY;

  /**
   * The epoch to read secrets at: the request's in the first step; in later
   * ones the current one — and then the starter must still have access there
   * (removed, demoted, their token revoked, the workspace deleted: the run
   * sends nothing more).
   */
  const sendingEpoch = async (): Promise<number> => {
    if (requestEpoch !== undefined) return requestEpoch;
    const epoch = await deps.cache.epoch(workspaceId);
    if (options.recheck && (epoch !== accessCheckedAt || Date.now() >= accessUntil)) {
      const access = await options.recheck(epoch);
      if (!access) {
        throw new AppError(
          403,
          'access_revoked',
          'Whoever started this run no longer has access to run it in this workspace: nothing more is sent.',
        );
      }
      mayPin = access.mayPin;
      accessCheckedAt = epoch;
      accessUntil = access.until;
    }
    return epoch;
  };

  const storedColumns = () =>
    secretsWithCurrentVersion(db)
      .select([
        'secrets.id',
        'secrets.name',
        'secrets.version',
        'secrets.allowed_hosts',
        'secret_versions.key_version',
        'secret_versions.ciphertext',
      ])
      .where('secrets.workspace_id', '=', workspaceId);
  type StoredRow = Awaited<ReturnType<ReturnType<typeof storedColumns>['execute']>>[number];
  // No current version row: nothing that could be sent (as for a missing secret).
  const toStored = (row: StoredRow | undefined): StoredSecret | null =>
    !row || row.key_version === null || row.ciphertext === null
      ? null
      : {
          id: row.id,
          name: row.name,
          version: Number(row.version),
          allowedHosts: JSON.parse(row.allowed_hosts) as string[],
          keyVersion: Number(row.key_version),
          ciphertext: Buffer.from(row.ciphertext),
        };

  const loadStored = (lowerName: string) => async (): Promise<StoredSecret | null> =>
    toStored(
      await storedColumns()
        .where(sql<boolean>`lower(secrets.name) = ${lowerName}`)
        .where('secrets.deleted_at', 'is', null)
        .executeTakeFirst(),
    );

  /**
   * Secrets (deleted ones too) whose allowed hosts hold one of `patterns`, the
   * most recently used first, at most MAX_HOST_SECRETS; `host` confirms each match.
   */
  const loadBound = (host: string, patterns: string[]) => async (): Promise<StoredSecret[]> => {
    // allowed_hosts is a JSON array of canonical patterns (no quote, %, _ or backslash in them).
    const rows = await storedColumns()
      .where((eb) => eb.or(patterns.map((p) => eb('secrets.allowed_hosts', 'like', `%${JSON.stringify(p)}%`))))
      .orderBy(sql`secrets.last_used_at is null`)
      .orderBy('secrets.last_used_at', 'desc')
      .orderBy('secrets.id')
      .limit(MAX_HOST_SECRETS)
      .execute();
    return rows.flatMap((row) => {
      const stored = toStored(row);
      return stored && hostAllowed(stored.allowedHosts, host) ? [stored] : [];
    });
  };

  const decrypt = async (stored: StoredSecret): Promise<SecretMaterial> => {
    const dek = await deps.keyring.dataKey(workspaceId, stored.keyVersion);
    const plaintext = decryptSecretValue(dek, stored.ciphertext, {
      workspaceId,
      secretId: stored.id,
      version: stored.version,
      keyVersion: stored.keyVersion,
    });
    const material: SecretMaterial = {
      id: stored.id,
      name: stored.name,
      value: plaintext.toString('utf8'),
      allowedHosts: [...stored.allowedHosts],
    };
    plaintext.fill(0);
    return material;
  };

  return {
    async loadSecret(name) {
      const lowerName = name.toLowerCase();
      const hit = cache.get(lowerName);
      if (hit && current.has(lowerName)) return hit;
      const epoch = await sendingEpoch();
      const stored = await deps.cache.get(workspaceId, epoch, `secret:${lowerName}`, loadStored(lowerName));
      if (hit) {
        if (stored && stored.id === hit.id && stored.version === versions.get(hit.id)) {
          // The same value: its allowed hosts as they are now (a narrowed list holds from the next call).
          hit.allowedHosts = [...stored.allowedHosts];
          current.add(lowerName);
          return hit;
        }
        // Changed, replaced or deleted since the last call: the old value is only redacted from now on.
        cache.delete(lowerName);
        forRedaction.set(`${hit.id}:${versions.get(hit.id)}`, hit);
      }
      if (!stored) throw secretUnavailable(name);
      const material = await decrypt(stored);
      cache.set(lowerName, material);
      current.add(lowerName);
      versions.set(stored.id, stored.version);
      return material;
    },

    async hostSecrets(host) {
      const patterns = patternsAllowing(host);
      if (patterns.length === 0) return [];
      const epoch = requestEpoch ?? (await deps.cache.epoch(workspaceId));
      const bound = await deps.cache.get(workspaceId, epoch, `bound:${patterns[0]}`, loadBound(host, patterns));
      const materials: SecretMaterial[] = [];
      for (const stored of bound) {
        const sent = cache.get(stored.name.toLowerCase());
        if (sent?.id === stored.id && versions.get(stored.id) === stored.version) {
          materials.push(sent);
          continue;
        }
        const key = `${stored.id}:${stored.version}`;
        let material = forRedaction.get(key);
        if (!material) {
          try {
            material = await decrypt(stored);
          } catch (error) {
            // A value that cannot be decrypted (its key gone, its bytes damaged) cannot be echoed
            // from Hush either: it must not stop every call to the host. Sending it fails loudly.
            if (error instanceof CryptoError) continue;
            throw error;
          }
          forRedaction.set(key, material);
        }
        materials.push(material);
      }
      return materials;
    },

    async checkHost(secret, host, blockId, pin = true) {
      if (secret.allowedHosts.length > 0) return hostAllowed(secret.allowedHosts, host);
      const epoch = await sendingEpoch();
      const binding = await deps.cache.get(workspaceId, epoch, 'secret_host_binding', async () => {
        const ws = await db
          .selectFrom('workspaces')
          .select('secret_host_binding')
          .where('id', '=', workspaceId)
          .executeTakeFirstOrThrow();
        return ws.secret_host_binding;
      });
      if (binding === 'off') return true;
      if (binding === 'required') return false;
      // Pinning chooses where a secret may go from now on: only someone who may use secrets
      // chooses (an Operator running a workflow could otherwise steer the URL to their host).
      if (!mayPin) {
        throw new AppError(
          403,
          'host_not_allowed',
          `The secret "${secret.name}" has no allowed host yet: it is pinned by its first use from someone with "secrets.use", or by setting its allowed hosts.`,
        );
      }
      const canonical = parseHostPattern(host);
      if (!canonical.ok) return false;
      if (!pin) return true;
      // Pin on first use: only if the list is still empty (another call may have pinned it).
      const pinnedAt = nowIso();
      const pinned = await db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('secrets')
          .set((eb) => ({
            allowed_hosts: JSON.stringify([canonical.pattern]),
            hosts_pinned_at: pinnedAt,
            revision: eb('revision', '+', 1),
          }))
          .where('id', '=', secret.id)
          .where('allowed_hosts', '=', '[]')
          // Deleted since it was loaded: no host is chosen by a call made after that.
          .where('deleted_at', 'is', null)
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
        .select(['allowed_hosts', 'deleted_at'])
        .where('id', '=', secret.id)
        .executeTakeFirst();
      // Deleted or purged since it was loaded: nothing to send.
      if (!row || row.deleted_at !== null) throw secretUnavailable(secret.name);
      secret.allowedHosts = JSON.parse(row.allowed_hosts) as string[];
      return hostAllowed(secret.allowedHosts, host);
    },

    loaded: () => [...cache.values(), ...forRedaction.values()],

    nextStep() {
      requestEpoch = undefined;
      current.clear();
    },

    async recordUse(sent, blockId) {
      const fresh = [...new Map(sent.filter((s) => !audited.has(s.id)).map((s) => [s.id, s])).values()];
      await deps.auditQueue.append(
        fresh.map((s) => ({
          ctx: audit,
          input: {
            workspaceId,
            action: 'secret.used',
            targetType: 'secret',
            targetId: s.id,
            data: { name: s.name, blockId, host: s.host, executionId },
          },
        })),
        { secretsUsed: fresh.map((s) => s.id) },
      );
      // Counted as audited once written: an append that failed is tried again by the next call.
      for (const s of fresh) audited.add(s.id);
    },
  };
}
