/**
 * Role names unique by how they read, not only by case: `roles.name_key`
 * (NFKC, lower case, a few dotless and variant Latin letters folded — see
 * modules/roles/role-names.ts) with a unique index per workspace, so "Ops"
 * and "Ｏｐｓ" cannot both exist, concurrent creates included.
 *
 * Such pairs may already exist. As in 0005, every role is kept with its id:
 * the oldest of a group (created_at, then id) keeps its name, each later one
 * becomes "<name> 2", "<name> 3", … — the first whose key no role of the
 * workspace has — within the API's 64 characters. The key function is
 * copied here as it stood when this migration was written: a migration
 * gives the same result whatever the app's later rules.
 */
import { type Kysely, sql } from 'kysely';

const MAX_ROLE_NAME = 64;
const LOOKALIKES: Readonly<Record<string, string>> = { ı: 'i', ȷ: 'j', ɑ: 'a', ɡ: 'g', ʟ: 'l', ɪ: 'i' };

function keyOf(name: string): string {
  const folded = name.normalize('NFKC').toLowerCase().normalize('NFKC');
  let key = '';
  for (const c of folded) key += LOOKALIKES[c] ?? c;
  return key;
}

interface RoleRow {
  id: string;
  workspace_id: string;
  name: string;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('roles').addColumn('name_key', 'text').execute();
  const roles =
    await sql<RoleRow>`select id, workspace_id, name from roles order by workspace_id, created_at, id`.execute(db);
  // Per workspace: every key any role has now or was given here, and the keys already assigned.
  const seen = new Map<string, { all: Set<string>; assigned: Set<string> }>();
  for (const role of roles.rows) {
    let keys = seen.get(role.workspace_id);
    if (!keys) {
      const names = roles.rows.filter((r) => r.workspace_id === role.workspace_id).map((r) => keyOf(r.name));
      keys = { all: new Set(names), assigned: new Set() };
      seen.set(role.workspace_id, keys);
    }
    let name = role.name;
    let key = keyOf(name);
    for (let n = 2; keys.assigned.has(key); n++) {
      const suffix = ` ${n}`;
      const candidate = `${role.name.slice(0, MAX_ROLE_NAME - suffix.length).trimEnd()}${suffix}`;
      if (keys.all.has(keyOf(candidate))) continue;
      name = candidate;
      key = keyOf(candidate);
    }
    keys.assigned.add(key);
    keys.all.add(key);
    await sql`update roles set name = ${name}, name_key = ${key} where id = ${role.id}`.execute(db);
  }
  await sql`create unique index roles_workspace_name_key_uq on roles (workspace_id, name_key)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index roles_workspace_name_key_uq`.execute(db);
  await db.schema.alterTable('roles').dropColumn('name_key').execute();
}
