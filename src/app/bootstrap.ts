/**
 * Start-up: opens the database and runs migrations, loads the root keys,
 * and builds the AppContext every module receives. Each step fails with one
 * clear message.
 */
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { openReloadingFileKeyProvider } from '../crypto/reloading-key-provider.js';
import { keyFilePermissionsTooOpen, parseEnvMasterKey, type RootKeyProvider } from '../crypto/root-keys.js';
import {
  type Db,
  isDatabaseUnavailable,
  migrateToLatest,
  migrationsFromNewerHush,
  openDatabase,
} from '../db/database.js';
import { createAuditWriter } from '../modules/audit/audit-log.js';
import { createAuditQueue } from '../modules/audit/audit-queue.js';
import { createWorkspaceCache } from '../modules/workspaces/workspace-cache.js';
import { createWorkspaceKeyring } from '../modules/workspaces/workspace-keyring.js';
import { createOutboundClient } from '../runtime/outbound.js';
import type { Config } from './config.js';
import type { AppContext } from './context.js';
import { CryptoError } from './errors.js';
import { createPasswordHasher } from './passwords.js';

export class StartupError extends Error {
  override name = 'StartupError';
}

export function loadRootKeys(config: Config, log: Logger): RootKeyProvider {
  if (config.masterKey.kind === 'env') return parseEnvMasterKey(config.masterKey.value);
  const { provider, created } = openReloadingFileKeyProvider(config.masterKey.path);
  if (created) {
    log.warn(
      { file: config.masterKey.path },
      'created a new root key file: back it up now and keep it apart from database backups — without it no secret can ever be decrypted',
    );
  } else if (keyFilePermissionsTooOpen(config.masterKey.path)) {
    log.warn({ file: config.masterKey.path }, 'the root key file is readable by group or others: chmod 600 it');
  }
  return provider;
}

function loadRootKeysOrRefuse(config: Config, log: Logger): RootKeyProvider {
  try {
    return loadRootKeys(config, log);
  } catch (error) {
    if (error instanceof CryptoError) throw new StartupError(error.message);
    // The key file or its directory cannot be made or read (permissions, a read-only disk…).
    const code = (error as { code?: string }).code;
    if (code && config.masterKey.kind === 'file')
      throw new StartupError(`cannot create or read the root key file ${config.masterKey.path} (${code})`);
    throw error;
  }
}

/** The root keys the database's workspace keys are wrapped by (none on a brand-new install). */
async function wrappingRootKeys(db: Db): Promise<string[]> {
  const rows = await db.selectFrom('workspace_keys').select('root_key_id').distinct().execute();
  return rows.map((r) => r.root_key_id);
}

/**
 * Makes the root key file of a brand-new install — refused when the database
 * already holds workspace keys: a new key would open none of them.
 */
async function createKeyFileForNewInstall(db: Db, config: Config, log: Logger): Promise<RootKeyProvider> {
  const wrapped = await wrappingRootKeys(db);
  if (wrapped.length > 0 && config.masterKey.kind === 'file')
    throw new StartupError(
      `no root key file at ${config.masterKey.path}, but the database holds workspace keys wrapped by ${wrapped.join(', ')}: restore the key file from your key backup (a new key would open none of them; one is made only on a brand-new install)`,
    );
  return loadRootKeysOrRefuse(config, log);
}

/**
 * Why a server must not start with `rootKeys`, or undefined: the database
 * holds workspace keys and not one of them is wrapped by a loaded root key
 * (another installation's key file, a mistyped HUSH_MASTER_KEY). Such a
 * server could open no secret, and would wrap the workspace keys it creates
 * under a key the installation does not keep. Some keys under a key not
 * loaded is not refused (`hush doctor` names them; the rest still work).
 */
export async function rootKeysOpenNothing(
  db: Db,
  rootKeys: Pick<RootKeyProvider, 'hasKey' | 'keyIds'>,
): Promise<string | undefined> {
  const wrapped = await wrappingRootKeys(db);
  if (wrapped.length === 0 || wrapped.some((id) => rootKeys.hasKey(id))) return undefined;
  return `the loaded root keys (${rootKeys.keyIds().join(', ')}) open none of the database's workspace keys (wrapped by ${wrapped.join(', ')}): start with the key file or HUSH_MASTER_KEY they were made with`;
}

export async function createAppContext(config: Config, log: Logger): Promise<AppContext & { close(): Promise<void> }> {
  // A missing key file is made only for a brand-new install, so only once the database has been
  // looked at (below): a node started without its copy of the file, a volume not mounted, a
  // database restored without its key got a new key that opened none of the stored workspace
  // keys — every reveal and run there failed, and what it wrapped next was lost with that file.
  const newKeyFile = config.masterKey.kind === 'file' && !existsSync(config.masterKey.path);
  const existingKeys = newKeyFile ? undefined : loadRootKeysOrRefuse(config, log);
  const database = openDatabase(config.database, {
    checkpoints: {
      onError: (error) =>
        log.warn({ err: error }, 'WAL checkpoints stay in the server process: the checkpoint helper process failed'),
    },
  });
  // PostgreSQL: migrations run on a connection of their own, without the serving pool's
  // statement timeout (an index built on a large table, another server's migration waited for).
  const untimed =
    config.database.kind === 'postgres' && config.database.timeoutMs
      ? openDatabase({ ...config.database, timeoutMs: 0 }, { poolSize: 1 })
      : undefined;
  const outcome = await migrateToLatest((untimed ?? database).db)
    .catch((error: unknown) => ({ applied: [], error }))
    .finally(() => untimed?.close());
  if (outcome.error !== undefined) {
    // Going back to an older Hush is not a migration (Kysely calls it "corrupted migrations").
    // A database that cannot be reached is not asked again (a second wait for nothing).
    const newer = isDatabaseUnavailable(outcome.error) ? [] : await migrationsFromNewerHush(database.db);
    await database.close();
    if (newer.length > 0)
      throw new StartupError(
        `database ${database.kind} was migrated by a newer Hush (${newer.join(', ')}): this version cannot use it — run that version or a newer one (to go back, restore a backup taken before the upgrade into an empty database)`,
      );
    const reason = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    // Not reached at all: no migration was tried, and "migration failed" sent operators looking at the schema.
    if (isDatabaseUnavailable(outcome.error))
      throw new StartupError(
        `database ${database.kind} is not reachable (${reason}): check HUSH_DATABASE_URL and that the database runs`,
      );
    // Reached, but refused before any migration: said as what to fix, not as a failed migration.
    const code = (outcome.error as { code?: unknown } | null)?.code;
    if (code === '3D000')
      throw new StartupError(
        `database ${database.kind}: ${reason}: create it first (createdb), or fix the name in HUSH_DATABASE_URL`,
      );
    if (code === '28P01' || code === '28000')
      throw new StartupError(`database ${database.kind}: ${reason}: check the user and password in HUSH_DATABASE_URL`);
    throw new StartupError(`database ${database.kind}: migration failed: ${reason}`);
  }
  if (outcome.applied.length > 0) log.info({ migrations: outcome.applied }, 'database migrated');
  let rootKeys: RootKeyProvider;
  try {
    rootKeys = existingKeys ?? (await createKeyFileForNewInstall(database.db, config, log));
  } catch (error) {
    await database.close();
    throw error;
  }
  const outbound = createOutboundClient({
    allow: config.outboundAllow.blockList,
    secretsOverHttp: config.secretsOverHttp,
  });
  // Fail fast on rate-limit storage trouble rather than retrying requests behind it.
  // Auto-pipelining: counts asked for together go to Redis in one write (each
  // still its own atomic script call; those asked for while a pipeline's replies
  // are awaited go in the next one) — a socket write is the dearest part of a
  // reveal's rate-limit check.
  // ioredis is loaded only when Redis is configured (an embedded server never needs it).
  const redis = config.redisUrl
    ? new (await import('ioredis')).Redis(config.redisUrl, {
        connectTimeout: 1000,
        // A Redis that holds the connection but stops answering: the command fails (503), never hangs.
        commandTimeout: 1000,
        maxRetriesPerRequest: 1,
        lazyConnect: true,
        enableAutoPipelining: true,
      })
    : undefined;
  if (redis) {
    redis.on('error', () => {});
    try {
      await redis.connect();
    } catch {
      redis.disconnect();
      await outbound.close();
      await database.close();
      throw new StartupError('HUSH_REDIS_URL: Redis is not reachable');
    }
  }
  const audit = createAuditWriter(database.kind);
  const keyring = createWorkspaceKeyring(database.db, database.kind, rootKeys);
  return {
    config,
    db: database.db,
    dbKind: database.kind,
    rootKeys,
    keyring,
    cache: createWorkspaceCache(database.db),
    audit,
    auditQueue: createAuditQueue({ db: database.db, kind: database.kind, audit }),
    passwords: createPasswordHasher(),
    outbound,
    redis,
    log,
    close: async () => {
      keyring.close();
      redis?.disconnect();
      await outbound.close();
      await database.close();
    },
  };
}
