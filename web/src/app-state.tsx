/** Routing (history API) and the signed-in state shared by every page. */
import { createContext, useContext, useEffect, useState } from 'react';
import type { Me } from './api';

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const onPop = () => setPath(window.location.pathname);
    window.addEventListener('popstate', onPop);
    window.addEventListener('hush:navigate', onPop);
    return () => {
      window.removeEventListener('popstate', onPop);
      window.removeEventListener('hush:navigate', onPop);
    };
  }, []);
  return path;
}

/** Goes to `path` in the app; `replace` swaps the current history entry (e.g. a URL that held a one-time token). */
export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (window.location.pathname + window.location.hash === path) return;
  if (options.replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
  window.dispatchEvent(new Event('hush:navigate'));
}

export function Link(props: { to: string; children: React.ReactNode; current?: boolean }) {
  return (
    <a
      href={props.to}
      aria-current={props.current ? 'page' : undefined}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

export interface Session {
  me: Me;
  reload(): Promise<void>;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

export interface WorkspaceState {
  id: string;
  name: string;
  role: string;
  permissions: Set<string>;
  settings: { secretHostBinding: string };
  can(permission: string): boolean;
  reload(): Promise<void>;
}

export const WorkspaceContext = createContext<WorkspaceState | null>(null);

export function useWorkspace(): WorkspaceState {
  const w = useContext(WorkspaceContext);
  if (!w) throw new Error('no workspace');
  return w;
}
