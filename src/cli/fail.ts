/** Ends a `hush` command with one line on stderr (exit 1: failed; 2: invalid usage). */
export function fail(message: string, code = 1): never {
  process.stderr.write(`hush: ${message}\n`);
  process.exit(code);
}
