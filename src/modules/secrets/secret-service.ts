/**
 * Secrets (SPEC §1, §3): create, list, read, update (each value change is a
 * new version), reveal (masked only), soft delete, restore, purge, and the
 * retention sweep. Values are encrypted with the workspace key before they
 * touch the database and decrypted only inside `reveal`; nothing here logs,
 * audits or returns a value except reveal's return.
 */
import type { Transaction } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { AppError, ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../app/errors.js';
import { ILL_FORMED_TEXT } from '../../app/http.js';
import { newId, nowIso } from '../../app/ids.js';
import { decryptSecretValue, encryptSecretValue } from '../../crypto/envelope.js';
import { type DatabaseKind, type Db, isDatabaseUnavailable } from '../../db/database.js';
import { withJobLock } from '../../db/job-lock.js';
import type { Database, SecretsTable } from '../../db/schema.js';
import { nameContains } from '../../db/search.js';
import { authorize, type WorkspaceActor } from '../../policy/policy.js';
import type { AuditContext } from '../audit/audit-log.js';
import { claimName, releaseName } from '../variables/variable-names.js';
import { parseAllowedHosts } from './allowed-hosts.js';
import type { SecretMetadata } from './secret-presenter.js';

export const MAX_SECRET_BYTES = 64 * 1024;
export const SHORT_SECRET_BYTES = 8;

type Deps = Pick<AppContext, 'db' | 'dbKind' | 'audit' | 'auditQueue' | 'keyring' | 'config' | 'cache'>;

export interface CreateSecretInput {
  name: string;
  visibility: 'masked' | 'restricted';
  value: string;
  description: string;
  allowedHosts: string[];
}

export interface UpdateSecretInput {
  value?: string | undefined;
  description?: string | undefined;
  allowedHosts?: string[] | undefined;
  name?: string | undefined;
  visibility?: string | undefined;
}

export interface ListSecretsQuery {
  q?: string | undefined;
  deleted: boolean;
  limit: number;
  after?: { name: string; id: string } | undefined;
}

function checkValue(value: string): void {
  // A lone surrogate has no UTF-8 form: storing it would silently alter the secret.
  if (!value.isWellFormed()) {
    const message = ILL_FORMED_TEXT;
    throw new ValidationError(`body.value: ${message}`, [{ path: 'body.value', message }]);
  }
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes < 1 || bytes > MAX_SECRET_BYTES) {
    const message = bytes < 1 ? 'must not be empty' : `must be at most ${MAX_SECRET_BYTES} bytes of UTF-8`;
    throw new ValidationError(`body.value: ${message}`, [{ path: 'body.value', message }]);
  }
}

function checkHosts(list: string[]): string[] {
  const parsed = parseAllowedHosts(list);
  if (!parsed.ok) {
    const errors = parsed.errors.map((e) => ({ path: `body.allowedHosts.${e.index}`, message: e.message }));
    throw new ValidationError(`body.allowedHosts: ${errors[0]?.message ?? 'is invalid'}`, errors);
  }
  return parsed.hosts;
}

/**
 * Secrets joined to their current version's row (key version, ciphertext —
 * never plaintext). A left join: a secret whose current version row is
 * missing comes back with nulls, for the caller to call what it is.
 */
export function secretsWithCurrentVersion(db: Db) {
  return db
    .selectFrom('secrets')
    .leftJoin('secret_versions', (join) =>
      join
        .onRef('secret_versions.secret_id', '=', 'secrets.id')
        .onRef('secret_versions.version', '=', 'secrets.version'),
    );
}

function secretDeleted(): AppError {
  return new ConflictError('secret_deleted', 'The secret is deleted; restore it first.');
}

/**
 * Destroys every version's ciphertext and the secret row, and frees its name.
 * The versions are locked in version order first, the order a key rotation
 * updates them in (a plain DELETE locks them in whatever order it finds
 * them: PostgreSQL saw the two deadlock).
 */
async function destroySecret(trx: Transaction<Database>, row: SecretsTable, kind: DatabaseKind): Promise<void> {
  if (kind === 'postgres')
    await trx
      .selectFrom('secret_versions')
      .select('version')
      .where('secret_id', '=', row.id)
      .orderBy('version')
      .forUpdate()
      .execute();
  await trx.deleteFrom('secret_versions').where('secret_id', '=', row.id).execute();
  await trx.deleteFrom('secrets').where('id', '=', row.id).execute();
  await releaseName(trx, row.workspace_id, row.name);
}

export function createSecretService(deps: Deps) {
  const { db, keyring } = deps;

  /**
   * The secret's row. `lock` (inside a transaction that will write it) takes
   * the row lock on PostgreSQL, so concurrent writers queue and each sees the
   * version the previous one committed; SQLite's write lock already does.
   */
  async function load(
    workspaceId: string,
    id: string,
    trx: Transaction<Database> | AppContext['db'] = db,
    lock: 'lock' | undefined = undefined,
  ) {
    let q = trx.selectFrom('secrets').selectAll().where('id', '=', id).where('workspace_id', '=', workspaceId);
    if (lock && deps.dbKind === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw new NotFoundError('Secret');
    return row satisfies SecretMetadata;
  }

  /**
   * The key version a new value is encrypted under. On PostgreSQL the
   * workspace row is share-locked until the write commits: a key rotation's
   * switch to the next version waits for writes under the current one, so
   * its re-encryption passes see them (read without the lock, a write could
   * commit under a key the rotation had already retired). SQLite writers
   * hold the database's write lock already.
   */
  async function activeKeyVersion(trx: Transaction<Database>, workspaceId: string): Promise<number> {
    let q = trx.selectFrom('workspaces').select('active_key_version').where('id', '=', workspaceId);
    if (deps.dbKind === 'postgres') q = q.forShare();
    const ws = await q.executeTakeFirstOrThrow();
    return Number(ws.active_key_version);
  }

  async function writeVersion(
    trx: Transaction<Database>,
    actor: WorkspaceActor,
    secretId: string,
    version: number,
    value: string,
  ): Promise<void> {
    const keyVersion = await activeKeyVersion(trx, actor.workspaceId);
    const dek = await keyring.dataKey(actor.workspaceId, keyVersion, trx);
    const ciphertext = encryptSecretValue(dek, value, {
      workspaceId: actor.workspaceId,
      secretId,
      version,
      keyVersion,
    });
    await trx
      .insertInto('secret_versions')
      .values({
        secret_id: secretId,
        version,
        workspace_id: actor.workspaceId,
        key_version: keyVersion,
        ciphertext,
        created_at: nowIso(),
        created_by: actor.userId,
      })
      .execute();
  }

  return {
    async list(actor: WorkspaceActor, query: ListSecretsQuery): Promise<{ rows: SecretMetadata[]; hasMore: boolean }> {
      authorize(actor, 'secrets.read');
      let q = db.selectFrom('secrets').selectAll().where('workspace_id', '=', actor.workspaceId);
      q = query.deleted ? q.where('deleted_at', 'is not', null) : q.where('deleted_at', 'is', null);
      if (query.q) q = q.where(nameContains(query.q));
      const after = query.after;
      if (after) {
        q = q.where((eb) => eb(eb.refTuple('name', 'id'), '>', eb.tuple(after.name, after.id)));
      }
      const rows = await q
        .orderBy('name')
        .orderBy('id')
        .limit(query.limit + 1)
        .execute();
      return { rows: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
    },

    async get(actor: WorkspaceActor, id: string): Promise<SecretMetadata> {
      authorize(actor, 'secrets.read');
      return load(actor.workspaceId, id);
    },

    async create(actor: WorkspaceActor, audit: AuditContext, input: CreateSecretInput) {
      authorize(actor, 'secrets.manage');
      checkValue(input.value);
      const hosts = checkHosts(input.allowedHosts);
      const id = newId('sec');
      const row = await db.transaction().execute(async (trx) => {
        const ws = await trx
          .selectFrom('workspaces')
          .select('secret_host_binding')
          .where('id', '=', actor.workspaceId)
          .executeTakeFirstOrThrow();
        if (ws.secret_host_binding === 'required' && hosts.length === 0) {
          throw new AppError(
            422,
            'allowed_hosts_required',
            'This workspace requires every secret to list its allowed hosts.',
            {
              errors: [{ path: 'body.allowedHosts', message: 'must list at least one host' }],
            },
          );
        }
        await claimName(trx, actor.workspaceId, input.name, { kind: 'secret', id });
        const now = nowIso();
        const created: SecretsTable = {
          id,
          workspace_id: actor.workspaceId,
          name: input.name,
          visibility: input.visibility,
          description: input.description,
          allowed_hosts: JSON.stringify(hosts),
          hosts_pinned_at: null,
          version: 1,
          revision: 0,
          created_at: now,
          created_by: actor.userId,
          updated_at: now,
          updated_by: actor.userId,
          last_used_at: null,
          deleted_at: null,
          deleted_by: null,
        };
        await trx.insertInto('secrets').values(created).execute();
        await writeVersion(trx, actor, id, 1, input.value);
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'secret.created',
          targetType: 'secret',
          targetId: id,
          data: { name: input.name, visibility: input.visibility, version: 1, allowedHosts: hosts },
        });
        return created;
      });
      const warnings = Buffer.byteLength(input.value, 'utf8') < SHORT_SECRET_BYTES ? ['short_value'] : [];
      return { row, warnings };
    },

    async update(
      actor: WorkspaceActor,
      audit: AuditContext,
      id: string,
      input: UpdateSecretInput,
      ifMatch?: { version: number; revision?: number },
    ) {
      authorize(actor, 'secrets.manage');
      const current = await load(actor.workspaceId, id);
      const immutable: { path: string; message: string }[] = [];
      if (input.name !== undefined && input.name !== current.name)
        immutable.push({ path: 'body.name', message: 'cannot be changed' });
      if (input.visibility !== undefined && input.visibility !== current.visibility) {
        immutable.push({ path: 'body.visibility', message: 'cannot be changed' });
      }
      if (immutable.length > 0) {
        throw new AppError(422, 'immutable_field', "A secret's name and visibility cannot be changed after creation.", {
          errors: immutable,
        });
      }
      if (input.value !== undefined) checkValue(input.value);
      const hosts = input.allowedHosts === undefined ? undefined : checkHosts(input.allowedHosts);
      return db.transaction().execute(async (trx) => {
        const row = await load(actor.workspaceId, id, trx, 'lock');
        if (row.deleted_at) throw secretDeleted();
        const version = Number(row.version);
        const revision = Number(row.revision);
        if (ifMatch !== undefined && (ifMatch.version !== version || (ifMatch.revision ?? revision) !== revision)) {
          throw new AppError(412, 'version_conflict', 'The secret changed since you read it; reload and try again.');
        }
        if (hosts !== undefined && hosts.length === 0) {
          const ws = await trx
            .selectFrom('workspaces')
            .select('secret_host_binding')
            .where('id', '=', actor.workspaceId)
            .executeTakeFirstOrThrow();
          if (ws.secret_host_binding === 'required') {
            throw new AppError(
              422,
              'allowed_hosts_required',
              'This workspace requires every secret to list its allowed hosts.',
            );
          }
        }
        const nextVersion = input.value === undefined ? version : version + 1;
        const set: Partial<SecretsTable> = {
          updated_at: nowIso(),
          updated_by: actor.userId,
          version: nextVersion,
          revision: revision + 1,
        };
        if (input.description !== undefined) set.description = input.description;
        if (hosts !== undefined) {
          set.allowed_hosts = JSON.stringify(hosts);
          set.hosts_pinned_at = null;
        }
        // The version guard makes concurrent writers with the same If-Match race
        // on one row: exactly one moves it on.
        const result = await trx
          .updateTable('secrets')
          .set(set)
          .where('id', '=', id)
          .where('version', '=', version)
          .where('revision', '=', revision)
          .where('deleted_at', 'is', null)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) {
          throw new AppError(
            412,
            'version_conflict',
            'The secret changed while you were saving; reload and try again.',
          );
        }
        if (input.value !== undefined) await writeVersion(trx, actor, id, nextVersion, input.value);
        const fields = (['value', 'description', 'allowedHosts'] as const).filter((f) => input[f] !== undefined);
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'secret.updated',
          targetType: 'secret',
          targetId: id,
          data: { name: row.name, version: nextVersion, fields, ...(hosts ? { allowedHosts: hosts } : {}) },
        });
        return load(actor.workspaceId, id, trx);
      });
    },

    /** The one place a stored value is decrypted for a person. */
    async reveal(actor: WorkspaceActor, audit: AuditContext, id: string): Promise<string> {
      authorize(actor, 'secrets.reveal');
      // The row and its current ciphertext (never plaintext), cached at the epoch the request was authorised at.
      const stored = await deps.cache.get(actor.workspaceId, actor.epoch, `reveal:${id}`, async () => {
        const row = await secretsWithCurrentVersion(db)
          .select([
            'secrets.name',
            'secrets.visibility',
            'secrets.version',
            'secrets.deleted_at',
            'secret_versions.key_version',
            'secret_versions.ciphertext',
          ])
          .where('secrets.id', '=', id)
          .where('secrets.workspace_id', '=', actor.workspaceId)
          .executeTakeFirst();
        return row
          ? {
              name: row.name,
              visibility: row.visibility,
              version: Number(row.version),
              deleted: row.deleted_at !== null,
              keyVersion: row.key_version === null ? null : Number(row.key_version),
              ciphertext: row.ciphertext === null ? null : Buffer.from(row.ciphertext),
            }
          : null;
      });
      if (!stored) throw new NotFoundError('Secret');
      if (stored.visibility !== 'masked') {
        throw new ForbiddenError(
          'This secret is restricted: its value is never shown, to anyone.',
          'secret_restricted',
        );
      }
      if (stored.deleted) throw secretDeleted();
      const { version, keyVersion, ciphertext } = stored;
      if (keyVersion === null || ciphertext === null) {
        throw new AppError(500, 'decrypt_failed', `Secret ${id} has no stored version ${version}.`);
      }
      const dek = await keyring.dataKey(actor.workspaceId, keyVersion);
      const plaintext = decryptSecretValue(dek, ciphertext, {
        workspaceId: actor.workspaceId,
        secretId: id,
        version,
        keyVersion,
      });
      // Answered only once the event is committed (group commit: one transaction for concurrent reveals).
      await deps.auditQueue.append([
        {
          ctx: audit,
          input: {
            workspaceId: actor.workspaceId,
            action: 'secret.revealed',
            targetType: 'secret',
            targetId: id,
            data: { name: stored.name, version },
          },
        },
      ]);
      const value = plaintext.toString('utf8');
      plaintext.fill(0);
      return value;
    },

    async remove(actor: WorkspaceActor, audit: AuditContext, id: string, purge: boolean): Promise<void> {
      authorize(actor, 'secrets.manage');
      await db.transaction().execute(async (trx) => {
        const row = await load(actor.workspaceId, id, trx, 'lock');
        if (purge) {
          await destroySecret(trx, row, deps.dbKind);
          await deps.audit(trx, audit, {
            workspaceId: actor.workspaceId,
            action: 'secret.purged',
            targetType: 'secret',
            targetId: id,
            data: { name: row.name, versions: Number(row.version), reason: 'requested' },
          });
          return;
        }
        if (row.deleted_at) throw new ConflictError('secret_deleted', 'The secret is already deleted.');
        const now = nowIso();
        await trx
          .updateTable('secrets')
          .set((eb) => ({
            deleted_at: now,
            deleted_by: actor.userId,
            updated_at: now,
            updated_by: actor.userId,
            revision: eb('revision', '+', 1),
          }))
          .where('id', '=', id)
          .execute();
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'secret.deleted',
          targetType: 'secret',
          targetId: id,
          data: { name: row.name, retentionDays: deps.config.secretRetentionDays },
        });
      });
    },

    async restore(actor: WorkspaceActor, audit: AuditContext, id: string): Promise<SecretMetadata> {
      authorize(actor, 'secrets.manage');
      return db.transaction().execute(async (trx) => {
        const row = await load(actor.workspaceId, id, trx, 'lock');
        if (!row.deleted_at) throw new ConflictError('secret_not_deleted', 'The secret is not deleted.');
        if (Date.parse(row.deleted_at) + deps.config.secretRetentionDays * 86_400_000 <= Date.now()) {
          throw new ConflictError(
            'retention_expired',
            'The secret was deleted too long ago to restore; it is about to be purged.',
          );
        }
        const now = nowIso();
        await trx
          .updateTable('secrets')
          .set((eb) => ({
            deleted_at: null,
            deleted_by: null,
            updated_at: now,
            updated_by: actor.userId,
            revision: eb('revision', '+', 1),
          }))
          .where('id', '=', id)
          .execute();
        await deps.audit(trx, audit, {
          workspaceId: actor.workspaceId,
          action: 'secret.restored',
          targetType: 'secret',
          targetId: id,
          data: { name: row.name },
        });
        return load(actor.workspaceId, id, trx);
      });
    },

    async versions(actor: WorkspaceActor, id: string) {
      authorize(actor, 'secrets.read');
      await load(actor.workspaceId, id);
      return db
        .selectFrom('secret_versions')
        .select(['version', 'key_version', 'created_at', 'created_by'])
        .where('secret_id', '=', id)
        .orderBy('version', 'desc')
        .execute();
    },
  };
}

export type SecretService = ReturnType<typeof createSecretService>;

/**
 * Tells the sweep's loops whether to go on after one item failed: an item held by another
 * session past the statement timeout is skipped (the next sweep tries it again), but a
 * database that is gone, or that fails this many items in a row, stops the sweep — it would
 * fail every item alike, each after waiting out the timeout, with the job lock held.
 */
const SWEEP_FAILURES_IN_A_ROW = 3;

/** The database unreachable — not one statement that waited too long for a row (57014, 55P03), which is the item's. */
const databaseGone = (error: unknown): boolean =>
  isDatabaseUnavailable(error) && !/^(?:57014|55P03)$/.test(String((error as { code?: unknown }).code));

function sweepFailures() {
  let first: { error: unknown } | undefined;
  let inARow = 0;
  return {
    /** One item's purge: its answer, or false when it failed (rejects when the sweep should stop). */
    async attempt(purge: Promise<boolean>): Promise<boolean> {
      try {
        const done = await purge;
        inARow = 0;
        return done;
      } catch (error) {
        first ??= { error };
        inARow += 1;
        if (databaseGone(error) || inARow >= SWEEP_FAILURES_IN_A_ROW) throw error;
        return false;
      }
    },
    /** Throws the first failure, if any, once every item was tried. */
    report(): void {
      if (first) throw first.error;
    },
  };
}

/** Expired secrets read per round of the sweep; rounds go on while a round finds this many. */
const SECRET_PURGE_ROUND = 500;
/** Rounds per sweep at most (a backlog beyond is left to the next sweep, 15 minutes later). */
const SECRET_PURGE_ROUNDS = 20;

/**
 * Purges secrets deleted longer ago than the retention window: every
 * version's ciphertext is destroyed and the name is freed, one transaction
 * per secret. Audited as the system. Returns how many were purged. A secret
 * that cannot be purged now (its row held by another session past the
 * statement timeout) does not stop the others: the first such error is
 * thrown once they are done, and the next sweep tries it again.
 */
export async function purgeExpiredSecrets(
  deps: Pick<AppContext, 'db' | 'dbKind' | 'audit' | 'config'>,
  now = Date.now(),
): Promise<number> {
  const cutoff = nowIso(now - deps.config.secretRetentionDays * 86_400_000);
  let purged = 0;
  const failures = sweepFailures();
  const failed = new Set<string>();
  for (let round = 0; round < SECRET_PURGE_ROUNDS; round++) {
    const limit = SECRET_PURGE_ROUND + failed.size;
    const expired = await deps.db
      .selectFrom('secrets')
      .select('id')
      .where('deleted_at', 'is not', null)
      .where('deleted_at', '<=', cutoff)
      .orderBy('deleted_at')
      .orderBy('id')
      // The ones that failed this sweep come first again: read past them.
      .limit(limit)
      .execute();
    let purgedThisRound = 0;
    for (const candidate of expired) {
      if (failed.has(candidate.id)) continue;
      const purge = purgeSecret(deps, candidate.id, cutoff);
      // Read past it in the next round, whatever the attempt decides.
      purge.catch(() => failed.add(candidate.id));
      if (await failures.attempt(purge)) purgedThisRound += 1;
    }
    purged += purgedThisRound;
    if (expired.length < limit || purgedThisRound === 0) break;
  }
  failures.report();
  return purged;
}

async function purgeSecret(
  deps: Pick<AppContext, 'db' | 'dbKind' | 'audit'>,
  id: string,
  cutoff: string,
): Promise<boolean> {
  return deps.db.transaction().execute(async (trx) => {
    // Locked (PostgreSQL), as a restore locks it: a restore committed while this waited is
    // seen (the row no longer matches) instead of being purged right after answering 200.
    let q = trx.selectFrom('secrets').selectAll().where('id', '=', id).where('deleted_at', '<=', cutoff);
    if (deps.dbKind === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) return false;
    await destroySecret(trx, row, deps.dbKind);
    await deps.audit(
      trx,
      { actorId: null, actorType: 'system', ip: null, requestId: null },
      {
        workspaceId: row.workspace_id,
        action: 'secret.purged',
        targetType: 'secret',
        targetId: row.id,
        data: { name: row.name, versions: Number(row.version), reason: 'retention_expired' },
      },
    );
    return true;
  });
}

/**
 * Secrets destroyed per transaction when a deleted workspace is purged: each
 * transaction stays far within the statement timeout however large the
 * workspace, and lets go of SQLite's write lock (and PostgreSQL's row locks)
 * between chunks, so requests to the other workspaces are not held up.
 */
export const WORKSPACE_PURGE_CHUNK = 500;

/**
 * Purges workspaces deleted longer ago than the retention window: every
 * secret version's ciphertext, the secrets and their names, and the
 * workspace's wrapped keys are destroyed — the secrets in transactions of
 * `WORKSPACE_PURGE_CHUNK`, then the keys and the audit events in a last one.
 * The workspace row and its audit trail stay (the chain must still verify,
 * and `hush audit verify` expects a chain for every workspace row), as do
 * the redacted runs, workflows and memberships, which hold no secret
 * material. A workspace without keys is purged: the sweep never picks it
 * again; one whose purge stopped half-way (a crash, a timeout) still has its
 * keys and is picked up again by the next sweep, which goes on where it
 * stopped — a deleted workspace cannot be restored, so nobody sees it
 * half-purged. Audited as the system in the system chain and the
 * workspace's own. Returns how many workspaces were purged.
 */
export async function purgeExpiredWorkspaces(
  deps: Pick<AppContext, 'db' | 'dbKind' | 'audit' | 'config' | 'keyring'>,
  now = Date.now(),
): Promise<number> {
  const cutoff = nowIso(now - deps.config.secretRetentionDays * 86_400_000);
  const expired = await deps.db
    .selectFrom('workspaces')
    .select('id')
    .where('deleted_at', 'is not', null)
    .where('deleted_at', '<=', cutoff)
    .where((eb) =>
      eb.exists(
        eb.selectFrom('workspace_keys').select('version').whereRef('workspace_keys.workspace_id', '=', 'workspaces.id'),
      ),
    )
    .orderBy('id')
    .limit(100)
    .execute();
  let purged = 0;
  // One workspace that cannot be purged now (its row held past the statement timeout) must not
  // keep the ones after it, in the same order every sweep, from going.
  const failures = sweepFailures();
  for (const { id } of expired) {
    if (await failures.attempt(purgeWorkspace(deps, id, cutoff))) {
      deps.keyring.forget(id);
      purged += 1;
    }
  }
  failures.report();
  return purged;
}

async function purgeWorkspace(
  deps: Pick<AppContext, 'db' | 'dbKind' | 'audit'>,
  id: string,
  cutoff: string,
): Promise<boolean> {
  /** The workspace row, locked first (PostgreSQL): a key rotation's last step and secret writes lock it too. */
  const stillExpired = async (trx: Transaction<Database>) => {
    let ws = trx.selectFrom('workspaces').select('id').where('id', '=', id).where('deleted_at', '<=', cutoff);
    if (deps.dbKind === 'postgres') ws = ws.forUpdate();
    return (await ws.executeTakeFirst()) !== undefined;
  };
  /** Destroys the versions, names and rows of `chunk` (all of the workspace's when undefined). */
  const destroy = async (trx: Transaction<Database>, chunk?: readonly { id: string; name: string }[]) => {
    const secretIds = chunk?.map((r) => r.id);
    // In a rotation's order (secret, version), as destroySecret does, so the two cannot deadlock.
    let versions = trx
      .selectFrom('secret_versions')
      .select(['secret_id', 'version'])
      .where('workspace_id', '=', id)
      .orderBy('secret_id')
      .orderBy('version');
    if (secretIds) versions = versions.where('secret_id', 'in', secretIds);
    if (deps.dbKind === 'postgres') versions = versions.forUpdate();
    const versionCount = (await versions.execute()).length;
    let deleteVersions = trx.deleteFrom('secret_versions').where('workspace_id', '=', id);
    let deleteNames = trx
      .deleteFrom('variable_names')
      .where('workspace_id', '=', id)
      .where('owner_kind', '=', 'secret');
    let deleteSecrets = trx.deleteFrom('secrets').where('workspace_id', '=', id);
    if (secretIds) {
      deleteVersions = deleteVersions.where('secret_id', 'in', secretIds);
      // By name, the table's key: by owner alone each chunk would scan every name of the workspace.
      const names = (chunk ?? []).map((r) => r.name.toLowerCase());
      deleteNames = deleteNames.where('name_lower', 'in', names).where('owner_id', 'in', secretIds);
      deleteSecrets = deleteSecrets.where('id', 'in', secretIds);
    }
    await deleteVersions.execute();
    await deleteNames.execute();
    const secrets = await deleteSecrets.executeTakeFirst();
    return { secrets: Number(secrets.numDeletedRows), versions: versionCount };
  };

  const total = { secrets: 0, versions: 0 };
  let after: { id: string; name: string } | undefined;
  for (;;) {
    const chunk = await deps.db.transaction().execute(async (trx) => {
      if (!(await stillExpired(trx))) return undefined;
      // In the (workspace, name, id) index's order, after the last chunk: no scan of what is gone.
      let q = trx
        .selectFrom('secrets')
        .select(['id', 'name'])
        .where('workspace_id', '=', id)
        .orderBy('name')
        .orderBy('id')
        .limit(WORKSPACE_PURGE_CHUNK);
      const from = after;
      if (from) q = q.where((eb) => eb(eb.refTuple('name', 'id'), '>', eb.tuple(from.name, from.id)));
      const rows = await q.execute();
      after = rows.at(-1);
      return { found: rows.length, ...(rows.length === 0 ? { secrets: 0, versions: 0 } : await destroy(trx, rows)) };
    });
    if (!chunk) return false;
    total.secrets += chunk.secrets;
    total.versions += chunk.versions;
    if (chunk.found < WORKSPACE_PURGE_CHUNK) break;
  }
  return deps.db.transaction().execute(async (trx) => {
    if (!(await stillExpired(trx))) return false;
    // Whatever the chunks left (a version without its secret row), then the keys.
    const rest = await destroy(trx);
    const keys = await trx.deleteFrom('workspace_keys').where('workspace_id', '=', id).executeTakeFirst();
    const event = {
      action: 'workspace.purged',
      targetType: 'workspace',
      targetId: id,
      data: {
        secrets: total.secrets + rest.secrets,
        versions: total.versions + rest.versions,
        keyVersions: Number(keys.numDeletedRows),
        reason: 'retention_expired',
      },
    };
    const system = { actorId: null, actorType: 'system' as const, ip: null, requestId: null };
    await deps.audit(trx, system, { workspaceId: id, ...event });
    await deps.audit(trx, system, { workspaceId: null, ...event });
    return true;
  });
}

/** Runs the retention sweep now and then every `intervalMs`; returns a stop function. */
export function startSecretRetentionSweep(
  deps: Pick<AppContext, 'db' | 'dbKind' | 'audit' | 'config' | 'keyring' | 'log'>,
  intervalMs = 15 * 60_000,
): () => void {
  const sweep = () => {
    // Once across every server on the database: the others skip this round.
    withJobLock(deps, 'secret-retention-sweep', async () => {
      // One after the other (the two could lock the same rows in opposite orders), and the
      // workspaces whatever the secrets' outcome; each part's failure is logged.
      const secrets = await purgeExpiredSecrets(deps).catch((error: unknown) => {
        deps.log.error({ errName: (error as Error)?.name, part: 'secrets' }, 'secret retention sweep failed');
        return 0;
      });
      return { secrets, workspaces: await purgeExpiredWorkspaces(deps) };
    })
      .then((outcome) => {
        if (!outcome.ran) deps.log.debug('retention sweep skipped: another server is running it');
        else if (outcome.value.secrets > 0 || outcome.value.workspaces > 0)
          deps.log.info(
            { purged: outcome.value.secrets, purgedWorkspaces: outcome.value.workspaces },
            'purged secrets and workspaces past their retention window',
          );
      })
      // The workspaces' part, or the job lock itself.
      .catch((error: unknown) => deps.log.error({ errName: (error as Error)?.name }, 'secret retention sweep failed'));
  };
  sweep();
  const timer = setInterval(sweep, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
