/**
 * Roles and permissions (SPEC §2) as data. This table is the single source of
 * truth: the policy check, the roles API and the permission-matrix tests are
 * all derived from it.
 */

export const PERMISSIONS = [
  'workspace.manage',
  'members.manage_owners',
  'members.manage',
  'members.read',
  'roles.manage',
  'variables.read',
  'variables.manage',
  'secrets.read',
  'secrets.reveal',
  'secrets.use',
  'secrets.manage',
  'workflows.read',
  'workflows.edit',
  'workflows.run',
  'audit.read',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export const SYSTEM_ROLES = ['owner', 'admin', 'editor', 'manager', 'operator', 'viewer'] as const;
export type SystemRole = (typeof SYSTEM_ROLES)[number];

/** Permissions no custom role may ever hold. */
export const NEVER_GRANTABLE_TO_CUSTOM_ROLES: readonly Permission[] = ['secrets.manage', 'members.manage_owners'];

const P = (...list: Permission[]) => new Set<Permission>(list);

/** SPEC §2, row by row. */
export const SYSTEM_ROLE_PERMISSIONS: Readonly<Record<SystemRole, ReadonlySet<Permission>>> = {
  owner: P(...PERMISSIONS),
  admin: P(
    'members.manage',
    'members.read',
    'roles.manage',
    'variables.read',
    'variables.manage',
    'secrets.read',
    'secrets.reveal',
    'secrets.use',
    'secrets.manage',
    'workflows.read',
    'workflows.edit',
    'workflows.run',
    'audit.read',
  ),
  editor: P(
    'members.read',
    'variables.read',
    'variables.manage',
    'secrets.read',
    'secrets.reveal',
    'secrets.use',
    'workflows.read',
    'workflows.edit',
    'workflows.run',
  ),
  manager: P('members.read', 'variables.read', 'workflows.read', 'workflows.run'),
  operator: P('variables.read', 'workflows.read', 'workflows.run'),
  viewer: P('variables.read', 'workflows.read'),
};

export function isSystemRole(role: string): role is SystemRole {
  return (SYSTEM_ROLES as readonly string[]).includes(role);
}

export function isPermission(name: string): name is Permission {
  return (PERMISSIONS as readonly string[]).includes(name);
}
