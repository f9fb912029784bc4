/**
 * Role names unique per workspace regardless of case, in the database itself:
 * a unique index on (workspace_id, lower(name)). The service checked this
 * before inserting, which two concurrent creates ("Ops", "OPS") both passed.
 *
 * Such duplicates may already exist. They are kept, renamed: in each group of
 * names equal in `lower()`, the oldest role (created_at, then id) keeps its
 * name and each later one becomes "<name> 2", "<name> 3", … — the first
 * number whose name no role of the workspace holds, the name cut so the
 * whole stays within the API's 64 characters (letters, digits, spaces, `_`,
 * `.`, `-`: a renamed role can be saved back as it is) — so the index can be
 * built on any data and the same data always gives the same names. Role ids
 * do not change, so members and invitations keep their roles. No audit event
 * is written: migrations run before the audit writer exists.
 */
import { type Kysely, sql } from 'kysely';

/** The API's limit on a role name (role-router.ts). */
const MAX_ROLE_NAME = 64;

interface DuplicateRole {
  id: string;
  workspace_id: string;
  name: string;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  // Every role but the oldest of its (workspace, lower(name)) group, oldest first.
  const later = await sql<DuplicateRole>`
    select r.id, r.workspace_id, r.name
    from roles r
    where exists (
      select 1 from roles o
      where o.workspace_id = r.workspace_id
        and lower(o.name) = lower(r.name)
        and (o.created_at < r.created_at or (o.created_at = r.created_at and o.id < r.id))
    )
    order by r.workspace_id, r.created_at, r.id
  `.execute(db);
  for (const role of later.rows) {
    for (let n = 2; ; n++) {
      const suffix = ` ${n}`;
      const candidate = `${role.name.slice(0, MAX_ROLE_NAME - suffix.length).trimEnd()}${suffix}`;
      const taken = await sql`
        select 1 from roles where workspace_id = ${role.workspace_id} and lower(name) = lower(${candidate})
      `.execute(db);
      if (taken.rows.length > 0) continue;
      await sql`update roles set name = ${candidate} where id = ${role.id}`.execute(db);
      break;
    }
  }
  await sql`create unique index roles_workspace_name_lower_uq on roles (workspace_id, lower(name))`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index roles_workspace_name_lower_uq`.execute(db);
}
