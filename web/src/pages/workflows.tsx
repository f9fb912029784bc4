/**
 * Workflows: the list (summaries: names and block counts, never blocks), and
 * the editor with its block list, the API block form (every field that may
 * hold a secret has "Add secret", shown as a protected chip), the Set Values
 * form, routes, and "Send request" with a response viewer whose JSON fields
 * can become capture rules. The editor saves and deletes with If-Match: the
 * revision it loaded, so a save over someone else's is refused (412), not
 * applied over their blocks.
 */
import { useCallback, useEffect, useId, useRef, useState } from 'react';
import { ApiError, del, get, type Page, post, put, type Secret, type WorkflowSummary } from '../api';
import { Link, navigate, useWorkspace } from '../app-state';
import { headerLines } from '../components/exchange';
import { ConfirmModal, ErrorText, Field, FieldProblem, Icon, SidePanel } from '../components/ui';
import { SecretForm } from './variables';

interface Pair {
  key: string;
  value: string;
}
interface ApiBlock {
  id: string;
  type: 'api';
  name: string;
  method: string;
  url: string;
  query: Pair[];
  headers: Pair[];
  body: { mode: 'none' | 'text' | 'json'; content?: string } | { mode: 'form'; content: Pair[] };
  /** A number from the API; what the Timeout field holds as typed until it is sent (`wireBlock`). */
  timeoutMs: number | string;
  capture: { variable: string; path: string }[];
  onSuccess: string | null;
  onError: string | null;
}
interface SetBlock {
  id: string;
  type: 'set';
  name: string;
  assignments: { variable: string; value: string }[];
  onSuccess: string | null;
}
type Block = ApiBlock | SetBlock;
interface Workflow {
  id: string;
  name: string;
  startBlockId: string | null;
  blocks: Block[];
  /** Moved by every save: sent back as If-Match. */
  revision: number;
  warnings?: { path: string; message: string }[];
}
interface SendResult {
  ok: boolean;
  request: { method: string; url: string; headers: Record<string, string>; body: string | null };
  response: { status: number; headers: Record<string, string>; body: string } | null;
  captures: Record<string, unknown>;
  durationMs: number;
  error?: { code: string; message: string };
}

const SECRET_REF = /\{\{\s*secret\s*:\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/;

/** The API's bounds of a block's timeout (src/modules/workflows/block-schema.ts; SPEC: default 10 s, at most 60 s). */
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_MS = 60_000;

/** What is wrong with a block's fields, by their path in the block (`url`, `headers.0.value`), in words. */
type FieldProblems = Record<string, string>;

/**
 * What the browser can tell is wrong with a block before asking the API: a timeout that is not a
 * whole number of milliseconds in the API's range, an empty URL, a URL without templates that is not
 * an absolute http(s) one. The rest (secrets, headers, templates) is the API's to say.
 */
function checkBlock(b: Block): FieldProblems {
  const problems: FieldProblems = {};
  if (b.type !== 'api') return problems;
  const timeout = String(b.timeoutMs).trim();
  if (!/^\d+$/.test(timeout) || Number(timeout) < 1 || Number(timeout) > MAX_TIMEOUT_MS)
    problems.timeoutMs = `A whole number of milliseconds, from 1 to ${MAX_TIMEOUT_MS} (${MAX_TIMEOUT_MS / 1000} seconds).`;
  const url = b.url.trim();
  if (url === '') problems.url = 'Enter the address to call, e.g. https://api.example.com/v2/tickets.';
  else if (!url.includes('{{')) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed)
      problems.url = 'Not a complete address: it starts with http:// or https://, e.g. https://api.example.com/v2.';
    else if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      problems.url = 'Only http:// and https:// addresses can be called.';
  }
  return problems;
}

/** A block as the API takes it: the timeout as a number (checkBlock has found it whole and in range). */
function wireBlock(b: Block): Block {
  return b.type === 'api' ? { ...b, timeoutMs: Number(String(b.timeoutMs).trim()) } : b;
}

/** A server message as a sentence: "must not be empty" → "Must not be empty." */
function sentence(message: string): string {
  const text = message.trim();
  if (!text) return text;
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}${/[.!?…]$/.test(text) ? '' : '.'}`;
}

/**
 * A refused call's field errors, placed: `body.block.url` (Send request, the block `sentBlockId`) or
 * `body.blocks.2.url` (a save: the third of `savedBlocks`) is the field `url` of that block; a string
 * inside a JSON body (`body.content/data/token`) is the JSON body's, saying where. The other errors
 * (`body.name`: the workflow's name) are returned by field.
 */
function placeErrors(
  error: ApiError,
  where: { sentBlockId: string } | { savedBlocks: Block[] },
): { byBlock: Record<string, FieldProblems>; others: FieldProblems } {
  const byBlock: Record<string, FieldProblems> = {};
  const others: FieldProblems = {};
  const add = (into: FieldProblems, path: string, message: string) => {
    into[path] = into[path] ? `${into[path]} ${message}` : message;
  };
  for (const e of error.errors) {
    const parts = e.path.split('.');
    let blockId: string | undefined;
    let rest: string[] = [];
    if ('sentBlockId' in where && parts[0] === 'body' && parts[1] === 'block' && parts.length > 2) {
      blockId = where.sentBlockId;
      rest = parts.slice(2);
    } else if ('savedBlocks' in where && parts[0] === 'body' && parts[1] === 'blocks' && parts.length > 3) {
      blockId = where.savedBlocks[Number(parts[2])]?.id;
      rest = parts.slice(3);
    }
    if (!blockId) {
      add(others, parts[0] === 'body' ? parts.slice(1).join('.') : e.path, sentence(e.message));
      continue;
    }
    let path = rest.join('.');
    let message = sentence(e.message);
    const inJson = /^body\.content(\/.*)$/.exec(path);
    if (inJson?.[1]) {
      const at = inJson[1].replace(/#key$/, '');
      message = `At ${at.replaceAll('~2', '#').replaceAll('~1', '/').replaceAll('~0', '~')}${inJson[1].endsWith('#key') ? ' (the key)' : ''}: ${message}`;
      path = 'body.content';
    }
    const problems = byBlock[blockId] ?? {};
    byBlock[blockId] = problems;
    add(problems, path, message);
  }
  return { byBlock, others };
}

/** Whether the form of `b` shows the field at `path` (else its message is listed above the form). */
function shownAtField(b: Block, path: string): boolean {
  if (b.type === 'set')
    return (
      /^(name|onSuccess)$/.test(path) ||
      (/^assignments\.(\d+)\.(variable|value)$/.test(path) && Number(path.split('.')[1]) < b.assignments.length)
    );
  if (/^(name|method|url|timeoutMs|onSuccess|onError|body\.mode)$/.test(path)) return true;
  const pair = /^(query|headers|capture)\.(\d+)\.(key|value|variable|path)$/.exec(path);
  if (pair) return Number(pair[2]) < b[pair[1] as 'query' | 'headers' | 'capture'].length;
  if (path === 'body.content') return b.body.mode === 'text' || b.body.mode === 'json';
  const form = /^body\.content\.(\d+)\.(key|value)$/.exec(path);
  return form !== null && b.body.mode === 'form' && Number(form[1]) < b.body.content.length;
}

/** A block's problems less those of the fields `next` changed: what is being corrected says nothing stale. */
function keepUnchanged(problems: FieldProblems | undefined, before: Block, next: Block): FieldProblems | undefined {
  if (!problems) return problems;
  const changed = (key: string) =>
    JSON.stringify((before as unknown as Record<string, unknown>)[key]) !==
    JSON.stringify((next as unknown as Record<string, unknown>)[key]);
  const kept = Object.entries(problems).filter(([path]) => !changed(path.split(/[./]/)[0] ?? ''));
  return kept.length > 0 ? Object.fromEntries(kept) : undefined;
}

/** The messages of a form's fields that it does not show, with where they are. */
function UnplacedProblems({ block, problems }: { block: Block; problems: FieldProblems }) {
  const unplaced = Object.entries(problems).filter(([path]) => !shownAtField(block, path));
  if (unplaced.length === 0) return null;
  return (
    <div className="error" role="alert">
      <ul>
        {unplaced.map(([path, message]) => (
          <li key={path}>
            {path}: {message}
          </li>
        ))}
      </ul>
    </div>
  );
}

export function WorkflowsPage() {
  const ws = useWorkspace();
  const [items, setItems] = useState<WorkflowSummary[]>([]);
  const [name, setName] = useState('');
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    void get<Page<WorkflowSummary>>(`/workspaces/${ws.id}/workflows?limit=200`).then(
      (r) => setItems(r.items),
      setError,
    );
  }, [ws.id]);
  return (
    <section>
      <header className="page-head">
        <h1>Workflows</h1>
      </header>
      <ErrorText error={error} fields={['name']} />
      <ul className="cards">
        {items.map((w) => (
          <li key={w.id}>
            <Link to={`/w/${ws.id}/workflows/${w.id}`}>{w.name}</Link>{' '}
            <span className="muted">
              {w.blockCount} {w.blockCount === 1 ? 'block' : 'blocks'}
            </span>
          </li>
        ))}
      </ul>
      {ws.can('workflows.edit') && (
        <form
          className="inline"
          onSubmit={async (e) => {
            e.preventDefault();
            if (!name.trim()) {
              setError(
                new ApiError(422, 'validation_failed', 'The workflow was not created.', [
                  { path: 'body.name', message: 'Give the workflow a name.' },
                ]),
              );
              return;
            }
            try {
              const wf = await post<Workflow>(`/workspaces/${ws.id}/workflows`, {
                name,
                startBlockId: null,
                blocks: [],
              });
              navigate(`/w/${ws.id}/workflows/${wf.id}`);
            } catch (err) {
              setError(err);
            }
          }}
        >
          <Field
            label="New workflow name"
            value={name}
            onChange={(next) => {
              setName(next);
              setError((e: unknown) => (e instanceof ApiError && e.fieldMessage('name') ? null : e));
            }}
            error={error}
            errorField="name"
          />
          <button type="submit">Create workflow</button>
        </form>
      )}
    </section>
  );
}

/**
 * "Add secret": a button that opens a combobox of the workspace's secrets
 * (WAI-ARIA pattern: focus stays in the search box, arrows move the active
 * option, Enter picks, Escape closes, focus returns to the button), with
 * "Create new secret" and "Edit a value" for those who may manage secrets.
 * What a pick does is the caller's: replace a chip, insert at a cursor.
 */
function SecretPicker(props: {
  secrets: Secret[];
  onSecretsChanged: () => void;
  onPick: (name: string) => void;
  /** Called before the dropdown opens (e.g. to remember a cursor). */
  onOpen?: () => void;
}) {
  const ws = useWorkspace();
  const [open, setOpen] = useState(false);
  const [q, setQ] = useState('');
  const [active, setActive] = useState(0);
  const [creating, setCreating] = useState<string | null>(null);
  const [editing, setEditing] = useState<Secret | null>(null);
  const toggle = useRef<HTMLButtonElement>(null);
  const search = useRef<HTMLInputElement>(null);
  const listId = useId();
  /** The server's matches for the search (the editor loads only the first page of secrets). */
  const [found, setFound] = useState<{ q: string; items: Secret[] } | null>(null);
  useEffect(() => {
    if (!open || q === '') return;
    const timer = setTimeout(() => {
      get<Page<Secret>>(`/workspaces/${ws.id}/secrets?limit=50&q=${encodeURIComponent(q)}`).then(
        (r) => setFound({ q, items: r.items }),
        () => undefined, // the local filter stays
      );
    }, 150);
    return () => clearTimeout(timer);
  }, [open, q, ws.id]);
  const local = props.secrets.filter((s) => s.name.toLowerCase().includes(q.toLowerCase()));
  const shown = q !== '' && found?.q === q ? found.items : local;
  const current = shown[Math.min(active, shown.length - 1)];
  const optionId = (s: Secret) => `${listId}-${s.id}`;
  const close = () => {
    setOpen(false);
    toggle.current?.focus();
  };
  const choose = (name: string) => {
    props.onPick(name);
    close();
  };
  // Opening moves focus to the search box, the combobox that drives the list.
  useEffect(() => {
    if (open) search.current?.focus();
  }, [open]);
  useEffect(() => {
    document.getElementById(current ? optionId(current) : '')?.scrollIntoView?.({ block: 'nearest' });
  });
  /** The combobox keys of the WAI-ARIA pattern: arrows, Home/End, Enter picks, Escape closes. */
  const onSearchKey = (e: React.KeyboardEvent<HTMLInputElement>) => {
    const last = shown.length - 1;
    const moves: Record<string, number> = {
      ArrowDown: Math.min(active + 1, last),
      ArrowUp: Math.max(active - 1, 0),
      Home: 0,
      End: last,
    };
    if (e.key in moves && shown.length > 0) {
      e.preventDefault();
      setActive(Math.max(0, moves[e.key] as number));
    } else if (e.key === 'Enter' && current) {
      e.preventDefault();
      choose(current.name);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      close();
    }
  };
  if (!ws.can('secrets.use')) return null;
  return (
    <>
      <button
        ref={toggle}
        type="button"
        className="ghost"
        aria-haspopup="listbox"
        aria-expanded={open}
        onClick={() => {
          if (!open) props.onOpen?.();
          setActive(0);
          setOpen(!open);
        }}
      >
        Add secret
      </button>
      {open && (
        <div className="dropdown">
          <input
            ref={search}
            role="combobox"
            aria-label="Search secrets"
            aria-expanded={shown.length > 0}
            aria-controls={listId}
            aria-autocomplete="list"
            aria-activedescendant={current ? optionId(current) : undefined}
            placeholder="Search secrets"
            value={q}
            onChange={(e) => {
              setQ(e.target.value);
              setActive(0);
            }}
            onKeyDown={onSearchKey}
          />
          {/* Options hold only their name: a listbox may own nothing but options, and an option no buttons.
              Focus stays in the search box; the active option is announced through aria-activedescendant. */}
          <div role="listbox" id={listId} aria-label="Secrets" className="options">
            {shown.map((s) => (
              <div
                key={s.id}
                id={optionId(s)}
                role="option"
                aria-selected={s === current}
                className={s === current ? 'active' : undefined}
                // Out of the tab order (the combobox keeps focus), yet an assistive technology that moves
                // focus onto an option can still pick it.
                tabIndex={-1}
                onClick={() => choose(s.name)}
                onKeyDown={(e) => (e.key === 'Enter' || e.key === ' ') && choose(s.name)}
              >
                <span>
                  <Icon name="lock" /> {s.name}
                </span>
              </div>
            ))}
          </div>
          {shown.length === 0 && <p className="muted">No secret matches.</p>}
          {ws.can('secrets.manage') && shown.length > 0 && (
            <fieldset className="edit-values">
              <legend>Edit a value</legend>
              {shown.map((s) => (
                <button
                  key={s.id}
                  type="button"
                  className="ghost small"
                  aria-label={`Edit value of ${s.name}`}
                  onClick={() => setEditing(s)}
                >
                  {s.name}
                </button>
              ))}
            </fieldset>
          )}
          {ws.can('secrets.manage') && (
            <button type="button" className="ghost" onClick={() => setCreating(q)}>
              Create new secret{q ? ` "${q}"` : ''}
            </button>
          )}
        </div>
      )}
      <SidePanel
        open={creating !== null || editing !== null}
        onOpenChange={(o) => {
          if (!o) {
            setCreating(null);
            setEditing(null);
          }
        }}
        title={editing ? `Edit secret ${editing.name}` : 'New secret'}
      >
        {(creating !== null || editing) && (
          <SecretForm
            secret={editing ?? undefined}
            initialName={creating ?? ''}
            onSaved={(s) => {
              // A new secret goes into the field; a new value for an existing one leaves the field as it is.
              const created = creating !== null;
              setCreating(null);
              setEditing(null);
              props.onSecretsChanged();
              if (created) choose(s.name);
              else close();
            }}
          />
        )}
      </SidePanel>
    </>
  );
}

/** A field that may hold one secret: text before, a protected chip, text after. */
function SecretField(props: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  secrets: Secret[];
  onSecretsChanged: () => void;
  readOnly?: boolean;
  problem?: string;
}) {
  const errorId = useId();
  const match = SECRET_REF.exec(props.value);
  const before = match ? props.value.slice(0, match.index) : props.value;
  const after = match ? props.value.slice(match.index + match[0].length) : '';
  return (
    <div className="field secret-field">
      <span className="label">{props.label}</span>
      <div className="secret-field-row">
        <input
          aria-label={props.label}
          aria-describedby={props.problem ? errorId : undefined}
          aria-invalid={props.problem ? true : undefined}
          value={before}
          readOnly={props.readOnly}
          onChange={(e) => props.onChange(`${e.target.value}${match ? match[0] : ''}${after}`)}
        />
        {match && (
          <span className="chip">
            <span className="sr-only">Secret </span>
            <Icon name="lock" /> {match[1]}
            {!props.readOnly && (
              <button
                type="button"
                className="chip-x"
                aria-label={`Remove secret ${match[1]}`}
                onClick={() => props.onChange(`${before}${after}`)}
              >
                ×
              </button>
            )}
          </span>
        )}
        {match && (
          <input
            aria-label={`${props.label} (after the secret)`}
            value={after}
            readOnly={props.readOnly}
            onChange={(e) => props.onChange(`${before}${match[0]}${e.target.value}`)}
          />
        )}
        {!props.readOnly && (
          <SecretPicker
            secrets={props.secrets}
            onSecretsChanged={props.onSecretsChanged}
            onPick={(name) => props.onChange(`${before}{{secret:${name}}}${after}`)}
          />
        )}
      </div>
      {props.problem && <FieldProblem id={errorId} message={props.problem} />}
    </div>
  );
}

/** Whether `offset` in `json` falls inside a string literal (an odd number of unescaped quotes before it). */
function insideJsonString(json: string, offset: number): boolean {
  let inside = false;
  for (let i = 0; i < offset; i++) {
    const c = json[i];
    if (c === '\\' && inside) i++;
    else if (c === '"') inside = !inside;
  }
  return inside;
}

/**
 * The JSON body, with "Add secret" inserting `{{secret:NAME}}` where the
 * cursor was — inside a string as it is, elsewhere as a string of its own —
 * since a template lives in a JSON string value and each value holds at most
 * one secret (the server says so when saving).
 */
function JsonBodyField(props: {
  value: string;
  onChange: (v: string) => void;
  secrets: Secret[];
  onSecretsChanged: () => void;
  readOnly: boolean;
  problem?: string;
}) {
  const id = useId();
  const area = useRef<HTMLTextAreaElement>(null);
  const cursor = useRef<{ start: number; end: number } | null>(null);
  return (
    <div className="field secret-field">
      <label htmlFor={id}>JSON body</label>
      <textarea
        id={id}
        ref={area}
        rows={4}
        value={props.value}
        readOnly={props.readOnly}
        aria-describedby={props.problem ? `${id}-hint ${id}-error` : `${id}-hint`}
        aria-invalid={props.problem ? true : undefined}
        onChange={(e) => props.onChange(e.target.value)}
      />
      <small id={`${id}-hint`} className="hint">
        Templates go inside strings: {'{"token":"{{secret:NAME}}","n":"{{count}}"}'}
      </small>
      {props.problem && <FieldProblem id={`${id}-error`} message={props.problem} />}
      {!props.readOnly && (
        <div className="secret-field-row">
          <SecretPicker
            secrets={props.secrets}
            onSecretsChanged={props.onSecretsChanged}
            onOpen={() => {
              const a = area.current;
              cursor.current = a ? { start: a.selectionStart, end: a.selectionEnd } : null;
            }}
            onPick={(name) => {
              const text = props.value;
              const at = cursor.current ?? { start: text.length, end: text.length };
              const reference = `{{secret:${name}}}`;
              const inserted = insideJsonString(text, at.start) ? reference : `"${reference}"`;
              props.onChange(`${text.slice(0, at.start)}${inserted}${text.slice(at.end)}`);
              cursor.current = null;
            }}
          />
        </div>
      )}
    </div>
  );
}

function PairsEditor(props: {
  label: string;
  /** Where the pairs are in the block (`headers`, `body.content`): the path of their problems. */
  path: string;
  problems?: FieldProblems;
  pairs: Pair[];
  onChange: (p: Pair[]) => void;
  secrets: Secret[];
  onSecretsChanged: () => void;
  readOnly: boolean;
}) {
  return (
    <fieldset className="pairs">
      <legend>{props.label}</legend>
      {props.pairs.map((p, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are positional
        <div className="pair" key={i}>
          <Field
            label={`${props.label} ${i + 1} name`}
            value={p.key}
            problem={props.problems?.[`${props.path}.${i}.key`]}
            readOnly={props.readOnly}
            onChange={(key) => props.onChange(props.pairs.map((x, j) => (j === i ? { ...x, key } : x)))}
          />
          <SecretField
            label={`${props.label} ${i + 1} value`}
            value={p.value}
            problem={props.problems?.[`${props.path}.${i}.value`]}
            readOnly={props.readOnly}
            secrets={props.secrets}
            onSecretsChanged={props.onSecretsChanged}
            onChange={(value) => props.onChange(props.pairs.map((x, j) => (j === i ? { ...x, value } : x)))}
          />
          {!props.readOnly && (
            <button
              type="button"
              className="ghost"
              aria-label={`Remove ${props.label.toLowerCase()} ${i + 1}`}
              onClick={() => props.onChange(props.pairs.filter((_, j) => j !== i))}
            >
              Remove
            </button>
          )}
        </div>
      ))}
      {!props.readOnly && (
        <button
          type="button"
          className="ghost"
          onClick={() => props.onChange([...props.pairs, { key: '', value: '' }])}
        >
          Add {props.label.toLowerCase().replace(/s$/, '')}
        </button>
      )}
    </fieldset>
  );
}

/**
 * A JSON number as the service wrote it: JSON.parse would show 2^53 + 1 as
 * …992 and 1.10 as 1.1. Browsers that give a reviver the source text (all
 * current ones) keep it; others show the parsed number.
 */
class JsonNumber {
  constructor(readonly source: string) {}
}

function parseKeepingNumbers(text: string): unknown {
  const reviver = (_key: string, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && typeof context?.source === 'string' ? new JsonNumber(context.source) : value;
  return JSON.parse(text, reviver as (key: string, value: unknown) => unknown);
}

/** The capture path of `key` under `path`, in the syntax the API reads (quotes and backslashes escaped). */
function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (/^[A-Za-z_$][\w$-]*$/.test(key)) return `${path}.${key}`;
  return `${path}['${key.replace(/[\\']/g, (c) => `\\${c}`)}']`;
}

const leafText = (value: unknown) => (value instanceof JsonNumber ? value.source : JSON.stringify(value));
const isBranch = (value: unknown): value is object =>
  value !== null && typeof value === 'object' && !(value instanceof JsonNumber);

function JsonTree(props: { value: unknown; path: string; onPick: (path: string) => void }) {
  const { value, path } = props;
  if (isBranch(value)) {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
    return (
      <ul className="json-tree">
        {entries.map(([k, v]) => {
          const child = childPath(path, k);
          return (
            <li key={String(k)}>
              <button type="button" className="json-key" title={`Capture ${child}`} onClick={() => props.onPick(child)}>
                {String(k)}
              </button>
              {isBranch(v) ? <JsonTree value={v} path={child} onPick={props.onPick} /> : <code>: {leafText(v)}</code>}
            </li>
          );
        })}
      </ul>
    );
  }
  return <code>{leafText(value)}</code>;
}

function ResponseViewer({ result, onCapture }: { result: SendResult; onCapture: (path: string) => void }) {
  let json: unknown;
  try {
    json = result.response ? parseKeepingNumbers(result.response.body) : undefined;
  } catch {
    json = undefined;
  }
  return (
    <section className="response" aria-label="Response">
      <h2>
        {result.response ? `Status ${result.response.status}` : 'No response'} · {result.durationMs} ms{' '}
        {result.ok ? '✓' : '✗'}
      </h2>
      {result.error && (
        <p className="error" role="alert">
          {result.error.code}: {result.error.message}
        </p>
      )}
      <details>
        <summary>Request sent</summary>
        <pre>{`${result.request.method} ${result.request.url}\n${headerLines(result.request.headers)}\n\n${result.request.body ?? ''}`}</pre>
      </details>
      {result.response && (
        <>
          <details>
            <summary>Headers</summary>
            <pre>{headerLines(result.response.headers)}</pre>
          </details>
          <h3>Body</h3>
          {json !== undefined ? (
            <>
              <p className="hint">Click a field to capture it into a variable.</p>
              <JsonTree value={json} path="$" onPick={onCapture} />
            </>
          ) : (
            <pre className="body">{result.response.body}</pre>
          )}
        </>
      )}
      {Object.keys(result.captures).length > 0 && <pre>Captured: {JSON.stringify(result.captures, null, 2)}</pre>}
    </section>
  );
}

/** Where a block goes next: another block of the workflow, or the end. */
function RouteSelect(props: {
  label: string;
  block: Block;
  blocks: Block[];
  value: string | null;
  readOnly: boolean;
  onChange: (next: string | null) => void;
  problem?: string;
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <select
        id={id}
        aria-describedby={props.problem ? `${id}-error` : undefined}
        aria-invalid={props.problem ? true : undefined}
        value={props.value ?? ''}
        disabled={props.readOnly}
        onChange={(e) => props.onChange(e.target.value || null)}
      >
        <option value="">(end)</option>
        {props.blocks
          .filter((x) => x.id !== props.block.id)
          .map((x) => (
            <option key={x.id} value={x.id}>
              {x.name || x.id}
            </option>
          ))}
      </select>
      {props.problem && <FieldProblem id={`${id}-error`} message={props.problem} />}
    </div>
  );
}

function ApiBlockForm(props: {
  block: ApiBlock;
  blocks: Block[];
  onChange: (b: ApiBlock) => void;
  secrets: Secret[];
  onSecretsChanged: () => void;
  readOnly: boolean;
  /** What is wrong with the block's fields (a refused save or Send request), shown at them. */
  problems?: FieldProblems;
  onProblems: (problems: FieldProblems | undefined) => void;
}) {
  const ws = useWorkspace();
  const b = props.block;
  const [result, setResult] = useState<SendResult | null>(null);
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  /** The last Send request was refused for the marked fields. */
  const [notSent, setNotSent] = useState(false);
  const set = (patch: Partial<ApiBlock>) => props.onChange({ ...b, ...patch });
  const problems = props.problems ?? {};
  const send = async () => {
    setResult(null);
    setError(null);
    const found = checkBlock(b);
    if (Object.keys(found).length > 0) {
      props.onProblems(found);
      setNotSent(true);
      return;
    }
    props.onProblems(undefined);
    setNotSent(false);
    setSending(true);
    try {
      setResult(await post<SendResult>(`/workspaces/${ws.id}/blocks/send`, { block: wireBlock(b) }));
    } catch (err) {
      if (err instanceof ApiError && err.errors.length > 0) {
        const placed = placeErrors(err, { sentBlockId: b.id });
        props.onProblems(placed.byBlock[b.id]);
        setNotSent(placed.byBlock[b.id] !== undefined);
        const others = Object.entries(placed.others).map(([path, message]) => `${path}: ${message}`);
        if (others.length > 0) setError(new Error(others.join(' ')));
      } else setError(err);
    } finally {
      setSending(false);
    }
  };

  return (
    <div className="stack">
      <UnplacedProblems block={b} problems={problems} />
      <Field
        label="Block name"
        value={b.name}
        readOnly={props.readOnly}
        onChange={(name) => set({ name })}
        problem={problems.name}
      />
      <div className="row">
        <div className="field">
          <label htmlFor={`${b.id}-method`}>Method</label>
          <select
            id={`${b.id}-method`}
            aria-describedby={problems.method ? `${b.id}-method-error` : undefined}
            aria-invalid={problems.method ? true : undefined}
            value={b.method}
            disabled={props.readOnly}
            onChange={(e) => set({ method: e.target.value })}
          >
            {['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'].map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
          {problems.method && <FieldProblem id={`${b.id}-method-error`} message={problems.method} />}
        </div>
        <Field
          label="URL"
          value={b.url}
          readOnly={props.readOnly}
          onChange={(url) => set({ url })}
          placeholder="https://api.example.com/v2/tickets"
          problem={problems.url}
        />
      </div>
      <PairsEditor
        label="Query"
        path="query"
        problems={problems}
        pairs={b.query}
        readOnly={props.readOnly}
        onChange={(query) => set({ query })}
        secrets={props.secrets}
        onSecretsChanged={props.onSecretsChanged}
      />
      <PairsEditor
        label="Headers"
        path="headers"
        problems={problems}
        pairs={b.headers}
        readOnly={props.readOnly}
        onChange={(headers) => set({ headers })}
        secrets={props.secrets}
        onSecretsChanged={props.onSecretsChanged}
      />
      <div className="field">
        <label htmlFor={`${b.id}-body-mode`}>Body</label>
        <select
          id={`${b.id}-body-mode`}
          aria-describedby={problems['body.mode'] ? `${b.id}-body-mode-error` : undefined}
          aria-invalid={problems['body.mode'] ? true : undefined}
          value={b.body.mode}
          disabled={props.readOnly}
          onChange={(e) => {
            const mode = e.target.value as ApiBlock['body']['mode'];
            set({ body: mode === 'form' ? { mode, content: [] } : mode === 'none' ? { mode } : { mode, content: '' } });
          }}
        >
          <option value="none">none</option>
          <option value="text">text</option>
          <option value="json">json</option>
          <option value="form">form</option>
        </select>
        {problems['body.mode'] && <FieldProblem id={`${b.id}-body-mode-error`} message={problems['body.mode']} />}
      </div>
      {b.body.mode === 'form' ? (
        <PairsEditor
          label="Form fields"
          path="body.content"
          problems={problems}
          pairs={b.body.content}
          readOnly={props.readOnly}
          onChange={(content) => set({ body: { mode: 'form', content } })}
          secrets={props.secrets}
          onSecretsChanged={props.onSecretsChanged}
        />
      ) : b.body.mode === 'text' ? (
        <SecretField
          label="Body text"
          value={b.body.content ?? ''}
          readOnly={props.readOnly}
          problem={problems['body.content']}
          onChange={(content) => set({ body: { mode: 'text', content } })}
          secrets={props.secrets}
          onSecretsChanged={props.onSecretsChanged}
        />
      ) : b.body.mode === 'json' ? (
        <JsonBodyField
          value={b.body.content ?? ''}
          readOnly={props.readOnly}
          problem={problems['body.content']}
          onChange={(content) => set({ body: { mode: 'json', content } })}
          secrets={props.secrets}
          onSecretsChanged={props.onSecretsChanged}
        />
      ) : null}
      <Field
        label="Timeout (ms)"
        value={String(b.timeoutMs)}
        readOnly={props.readOnly}
        // Kept as typed: checkBlock says what is wrong with it before it is sent or saved.
        onChange={(timeoutMs) => set({ timeoutMs })}
        hint={`Whole milliseconds, 1 to ${MAX_TIMEOUT_MS} (default ${DEFAULT_TIMEOUT_MS}).`}
        problem={problems.timeoutMs}
      />
      <fieldset className="pairs">
        <legend>Capture</legend>
        {b.capture.map((c, i) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: rows are positional
          <div className="pair" key={i}>
            <Field
              label={`Capture ${i + 1} variable`}
              value={c.variable}
              problem={problems[`capture.${i}.variable`]}
              readOnly={props.readOnly}
              onChange={(variable) => set({ capture: b.capture.map((x, j) => (j === i ? { ...x, variable } : x)) })}
            />
            <Field
              label={`Capture ${i + 1} path`}
              value={c.path}
              problem={problems[`capture.${i}.path`]}
              readOnly={props.readOnly}
              onChange={(path) => set({ capture: b.capture.map((x, j) => (j === i ? { ...x, path } : x)) })}
            />
            {!props.readOnly && (
              <button
                type="button"
                className="ghost"
                aria-label={`Remove capture ${i + 1}`}
                onClick={() => set({ capture: b.capture.filter((_, j) => j !== i) })}
              >
                Remove
              </button>
            )}
          </div>
        ))}
        {!props.readOnly && (
          <button
            type="button"
            className="ghost"
            onClick={() => set({ capture: [...b.capture, { variable: '', path: '$.' }] })}
          >
            Add capture rule
          </button>
        )}
      </fieldset>
      <div className="row">
        <RouteSelect
          label="On success"
          block={b}
          blocks={props.blocks}
          readOnly={props.readOnly}
          value={b.onSuccess}
          onChange={(onSuccess) => set({ onSuccess })}
          problem={problems.onSuccess}
        />
        <RouteSelect
          label="On error"
          block={b}
          blocks={props.blocks}
          readOnly={props.readOnly}
          value={b.onError}
          onChange={(onError) => set({ onError })}
          problem={problems.onError}
        />
      </div>
      {ws.can('workflows.edit') && (
        <button type="button" disabled={sending} onClick={() => void send()}>
          {sending ? 'Sending…' : 'Send request'}
        </button>
      )}
      {notSent && Object.keys(problems).length > 0 && (
        <p className="error">Not sent: correct the marked fields above.</p>
      )}
      <ErrorText error={error} />
      {result && (
        <ResponseViewer
          result={result}
          onCapture={(path) => set({ capture: [...b.capture, { variable: `captured_${b.capture.length + 1}`, path }] })}
        />
      )}
    </div>
  );
}

function SetBlockForm(props: {
  block: SetBlock;
  blocks: Block[];
  onChange: (b: SetBlock) => void;
  readOnly: boolean;
  problems?: FieldProblems;
}) {
  const b = props.block;
  const problems = props.problems ?? {};
  return (
    <div className="stack">
      <UnplacedProblems block={b} problems={problems} />
      <Field
        label="Block name"
        value={b.name}
        readOnly={props.readOnly}
        onChange={(name) => props.onChange({ ...b, name })}
        problem={problems.name}
      />
      {b.assignments.map((a, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are positional
        <div className="pair" key={i}>
          <Field
            label={`Assignment ${i + 1} variable`}
            value={a.variable}
            problem={problems[`assignments.${i}.variable`]}
            readOnly={props.readOnly}
            onChange={(variable) =>
              props.onChange({ ...b, assignments: b.assignments.map((x, j) => (j === i ? { ...x, variable } : x)) })
            }
          />
          <Field
            label={`Assignment ${i + 1} value`}
            value={a.value}
            problem={problems[`assignments.${i}.value`]}
            readOnly={props.readOnly}
            onChange={(value) =>
              props.onChange({ ...b, assignments: b.assignments.map((x, j) => (j === i ? { ...x, value } : x)) })
            }
          />
        </div>
      ))}
      {!props.readOnly && (
        <button
          type="button"
          className="ghost"
          onClick={() => props.onChange({ ...b, assignments: [...b.assignments, { variable: '', value: '' }] })}
        >
          Add assignment
        </button>
      )}
      <RouteSelect
        label="On success"
        block={b}
        blocks={props.blocks}
        readOnly={props.readOnly}
        value={b.onSuccess}
        onChange={(onSuccess) => props.onChange({ ...b, onSuccess })}
        problem={problems.onSuccess}
      />
    </div>
  );
}

export function WorkflowEditor({ workflowId }: { workflowId: string }) {
  const ws = useWorkspace();
  const [wf, setWf] = useState<Workflow | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [secrets, setSecrets] = useState<Secret[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  /** What is wrong with each block's fields (by block id), from a refused save or Send request. */
  const [problems, setProblems] = useState<Record<string, FieldProblems | undefined>>({});
  /** What is wrong with the workflow's own fields (`name`) or the request as a whole, from a refused save. */
  const [workflowProblems, setWorkflowProblems] = useState<FieldProblems>({});
  /** The last save was refused for the marked fields. */
  const [notSaved, setNotSaved] = useState(false);
  const readOnly = !ws.can('workflows.edit');
  const loadSecrets = useCallback(async () => {
    if (ws.can('secrets.read')) setSecrets((await get<Page<Secret>>(`/workspaces/${ws.id}/secrets?limit=200`)).items);
  }, [ws]);
  const loadWorkflow = useCallback(async () => {
    const w = await get<Workflow>(`/workspaces/${ws.id}/workflows/${workflowId}`);
    setWf(w);
    // A reload keeps the block on screen if it is still there.
    setSelected((s) => (s && w.blocks.some((b) => b.id === s) ? s : (w.startBlockId ?? w.blocks[0]?.id ?? null)));
  }, [ws.id, workflowId]);
  useEffect(() => {
    void loadWorkflow().catch(setError);
    void loadSecrets().catch(setError);
  }, [loadWorkflow, loadSecrets]);
  if (!wf) return <ErrorText error={error} />;
  /** The revision this copy was loaded or last saved at: a save over anyone else's is refused (412). */
  const ifMatch = { 'if-match': `"${wf.revision}"` };
  const conflict = error instanceof ApiError && error.status === 412;
  const block = wf.blocks.find((b) => b.id === selected);
  const replace = (next: Block) => {
    const before = wf.blocks.find((b) => b.id === next.id);
    setWf({ ...wf, blocks: wf.blocks.map((b) => (b.id === next.id ? next : b)) });
    if (before) setProblems((p) => ({ ...p, [next.id]: keepUnchanged(p[next.id], before, next) }));
  };
  const marked = wf.blocks.filter((b) => problems[b.id] && Object.keys(problems[b.id] ?? {}).length > 0);
  const unplacedWorkflowProblems = Object.entries(workflowProblems).filter(([path]) => path !== 'name');
  /** Shows a refused save's problems: at the fields, the first marked block opened if the one open has none. */
  const refuseSave = (byBlock: Record<string, FieldProblems>, others: FieldProblems) => {
    setProblems(byBlock);
    setWorkflowProblems(others);
    setNotSaved(true);
    setError(null);
    setSaved(null);
    const first = wf.blocks.find((b) => byBlock[b.id]);
    if (first && !(selected && byBlock[selected])) setSelected(first.id);
  };
  const save = async () => {
    const found: Record<string, FieldProblems> = {};
    for (const b of wf.blocks) {
      const p = checkBlock(b);
      if (Object.keys(p).length > 0) found[b.id] = p;
    }
    if (Object.keys(found).length > 0) return refuseSave(found, {});
    try {
      const next = await put<Workflow>(
        `/workspaces/${ws.id}/workflows/${wf.id}`,
        { name: wf.name, startBlockId: wf.startBlockId, blocks: wf.blocks.map(wireBlock) },
        ifMatch,
      );
      setWf(next);
      setError(null);
      setProblems({});
      setWorkflowProblems({});
      setNotSaved(false);
      setSaved(
        next.warnings?.length ? `Saved with warnings: ${next.warnings.map((w) => w.message).join('; ')}` : 'Saved.',
      );
    } catch (err) {
      if (err instanceof ApiError && err.status === 422 && err.errors.length > 0) {
        const placed = placeErrors(err, { savedBlocks: wf.blocks });
        return refuseSave(placed.byBlock, placed.others);
      }
      setSaved(null);
      setNotSaved(false);
      setError(err);
    }
  };
  const addBlock = (type: 'api' | 'set') => {
    const id = `${type}_${wf.blocks.length + 1}_${Math.random().toString(36).slice(2, 6)}`;
    const nb: Block =
      type === 'api'
        ? {
            id,
            type,
            name: 'API call',
            method: 'GET',
            url: 'https://',
            query: [],
            headers: [],
            body: { mode: 'none' },
            timeoutMs: 10_000,
            capture: [],
            onSuccess: null,
            onError: null,
          }
        : { id, type, name: 'Set values', assignments: [], onSuccess: null };
    setWf({ ...wf, blocks: [...wf.blocks, nb], startBlockId: wf.startBlockId ?? id });
    setSelected(id);
  };
  /** Removes a block and every route to it; the start moves to the first block left. */
  const removeBlock = (id: string) => {
    const unroute = (to: string | null) => (to === id ? null : to);
    const blocks = wf.blocks
      .filter((b) => b.id !== id)
      .map((b) =>
        b.type === 'api'
          ? { ...b, onSuccess: unroute(b.onSuccess), onError: unroute(b.onError) }
          : { ...b, onSuccess: unroute(b.onSuccess) },
      );
    setWf({ ...wf, blocks, startBlockId: wf.startBlockId === id ? (blocks[0]?.id ?? null) : wf.startBlockId });
    setSelected(blocks[0]?.id ?? null);
  };
  return (
    <section>
      <header className="page-head">
        <h1>{wf.name}</h1>
        {!readOnly && (
          <button type="button" onClick={() => void save()}>
            Save workflow
          </button>
        )}
      </header>
      {!readOnly && (
        <div className="toolbar">
          <Field
            label="Workflow name"
            value={wf.name}
            onChange={(name) => {
              setWf({ ...wf, name });
              setWorkflowProblems(({ name: _, ...rest }) => rest);
            }}
            problem={workflowProblems.name}
          />
          <button type="button" className="ghost danger" onClick={() => setConfirmDelete(true)}>
            Delete workflow
          </button>
        </div>
      )}
      <ConfirmModal
        open={confirmDelete}
        title="Delete workflow"
        confirmLabel="Delete"
        onCancel={() => setConfirmDelete(false)}
        onConfirm={async () => {
          try {
            await del(`/workspaces/${ws.id}/workflows/${wf.id}`, ifMatch);
            navigate(`/w/${ws.id}/workflows`);
          } catch (err) {
            setConfirmDelete(false);
            setError(err);
          }
        }}
      >
        <p>
          Delete the workflow <strong>{wf.name}</strong>? Its blocks go with it; its runs stay in the run history.
        </p>
      </ConfirmModal>
      {saved && <p role="status">{saved}</p>}
      {conflict ? (
        <div className="error" role="alert">
          <p>
            <strong>Someone else saved this workflow since you opened it.</strong> Your change was not saved. Reload the
            workflow to see their version, then make your change again.
          </p>
          <button
            type="button"
            onClick={async () => {
              try {
                await loadWorkflow();
                setError(null);
                setSaved(null);
                setProblems({});
                setWorkflowProblems({});
                setNotSaved(false);
              } catch (err) {
                setError(err);
              }
            }}
          >
            Reload workflow
          </button>
        </div>
      ) : notSaved && (marked.length > 0 || Object.keys(workflowProblems).length > 0) ? (
        <div className="error" role="alert">
          <p>
            The workflow was not saved.
            {marked.length > 0 &&
              ` Correct the marked fields of ${marked.length === 1 ? 'the block' : 'the blocks'} ${marked
                .map((b) => `“${b.name || b.id}”`)
                .join(', ')}.`}
          </p>
          {unplacedWorkflowProblems.length > 0 && (
            <ul>
              {unplacedWorkflowProblems.map(([path, message]) => (
                <li key={path}>
                  {path}: {message}
                </li>
              ))}
            </ul>
          )}
        </div>
      ) : null}
      {/* Any other refusal (a delete, a reload): also while a refused save's notice is up. */}
      {!conflict && error instanceof ApiError && <ErrorText error={error} />}
      <div className="editor">
        <aside aria-label="Blocks">
          <ol className="blocks">
            {wf.blocks.map((b) => (
              <li key={b.id}>
                <button
                  type="button"
                  className={b.id === selected ? 'block active' : 'block'}
                  aria-current={b.id === selected}
                  onClick={() => setSelected(b.id)}
                >
                  {b.type === 'api' ? '⇄' : '='} {b.name || b.id}
                  {wf.startBlockId === b.id && <span className="badge">start</span>}
                  {marked.includes(b) && <span className="badge failed">to correct</span>}
                </button>
              </li>
            ))}
          </ol>
          {!readOnly && (
            <div className="stack">
              <button type="button" className="ghost" onClick={() => addBlock('api')}>
                Add API block
              </button>
              <button type="button" className="ghost" onClick={() => addBlock('set')}>
                Add Set Values block
              </button>
            </div>
          )}
        </aside>
        <div className="block-form">
          {block && !readOnly && (
            <div className="toolbar">
              {wf.startBlockId === block.id ? (
                <span className="muted">The workflow starts here.</span>
              ) : (
                <button type="button" className="ghost" onClick={() => setWf({ ...wf, startBlockId: block.id })}>
                  Start here
                </button>
              )}
              <button type="button" className="ghost danger" onClick={() => removeBlock(block.id)}>
                Remove block
              </button>
            </div>
          )}
          {block?.type === 'api' && (
            <ApiBlockForm
              // A block's own form: a Send request result never carries over to another block.
              key={block.id}
              block={block}
              blocks={wf.blocks}
              onChange={replace}
              secrets={secrets}
              onSecretsChanged={() => void loadSecrets()}
              readOnly={readOnly}
              problems={problems[block.id]}
              onProblems={(p) => setProblems((old) => ({ ...old, [block.id]: p }))}
            />
          )}
          {block?.type === 'set' && (
            <SetBlockForm
              key={block.id}
              block={block}
              blocks={wf.blocks}
              onChange={replace}
              readOnly={readOnly}
              problems={problems[block.id]}
            />
          )}
          {!block && <p className="muted">Add a block to start.</p>}
        </div>
      </div>
    </section>
  );
}
