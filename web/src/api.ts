import type { z } from 'zod';
import type { memberSchema, pendingInvitationSchema } from '../../src/modules/members/member-schemas';
import type { roleSchema } from '../../src/modules/roles/role-schemas';
import type { secretSchema } from '../../src/modules/secrets/secret-schemas';
import type { variableSchema } from '../../src/modules/variables/variable-schemas';
import type { runSchema, usageSchema, workflowSummarySchema } from '../../src/modules/workflows/workflow-schemas';

/**
 * The UI's API client: same-origin fetch with the session cookie, the CSRF
 * header echoed from the hush_csrf cookie, and problem+json errors turned
 * into ApiError with the server's code, detail and field errors.
 */

export interface FieldError {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
  }

  /**
   * The message for one field, if the server named it: `body.name` is the field `name`, and
   * `body.allowedHosts.2` is the third entry of `allowedHosts` ("Entry 3: …").
   */
  fieldMessage(field: string): string | undefined {
    const messages = this.errors.flatMap((e) => {
      const [name, ...rest] = fieldPath(e.path);
      if (name !== field) return [];
      const index = rest.length > 0 && /^\d+$/.test(rest[0] ?? '') ? Number(rest[0]) : undefined;
      return [index === undefined ? e.message : `Entry ${index + 1}: ${e.message}`];
    });
    return messages.length > 0 ? [...new Set(messages)].join(' ') : undefined;
  }

  /**
   * What a form shows once, above its button: the errors of no field in `shownAtFields` (each
   * as "field: message", without the request part `body.`), or the detail when there are none.
   */
  formMessage(shownAtFields: readonly string[] = []): string | undefined {
    if (this.errors.length === 0) return this.message;
    const rest = this.errors.filter((e) => !shownAtFields.includes(fieldPath(e.path)[0] ?? ''));
    if (rest.length === 0) return undefined;
    return [...new Set(rest.map((e) => `${fieldPath(e.path).join('.') || 'request'}: ${e.message}`))].join(' ');
  }
}

/** A field error's path without the part of the request it was in: `body.allowedHosts.0` → [allowedHosts, 0]. */
function fieldPath(path: string): string[] {
  const parts = path.split('.').filter(Boolean);
  return ['body', 'query', 'params', 'headers'].includes(parts[0] ?? '') ? parts.slice(1) : parts;
}

function csrfToken(): string {
  const m = /(?:^|;\s*)hush_csrf=([^;]+)/.exec(document.cookie);
  return m?.[1] ? decodeURIComponent(m[1]) : '';
}

/**
 * The calls whose 401 is an answer about the credentials they carry (a wrong
 * password, no session yet), not a session that ended under an open page.
 */
const SESSION_CALLS = new Set(['/me', '/setup', '/auth/login', '/auth/logout', '/invitations/accept']);

let sessionEnded: () => void = () => undefined;

/**
 * What to do when any other call answers 401 (signed out in another tab,
 * expired): the app reloads its session, which brings the sign-in page.
 */
export function onSessionEnded(handler: () => void): void {
  sessionEnded = handler;
}

export async function api<T>(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  const res = await fetch(`/api/v1${path}`, {
    method,
    credentials: 'same-origin',
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(method === 'GET' ? {} : { 'x-hush-csrf': csrfToken() }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  const data: unknown = text ? JSON.parse(text) : undefined;
  if (!res.ok) {
    if (res.status === 401 && !SESSION_CALLS.has(path)) sessionEnded();
    const p = (data ?? {}) as { code?: string; detail?: string; errors?: FieldError[] };
    throw new ApiError(res.status, p.code ?? 'error', p.detail ?? `Request failed (${res.status})`, p.errors ?? []);
  }
  return data as T;
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown, headers?: Record<string, string>) =>
  api<T>('POST', path, body ?? {}, headers);
export const patch = <T>(path: string, body: unknown, headers?: Record<string, string>) =>
  api<T>('PATCH', path, body, headers);
export const put = <T>(path: string, body: unknown, headers?: Record<string, string>) =>
  api<T>('PUT', path, body, headers);
export const del = <T>(path: string, headers?: Record<string, string>) => api<T>('DELETE', path, undefined, headers);

/** Every item of a list, following `nextCursor` (for lists the UI must show whole: members, roles, usages…). */
export async function getAll<T>(path: string): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const sep = path.includes('?') ? '&' : '?';
    const page: Page<T> = await get<Page<T>>(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...page.items);
    cursor = page.nextCursor;
    if (cursor === null) break;
  }
  return items;
}

// Shapes the UI reads (the server's OpenAPI document is the reference).
export interface User {
  id: string;
  email: string;
  name: string;
}
export interface WorkspaceRef {
  id: string;
  name: string;
  role: string;
  roleName: string;
}
export interface Me {
  user: User;
  workspaces: WorkspaceRef[];
}
// Response shapes come from the server's own zod schemas — the same schemas
// that generate the OpenAPI document — so the UI and the API cannot drift.
export type Role = z.infer<typeof roleSchema>;
export type Secret = z.infer<typeof secretSchema>;
export type Variable = z.infer<typeof variableSchema>;
export type Member = z.infer<typeof memberSchema>;
export type PendingInvitation = z.infer<typeof pendingInvitationSchema>;
export type Usage = z.infer<typeof usageSchema>;
export type Run = z.infer<typeof runSchema>;
/** A workflow in the list: no blocks (GET …/workflows/{id} has them). */
export type WorkflowSummary = z.infer<typeof workflowSummarySchema>;
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
