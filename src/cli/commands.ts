/**
 * The operator commands of `hush`: doctor, key rotation, audit verify and
 * export, backup and restore. Each prints its result and exits 0 when it
 * succeeded, 1 when it did its job but found or left a problem, and prints
 * one clear line on a refusal.
 */
import { existsSync, lstatSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import type { Config } from '../app/config.js';
import type { AppContext } from '../app/context.js';
import { CryptoError } from '../app/errors.js';
import {
  addRootKeyToFile,
  keyFilePermissionsTooOpen,
  openFileKeyProvider,
  parseEnvMasterKey,
  retireRootKeysInFile,
} from '../crypto/root-keys.js';
import { openDatabase } from '../db/database.js';
import { withJobLock } from '../db/job-lock.js';
import { migrations } from '../db/migrations/index.js';
import { SYSTEM_CHAIN } from '../modules/audit/audit-chain.js';
import { auditCsvLine, CSV_COLUMNS } from '../modules/audit/audit-router.js';
import { auditTimeBound, presentAuditEvent, verifyChain } from '../modules/audit/audit-service.js';
import { BackupError, backupSchema, createBackup, restoreBackup, verifyBackup } from '../modules/backup/backup.js';
import { retireRootKeys, rewrapWorkspaceKeys, rotateWorkspaceKey } from '../modules/keys/key-rotation.js';
import { openContext, readConfigOrExit } from './context.js';
import { fail } from './fail.js';
import { progressBar } from './progress.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

export async function doctor(): Promise<void> {
  const config = readConfigOrExit();
  const checks: { ok: boolean; what: string; fix?: string }[] = [{ ok: true, what: 'configuration is valid' }];
  /** The root keys, when they could be loaded (the workspace-key check below needs them). */
  let rootKeys: { hasKey(id: string): boolean } | undefined;
  if (config.masterKey.kind === 'file') {
    const file = config.masterKey.path;
    let exists = true;
    try {
      statSync(file);
    } catch {
      exists = false;
    }
    if (!exists)
      checks.push({
        ok: false,
        what: `root key file ${file} is missing`,
        fix: 'restore it from your key backup (on a brand-new install, `hush serve` creates one)',
      });
    else {
      try {
        const { provider } = openFileKeyProvider(file);
        rootKeys = provider;
        checks.push({
          ok: true,
          what: `root key file ${file} holds ${provider.keyIds().length} key(s), active ${provider.activeKeyId()}`,
        });
      } catch (error) {
        checks.push({
          ok: false,
          what: `root key file ${file} is unreadable: ${(error as Error).message}`,
          fix: 'restore it from your key backup',
        });
      }
      if (keyFilePermissionsTooOpen(file))
        checks.push({
          ok: false,
          what: `root key file ${file} is readable by group or others`,
          fix: `chmod 600 ${file}`,
        });
    }
  } else {
    // The same parse `serve` does, so doctor never calls a key serve would refuse "ok".
    try {
      const provider = parseEnvMasterKey(config.masterKey.value);
      rootKeys = provider;
      checks.push({
        ok: true,
        what: `root keys come from HUSH_MASTER_KEY: ${provider.keyIds().length} key(s), active ${provider.activeKeyId()}`,
      });
    } catch (error) {
      checks.push({
        ok: false,
        what: `HUSH_MASTER_KEY is unusable: ${(error as Error).message}`,
        fix: 'set it to base64 32-byte keys, comma-separated, active first — the ones your data was made with',
      });
    }
  }

  if (config.database.kind === 'sqlite' && !existsSync(config.database.file)) {
    // Reported, not created: doctor changes nothing.
    checks.push({
      ok: false,
      what: `no database at ${config.database.file}`,
      fix: 'point HUSH_DATA_DIR at your installation (on a brand-new install, `hush serve` creates it)',
    });
  } else {
    const database = openDatabase(config.database, { poolSize: 1 });
    try {
      await sql`select 1`.execute(database.db);
      checks.push({ ok: true, what: `database (${database.kind}) is reachable` });
      const applied = await database.db
        .selectFrom('hush_migrations' as never)
        .select(sql<string>`name`.as('name'))
        .execute()
        .catch(() => [] as { name: string }[]);
      const pending = Object.keys(migrations).filter((m) => !applied.some((a) => a.name === m));
      const newer = applied.map((a) => a.name).filter((name) => !Object.hasOwn(migrations, name));
      if (newer.length > 0)
        checks.push({
          ok: false,
          what: `database was migrated by a newer Hush (${newer.join(', ')}): this version cannot use it`,
          fix: 'run the Hush version that migrated it, or a newer one',
        });
      checks.push(
        pending.length === 0
          ? { ok: true, what: 'database schema is up to date' }
          : {
              ok: false,
              what: `database needs migrations: ${pending.join(', ')}`,
              fix: 'start `hush serve` once (it migrates at start)',
            },
      );
      // Checked with the keys loaded above, on this connection: no server context (nor its Redis).
      if (pending.length === 0 && rootKeys) {
        const loaded = rootKeys;
        const rows = await database.db.selectFrom('workspace_keys').select('root_key_id').distinct().execute();
        const missing = rows.map((r) => r.root_key_id).filter((id) => !loaded.hasKey(id));
        checks.push(
          missing.length === 0
            ? { ok: true, what: 'every workspace key is wrapped by a loaded root key' }
            : {
                ok: false,
                what: `workspace keys wrapped by root keys that are not loaded: ${missing.join(', ')}`,
                fix: 'load the key file or HUSH_MASTER_KEY these were made with',
              },
        );
      }
      if (pending.length === 0) {
        // Every stored value's key version still exists (a value under a retired key is lost).
        const orphaned = await database.db
          .selectFrom('secret_versions as v')
          .leftJoin('workspace_keys as k', (join) =>
            join.onRef('k.workspace_id', '=', 'v.workspace_id').onRef('k.version', '=', 'v.key_version'),
          )
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('k.version', 'is', null)
          .executeTakeFirstOrThrow();
        const n = Number(orphaned.n);
        checks.push(
          n === 0
            ? { ok: true, what: 'every stored secret value has its workspace key' }
            : {
                ok: false,
                what: `${n} stored secret value(s) are encrypted under a workspace key version that no longer exists`,
                fix: 'restore those values from a backup taken before the key was retired, or set them again',
              },
        );
      }
    } catch (error) {
      checks.push({
        ok: false,
        what: `database (${database.kind}) is not reachable: ${(error as { code?: string }).code ?? (error as Error).message}`,
        fix: 'check HUSH_DATABASE_URL and that the server runs',
      });
    } finally {
      await database.close();
    }
  }
  if (config.redisUrl) {
    const { Redis } = await import('ioredis');
    const redis = new Redis(config.redisUrl, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0 });
    redis.on('error', () => {});
    try {
      await redis.connect();
      await redis.ping();
      checks.push({ ok: true, what: 'Redis (shared rate limits) is reachable' });
    } catch {
      checks.push({
        ok: false,
        what: 'Redis (HUSH_REDIS_URL) is not reachable',
        fix: `start Redis, or unset HUSH_REDIS_URL (limits are then counted ${config.database.kind === 'postgres' ? 'in PostgreSQL, shared by every server' : "in this server's memory"})`,
      });
    } finally {
      redis.disconnect();
    }
  }
  checks.push({
    ok: true,
    what:
      config.outboundAllow.cidrs.length === 0
        ? 'outbound: private and local addresses are blocked (no HUSH_OUTBOUND_ALLOW_CIDRS)'
        : `outbound: these ranges are opened despite the SSRF guard: ${config.outboundAllow.cidrs.join(', ')}`,
  });
  checks.push({
    ok: true,
    what: {
      'allowed-cidrs':
        config.outboundAllow.cidrs.length === 0
          ? 'outbound: secrets are sent over https only (HUSH_SECRETS_OVER_HTTP=allowed-cidrs, no range opened)'
          : 'outbound: secrets go over plain http only to the opened ranges, https elsewhere (HUSH_SECRETS_OVER_HTTP=allowed-cidrs)',
      never: 'outbound: secrets are sent over https only (HUSH_SECRETS_OVER_HTTP=never)',
      anywhere: 'outbound: secrets may be sent over plain http to any address (HUSH_SECRETS_OVER_HTTP=anywhere)',
    }[config.secretsOverHttp],
  });
  for (const c of checks) out(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.what}${c.fix ? `\n      fix: ${c.fix}` : ''}`);
  process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
}

function printResult(
  label: string,
  r: { done: number; skipped: number; failed: number; failures: { id: string; reason: string }[] },
) {
  out(`${label}: ${r.done} done, ${r.skipped} skipped, ${r.failed} failed`);
  for (const f of r.failures.slice(0, 20)) out(`  failed ${f.id}: ${f.reason}`);
  if (r.failed > 0) process.exitCode = 1;
}

const ROOT_KEYS_BUSY =
  'another `hush keys rotate-root` or `retire-root` is running on this database; try again once it has finished';

export async function rotateRoot(options: { newKey: boolean }): Promise<void> {
  const config: Config = readConfigOrExit();
  // Run as with a key file (a scheduled job), it would rewrap under the key already active and
  // exit 0: a "rotation" that rotated nothing.
  if (config.masterKey.kind === 'env' && options.newKey)
    fail(
      'root keys come from HUSH_MASTER_KEY, which Hush cannot change: put a new key first in it (keep the old ones after it), roll it out to every server, then run `hush keys rotate-root --no-new-key`',
      2,
    );
  // The lock is taken before the key file changes: a refused run changes nothing.
  const lockCtx = await openContext(config);
  try {
    const outcome = await withJobLock(lockCtx, 'root-keys', () => rotateRootLocked(config, options));
    if (!outcome.ran) fail(ROOT_KEYS_BUSY);
  } finally {
    await lockCtx.close();
  }
}

async function rotateRootLocked(config: Config, options: { newKey: boolean }): Promise<void> {
  if (config.masterKey.kind === 'file' && options.newKey) {
    const id = addRootKeyToFile(config.masterKey.path, true);
    out(`new active root key ${id} added to ${config.masterKey.path} — back the file up now`);
  }
  const ctx = await openContext(config);
  const bar = progressBar('rewrap');
  try {
    const r = await rewrapWorkspaceKeys(ctx, (d, t) => bar.update(d, t));
    bar.stop();
    printResult(`rewrapped workspace keys under ${r.rootKeyId}`, r);
    const old = ctx.rootKeys.keyIds().filter((id) => id !== r.rootKeyId);
    if (old.length > 0) {
      out(
        `old root keys kept: ${old.join(', ')} — run \`hush keys retire-root\` once every server runs with the new key`,
      );
    }
  } finally {
    bar.stop();
    await ctx.close();
  }
}

/** Rewraps anything still under an old root key, then removes root keys nothing uses. */
export async function retireRoot(): Promise<void> {
  const config: Config = readConfigOrExit();
  const ctx = await openContext(config);
  try {
    // SQLite commits (synchronous=NORMAL) reach the disk at a checkpoint: this connection's
    // commit below syncs the write-ahead log instead, so every rewrapped key is on disk
    // before an old root key leaves the key file (a power cut could roll them back).
    if (ctx.dbKind === 'sqlite') await sql`PRAGMA synchronous = FULL`.execute(ctx.db);
    // The key file is rewritten under the same lock as the check: a `rotate-root` on another
    // node cannot add a key to the file between the two and have it dropped.
    const masterKey = config.masterKey;
    const outcome = await withJobLock(ctx, 'root-keys', (lease) =>
      // The key file is rewritten while no workspace key can be wrapped (retireRootKeys): a key
      // version a server or `rotate-workspace` wrapped under an old root key is rewrapped first.
      retireRootKeys(ctx, async (unused, executor) => {
        // Another run took the lock over (this one stalled 30 s): the key file is not this run's to change.
        if (!(await lease.confirm(executor)))
          fail(`${ROOT_KEYS_BUSY} (this run stalled and its lock was taken over; nothing was retired)`);
        return masterKey.kind === 'file' ? retireRootKeysInFile(masterKey.path, unused) : undefined;
      }),
    );
    if (!outcome.ran) fail(ROOT_KEYS_BUSY);
    const r = outcome.value;
    const { unused, retired } = r;
    printResult(`rewrapped workspace keys under ${r.rootKeyId}`, r);
    if (r.stillInUse.length > 0) {
      out(`still in use, kept: ${r.stillInUse.join(', ')}`);
      process.exitCode = 1;
      return;
    }
    if (retired !== undefined) {
      out(
        retired.length > 0
          ? `retired unused root keys: ${retired.join(', ')} — back the key file up now`
          : 'no root key to retire',
      );
    } else {
      out(
        unused.length > 0
          ? `no longer used, remove from HUSH_MASTER_KEY: ${unused.join(', ')}`
          : 'no root key to retire',
      );
    }
  } finally {
    await ctx.close();
  }
}

export async function rotateWorkspace(workspace: string | undefined, options: { all?: boolean }): Promise<void> {
  if (!workspace && !options.all) fail('name a workspace id, or pass --all', 2);
  if (workspace && options.all) fail('name a workspace id or pass --all, not both', 2);
  const ctx = await openContext();
  try {
    const ids = options.all
      ? (
          await ctx.db.selectFrom('workspaces').select('id').where('deleted_at', 'is', null).orderBy('id').execute()
        ).map((w) => w.id)
      : [workspace as string];
    for (const id of ids) {
      const exists = await ctx.db
        .selectFrom('workspaces')
        .select(['id', 'deleted_at'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (!exists) fail(`no workspace ${id}`);
      // Its keys go with its secrets at the retention sweep: there is nothing to re-encrypt for.
      if (exists.deleted_at !== null) fail(`workspace ${id} is deleted: nothing to rotate`);
      const bar = progressBar(`re-encrypt ${id}`);
      const outcome = await withJobLock(ctx, `workspace-key:${id}`, () =>
        rotateWorkspaceKey(ctx, id, { progress: (d, t) => bar.update(d, t) }),
      ).catch((error: unknown) => {
        bar.stop();
        if (error instanceof CryptoError) fail(error.message);
        throw error;
      });
      bar.stop();
      if (!outcome.ran)
        fail(
          `workspace ${id}: another \`hush keys rotate-workspace\` is re-encrypting it; try again once it has finished`,
        );
      const r = outcome.value;
      printResult(`workspace ${id} → key version ${r.keyVersion}`, r);
    }
  } finally {
    await ctx.close();
  }
}

/**
 * Every audit chain there should be — the system's and each workspace's —
 * and any other that has a head or events (a chain whose head, or every
 * event, was removed is still one), with the workspaces that exist.
 */
async function auditChains(ctx: AppContext): Promise<{ all: Set<string>; workspaces: Set<string> }> {
  const workspaces = new Set((await ctx.db.selectFrom('workspaces').select('id').execute()).map((w) => w.id));
  const all = new Set([
    SYSTEM_CHAIN,
    ...workspaces,
    ...(await ctx.db.selectFrom('audit_heads').select('chain').execute()).map((h) => h.chain),
    ...(await ctx.db.selectFrom('audit_events').select('chain').distinct().execute()).map((e) => e.chain),
  ]);
  return { all, workspaces };
}

export async function auditVerify(options: { workspace?: string }): Promise<void> {
  const ctx = await openContext();
  try {
    const { all, workspaces } = await auditChains(ctx);
    if (options.workspace && !all.has(options.workspace)) fail(`no workspace ${options.workspace}`);
    const chains = options.workspace ? [options.workspace] : [...all].sort();
    let broken = 0;
    for (const chain of chains) {
      // A workspace's creation is its chain's first event: a workspace without any lost them all.
      const v = await verifyChain(ctx.db, chain, { mustExist: workspaces.has(chain) });
      const label = chain === SYSTEM_CHAIN ? 'system' : chain;
      if (v.ok) out(`ok      ${label}: ${v.checked} events`);
      else {
        broken += 1;
        out(`BROKEN  ${label}: first bad event ${v.brokenAt} (${v.reason}) after ${v.checked} good events`);
      }
    }
    process.exitCode = broken === 0 ? 0 : 1;
  } finally {
    await ctx.close();
  }
}

export async function auditExport(options: { format: string; since?: string; workspace?: string }): Promise<void> {
  if (options.format !== 'csv' && options.format !== 'jsonl') fail('--format must be csv or jsonl', 2);
  // In the stored form of `at`, or a text comparison would misplace the bound (auditTimeBound).
  const since = options.since === undefined ? undefined : auditTimeBound(options.since);
  if (options.since !== undefined && since === undefined) fail('--since must be a date or time, e.g. 2026-01-31', 2);
  const ctx = await openContext();
  try {
    // A mistyped id is an error, not an empty export.
    if (options.workspace && !(await auditChains(ctx)).all.has(options.workspace))
      fail(`no workspace ${options.workspace}`);
    if (options.format === 'csv') process.stdout.write(`chain,${CSV_COLUMNS.join(',')}\r\n`);
    let after: { chain: string; seq: number } = { chain: '', seq: 0 };
    for (;;) {
      // Streamed chain by chain in seq order, a page at a time: constant memory.
      const from = after;
      let q = ctx.db
        .selectFrom('audit_events')
        .leftJoin('users', 'users.id', 'audit_events.actor_id')
        .selectAll('audit_events')
        .select('users.email as actor_email')
        .where((eb) => eb(eb.refTuple('audit_events.chain', 'audit_events.seq'), '>', eb.tuple(from.chain, from.seq)))
        .orderBy('audit_events.chain')
        .orderBy('audit_events.seq')
        .limit(1000);
      if (options.workspace) q = q.where('audit_events.chain', '=', options.workspace);
      if (since) q = q.where('audit_events.at', '>=', since);
      const rows = await q.execute();
      for (const row of rows) {
        const event = presentAuditEvent(row);
        const line =
          options.format === 'csv'
            ? `${row.chain},${auditCsvLine(event)}`
            : `${JSON.stringify({ chain: row.chain, ...event })}\n`;
        if (!process.stdout.write(line)) await new Promise((resolve) => process.stdout.once('drain', resolve));
      }
      const last = rows.at(-1);
      if (!last) break;
      after = { chain: last.chain, seq: Number(last.seq) };
    }
  } finally {
    await ctx.close();
  }
}

/**
 * Why `file` must not be a backup's target, or undefined: a backup replaces
 * its target whole, so it may only be a regular file (or nothing yet) and
 * never the root key file or the database itself.
 */
function unsafeBackupTarget(file: string, config: ReturnType<typeof readConfigOrExit>): string | undefined {
  let target = path.resolve(file);
  try {
    const stat = lstatSync(target);
    if (!stat.isFile()) return `${file} exists and is not a regular file`;
    target = realpathSync(target);
  } catch {
    // Nothing there yet.
  }
  const protectedFiles: [string, string][] = [];
  if (config.masterKey.kind === 'file') protectedFiles.push([config.masterKey.path, 'the root key file']);
  if (config.database.kind === 'sqlite') {
    const db = config.database.file;
    for (const suffix of ['', '-wal', '-shm', '-journal']) protectedFiles.push([`${db}${suffix}`, 'the database']);
  }
  for (const [protectedFile, what] of protectedFiles) {
    let resolved = path.resolve(protectedFile);
    try {
      resolved = realpathSync(resolved);
    } catch {
      // Not created yet: compared by its path.
    }
    if (resolved === target) return `${file} is ${what}: a backup would replace it`;
  }
  return undefined;
}

export async function backup(file: string): Promise<void> {
  const unsafe = unsafeBackupTarget(file, readConfigOrExit());
  if (unsafe) fail(unsafe);
  const ctx = await openContext();
  try {
    const r = await createBackup(
      ctx,
      file,
      (table, rows) => process.stderr.isTTY && process.stderr.write(`  ${table}: ${rows}\n`),
    );
    const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
    out(`backup written to ${file}: ${total} rows, sha256 ${r.sha256} (ciphertext only; keep the root key separately)`);
  } catch (error) {
    if (error instanceof BackupError) fail(error.message);
    throw error;
  } finally {
    await ctx.close();
  }
}

export async function restore(file: string): Promise<void> {
  // Check the file and the root key before touching (or creating) anything.
  const config = readConfigOrExit();
  let header: Awaited<ReturnType<typeof verifyBackup>>['header'];
  try {
    ({ header } = await verifyBackup(file));
    // A newer Hush's backup is refused before a database is made for it.
    backupSchema(header, file);
  } catch (error) {
    if (error instanceof BackupError) fail(error.message);
    throw error;
  }
  if (config.masterKey.kind === 'file') {
    try {
      statSync(config.masterKey.path);
    } catch {
      fail(`no root key file at ${config.masterKey.path}: put the key file this backup was made with there first`);
    }
  }
  let keys: ReturnType<typeof parseEnvMasterKey>;
  try {
    keys =
      config.masterKey.kind === 'env'
        ? parseEnvMasterKey(config.masterKey.value)
        : openFileKeyProvider(config.masterKey.path).provider;
  } catch (error) {
    // The same one line serve gives for a key it cannot use; never a stack trace.
    if (error instanceof CryptoError) fail(error.message);
    const code = (error as { code?: string }).code;
    if (code && config.masterKey.kind === 'file')
      fail(`cannot read the root key file ${config.masterKey.path} (${code})`);
    throw error;
  }
  const missing = header.rootKeyIds.filter((id) => !keys.hasKey(id));
  if (missing.length > 0)
    fail(
      `the root key ${missing.join(', ')} that protects this backup is not loaded: restore with the key it was made with`,
    );
  const ctx = await openContext(config, { newDatabase: true });
  try {
    const r = await restoreBackup(ctx, file);
    const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
    out(`restored ${total} rows from ${file}`);
  } catch (error) {
    if (error instanceof BackupError) fail(error.message);
    // The database refused a row (a hand-edited file, another restore into the same database):
    // the restore's transaction wrote nothing. One line, no stack trace.
    if (error instanceof Error)
      fail(`${file} could not be restored, nothing was written: ${error.message.split('\n')[0]}`);
    throw error;
  } finally {
    await ctx.close();
  }
}
