/**
 * The ONLY way a secret leaves the server. Its input type is the metadata
 * row, which has no value field, and it builds the output field by field —
 * it cannot emit a value because it never has one. The reveal response is
 * the single exception and is built in the reveal route, not here.
 */
import type { z } from 'zod';
import type { SecretsTable } from '../../db/schema.js';
import { secretSchema } from './secret-schemas.js';

export { secretSchema };

/** Secret metadata as read from the `secrets` table: never a value or ciphertext. */
export type SecretMetadata = SecretsTable;

export type SecretView = z.infer<typeof secretSchema>;

export function presentSecret(row: SecretMetadata, retentionDays: number): SecretView {
  return {
    id: row.id,
    name: row.name,
    visibility: row.visibility,
    description: row.description,
    allowedHosts: JSON.parse(row.allowed_hosts) as string[],
    hostsPinnedAt: row.hosts_pinned_at,
    version: Number(row.version),
    revision: Number(row.revision),
    createdAt: row.created_at,
    createdBy: row.created_by,
    updatedAt: row.updated_at,
    updatedBy: row.updated_by,
    lastUsedAt: row.last_used_at,
    deletedAt: row.deleted_at,
    purgeAt: row.deleted_at ? new Date(Date.parse(row.deleted_at) + retentionDays * 86_400_000).toISOString() : null,
  };
}
