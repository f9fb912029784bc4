/**
 * Online key rotation (SPEC §3), both resumable and safe while servers run:
 *
 * - Root rotation rewraps every workspace key that is not wrapped under the
 *   provider's active root key. Rows are rewritten one by one with a guard on
 *   the old root key id, so a crash leaves each row either old or new, and a
 *   re-run finishes the rest.
 * - Workspace rotation creates key version N+1, makes it active (new writes
 *   use it at once), then re-encrypts every secret version still under an
 *   older key, in batches, each row guarded by its old key version. A re-run
 *   after a crash continues; old key versions are deleted only when no
 *   ciphertext uses them.
 *
 * Both report a result object (done / skipped / failed) instead of throwing
 * half-way, and both are audited.
 */
import { sql } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { CryptoError } from '../../app/errors.js';
import { nowIso } from '../../app/ids.js';
import { decryptSecretValue, encryptSecretValue, unwrapWorkspaceKey, wrapWorkspaceKey } from '../../crypto/envelope.js';
import type { RootKeyProvider } from '../../crypto/root-keys.js';
import type { Db } from '../../db/database.js';
import type { AuditContext } from '../audit/audit-log.js';
import { WORKSPACE_KEY_WRAPS_LOCK } from '../workspaces/workspace-keyring.js';

export interface RotationResult {
  done: number;
  skipped: number;
  failed: number;
  failures: { id: string; reason: string }[];
}

export type Progress = (done: number, total: number) => void;

const SYSTEM: AuditContext = { actorId: null, actorType: 'system', ip: null, requestId: null };
const BATCH = 200;

function emptyResult(): RotationResult {
  return { done: 0, skipped: 0, failed: 0, failures: [] };
}

function reason(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * Rewraps, through `executor`, every workspace key not under the active root
 * key; returns the counts, the active key, the other root keys still in use and
 * those it rewrapped from.
 */
async function rewrapRows(
  executor: Db,
  rootKeys: RootKeyProvider,
  progress?: Progress,
): Promise<RotationResult & { rootKeyId: string; stillInUse: string[]; rewrappedFrom: string[] }> {
  const active = rootKeys.activeKeyId();
  const result = emptyResult();
  const rewrappedFrom = new Set<string>();
  const rows = await executor
    .selectFrom('workspace_keys')
    .select(['workspace_id', 'version', 'root_key_id', 'wrapped_key'])
    .execute();
  let seen = 0;
  for (const row of rows) {
    seen += 1;
    if (row.root_key_id === active) {
      result.skipped += 1;
      progress?.(seen, rows.length);
      continue;
    }
    const ctx = { workspaceId: row.workspace_id, keyVersion: Number(row.version) };
    try {
      const dek = await unwrapWorkspaceKey(
        rootKeys,
        { rootKeyId: row.root_key_id, ciphertext: Buffer.from(row.wrapped_key) },
        ctx,
      );
      const wrapped = await wrapWorkspaceKey(rootKeys, dek, ctx);
      dek.fill(0);
      const updated = await executor
        .updateTable('workspace_keys')
        .set({ root_key_id: wrapped.rootKeyId, wrapped_key: wrapped.ciphertext })
        .where('workspace_id', '=', row.workspace_id)
        .where('version', '=', ctx.keyVersion)
        .where('root_key_id', '=', row.root_key_id)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 1) {
        result.done += 1;
        rewrappedFrom.add(row.root_key_id);
      } else result.skipped += 1;
    } catch (error) {
      result.failed += 1;
      result.failures.push({ id: `${row.workspace_id}/v${ctx.keyVersion}`, reason: reason(error) });
    }
    progress?.(seen, rows.length);
  }
  const inUse = await executor.selectFrom('workspace_keys').select('root_key_id').distinct().execute();
  const stillInUse = inUse.map((r) => r.root_key_id).filter((id) => id !== active);
  return { ...result, rootKeyId: active, stillInUse, rewrappedFrom: [...rewrappedFrom] };
}

/** Rewraps every workspace key under the active root key. */
export async function rewrapWorkspaceKeys(
  deps: Pick<AppContext, 'db' | 'rootKeys' | 'audit'>,
  progress?: Progress,
): Promise<RotationResult & { rootKeyId: string; stillInUse: string[] }> {
  const r = await rewrapRows(deps.db, deps.rootKeys, progress);
  await deps.db.transaction().execute((trx) =>
    deps.audit(trx, SYSTEM, {
      workspaceId: null,
      action: 'keys.root_rotated',
      data: { rootKeyId: r.rootKeyId, rewrapped: r.done, skipped: r.skipped, failed: r.failed },
    }),
  );
  return r;
}

/**
 * Runs `fn` while no workspace key can be wrapped and committed: every wrap
 * under way has committed when `fn` starts, and a wrap that starts later
 * reads the root keys as `fn` left them. PostgreSQL: the wrap lock, held
 * exclusively on a connection of its own (createKey holds it shared); `fn`
 * gets the pool. SQLite: one write transaction (createKey runs in one);
 * `fn` gets it. `fn` must not wait for a lock a wrapping transaction may hold
 * (an audit event: setup audits before it wraps) — it would wait forever.
 */
export async function pauseWorkspaceKeyWraps<T>(
  deps: Pick<AppContext, 'db' | 'dbKind'>,
  fn: (executor: Db) => Promise<T>,
): Promise<T> {
  if (deps.dbKind === 'sqlite') return deps.db.transaction().execute((trx) => fn(trx));
  return deps.db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(hashtext(${WORKSPACE_KEY_WRAPS_LOCK}))`.execute(conn);
    try {
      return await fn(deps.db);
    } finally {
      await sql`select pg_advisory_unlock(hashtext(${WORKSPACE_KEY_WRAPS_LOCK}))`.execute(conn);
    }
  });
}

/**
 * `hush keys retire-root`: rewraps every workspace key still under an old
 * root key, then — only when none is left — hands the old key ids to
 * `remove` (which takes them out of the key file and returns those it
 * removed; any query it makes goes through `executor`). The check and `remove` run with workspace key wraps paused,
 * after a pass that found nothing left to rewrap: a key version wrapped under
 * an old root key before the file changed and committed after the check (a
 * server creating a workspace, a `rotate-workspace` switching keys) was left
 * under a key no file held. A paused pass that rewraps such stragglers commits
 * them and checks again in another pause, so that every rewrap is committed
 * before a key leaves the file. Audited as `keys.root_retire_checked` before
 * the first pause (SQLite: that commit syncs the write-ahead log when the
 * connection runs with synchronous = FULL, as retire-root's does).
 */
export async function retireRootKeys(
  deps: Pick<AppContext, 'db' | 'dbKind' | 'rootKeys' | 'audit'>,
  remove: (unused: string[], executor: Db) => Promise<string[] | undefined>,
): Promise<RotationResult & { rootKeyId: string; stillInUse: string[]; unused: string[]; retired?: string[] }> {
  // The bulk outside any pause (SQLite writers would wait behind it).
  const first = await rewrapRows(deps.db, deps.rootKeys);
  await deps.db.transaction().execute((trx) =>
    deps.audit(trx, SYSTEM, {
      workspaceId: null,
      action: 'keys.root_retire_checked',
      data: { rootKeyId: first.rootKeyId, rewrapped: first.done, skipped: first.skipped, failed: first.failed },
    }),
  );
  let done = first.done;
  for (let pass = 1; ; pass++) {
    const last = await pauseWorkspaceKeyWraps(deps, async (executor) => {
      const r = await rewrapRows(executor, deps.rootKeys);
      const unused = deps.rootKeys.keyIds().filter((id) => id !== r.rootKeyId);
      const clear = r.done === 0 && r.stillInUse.length === 0;
      return { ...r, unused, retired: clear ? await remove(unused, executor) : undefined };
    });
    done += last.done;
    // Stragglers rewrapped in that pause are committed now: the next pause checks again. Still
    // more after five pauses: something keeps wrapping under those keys (a node with an old copy
    // of the key file) — they stay.
    if (last.done === 0 || pass === 5) {
      const { retired, rewrappedFrom, stillInUse, ...rest } = last;
      return {
        ...rest,
        done,
        skipped: first.skipped,
        stillInUse: [...new Set([...stillInUse, ...rewrappedFrom])],
        ...(retired === undefined ? {} : { retired }),
      };
    }
  }
}

/**
 * Rotates one workspace's data key. With `resume` (the default) a workspace
 * whose previous rotation did not finish continues under its current active
 * version instead of starting another.
 */
export async function rotateWorkspaceKey(
  deps: Pick<AppContext, 'db' | 'dbKind' | 'keyring' | 'audit'>,
  workspaceId: string,
  options: { resume?: boolean; progress?: Progress } = {},
): Promise<RotationResult & { keyVersion: number }> {
  const { db } = deps;
  const ws = await db
    .selectFrom('workspaces')
    .select('active_key_version')
    .where('id', '=', workspaceId)
    .executeTakeFirstOrThrow();
  let active = Number(ws.active_key_version);
  const pending = await db
    .selectFrom('secret_versions')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('workspace_id', '=', workspaceId)
    .where('key_version', '<', active)
    .executeTakeFirstOrThrow();
  // Unfinished: rows still under an older key, or older keys not yet retired (a rotation that
  // stopped after re-encrypting everything, before its last transaction).
  const older = await db
    .selectFrom('workspace_keys')
    .select('version')
    .where('workspace_id', '=', workspaceId)
    .where('version', '<', active)
    .limit(1)
    .execute();
  const unfinished = Number(pending.n) > 0 || older.length > 0;
  // The loaded root keys must open the current key before a new one is wrapped under them: a
  // wrong key file would otherwise make a version no server can open the active one.
  try {
    await deps.keyring.dataKey(workspaceId, active);
  } catch (error) {
    if (!(error instanceof CryptoError)) throw error;
    throw new CryptoError(
      'root_key_unavailable',
      `workspace ${workspaceId}: its key version ${active} cannot be opened with the loaded root keys (${error.message}); nothing was changed — is this the installation's root key file?`,
    );
  }
  if (!(options.resume !== false && unfinished)) {
    const next = active + 1;
    await db.transaction().execute(async (trx) => {
      await deps.keyring.createKey(trx, workspaceId, next);
      await trx
        .updateTable('workspaces')
        .set({ active_key_version: next, updated_at: nowIso() })
        .where('id', '=', workspaceId)
        .execute();
    });
    active = next;
  }
  const newKey = await deps.keyring.dataKey(workspaceId, active);
  const result = emptyResult();
  const total = Number(
    (
      await db
        .selectFrom('secret_versions')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('workspace_id', '=', workspaceId)
        .where('key_version', '<', active)
        .executeTakeFirstOrThrow()
    ).n,
  );
  const failedIds = new Set<string>();
  // Passes over the old-key rows in key order; another pass picks up any row
  // a server wrote under the old key while the first pass ran.
  for (;;) {
    let touched = 0;
    let after: { secretId: string; version: number } | undefined;
    for (;;) {
      let q = db
        .selectFrom('secret_versions')
        .select(['secret_id', 'version', 'key_version', 'ciphertext'])
        .where('workspace_id', '=', workspaceId)
        .where('key_version', '<', active);
      const from = after;
      if (from)
        q = q.where((eb) => eb(eb.refTuple('secret_id', 'version'), '>', eb.tuple(from.secretId, from.version)));
      const rows = await q.orderBy('secret_id').orderBy('version').limit(BATCH).execute();
      const last = rows.at(-1);
      if (!last) break;
      after = { secretId: last.secret_id, version: Number(last.version) };
      // One transaction per batch: fast on PostgreSQL, and each row is still guarded.
      await db.transaction().execute(async (trx) => {
        for (const row of rows) {
          const id = `${row.secret_id}:${row.version}`;
          if (failedIds.has(id)) continue;
          touched += 1;
          const version = Number(row.version);
          const oldKeyVersion = Number(row.key_version);
          let ciphertext: Buffer;
          try {
            const oldKey = await deps.keyring.dataKey(workspaceId, oldKeyVersion, trx);
            const base = { workspaceId, secretId: row.secret_id, version };
            const plaintext = decryptSecretValue(oldKey, Buffer.from(row.ciphertext), {
              ...base,
              keyVersion: oldKeyVersion,
            });
            ciphertext = encryptSecretValue(newKey, plaintext, { ...base, keyVersion: active });
            plaintext.fill(0);
          } catch (error) {
            result.failed += 1;
            failedIds.add(id);
            result.failures.push({ id, reason: reason(error) });
            continue;
          }
          const updated = await trx
            .updateTable('secret_versions')
            .set({ ciphertext, key_version: active })
            .where('secret_id', '=', row.secret_id)
            .where('version', '=', version)
            .where('key_version', '=', oldKeyVersion)
            .executeTakeFirst();
          if (Number(updated.numUpdatedRows) === 1) result.done += 1;
          else result.skipped += 1;
        }
      });
      options.progress?.(result.done + result.skipped + result.failed, total);
    }
    if (touched === 0) break;
  }
  await db.transaction().execute(async (trx) => {
    if (result.failed === 0) {
      // Old key versions are retired once nothing is encrypted under them, in the
      // transaction that records the rotation: servers see both at once (the
      // event moves the workspace's change epoch, dropping cached ciphertexts).
      // The workspace row is locked first (PostgreSQL; SQLite's write lock holds
      // already): no secret write commits between the check and the delete.
      let current = trx.selectFrom('workspaces').select('active_key_version').where('id', '=', workspaceId);
      if (deps.dbKind === 'postgres') current = current.forUpdate();
      const now = Number((await current.executeTakeFirstOrThrow()).active_key_version);
      const used = await trx
        .selectFrom('secret_versions')
        .select('key_version')
        .distinct()
        .where('workspace_id', '=', workspaceId)
        .execute();
      const keep = new Set([active, now, ...used.map((u) => Number(u.key_version))]);
      const versions = await trx
        .selectFrom('workspace_keys')
        .select('version')
        .where('workspace_id', '=', workspaceId)
        .execute();
      for (const v of versions) {
        // Only versions older than this rotation's: a newer one belongs to a rotation that
        // overlapped this one (SQLite has no job lock) — its active key, or about to be.
        if (Number(v.version) < active && !keep.has(Number(v.version))) {
          await trx
            .deleteFrom('workspace_keys')
            .where('workspace_id', '=', workspaceId)
            .where('version', '=', Number(v.version))
            .execute();
        }
      }
    }
    await deps.audit(trx, SYSTEM, {
      workspaceId,
      action: 'keys.workspace_rotated',
      data: { keyVersion: active, reencrypted: result.done, skipped: result.skipped, failed: result.failed },
    });
  });
  if (result.failed === 0) deps.keyring.forget(workspaceId);
  return { ...result, keyVersion: active };
}
