/**
 * The Variables Management Panel: system, custom and secret variables in one
 * list, a "Create New" side panel, masked secrets as a fixed row of dots, the
 * eye that shows a masked value for 20 s and then forgets it, and a delete
 * confirmation that lists the blocks using the secret.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, del, get, getAll, type Page, patch, post, type Secret, type Usage, type Variable } from '../api';
import { useWorkspace } from '../app-state';
import { ConfirmModal, Dots, ErrorText, Field, Icon, Modal, SidePanel } from '../components/ui';

type Tab = 'all' | 'custom' | 'system' | 'secrets' | 'deleted';
const REVEAL_MS = 20_000;
const SEARCH_DEBOUNCE_MS = 250;
/** The API's limit on a secret value (MAX_SECRET_BYTES in the secrets module): checked here before sending. */
const MAX_VALUE_BYTES = 64 * 1024;

function RevealableValue({ secret }: { secret: Secret }) {
  const ws = useWorkspace();
  // The value is never React state or a prop: written into the element and wiped from it on hide
  // (React keeps a component's previous state and props around after a re-render).
  const box = useRef<HTMLElement>(null);
  const [shown, setShown] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const hide = useCallback(() => {
    clearTimeout(timer.current);
    if (box.current) box.current.textContent = '';
    setShown(false);
  }, []);
  useEffect(() => hide, [hide]);
  // A new version (or a new secret in this row): whatever was shown is not its value.
  // biome-ignore lint/correctness/useExhaustiveDependencies: hiding is the point of a version change
  useEffect(hide, [hide, secret.id, secret.version]);

  if (secret.visibility === 'restricted') {
    return (
      <span className="secret-value">
        <Dots />
        <span className="lock">
          <Icon name="lock" label="Restricted: never revealed" />
        </span>
      </span>
    );
  }
  return (
    <span className="secret-value">
      {!shown && <Dots />}
      <code ref={box} className="revealed" hidden={!shown} />
      {ws.can('secrets.reveal') &&
        (!shown ? (
          <button
            type="button"
            className="icon"
            aria-label="Reveal value"
            title="Reveal for 20 seconds"
            onClick={async () => {
              try {
                const r = await post<{ value: string }>(`/workspaces/${ws.id}/secrets/${secret.id}/reveal`);
                if (!box.current) return; // gone meanwhile
                box.current.textContent = r.value;
                setShown(true);
                setError(null);
                clearTimeout(timer.current);
                timer.current = setTimeout(hide, REVEAL_MS);
              } catch (err) {
                setError(err);
              }
            }}
          >
            <Icon name="eye" />
          </button>
        ) : (
          <button type="button" className="icon" aria-label="Hide value" onClick={hide}>
            <Icon name="eyeOff" />
          </button>
        ))}
      <ErrorText error={error} />
    </span>
  );
}

function parseHosts(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((h) => h.trim())
    .filter(Boolean);
}

export function SecretForm(props: {
  secret?: Secret;
  initialName?: string;
  onSaved: (s: Secret) => void;
  /** The secret changed elsewhere since the form opened (a 412): the caller's copy is stale too. */
  onStale?: () => void;
}) {
  const ws = useWorkspace();
  // The version saved against (If-Match): the one opened, or the one fetched after a conflict.
  const [editing, setEditing] = useState(props.secret);
  const [conflict, setConflict] = useState(false);
  const [name, setName] = useState(editing?.name ?? props.initialName ?? '');
  const [value, setValue] = useState('');
  const [description, setDescription] = useState(editing?.description ?? '');
  const [hosts, setHosts] = useState((editing?.allowedHosts ?? []).join('\n'));
  const [visibility, setVisibility] = useState<'masked' | 'restricted'>(editing?.visibility ?? 'masked');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const short = value.length > 0 && new TextEncoder().encode(value.slice(0, 8)).length < 8;
  /** How long a refused paste or input was (the field kept its value), to say why. */
  const [refused, setRefused] = useState<number | null>(null);

  return (
    <form
      className="stack"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        try {
          const body: Record<string, unknown> = { description, allowedHosts: parseHosts(hosts) };
          if (value) body.value = value;
          const saved = editing
            ? await patch<Secret>(`/workspaces/${ws.id}/secrets/${editing.id}`, body, {
                'if-match': `"${editing.version}.${editing.revision}"`,
              })
            : await post<Secret>(`/workspaces/${ws.id}/secrets`, { ...body, name, visibility, value });
          setValue('');
          setConflict(false);
          props.onSaved(saved);
        } catch (err) {
          if (editing && err instanceof ApiError && err.status === 412) {
            // Someone else saved it meanwhile: show their version, keep the value typed, save again on request.
            try {
              const fresh = await get<Secret>(`/workspaces/${ws.id}/secrets/${editing.id}`);
              setEditing(fresh);
              setDescription(fresh.description ?? '');
              setHosts(fresh.allowedHosts.join('\n'));
              setConflict(true);
              setError(null);
              props.onStale?.();
            } catch (reloadErr) {
              setError(reloadErr);
            }
          } else setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <Field label="Name" value={name} onChange={setName} readOnly={Boolean(editing)} error={error} errorField="name" />
      <fieldset className="radios" disabled={Boolean(editing)}>
        <legend>Visibility</legend>
        <label>
          <input
            type="radio"
            name="visibility"
            checked={visibility === 'masked'}
            onChange={() => setVisibility('masked')}
          />{' '}
          Masked
        </label>
        <label>
          <input
            type="radio"
            name="visibility"
            checked={visibility === 'restricted'}
            onChange={() => setVisibility('restricted')}
          />{' '}
          Restricted
        </label>
      </fieldset>
      <Field
        label="Value"
        secret
        value={value}
        onChange={(v) => {
          setValue(v);
          setRefused(null);
        }}
        maxBytes={MAX_VALUE_BYTES}
        onRefused={setRefused}
        hint={`${editing ? 'Leave empty to keep the current value. A new value makes a new version. ' : ''}At most 64 KiB.`}
        error={error}
        errorField="value"
      />
      {refused !== null && (
        <p className="error" role="alert">
          Not kept: that is {Math.ceil(refused / 1024).toLocaleString('en-US')} KiB or more, and a secret value may be
          at most 64 KiB.
        </p>
      )}
      {short && (
        <p className="warning">
          This value is shorter than 8 characters: it will be redacted wherever those characters appear.
        </p>
      )}
      <Field
        label="Description"
        value={description}
        onChange={setDescription}
        multiline
        error={error}
        errorField="description"
      />
      <Field
        label="Allowed hosts"
        value={hosts}
        onChange={setHosts}
        multiline
        hint={
          editing?.hostsPinnedAt
            ? `Pinned on first use (${new Date(editing.hostsPinnedAt).toLocaleString()}). One host or *.domain per line.`
            : 'One host or *.domain per line. Empty: pinned to the first host it is sent to.'
        }
        error={error}
        errorField="allowedHosts"
      />
      <ErrorText error={error} fields={['name', 'value', 'description', 'allowedHosts']} />
      {conflict && (
        <p className="error" role="alert">
          Someone else changed this secret since you opened it. Its description and allowed hosts now show their
          version; the value you typed is kept. Save again to apply your change.
        </p>
      )}
      <div className="panel-actions">
        <button type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Save'}
        </button>
      </div>
    </form>
  );
}

function VariableForm(props: { variable?: Variable; onSaved: () => void }) {
  const ws = useWorkspace();
  const v = props.variable;
  const [name, setName] = useState(v?.name ?? '');
  const [type, setType] = useState(v?.type ?? 'text');
  const [description, setDescription] = useState(v?.description ?? '');
  const show = (x: unknown) => (x === null || x === undefined ? '' : typeof x === 'string' ? x : JSON.stringify(x));
  const [testValue, setTestValue] = useState(show(v?.testValue));
  const [fallbackValue, setFallbackValue] = useState(show(v?.fallbackValue));
  const [error, setError] = useState<unknown>(null);
  const parse = (text: string): unknown => {
    if (text === '') return null;
    if (type === 'text' || type === 'datetime') return text;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  };
  return (
    <form
      className="stack"
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          const body = { name, type, description, testValue: parse(testValue), fallbackValue: parse(fallbackValue) };
          if (v) await patch(`/workspaces/${ws.id}/variables/${v.id}`, body);
          else await post(`/workspaces/${ws.id}/variables`, body);
          props.onSaved();
        } catch (err) {
          setError(err);
        }
      }}
    >
      <Field label="Name" value={name} onChange={setName} error={error} errorField="name" />
      <div className="field">
        <label htmlFor="var-type">Type</label>
        <select id="var-type" value={type} onChange={(e) => setType(e.target.value as Variable['type'])}>
          {['text', 'number', 'boolean', 'datetime', 'map', 'list'].map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </div>
      <Field label="Test value" value={testValue} onChange={setTestValue} error={error} errorField="testValue" />
      <Field
        label="Fallback value"
        value={fallbackValue}
        onChange={setFallbackValue}
        error={error}
        errorField="fallbackValue"
      />
      <Field
        label="Description"
        value={description}
        onChange={setDescription}
        multiline
        error={error}
        errorField="description"
      />
      <ErrorText error={error} fields={['name', 'testValue', 'fallbackValue', 'description']} />
      <div className="panel-actions">
        <button type="submit">Save</button>
      </div>
    </form>
  );
}

export function DeleteSecretModal(props: {
  secret: Secret | null;
  onClose: () => void;
  onDeleted: (deleted: Secret) => void;
}) {
  const ws = useWorkspace();
  const [usages, setUsages] = useState<Usage[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const secret = props.secret;
  useEffect(() => {
    setUsages(null);
    if (secret) void getAll<Usage>(`/workspaces/${ws.id}/secrets/${secret.id}/usages`).then(setUsages, setError);
  }, [secret, ws.id]);
  return (
    <Modal open={secret !== null} onOpenChange={(o) => !o && props.onClose()} title="Delete secret">
      {secret && (
        <>
          <p>
            Delete the secret <strong>{secret.name}</strong>? It can be restored for a while, then it is purged for
            good.
          </p>
          {usages === null ? (
            <p aria-busy="true">Looking for blocks that use it…</p>
          ) : usages.length === 0 ? (
            <p>No block uses it.</p>
          ) : (
            <>
              <p>These blocks use it and will fail until it is restored:</p>
              <ul aria-label="Blocks that use this secret">
                {usages.map((u) => (
                  <li key={`${u.workflowId}:${u.blockId}:${u.field}`}>
                    {u.workflowName} › {u.blockName || u.blockId} ({u.field})
                  </li>
                ))}
              </ul>
            </>
          )}
          <ErrorText error={error} />
          <div className="actions">
            <button type="button" className="ghost" onClick={props.onClose}>
              Cancel
            </button>
            <button
              type="button"
              className="danger"
              onClick={async () => {
                try {
                  await del(`/workspaces/${ws.id}/secrets/${secret.id}`);
                  props.onDeleted(secret);
                } catch (err) {
                  setError(err);
                }
              }}
            >
              Delete
            </button>
          </div>
        </>
      )}
    </Modal>
  );
}

export function VariablesPage() {
  const ws = useWorkspace();
  const [tab, setTab] = useState<Tab>('all');
  const [q, setQ] = useState('');
  /** The search the lists are asked for: what was typed, once typing pauses. */
  const [query, setQuery] = useState('');
  useEffect(() => {
    const timer = setTimeout(() => setQuery(q.trim()), SEARCH_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [q]);
  /** Moved by every load: an answer to an earlier one (an older search) is dropped, not shown over a later one. */
  const loads = useRef(0);
  const [variables, setVariables] = useState<Variable[]>([]);
  const [secrets, setSecrets] = useState<Secret[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [panel, setPanel] = useState<{ kind: 'secret' | 'variable'; secret?: Secret; variable?: Variable } | null>(
    null,
  );
  const [deleting, setDeleting] = useState<Secret | null>(null);
  const [purging, setPurging] = useState<Secret | null>(null);
  const [deleted, setDeleted] = useState<Secret[]>([]);
  /** The last secret deleted here, with an Undo until something else happens. */
  const [justDeleted, setJustDeleted] = useState<Secret | null>(null);
  // After a delete, focus goes to what it says (with its Undo), not to <body> where the row's button was.
  const deletedNotice = useRef<HTMLParagraphElement>(null);
  const justDeletedId = justDeleted?.id;
  useEffect(() => {
    if (justDeletedId) deletedNotice.current?.focus();
  }, [justDeletedId]);
  const canSecrets = ws.can('secrets.read');
  const canManage = ws.can('secrets.manage');
  /** Where each list's next page starts (null: all loaded). */
  const [cursors, setCursors] = useState<{ vars: string | null; secrets: string | null; deleted: string | null }>({
    vars: null,
    secrets: null,
    deleted: null,
  });

  /** One page (200) of one of the panel's lists, for the current search; after `cursor` when given. */
  const pageOf = useCallback(
    <T,>(list: 'vars' | 'secrets' | 'deleted', cursor?: string | null): Promise<Page<T>> => {
      const path =
        list === 'vars'
          ? `/workspaces/${ws.id}/variables?limit=200`
          : `/workspaces/${ws.id}/secrets?${list === 'deleted' ? 'deleted=true&' : ''}limit=200`;
      const search = query ? `&q=${encodeURIComponent(query)}` : '';
      return get<Page<T>>(`${path}${search}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    },
    [ws.id, query],
  );
  const load = useCallback(async () => {
    const asked = ++loads.current;
    try {
      const none = Promise.resolve({ items: [] as Secret[], nextCursor: null });
      const [vars, secs, gone] = await Promise.all([
        pageOf<Variable>('vars'),
        canSecrets ? pageOf<Secret>('secrets') : none,
        canManage ? pageOf<Secret>('deleted') : none,
      ]);
      if (asked !== loads.current) return;
      setVariables(vars.items);
      setSecrets(secs.items);
      setDeleted(gone.items);
      setCursors({ vars: vars.nextCursor, secrets: secs.nextCursor, deleted: gone.nextCursor });
      setError(null);
    } catch (err) {
      if (asked === loads.current) setError(err);
    }
  }, [pageOf, canSecrets, canManage]);
  /** The next page of every list that has one, appended (one at a time: the button is gone meanwhile). */
  const [loadingMore, setLoadingMore] = useState(false);
  const more = async () => {
    if (loadingMore) return;
    setLoadingMore(true);
    const asked = loads.current;
    try {
      const [vars, secs, gone] = await Promise.all([
        cursors.vars ? pageOf<Variable>('vars', cursors.vars) : null,
        cursors.secrets ? pageOf<Secret>('secrets', cursors.secrets) : null,
        cursors.deleted ? pageOf<Secret>('deleted', cursors.deleted) : null,
      ]);
      if (asked !== loads.current) return; // the lists were reloaded (another search) meanwhile
      if (vars) setVariables((v) => [...v, ...vars.items]);
      if (secs) setSecrets((s) => [...s, ...secs.items]);
      if (gone) setDeleted((d) => [...d, ...gone.items]);
      setCursors({
        vars: vars ? vars.nextCursor : null,
        secrets: secs ? secs.nextCursor : null,
        deleted: gone ? gone.nextCursor : null,
      });
    } catch (err) {
      setError(err);
    } finally {
      setLoadingMore(false);
    }
  };
  const restore = async (secret: Secret) => {
    try {
      await post(`/workspaces/${ws.id}/secrets/${secret.id}/restore`, {});
      setJustDeleted(null);
      await load();
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    void load();
  }, [load]);

  const tabs: [Tab, string][] = [
    ['all', 'All'],
    ['custom', 'Custom'],
    ['system', 'System'],
    ...(canSecrets ? ([['secrets', 'Secrets']] as [Tab, string][]) : []),
    ...(canManage
      ? ([['deleted', `Deleted (${deleted.length}${cursors.deleted ? '+' : ''})`]] as [Tab, string][])
      : []),
  ];
  const showVars = variables.filter((v) => tab === 'all' || tab === v.kind);
  const showSecrets = tab === 'all' || tab === 'secrets' ? secrets : [];
  const showDeleted = tab === 'deleted' ? deleted : [];

  return (
    <section>
      <header className="page-head">
        <h1>Variables</h1>
        {/* "Create New" makes secrets too, so a role without secrets.manage gets a variables-only button. */}
        {ws.can('secrets.manage') ? (
          <button type="button" onClick={() => setPanel({ kind: 'secret' })}>
            Create New
          </button>
        ) : (
          ws.can('variables.manage') && (
            <button type="button" onClick={() => setPanel({ kind: 'variable' })}>
              New variable
            </button>
          )
        )}
      </header>
      <div className="toolbar">
        <div role="tablist" aria-label="Kind">
          {tabs.map(([key, label]) => (
            <button
              key={key}
              type="button"
              role="tab"
              aria-selected={tab === key}
              className={tab === key ? 'tab active' : 'tab'}
              onClick={() => setTab(key)}
            >
              {label}
            </button>
          ))}
        </div>
        <label className="search">
          <span className="sr-only">Search</span>
          <input
            type="search"
            placeholder="Search by name"
            value={q}
            onChange={(e) => setQ(e.target.value)}
            aria-label="Search"
          />
        </label>
      </div>
      <ErrorText error={error} />
      {justDeleted && (
        <p role="status" className="notice" ref={deletedNotice} tabIndex={-1}>
          Deleted <code>{justDeleted.name}</code>. It can be restored until{' '}
          {justDeleted.purgeAt ? new Date(justDeleted.purgeAt).toLocaleString() : 'it is purged'} (tab “Deleted”).{' '}
          <button type="button" className="ghost small" onClick={() => void restore(justDeleted)}>
            Undo
          </button>
        </p>
      )}
      {tab === 'deleted' && (
        <p className="muted">
          Deleted secrets keep their name and their blocks fail with <code>secret_unavailable</code> until they are
          restored; each is purged — every version destroyed — at the time shown.
        </p>
      )}
      <table className="list">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Kind</th>
            <th scope="col">Value</th>
            <th scope="col">Description</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {showSecrets.map((s) => (
            <tr key={s.id} data-secret={s.name}>
              <th scope="row">
                <code>{s.name}</code>
              </th>
              <td>
                <span className="badge secret">secret · {s.visibility}</span>
                {s.allowedHosts.length > 0 && (
                  <div className="muted hosts">
                    {'→\u00a0'}
                    {s.allowedHosts.join(', ')}
                  </div>
                )}
              </td>
              <td>
                <RevealableValue secret={s} />
              </td>
              <td>{s.description}</td>
              <td className="row-actions">
                {ws.can('secrets.manage') && (
                  <>
                    <button type="button" className="ghost" onClick={() => setPanel({ kind: 'secret', secret: s })}>
                      Edit
                    </button>
                    <button type="button" className="ghost danger" onClick={() => setDeleting(s)}>
                      Delete
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
          {showDeleted.map((s) => (
            <tr key={s.id} data-deleted-secret={s.name}>
              <th scope="row">
                <code>{s.name}</code>
              </th>
              <td>
                <span className="badge deleted">deleted secret · {s.visibility}</span>
              </td>
              <td>
                <span className="muted">
                  {s.purgeAt ? `Purged for good on ${new Date(s.purgeAt).toLocaleString()}` : 'Purged for good soon'}
                </span>
              </td>
              <td>{s.description}</td>
              <td className="row-actions">
                <button type="button" className="ghost" onClick={() => void restore(s)}>
                  Restore
                </button>
                <button type="button" className="ghost danger" onClick={() => setPurging(s)}>
                  Purge now
                </button>
              </td>
            </tr>
          ))}
          {showVars.map((v) => (
            <tr key={v.id}>
              <th scope="row">
                <code>{v.name}</code>
              </th>
              <td>
                <span className={`badge ${v.kind}`}>
                  {v.kind} · {v.type}
                </span>
              </td>
              <td>
                {v.kind === 'custom' && v.testValue !== null ? (
                  <code>{JSON.stringify(v.testValue)}</code>
                ) : (
                  <span className="muted">—</span>
                )}
              </td>
              <td>{v.description}</td>
              <td className="row-actions">
                {v.kind === 'custom' && ws.can('variables.manage') && (
                  <>
                    <button type="button" className="ghost" onClick={() => setPanel({ kind: 'variable', variable: v })}>
                      Edit
                    </button>
                    <button
                      type="button"
                      className="ghost danger"
                      onClick={async () => {
                        await del(`/workspaces/${ws.id}/variables/${v.id}`).catch(setError);
                        await load();
                      }}
                    >
                      Delete
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!loadingMore && (cursors.vars || cursors.secrets || (tab === 'deleted' && cursors.deleted)) && (
        <p className="actions">
          <button type="button" className="ghost" onClick={() => void more()}>
            Load more
          </button>
        </p>
      )}

      <SidePanel
        open={panel !== null}
        onOpenChange={(o) => !o && setPanel(null)}
        title={
          panel?.secret
            ? `Edit secret ${panel.secret.name}`
            : panel?.variable
              ? `Edit variable ${panel.variable.name}`
              : ws.can('secrets.manage')
                ? 'Create New'
                : 'New variable'
        }
      >
        {panel && !panel.secret && !panel.variable && ws.can('secrets.manage') && ws.can('variables.manage') && (
          <fieldset className="radios">
            <legend>Kind</legend>
            <label>
              <input
                type="radio"
                name="kind"
                checked={panel.kind === 'secret'}
                onChange={() => setPanel({ kind: 'secret' })}
              />{' '}
              Secret
            </label>
            <label>
              <input
                type="radio"
                name="kind"
                checked={panel.kind === 'variable'}
                onChange={() => setPanel({ kind: 'variable' })}
              />{' '}
              Custom variable
            </label>
          </fieldset>
        )}
        {panel?.kind === 'secret' && (
          <SecretForm
            secret={panel.secret}
            onSaved={() => {
              setPanel(null);
              void load();
            }}
            onStale={() => void load()}
          />
        )}
        {panel?.kind === 'variable' && (
          <VariableForm
            variable={panel.variable}
            onSaved={() => {
              setPanel(null);
              void load();
            }}
          />
        )}
      </SidePanel>
      <DeleteSecretModal
        secret={deleting}
        onClose={() => setDeleting(null)}
        onDeleted={(gone) => {
          setDeleting(null);
          setJustDeleted({ ...gone, purgeAt: null });
          void load().then(() =>
            // The server's purge time for it — unless it was restored (Undo) meanwhile.
            get<Secret>(`/workspaces/${ws.id}/secrets/${gone.id}`).then(
              (fresh) => setJustDeleted((shown) => (shown?.id === fresh.id && fresh.deletedAt ? fresh : shown)),
              () => undefined,
            ),
          );
        }}
      />
      <ConfirmModal
        open={purging !== null}
        title="Purge secret"
        confirmLabel="Purge"
        onCancel={() => setPurging(null)}
        onConfirm={async () => {
          if (!purging) return;
          try {
            await del(`/workspaces/${ws.id}/secrets/${purging.id}?purge=true`);
            setJustDeleted(null);
            await load();
          } catch (err) {
            setError(err);
          }
          setPurging(null);
        }}
      >
        <p>
          Purge <strong>{purging?.name}</strong> now? Every version of its value is destroyed and its name is freed.
          This cannot be undone.
        </p>
      </ConfirmModal>
    </section>
  );
}
