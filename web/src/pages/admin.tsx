/** Audit log, members and roles, API tokens and workspace settings. */
import { useCallback, useEffect, useRef, useState } from 'react';
import { NEVER_GRANTABLE_TO_CUSTOM_ROLES, PERMISSIONS } from '../../../src/policy/permissions';
import { ApiError, del, get, getAll, type Me, type Page, type PendingInvitation, patch, post, type Role } from '../api';
import { navigate, useSession, useWorkspace } from '../app-state';
import { shownValue } from '../components/exchange';
import { ConfirmModal, ErrorText, Field } from '../components/ui';
import { roleDisplayName } from '../role-names';

interface AuditEvent {
  id: string;
  seq: number;
  at: string;
  actorEmail: string | null;
  actorType: string;
  action: string;
  targetType: string | null;
  targetId: string | null;
  data: Record<string, unknown>;
}

/** What a page shows to a role without the permission it needs (reached by its address). */
function NotAllowed({ what }: { what: string }) {
  return (
    <section>
      <p role="status">Your role in this workspace does not allow {what}.</p>
    </section>
  );
}

/** Keys of an event's data that hold a role id, by action: shown by the role's name ("editor" → "Editor"). */
const ROLE_KEYS: Readonly<Record<string, readonly string[]>> = { 'member.role_changed': ['from', 'to'] };

/** An event's data in words: "name: zendesk_token · visibility: masked" (lists joined, nested values as JSON). */
function auditDetails(action: string, data: Record<string, unknown>): string {
  const roleKeys = ['role', ...(ROLE_KEYS[action] ?? [])];
  return Object.entries(data)
    .map(([k, v]) => {
      if (roleKeys.includes(k) && typeof v === 'string') return `${k}: ${roleDisplayName(v)}`;
      const text = Array.isArray(v) && v.every((x) => typeof x === 'string') ? v.join(', ') : shownValue(v);
      return `${k}: ${text}`;
    })
    .join(' · ');
}

export function AuditPage() {
  const ws = useWorkspace();
  return ws.can('audit.read') ? <AuditLog /> : <NotAllowed what="reading the audit log" />;
}

function AuditLog() {
  const ws = useWorkspace();
  const [action, setAction] = useState('');
  const [actor, setActor] = useState('');
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [people, setPeople] = useState<{ userId: string; email: string }[]>([]);
  const [items, setItems] = useState<AuditEvent[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [verdict, setVerdict] = useState<{ ok: boolean; checked: number; brokenAt?: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  // datetime-local fields hold local time; the API takes ISO instants.
  const instant = (local: string) => (local && !Number.isNaN(Date.parse(local)) ? new Date(local).toISOString() : '');
  const filter = [
    ['action', action],
    ['actorId', actor],
    ['since', instant(since)],
    ['until', instant(until)],
  ]
    .filter(([, v]) => v)
    .map(([k, v]) => `&${k}=${encodeURIComponent(v as string)}`)
    .join('');
  // The filter the shown rows belong to: an answer for an older filter (or a "Load more" begun under it) is dropped.
  const current = useRef(filter);
  current.current = filter;
  useEffect(() => {
    void get<Page<AuditEvent>>(`/workspaces/${ws.id}/audit?limit=200${filter}`).then(
      (r) => {
        if (current.current !== filter) return;
        setItems(r.items);
        setNext(r.nextCursor);
        setError(null);
      },
      (err) => current.current === filter && setError(err),
    );
  }, [ws.id, filter]);
  useEffect(() => {
    if (ws.can('members.read'))
      void getAll<{ userId: string; email: string }>(`/workspaces/${ws.id}/members`).then(setPeople, () => undefined);
  }, [ws]);
  return (
    <section>
      <header className="page-head">
        <h1>Audit log</h1>
        <a
          className="button"
          href={`/api/v1/workspaces/${ws.id}/audit.csv${filter ? `?${filter.slice(1)}` : ''}`}
          download
        >
          Export CSV
        </a>
      </header>
      <div className="toolbar">
        <Field label="Action" value={action} onChange={setAction} placeholder="secret.* or secret.revealed" />
        {people.length > 0 && (
          <div className="field">
            <label htmlFor="audit-actor">Who</label>
            <select id="audit-actor" value={actor} onChange={(e) => setActor(e.target.value)}>
              <option value="">Anyone</option>
              {people.map((p) => (
                <option key={p.userId} value={p.userId}>
                  {p.email}
                </option>
              ))}
            </select>
          </div>
        )}
        <Field label="From" type="datetime-local" value={since} onChange={setSince} />
        <Field label="To" type="datetime-local" value={until} onChange={setUntil} />
        <button
          type="button"
          className="ghost"
          onClick={async () => {
            try {
              setVerdict(
                await get<{ ok: boolean; checked: number; brokenAt?: string }>(`/workspaces/${ws.id}/audit/verify`),
              );
              setError(null);
            } catch (err) {
              setVerdict(null);
              setError(err);
            }
          }}
        >
          Verify chain
        </button>
        {verdict && (
          <span role="status">
            {verdict.ok ? `Chain intact (${verdict.checked} events)` : `Chain broken at ${verdict.brokenAt}`}
          </span>
        )}
      </div>
      <ErrorText error={error} />
      <table className="list audit">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">Action</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {items.map((e) => (
            <tr key={e.id}>
              <td>{e.seq}</td>
              <td>{new Date(e.at).toLocaleString()}</td>
              <td>{e.actorEmail ?? e.actorType}</td>
              <td>
                <code>{e.action}</code>
              </td>
              <td className="muted details">{auditDetails(e.action, e.data)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {next && (
        <p className="actions">
          <button
            type="button"
            className="ghost"
            onClick={async () => {
              const asked = filter;
              setNext(null); // one "Load more" at a time
              try {
                const r = await get<Page<AuditEvent>>(
                  `/workspaces/${ws.id}/audit?limit=200${asked}&cursor=${encodeURIComponent(next)}`,
                );
                if (current.current !== asked) return;
                setItems((old) => [...old, ...r.items]);
                setNext(r.nextCursor);
              } catch (err) {
                setError(err);
              }
            }}
          >
            Load more
          </button>
        </p>
      )}
    </section>
  );
}

// What a custom role may hold: the policy table, less what is never grantable.
const GRANTABLE = PERMISSIONS.filter((p) => !NEVER_GRANTABLE_TO_CUSTOM_ROLES.includes(p));

export function MembersPage() {
  const ws = useWorkspace();
  const session = useSession();
  const [members, setMembers] = useState<
    { userId: string; email: string; name: string; role: string; roleName: string }[]
  >([]);
  const [roles, setRoles] = useState<Role[]>([]);
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('viewer');
  /** The link of the invitation just made (shown once), until it is revoked. */
  const [invite, setInvite] = useState<{ id: string; url: string } | null>(null);
  /** Pending invitations, newest first (for members.manage). */
  const [invitations, setInvitations] = useState<PendingInvitation[]>([]);
  /** The invitation about to be revoked, asked in a modal first. */
  const [revoking, setRevoking] = useState<PendingInvitation | null>(null);
  const [roleName, setRoleName] = useState('');
  const [perms, setPerms] = useState<Set<string>>(new Set());
  const [error, setError] = useState<unknown>(null);
  /** The member about to be removed (or the caller, about to leave), asked in a modal first. */
  const [removing, setRemoving] = useState<(typeof members)[number] | null>(null);
  const load = useCallback(async () => {
    if (!ws.can('members.read')) return;
    const [m, r] = await Promise.all([
      getAll<(typeof members)[number]>(`/workspaces/${ws.id}/members`).then((items) => ({ items })),
      getAll<Role>(`/workspaces/${ws.id}/roles`).then((items) => ({ items })),
    ]);
    setMembers(m.items);
    setRoles(r.items);
    if (ws.can('members.manage')) setInvitations(await getAll<PendingInvitation>(`/workspaces/${ws.id}/invitations`));
  }, [ws]);
  useEffect(() => {
    void load().catch(setError);
  }, [load]);
  /**
   * After a change to one's own membership this page may no longer be allowed or exist: the session
   * and workspace are reloaded (the page follows the new permissions), and someone who left goes to a
   * workspace they still belong to (or to none).
   */
  const afterSelfChange = async (left: boolean) => {
    if (!left) {
      await session.reload();
      await ws.reload();
      return;
    }
    const me = await get<Me>('/me');
    const next = me.workspaces[0];
    if (next) navigate(`/w/${next.id}/variables`, { replace: true });
    await session.reload();
    if (!next) navigate('/', { replace: true });
  };
  const changeRole = async (member: (typeof members)[number], newRole: string) => {
    try {
      await patch(`/workspaces/${ws.id}/members/${member.userId}`, { role: newRole });
      setError(null);
      if (member.userId === session.me.user.id) await afterSelfChange(false);
      else await load();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (member: (typeof members)[number]) => {
    try {
      await del(`/workspaces/${ws.id}/members/${member.userId}`);
      setRemoving(null);
      setError(null);
      if (member.userId === session.me.user.id) await afterSelfChange(true);
      else await load();
    } catch (err) {
      setRemoving(null);
      setError(err);
    }
  };

  const revoke = async (invitation: PendingInvitation) => {
    try {
      await del(`/workspaces/${ws.id}/invitations/${invitation.id}`);
      setRevoking(null);
      setError(null);
      // Its link no longer lets anyone in: it is not offered for sending any more.
      setInvite((shown) => (shown?.id === invitation.id ? null : shown));
    } catch (err) {
      setRevoking(null);
      setError(err);
    }
    await load().catch(setError);
  };

  if (!ws.can('members.read')) return <p>Your role cannot see the members of this workspace.</p>;
  const manage = ws.can('members.manage');
  // Owners are made, changed and removed only with members.manage_owners (the API refuses the rest).
  const manageOwners = ws.can('members.manage_owners');
  const assignable = roles.filter((r) => r.id !== 'owner' || manageOwners);
  const leaving = removing?.userId === session.me.user.id;
  const roleLabel = (id: string) => roleDisplayName(id, roles.find((r) => r.id === id)?.name);
  return (
    <section>
      <header className="page-head">
        <h1 id="members-heading">Members</h1>
      </header>
      <ErrorText error={error} fields={['email', 'name']} />
      <table className="list" aria-labelledby="members-heading">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Email</th>
            <th scope="col">Role</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {members.map((m) => {
            const self = m.userId === session.me.user.id;
            const changeable = manage && (m.role !== 'owner' || manageOwners);
            return (
              <tr key={m.userId}>
                <td>{m.name}</td>
                <td>{m.email}</td>
                <td>
                  {changeable ? (
                    <select
                      aria-label={`Role of ${m.email}`}
                      value={m.role}
                      onChange={(e) => void changeRole(m, e.target.value)}
                    >
                      {assignable.map((r) => (
                        <option key={r.id} value={r.id}>
                          {roleDisplayName(r.id, r.name)}
                        </option>
                      ))}
                    </select>
                  ) : (
                    roleDisplayName(m.role, m.roleName)
                  )}
                </td>
                <td>
                  {(changeable || self) && (
                    <button type="button" className="ghost danger" onClick={() => setRemoving(m)}>
                      {self ? 'Leave' : 'Remove'}
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {manage && (
        <form
          className="inline"
          onSubmit={async (e) => {
            e.preventDefault();
            try {
              setInvite(await post<{ id: string; url: string }>(`/workspaces/${ws.id}/invitations`, { email, role }));
              setError(null);
              setEmail('');
            } catch (err) {
              setError(err);
              return;
            }
            await load().catch(setError);
          }}
        >
          <h2>Invite</h2>
          <Field label="Invite email" value={email} onChange={setEmail} error={error} errorField="email" />
          <div className="field">
            <label htmlFor="invite-role">Invite role</label>
            <select id="invite-role" value={role} onChange={(e) => setRole(e.target.value)}>
              {assignable.map((r) => (
                <option key={r.id} value={r.id}>
                  {roleDisplayName(r.id, r.name)}
                </option>
              ))}
            </select>
          </div>
          <button type="submit">Invite</button>
          {invite && (
            <p role="status">
              Send this one-time link: <code>{invite.url}</code>
            </p>
          )}
        </form>
      )}
      {manage && (
        <>
          <h2 id="pending-invitations">Pending invitations</h2>
          {invitations.length === 0 ? (
            <p className="muted">No pending invitations.</p>
          ) : (
            <table className="list" aria-labelledby="pending-invitations">
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Invited by</th>
                  <th scope="col">Expires</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {invitations.map((i) => (
                  <tr key={i.id}>
                    <td>{i.email}</td>
                    <td>{roleLabel(i.role)}</td>
                    <td>{i.invitedBy ? i.invitedBy.email : <span className="muted">unknown</span>}</td>
                    <td>
                      <time dateTime={i.expiresAt}>
                        {new Date(i.expiresAt).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}
                      </time>
                    </td>
                    <td>
                      {(i.role !== 'owner' || manageOwners) && (
                        <button
                          type="button"
                          className="ghost danger"
                          aria-label={`Revoke invitation of ${i.email}`}
                          onClick={() => setRevoking(i)}
                        >
                          Revoke
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
      <ConfirmModal
        open={revoking !== null}
        title="Revoke invitation"
        confirmLabel="Revoke"
        onCancel={() => setRevoking(null)}
        onConfirm={() => (revoking ? revoke(revoking) : Promise.resolve())}
      >
        <p>
          Revoke the invitation of <strong>{revoking?.email}</strong> to <strong>{ws.name}</strong>? Its link stops
          working; you can invite them again.
        </p>
      </ConfirmModal>
      <ConfirmModal
        open={removing !== null}
        title={leaving ? 'Leave workspace' : 'Remove member'}
        confirmLabel={leaving ? 'Leave' : 'Remove'}
        onCancel={() => setRemoving(null)}
        onConfirm={() => (removing ? remove(removing) : Promise.resolve())}
      >
        <p>
          {leaving ? (
            <>
              Leave <strong>{ws.name}</strong>? You lose access to it until someone invites you again.
            </>
          ) : (
            <>
              Remove <strong>{removing?.email}</strong> from <strong>{ws.name}</strong>? They lose access to it until
              invited again.
            </>
          )}
        </p>
      </ConfirmModal>
      <h2>Roles</h2>
      <ul className="cards">
        {roles.map((r) => (
          <li key={r.id}>
            <strong>{roleDisplayName(r.id, r.name)}</strong> {r.system ? <span className="badge">system</span> : null}
            <div className="muted">{r.permissions.join(', ')}</div>
          </li>
        ))}
      </ul>
      {ws.can('roles.manage') && (
        <form
          className="stack"
          onSubmit={async (e) => {
            e.preventDefault();
            try {
              await post(`/workspaces/${ws.id}/roles`, { name: roleName, permissions: [...perms] });
              setRoleName('');
              setPerms(new Set());
              await load();
            } catch (err) {
              setError(err);
            }
          }}
        >
          <h3>New custom role</h3>
          <Field label="Role name" value={roleName} onChange={setRoleName} error={error} errorField="name" />
          <fieldset className="checks">
            <legend>Permissions</legend>
            {GRANTABLE.filter((p) => ws.can(p)).map((p) => (
              <label key={p}>
                <input
                  type="checkbox"
                  checked={perms.has(p)}
                  onChange={(e) => {
                    const next = new Set(perms);
                    if (e.target.checked) next.add(p);
                    else next.delete(p);
                    setPerms(next);
                  }}
                />{' '}
                {p}
              </label>
            ))}
          </fieldset>
          <button type="submit">Create role</button>
        </form>
      )}
    </section>
  );
}

export function TokensPage() {
  const session = useSession();
  const [items, setItems] = useState<
    { id: string; name: string; workspaceId: string; hint: string; expiresAt: string; lastUsedAt: string | null }[]
  >([]);
  const [name, setName] = useState('');
  const [workspaceId, setWorkspaceId] = useState(session.me.workspaces[0]?.id ?? '');
  const [days, setDays] = useState('30');
  /** The token just created, shown once — until revoked: a revoked token's value is no use to copy. */
  const [created, setCreated] = useState<{ id: string; token: string } | null>(null);
  /** The token whose revocation waits for a confirmation. */
  const [revoking, setRevoking] = useState<{ id: string; name: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => setItems(await getAll<(typeof items)[number]>('/tokens')), []);
  const revoke = async (token: { id: string }) => {
    setRevoking(null);
    try {
      await del(`/tokens/${token.id}`);
      setCreated((c) => (c?.id === token.id ? null : c));
      setError(null);
    } catch (err) {
      setError(err);
    }
    await load().catch(setError);
  };
  useEffect(() => {
    void load().catch(setError);
  }, [load]);
  return (
    <section>
      <header className="page-head">
        <h1>API tokens</h1>
      </header>
      <ErrorText error={error} fields={['name', 'expiresInDays']} />
      <table className="list">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Token</th>
            <th scope="col">Workspace</th>
            <th scope="col">Expires</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {items.map((t) => (
            <tr key={t.id}>
              <td>{t.name}</td>
              <td>
                <code>{t.hint}</code>
              </td>
              <td>{session.me.workspaces.find((w) => w.id === t.workspaceId)?.name ?? t.workspaceId}</td>
              <td>{new Date(t.expiresAt).toLocaleDateString()}</td>
              <td>
                <button
                  type="button"
                  className="ghost danger"
                  aria-label={`Revoke token ${t.name}`}
                  onClick={() => setRevoking({ id: t.id, name: t.name })}
                >
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <ConfirmModal
        open={revoking !== null}
        title="Revoke token"
        confirmLabel="Revoke"
        onCancel={() => setRevoking(null)}
        onConfirm={() => (revoking ? revoke(revoking) : Promise.resolve())}
      >
        <p>
          Revoke the token <strong>{revoking?.name}</strong>? Whatever uses it gets 401 from then on; this cannot be
          undone.
        </p>
      </ConfirmModal>
      <form
        className="inline"
        onSubmit={async (e) => {
          e.preventDefault();
          // Said at the field in words, not as the schema's "expected number, received null".
          const expiresInDays = /^\s*\d+\s*$/.test(days) ? Number(days) : Number.NaN;
          if (!(expiresInDays >= 1 && expiresInDays <= 365)) {
            setError(
              new ApiError(422, 'validation_failed', 'The token was not created.', [
                { path: 'body.expiresInDays', message: 'A whole number of days, from 1 to 365.' },
              ]),
            );
            return;
          }
          try {
            const r = await post<{ id: string; token: string }>('/tokens', { name, workspaceId, expiresInDays });
            setCreated({ id: r.id, token: r.token });
            setError(null);
            await load();
          } catch (err) {
            setError(err);
          }
        }}
      >
        <Field label="Token name" value={name} onChange={setName} error={error} errorField="name" />
        <div className="field">
          <label htmlFor="token-ws">Token workspace</label>
          <select id="token-ws" value={workspaceId} onChange={(e) => setWorkspaceId(e.target.value)}>
            {session.me.workspaces.map((w) => (
              <option key={w.id} value={w.id}>
                {w.name}
              </option>
            ))}
          </select>
        </div>
        <Field
          label="Expires in days"
          value={days}
          onChange={setDays}
          hint="1 to 365."
          error={error}
          errorField="expiresInDays"
        />
        <button type="submit">Create token</button>
      </form>
      {created && (
        <p role="status">
          Copy it now, it is shown once: <code>{created.token}</code>
        </p>
      )}
    </section>
  );
}

export function SettingsPage() {
  const ws = useWorkspace();
  return ws.can('workspace.manage') ? <WorkspaceSettings /> : <NotAllowed what="changing its settings" />;
}

function WorkspaceSettings() {
  const ws = useWorkspace();
  const session = useSession();
  const [name, setName] = useState(ws.name);
  const [binding, setBinding] = useState(ws.settings.secretHostBinding);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  return (
    <section>
      <header className="page-head">
        <h1>Workspace settings</h1>
      </header>
      <form
        className="stack"
        onSubmit={async (e) => {
          e.preventDefault();
          // What the form says is about this save only: "Saved." or its error, never both.
          setSaved(false);
          setError(null);
          try {
            await patch(`/workspaces/${ws.id}`, { name, settings: { secretHostBinding: binding } });
            setSaved(true);
            // The workspace switcher shows the names of the session's workspaces: the new name too.
            await Promise.all([ws.reload(), session.reload()]);
          } catch (err) {
            setError(err);
          }
        }}
      >
        <Field label="Workspace name" value={name} onChange={setName} error={error} errorField="name" />
        <div className="field">
          <label htmlFor="binding">Secret host binding</label>
          <select id="binding" value={binding} onChange={(e) => setBinding(e.target.value)}>
            <option value="pin-on-first-use">Pin on first use (default)</option>
            <option value="required">Required: every secret lists its hosts</option>
            <option value="off">Off: secrets may go to any host</option>
          </select>
        </div>
        <ErrorText error={error} fields={['name']} />
        <button type="submit">Save</button>
        {saved && <p role="status">Saved.</p>}
      </form>
    </section>
  );
}
