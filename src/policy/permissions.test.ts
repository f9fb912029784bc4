import { describe, expect, it } from 'vitest';
import { NEVER_GRANTABLE_TO_CUSTOM_ROLES, PERMISSIONS, SYSTEM_ROLE_PERMISSIONS, SYSTEM_ROLES } from './permissions.js';
import { authorize, can, mayGrant, mayManageMemberWithRole } from './policy.js';

// SPEC §2 transcribed as printed, so a typo in the data table is caught.
// Columns: owner admin editor manager operator viewer.
const SPEC_TABLE = `
workspace.manage       x . . . . .
members.manage_owners  x . . . . .
members.manage         x x . . . .
members.read           x x x x . .
roles.manage           x x . . . .
variables.read         x x x x x x
variables.manage       x x x . . .
secrets.read           x x x . . .
secrets.reveal         x x x . . .
secrets.use            x x x . . .
secrets.manage         x x . . . .
workflows.read         x x x x x x
workflows.edit         x x x . . .
workflows.run          x x x x x .
audit.read             x x . . . .
`;

describe('the permission table', () => {
  const rows = SPEC_TABLE.trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/));

  it('lists exactly the permissions of SPEC §2', () => {
    expect(rows.map((r) => r[0]).sort()).toEqual([...PERMISSIONS].sort());
  });

  it.each(SYSTEM_ROLES.map((role, column) => ({ role, column })))(
    'gives $role exactly its SPEC column',
    ({ role, column }) => {
      const expected = rows.filter((r) => r[column + 1] === 'x').map((r) => r[0]);
      expect([...SYSTEM_ROLE_PERMISSIONS[role]].sort()).toEqual(expected.sort());
    },
  );

  it('keeps secrets.manage and members.manage_owners out of custom roles', () => {
    expect([...NEVER_GRANTABLE_TO_CUSTOM_ROLES].sort()).toEqual(['members.manage_owners', 'secrets.manage']);
  });
});

describe('the policy check', () => {
  const editor = { permissions: SYSTEM_ROLE_PERMISSIONS.editor };
  const admin = { permissions: SYSTEM_ROLE_PERMISSIONS.admin };
  const owner = { permissions: SYSTEM_ROLE_PERMISSIONS.owner };

  it('an editor cannot manage secrets', () => {
    expect(can(editor, 'secrets.manage')).toBe(false);
    expect(() => authorize(editor, 'secrets.manage')).toThrowError(
      expect.objectContaining({ status: 403, code: 'forbidden' }),
    );
  });

  it('nobody grants what they do not hold', () => {
    expect(mayGrant(admin, SYSTEM_ROLE_PERMISSIONS.admin)).toBe(true);
    expect(mayGrant(admin, SYSTEM_ROLE_PERMISSIONS.owner)).toBe(false);
    expect(mayGrant(editor, SYSTEM_ROLE_PERMISSIONS.admin)).toBe(false);
  });

  it('only members.manage_owners touches an owner', () => {
    expect(mayManageMemberWithRole(admin, 'owner')).toBe(false);
    expect(mayManageMemberWithRole(owner, 'owner')).toBe(true);
    expect(mayManageMemberWithRole(admin, 'editor')).toBe(true);
    expect(mayManageMemberWithRole(editor, 'viewer')).toBe(false);
  });
});
