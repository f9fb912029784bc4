/** The Hush web UI: setup, sign-in, and the workspace pages. */
import { StrictMode, useCallback, useEffect, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { ApiError, get, type Me, onSessionEnded, post } from './api';
import {
  Link,
  navigate,
  type Session,
  SessionContext,
  usePath,
  WorkspaceContext,
  type WorkspaceState,
} from './app-state';
import { ErrorText, Field } from './components/ui';
import { AuditPage, MembersPage, SettingsPage, TokensPage } from './pages/admin';
import { RunsPage } from './pages/runs';
import { VariablesPage } from './pages/variables';
import { WorkflowEditor, WorkflowsPage } from './pages/workflows';
import { roleDisplayName } from './role-names';
import './styles.css';

function SetupPage({ onDone }: { onDone: () => void }) {
  const token = new URLSearchParams(window.location.hash.slice(1)).get('token') ?? '';
  const [form, setForm] = useState({ token, email: '', password: '', name: '', workspaceName: '' });
  const [error, setError] = useState<unknown>(null);
  const set = (k: keyof typeof form) => (v: string) => setForm({ ...form, [k]: v });
  return (
    <main className="auth">
      <h1>Set up Hush</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await post('/setup', form);
            window.history.replaceState(null, '', '/');
            onDone();
          } catch (err) {
            setError(err);
          }
        }}
      >
        <Field label="Setup token" value={form.token} onChange={set('token')} error={error} errorField="token" />
        <Field
          label="Email"
          value={form.email}
          onChange={set('email')}
          autoComplete="email"
          error={error}
          errorField="email"
        />
        <Field
          label="Password"
          type="password"
          value={form.password}
          onChange={set('password')}
          autoComplete="new-password"
          error={error}
          errorField="password"
        />
        <Field label="Your name" value={form.name} onChange={set('name')} error={error} errorField="name" />
        <Field
          label="Workspace name"
          value={form.workspaceName}
          onChange={set('workspaceName')}
          error={error}
          errorField="workspaceName"
        />
        <ErrorText error={error} fields={['token', 'email', 'password', 'name', 'workspaceName']} />
        <button type="submit">Set up</button>
      </form>
    </main>
  );
}

function LoginPage({ onDone }: { onDone: () => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  return (
    <main className="auth">
      <h1>Sign in to Hush</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await post('/auth/login', { email, password });
            onDone();
          } catch (err) {
            setError(err);
          }
        }}
      >
        <Field label="Email" value={email} onChange={setEmail} autoComplete="username" />
        <Field
          label="Password"
          type="password"
          value={password}
          onChange={setPassword}
          autoComplete="current-password"
        />
        <ErrorText error={error} />
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

function InvitePage({ onDone }: { onDone: () => Promise<void> }) {
  const token = new URLSearchParams(window.location.hash.slice(1)).get('token') ?? '';
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  return (
    <main className="auth">
      <h1>Join a workspace</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const joined = await post<{ workspaceId: string }>('/invitations/accept', {
              token,
              name: name || undefined,
              password,
            });
            // Signed in now: load the session, then go to the workspace joined (the token leaves the address bar).
            await onDone();
            navigate(`/w/${joined.workspaceId}/variables`, { replace: true });
          } catch (err) {
            setError(err);
          }
        }}
      >
        <Field
          label="Your name"
          value={name}
          onChange={setName}
          hint="Leave empty if you already have an account."
          error={error}
          errorField="name"
        />
        <Field
          label="Password"
          type="password"
          value={password}
          onChange={setPassword}
          autoComplete="new-password"
          error={error}
          errorField="password"
        />
        <ErrorText error={error} fields={['name', 'password']} />
        <button type="submit">Accept invitation</button>
      </form>
    </main>
  );
}

const NAV = [
  ['variables', 'Variables'],
  ['workflows', 'Workflows'],
  ['runs', 'Runs'],
  ['audit', 'Audit log'],
  ['members', 'Members'],
] as const;

function Shell({ session, path }: { session: Session; path: string }) {
  const parts = path.split('/').filter(Boolean);
  const wsId = parts[0] === 'w' ? parts[1] : undefined;
  const page = parts[0] === 'w' ? (parts[2] ?? 'variables') : parts[0];
  const fallback = session.me.workspaces[0]?.id;
  const [workspace, setWorkspace] = useState<WorkspaceState | null>(null);
  /**
   * The workspace the navigation leads into: the one in the address bar, else (on API tokens, which
   * belongs to no workspace) the one last shown — still a member of it — else the first one.
   */
  const current =
    wsId ?? (workspace && session.me.workspaces.some((w) => w.id === workspace.id) ? workspace.id : fallback);
  const [error, setError] = useState<unknown>(null);
  // The workspace in the address bar: an answer for another one (left, switched away from) is dropped.
  const shown = useRef(wsId);
  shown.current = wsId;

  const load = useCallback(async () => {
    if (!wsId) {
      setError(null);
      return;
    }
    try {
      const w = await get<{
        id: string;
        name: string;
        role: string;
        permissions: string[];
        settings: { secretHostBinding: string };
      }>(`/workspaces/${wsId}`);
      if (shown.current !== wsId) return;
      const permissions = new Set(w.permissions);
      setWorkspace({ ...w, permissions, can: (p) => permissions.has(p), reload: load });
      setError(null);
    } catch (err) {
      if (shown.current === wsId) setError(err);
    }
  }, [wsId]);

  useEffect(() => {
    if (!wsId && page !== 'tokens' && fallback) navigate(`/w/${fallback}/variables`);
    void load();
  }, [wsId, page, fallback, load]);

  return (
    <div className="shell">
      <header className="topbar">
        <strong className="brand">Hush</strong>
        <label className="switcher">
          <span>Workspace</span>
          <select
            value={current ?? ''}
            onChange={(e) => navigate(`/w/${e.target.value}/${page === 'tokens' ? 'variables' : page}`)}
          >
            {session.me.workspaces.map((w) => (
              <option key={w.id} value={w.id}>
                {w.name} ({roleDisplayName(w.role, w.roleName)})
              </option>
            ))}
          </select>
        </label>
        <span className="who">{session.me.user.email}</span>
        <button
          type="button"
          className="ghost"
          onClick={async () => {
            // Signed out whatever the server answers (a session ended elsewhere, a network error):
            // nothing of the workspace stays on screen.
            try {
              await post('/auth/logout');
            } catch {
              // the page below is the sign-in page either way
            } finally {
              navigate('/login');
              window.location.reload();
            }
          }}
        >
          Sign out
        </button>
      </header>
      <nav aria-label="Main">
        {NAV.filter(([slug]) => slug !== 'audit' || workspace?.can('audit.read')).map(([slug, label]) => (
          <Link key={slug} to={`/w/${current}/${slug}`} current={page === slug}>
            {label}
          </Link>
        ))}
        <Link to="/tokens" current={page === 'tokens'}>
          API tokens
        </Link>
        {workspace?.can('workspace.manage') && (
          <Link to={`/w/${current}/settings`} current={page === 'settings'}>
            Settings
          </Link>
        )}
      </nav>
      <main className="content">
        <ErrorText error={error} />
        {page === 'tokens' ? (
          <TokensPage />
        ) : workspace && workspace.id === wsId ? (
          <WorkspaceContext.Provider value={workspace}>
            {page === 'variables' && <VariablesPage />}
            {page === 'workflows' &&
              (parts[3] ? <WorkflowEditor key={parts[3]} workflowId={parts[3]} /> : <WorkflowsPage />)}
            {page === 'runs' && <RunsPage />}
            {page === 'audit' && <AuditPage />}
            {page === 'members' && <MembersPage />}
            {page === 'settings' && <SettingsPage />}
          </WorkspaceContext.Provider>
        ) : !wsId && !fallback ? (
          <p>You are not a member of any workspace. Ask for an invitation, or open one you were sent.</p>
        ) : (
          !error && <p aria-busy="true">Loading…</p>
        )}
      </main>
    </div>
  );
}

function App() {
  const path = usePath();
  const [state, setState] = useState<{ setupNeeded: boolean; me: Me | null } | null>(null);
  const reload = useCallback(async () => {
    const { needed } = await get<{ needed: boolean }>('/setup');
    let me: Me | null = null;
    if (!needed) {
      try {
        me = await get<Me>('/me');
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 401) throw err;
      }
    }
    setState({ setupNeeded: needed, me });
  }, []);
  useEffect(() => {
    void reload();
  }, [reload]);
  // A call answered 401: the session ended (another tab signed out, it expired). Asking /me again
  // turns the page into the sign-in page; calls failing together ask once.
  useEffect(() => {
    let asking = false;
    onSessionEnded(() => {
      if (asking) return;
      asking = true;
      void reload()
        .catch(() => setState((s) => (s ? { ...s, me: null } : s)))
        .finally(() => {
          asking = false;
        });
    });
  }, [reload]);

  if (!state) return <p aria-busy="true">Loading…</p>;
  if (state.setupNeeded) return <SetupPage onDone={reload} />;
  if (path === '/invite') return <InvitePage onDone={reload} />;
  if (!state.me) return <LoginPage onDone={reload} />;
  const session: Session = { me: state.me, reload };
  return (
    <SessionContext.Provider value={session}>
      <Shell session={session} path={path} />
    </SessionContext.Provider>
  );
}

const root = document.getElementById('root');
if (root)
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
