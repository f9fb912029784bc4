import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    // Most test files wait on child processes, databases and a browser: two
    // run side by side even on a 2-core machine (Vitest's default there is one).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // Compiles the CLI once before the files run (test/support/compile-cli.ts).
    globalSetup: ['./test/support/compile-cli.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
