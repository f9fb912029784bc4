/**
 * Cleanups that must run even when the benchmark is interrupted (a temporary
 * PostgreSQL database, a temp dir). `run.ts` calls runCleanups() on exit and
 * on SIGINT/SIGTERM.
 */
type Cleanup = () => Promise<void> | void;

const pending = new Set<Cleanup>();

/** Registers a cleanup; returns a function that runs it once and unregisters it. */
export function registerCleanup(cleanup: Cleanup): () => Promise<void> {
  pending.add(cleanup);
  return async () => {
    if (!pending.delete(cleanup)) return;
    await cleanup();
  };
}

export async function runCleanups(): Promise<void> {
  const all = [...pending].reverse();
  pending.clear();
  for (const cleanup of all) {
    try {
      await cleanup();
    } catch (error) {
      process.stderr.write(`[bench] cleanup failed: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
}
