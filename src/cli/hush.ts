#!/usr/bin/env node
/**
 * The `hush` command. `serve` is the default. Exit codes: 0 success; 1 the
 * command ran but failed or found a problem (a broken audit chain, a
 * rotation with failures, a refused restore); 2 invalid usage.
 */
import { createRequire } from 'node:module';
import { Command, CommanderError, Help } from 'commander';
import { fail } from './fail.js';

/** Hush's version, from its package.json (two levels up from src/cli and from dist/cli alike). */
function packageVersion(): string {
  try {
    return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
  } catch {
    return 'unknown (this copy has no package.json beside it)';
  }
}

type Commands = typeof import('./commands.js');

/**
 * An operator command, loaded when it runs: `serve` never needs them (backup,
 * restore, export and the progress bar stay out of a server's memory), and
 * `serve` is loaded only when it runs too (help and usage errors answer at once).
 */
function operator<Name extends keyof Commands>(name: Name) {
  return async (...args: Parameters<Commands[Name]>): Promise<void> => {
    const commands = await import('./commands.js');
    await (commands[name] as (...a: Parameters<Commands[Name]>) => Promise<void>)(...args);
  };
}

// `hush audit export | head` closes the pipe early: that is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const program = new Command()
  .name('hush')
  .description('Hush: workflows whose API blocks use secrets nobody can read back.')
  .version(packageVersion(), '-V, --version', 'print the version of Hush')
  .showHelpAfterError()
  .exitOverride()
  // `serve [unknown...]` catches unknown command words (serve is the default): listed as plain `serve`.
  .configureHelp({
    subcommandTerm: (cmd) => (cmd.name() === 'serve' ? 'serve' : new Help().subcommandTerm(cmd)),
  });

program
  .command('serve', { isDefault: true })
  .description('Serve the API and UI (the default)')
  .argument('[unknown...]')
  .action(async (unknown: string[]) => {
    // `serve` is the default, so an unknown command word lands here.
    if (unknown.length > 0) fail(`unknown command '${unknown[0]}' (see hush --help)`, 2);
    await (await import('./serve.js')).serve();
  });
program
  .command('doctor')
  .description('Check configuration, key file, database, migrations and outbound rules; print what to fix')
  .action(operator('doctor'));

const keys = program.command('keys').description('Rotate encryption keys, online');
keys
  .command('rotate-root')
  .description('Add a new active root key (key file) and rewrap every workspace key under it; old keys are kept')
  .option(
    '--no-new-key',
    'only rewrap under the current active root key (resume a rotation; required with HUSH_MASTER_KEY)',
  )
  .action(operator('rotateRoot'));
keys
  .command('retire-root')
  .description('Rewrap anything left under old root keys, then remove root keys nothing uses')
  .action(operator('retireRoot'));
keys
  .command('rotate-workspace')
  .argument('[workspace]', 'workspace id')
  .option('--all', 'every workspace')
  .description('New workspace key version; re-encrypt every secret version in batches (resumable)')
  .action(operator('rotateWorkspace'));

const audit = program.command('audit').description('The hash-chained audit trail');
audit
  .command('verify')
  .option('--workspace <id>', 'one workspace only')
  .description('Walk every hash chain; name the first broken event')
  .action(operator('auditVerify'));
audit
  .command('export')
  .option('--format <format>', 'csv or jsonl', 'jsonl')
  .option('--since <time>', 'events at or after this time')
  .option('--workspace <id>', 'one workspace only')
  .description('Stream audit events to stdout (constant memory)')
  .action(operator('auditExport'));

program
  .command('backup')
  .argument('<file>', 'where to write')
  .description('Consistent snapshot of the database (ciphertext only), with manifest and checksum')
  .action(operator('backup'));
program
  .command('restore')
  .argument('<file>', 'backup file')
  .description('Restore a backup into an empty database; refuses a damaged file or a wrong root key')
  .action(operator('restore'));

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  throw error;
}
