/**
 * The one name space of a workspace shared by custom variables and secrets
 * (SPEC §1). Names are unique regardless of case, so `API_KEY` and `api_key`
 * can never both exist and be confused in a template.
 */
import type { Transaction } from 'kysely';
import { z } from 'zod';
import { ConflictError } from '../../app/errors.js';
import { isUniqueViolation } from '../../db/database.js';
import type { Database } from '../../db/schema.js';

export const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export const variableNameSchema = z
  .string()
  .regex(VARIABLE_NAME, 'must start with a letter or "_", then letters, digits or "_", at most 64 characters')
  // Variables become keys of JSON objects (run records, captures), where this one would be the prototype.
  .refine((name) => name !== '__proto__', 'is reserved ("__proto__" cannot be a key of a record)');

/** Matches the protected secret syntax anywhere, with any spacing or case. */
export const SECRET_REFERENCE = /\{\{\s*secret\s*:/i;

export function nameTaken(name: string): ConflictError {
  return new ConflictError(
    'name_taken',
    `The name "${name}" is already used by a variable or secret in this workspace.`,
  );
}

/**
 * Claims `name` for an owner inside `trx`. On PostgreSQL a failed insert
 * aborts the transaction, so the existence check runs first and the unique
 * key still settles races.
 */
export async function claimName(
  trx: Transaction<Database>,
  workspaceId: string,
  name: string,
  owner: { kind: 'variable' | 'secret'; id: string },
): Promise<void> {
  const nameLower = name.toLowerCase();
  const existing = await trx
    .selectFrom('variable_names')
    .leftJoin('secrets', (join) =>
      join.onRef('secrets.id', '=', 'variable_names.owner_id').on('variable_names.owner_kind', '=', 'secret'),
    )
    .select(['variable_names.owner_id', 'secrets.deleted_at'])
    .where('variable_names.workspace_id', '=', workspaceId)
    .where('variable_names.name_lower', '=', nameLower)
    .executeTakeFirst();
  if (existing?.deleted_at) {
    // Same code, but the one thing the user can do about it.
    throw new ConflictError(
      'name_taken',
      `The name "${name}" is held by a deleted secret until it is purged: restore it, or purge it to free the name.`,
    );
  }
  if (existing) throw nameTaken(name);
  try {
    await trx
      .insertInto('variable_names')
      .values({ workspace_id: workspaceId, name_lower: nameLower, owner_kind: owner.kind, owner_id: owner.id })
      .execute();
  } catch (error) {
    if (isUniqueViolation(error)) throw nameTaken(name);
    throw error;
  }
}

export async function releaseName(trx: Transaction<Database>, workspaceId: string, name: string): Promise<void> {
  await trx
    .deleteFrom('variable_names')
    .where('workspace_id', '=', workspaceId)
    .where('name_lower', '=', name.toLowerCase())
    .execute();
}
