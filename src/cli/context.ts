/** What every `hush` command except `serve` needs: config, logger to stderr, and the app context. */

import { existsSync } from 'node:fs';
import pino from 'pino';
import { createAppContext, StartupError } from '../app/bootstrap.js';
import { type Config, ConfigError, loadConfig, loadDotEnv } from '../app/config.js';
import type { AppContext } from '../app/context.js';
import { createLogger } from '../app/logger.js';
import { fail } from './fail.js';

/** The configuration (.env first), or exit 1 with one line naming the bad variable. */
export function readConfigOrExit(): Config {
  try {
    loadDotEnv();
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(`invalid configuration: ${error.message}`);
    throw error;
  }
}

/**
 * What a command other than `serve` refuses to make: a root key file (a new
 * one would wrap new workspace keys under a key no backup holds), and — but
 * for `restore`, which fills a new one — a SQLite database (a mistyped
 * HUSH_DATA_DIR would give an empty backup, exit 0).
 */
function refuseToCreate(config: Config, options: { newDatabase?: boolean }): void {
  if (config.masterKey.kind === 'file' && !existsSync(config.masterKey.path)) {
    fail(
      `no root key file at ${config.masterKey.path}: restore it from your key backup, or point HUSH_DATA_DIR / HUSH_MASTER_KEY_FILE at your installation (\`hush serve\` creates one on a brand-new install)`,
    );
  }
  if (!options.newDatabase && config.database.kind === 'sqlite' && !existsSync(config.database.file)) {
    fail(
      `no database at ${config.database.file}: point HUSH_DATA_DIR at your installation (\`hush serve\` creates one on a brand-new install)`,
    );
  }
}

/** Opens Hush (database migrated, keys loaded) for a command, or exits with one line. */
export async function openContext(
  config = readConfigOrExit(),
  options: { newDatabase?: boolean } = {},
): Promise<AppContext & { close(): Promise<void> }> {
  refuseToCreate(config, options);
  // Commands log warnings only, to stderr, so stdout stays clean for data.
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, pino.destination(2));
  try {
    // Redis counts the servers' login and reveal limits, which no command uses: a backup or a
    // rotation must not wait on it (it refused to run while Redis was down).
    // Nor is a command's statement bounded by the server's HUSH_DATABASE_TIMEOUT_SECONDS: a
    // backup, a rotation or a restore may run statements far longer (the operator watches it).
    const database = config.database.kind === 'postgres' ? { ...config.database, timeoutMs: 0 } : config.database;
    return await createAppContext({ ...config, redisUrl: undefined, database }, log);
  } catch (error) {
    if (error instanceof StartupError) fail(error.message);
    throw error;
  }
}
