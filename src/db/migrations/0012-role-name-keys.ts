/**
 * Role names unique by how they read, not only by case: `roles.name_key`
 * (NFKC, lower case, a few dotless and variant Latin letters folded — see
 * modules/roles/role-names.ts) with a unique index per workspace, so "Ops"
 * and "Ｏｐｓ" cannot both exist, concurrent creates included.
 *
 * Such pairs may already exist. As in 0005, every role is kept with its id:
 * the oldest of a group (created_at, then id) keeps its name, each later one
 * becomes "<name> 2", "<name> 3", … — the first whose key no role of the
 * workspace has — within the API's 64 characters. A role that reads as a
 * system role ("Ｏｗｎｅｒ") or mixes Latin, Greek and Cyrillic letters
 * ("Оwner") becomes "<name> custom" first. A new name must also be free by
 * the database's own `lower()` (the older unique index): PostgreSQL lowers
 * some letters unlike JavaScript ("İ"). The key and script functions are
 * copied here as they stood when this migration was written: a migration
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

/** The system roles' names, as this migration knew them. */
const SYSTEM_KEYS = new Set(['owner', 'admin', 'editor', 'manager', 'operator', 'viewer']);
const CONFUSABLE_SCRIPTS = [/\p{Script=Latin}/u, /\p{Script=Greek}/u, /\p{Script=Cyrillic}/u];
const mixesScripts = (name: string) =>
  CONFUSABLE_SCRIPTS.filter((script) => script.test(name.normalize('NFKC'))).length > 1;
const withSuffix = (name: string, suffix: string) =>
  `${name.slice(0, MAX_ROLE_NAME - suffix.length).trimEnd()}${suffix}`;

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
    const all = keys.all;
    /** A new name no role of the workspace has, by this key or by the database's lower(). */
    const free = async (candidate: string) =>
      !all.has(keyOf(candidate)) &&
      (
        await sql`select 1 from roles where workspace_id = ${role.workspace_id} and lower(name) = lower(${candidate})`.execute(
          db,
        )
      ).rows.length === 0;
    const imitates = SYSTEM_KEYS.has(keyOf(role.name)) || mixesScripts(role.name);
    const base = imitates ? withSuffix(role.name, ' custom') : role.name;
    let name = base;
    if (imitates ? keys.assigned.has(keyOf(base)) || !(await free(base)) : keys.assigned.has(keyOf(base))) {
      for (let n = 2; ; n++) {
        const candidate = withSuffix(base, ` ${n}`);
        if (await free(candidate)) {
          name = candidate;
          break;
        }
      }
    }
    const key = keyOf(name);
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
