/**
 * The key file provider for a long-running server: it notices when the file
 * changes (`hush keys rotate-root` adds a key and makes it active) and
 * reloads it, so a running server wraps new workspace keys under the new
 * root key and can still unwrap under every key the file holds. Only the
 * first open creates a missing file (a brand-new install).
 */
import { statSync } from 'node:fs';
import { openFileKeyProvider, type RootKeyProvider, readFileKeyProvider, type WrappedKey } from './root-keys.js';

export function openReloadingFileKeyProvider(file: string): { provider: RootKeyProvider; created: boolean } {
  const first = openFileKeyProvider(file);
  let current = first.provider;
  let stamp = fileStamp(file);

  const fresh = (): RootKeyProvider => {
    const now = fileStamp(file);
    if (now !== stamp) {
      // A half-written file cannot be seen (rotation renames a complete one
      // into place); if reading still fails, keep the keys we have. A file
      // gone missing (moved away while being copied or restored) is never
      // made anew here: a new file would hold one new key and none of those
      // the data is wrapped under, and the next write would be wrapped under
      // a key the operator's file never held.
      try {
        const next = readFileKeyProvider(file);
        if (next !== undefined) {
          current = next;
          stamp = now;
        }
      } catch {
        // keep `current`
      }
    }
    return current;
  };

  const provider: RootKeyProvider = {
    kind: first.provider.kind,
    activeKeyId: () => fresh().activeKeyId(),
    keyIds: () => fresh().keyIds(),
    hasKey: (id) => fresh().hasKey(id),
    wrapKey: (plain: Buffer, aad: Buffer) => fresh().wrapKey(plain, aad),
    unwrapKey: (wrapped: WrappedKey, aad: Buffer) => fresh().unwrapKey(wrapped, aad),
  };
  return { provider, created: first.created };
}

function fileStamp(file: string): string {
  try {
    const s = statSync(file);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch {
    return 'missing';
  }
}
