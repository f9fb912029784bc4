/** `hush serve`: start the API (and later the UI) on the configured port. */

import { createAppContext, rootKeysOpenNothing, StartupError } from '../app/bootstrap.js';
import { createLogger } from '../app/logger.js';
import { buildServer } from '../app/server.js';
import { prepareSetup } from '../modules/auth/auth-service.js';
import { startSecretRetentionSweep } from '../modules/secrets/secret-service.js';
import { readConfigOrExit } from './context.js';
import { fail } from './fail.js';
import { collectWhenIdle } from './idle-gc.js';

export async function serve(): Promise<void> {
  const config = readConfigOrExit();
  const log = createLogger(config.logLevel);
  let ctx: Awaited<ReturnType<typeof createAppContext>>;
  try {
    ctx = await createAppContext(config, log);
  } catch (error) {
    if (error instanceof StartupError) fail(error.message);
    throw error;
  }
  const wrongKeys = await rootKeysOpenNothing(ctx.db, ctx.rootKeys);
  if (wrongKeys) {
    await ctx.close();
    fail(wrongKeys);
  }
  const app = await buildServer(ctx);
  const idle = collectWhenIdle(app);
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    const code = (error as { code?: string }).code;
    await ctx.close();
    fail(
      code === 'EADDRINUSE'
        ? `HUSH_PORT: ${config.port} is already in use on ${config.host}`
        : code === 'EADDRNOTAVAIL'
          ? `HUSH_HOST: ${config.host} is not an address of this machine`
          : code === 'EACCES'
            ? `HUSH_PORT: ${config.port} needs privileges this process does not have (use a port above 1023)`
            : `cannot listen on ${config.host}:${config.port}: ${code ?? 'unknown error'}`,
    );
  }
  // HUSH_PORT=0 listens on a port the system picks: the URLs Hush prints and sends (setup,
  // invitations) name that port, not 0, unless HUSH_PUBLIC_URL says otherwise.
  const address = app.server.address();
  if (config.port === 0 && config.publicUrl.endsWith(':0') && typeof address === 'object' && address)
    config.publicUrl = `${config.publicUrl.slice(0, -1)}${address.port}`;
  const stopSweep = startSecretRetentionSweep(ctx);
  const setup = await prepareSetup(ctx);
  if (setup?.token === 'generated') {
    // Printed to the terminal on purpose, once per start, while setup is pending.
    process.stdout.write(`\nHush is not set up yet. Open this URL to create the first owner:\n\n  ${setup.url}\n\n`);
  } else if (setup) {
    // The operator chose the token (HUSH_SETUP_TOKEN) to keep it out of this output: it is not repeated here.
    process.stdout.write(
      `\nHush is not set up yet. Open this URL to create the first owner, and enter the setup token set in HUSH_SETUP_TOKEN:\n\n  ${setup.url}\n\n`,
    );
  }
  // Start-up's garbage (migrations, route schemas, the OpenAPI document) goes now, not at the first busy moment.
  setImmediate(() => idle.collect());
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    stopSweep();
    idle.stop();
    await app.close();
    await ctx.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}
