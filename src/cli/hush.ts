#!/usr/bin/env node
/** The `hush` command. `serve` is the default. */
import { Command } from 'commander';
import { serve } from './serve.js';

const program = new Command()
  .name('hush')
  .description('Hush: workflows whose API blocks use secrets nobody can read back.')
  .showHelpAfterError();

program.command('serve', { isDefault: true }).description('Serve the API and UI (the default)').action(serve);

await program.parseAsync(process.argv);
