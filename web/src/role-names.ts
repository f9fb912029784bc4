/**
 * Role names as the UI shows them: a system role by its name in SPEC §2
 * ("Owner", "Admin", …) — the API's values stay the ids `owner`, `admin`, … —
 * and a custom role as its creator named it.
 */
import { isSystemRole, type SystemRole } from '../../src/policy/permissions';

const SYSTEM_ROLE_NAMES: Readonly<Record<SystemRole, string>> = {
  owner: 'Owner',
  admin: 'Admin',
  editor: 'Editor',
  manager: 'Manager',
  operator: 'Operator',
  viewer: 'Viewer',
};

/** The name to show for the role `id`: `name` is the API's name for it (a custom role's own). */
export function roleDisplayName(id: string, name: string = id): string {
  return isSystemRole(id) ? SYSTEM_ROLE_NAMES[id] : name;
}
