/** What every `hush` command except `serve` needs: config, logger to stderr, and the app context. */

import pino from 'pino';
import { createAppContext, StartupError } from '../app/bootstrap.js';
import { type Config, ConfigError, loadConfig, loadDotEnv } from '../app/config.js';
import type { AppContext } from '../app/context.js';
import { createLogger } from '../app/logger.js';

/** Prints one line to stderr and exits with `code`. */
export function fail(message: string, code = 1): never {
  process.stderr.write(`hush: ${message}\n`);
  process.exit(code);
}

export function readConfigOrExit(): Config {
  try {
    loadDotEnv();
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(`invalid configuration: ${error.message}`);
    throw error;
  }
}

/** Opens Hush (database migrated, keys loaded) for a command, or exits with one line. */
export async function openContext(config = readConfigOrExit()): Promise<AppContext & { close(): Promise<void> }> {
  // Commands log warnings only, to stderr, so stdout stays clean for data.
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, pino.destination(2));
  try {
    return await createAppContext(config, log);
  } catch (error) {
    if (error instanceof StartupError) fail(error.message);
    throw error;
  }
}
