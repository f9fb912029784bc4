/**
 * The CLI as users run it (`npm start`: `node dist/cli/hush.js`): src/
 * compiled with tsconfig.build.json into dist/ (next to the UI that
 * `pretest` builds into dist/web), again whenever src/ changed since. A
 * process started through tsx's loader instead spent about a second more
 * starting, and the CLI tests start a few hundred.
 *
 * Vitest's global setup compiles once before any test file runs, so that
 * test files running side by side never compile at the same time; a file run
 * alone (an IDE, `vitest run <file>`) compiles here on first use.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The repository's root (re-exported by cli.ts). */
export const ROOT = path.resolve(import.meta.dirname, '../..');

/** The newest modification time among `dir`'s files, and how many there are. */
function newestFile(dir: string): { mtimeMs: number; count: number } {
  let mtimeMs = 0;
  let count = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    count += 1;
    mtimeMs = Math.max(mtimeMs, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return { mtimeMs, count };
}

/** dist/cli/hush.js, compiled from the current src/ (compiling first when src/ changed). */
export function compiledCli(): string {
  const entry = path.join(ROOT, 'dist/cli/hush.js');
  const stampFile = path.join(ROOT, 'dist/.compiled-from-src');
  const newest = newestFile(path.join(ROOT, 'src'));
  const config = statSync(path.join(ROOT, 'tsconfig.build.json')).mtimeMs;
  const stamp = `${newest.mtimeMs} ${newest.count} ${config}`;
  const built = existsSync(stampFile) && existsSync(entry) ? readFileSync(stampFile, 'utf8') : '';
  if (built !== stamp) {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    writeFileSync(stampFile, stamp);
  }
  return entry;
}

/** Vitest global setup: compile once, before the workers start. */
export default function setup(): void {
  compiledCli();
}
