/** Small accessible building blocks: fields, errors, icons, side panel and modal. */
import { type ReactNode, useEffect, useId, useRef } from 'react';
import { ApiError } from '../api';

/**
 * An error, once: at its field (`field`), or for the whole form — where the errors of the
 * fields listed in `fields` are left out, as those fields show them.
 */
export function ErrorText({ error, field, fields }: { error: unknown; field?: string; fields?: readonly string[] }) {
  if (!error) return null;
  let message: string | undefined;
  if (error instanceof ApiError) message = field ? error.fieldMessage(field) : error.formMessage(fields);
  else if (!field) message = error instanceof Error ? error.message : String(error);
  if (!message) return null;
  return (
    <p className="error" role="alert">
      {message}
    </p>
  );
}

/** The message of one field, under it: give the field `aria-describedby={id}` and `aria-invalid`. */
export function FieldProblem({ id, message }: { id: string; message: string }) {
  return (
    <p className="error" role="alert" id={id}>
      {message}
    </p>
  );
}

/** Whether `text` is more than `limit` bytes of UTF-8 (encoding it only when its length cannot tell). */
export function overUtf8Limit(text: string, limit: number): boolean {
  if (text.length > limit) return true; // every UTF-16 unit is at least one byte
  if (text.length * 3 <= limit) return false; // and at most three
  return new TextEncoder().encode(text).length > limit;
}

export function Field(props: {
  label: string;
  value: string;
  onChange?: (v: string) => void;
  type?: string;
  readOnly?: boolean;
  multiline?: boolean;
  error?: unknown;
  errorField?: string;
  /** A message for this field found by the caller (a check in the browser, a server error it placed here). */
  problem?: string;
  hint?: string;
  autoComplete?: string;
  placeholder?: string;
  /**
   * A secret value: several lines kept as typed or pasted (a PEM key), shown
   * as dots, and not a password field — password managers offer to save and
   * sync those (the rest of the form reads like a sign-up).
   */
  secret?: boolean;
  /**
   * A secret field's limit in UTF-8 bytes: input past it is refused (the field keeps what it held,
   * `onRefused` hears the refused length) before the browser lays it out — laying out megabytes
   * of masked text freezes the tab.
   */
  maxBytes?: number;
  onRefused?: (refusedChars: number) => void;
}) {
  const id = useId();
  const problem =
    props.problem ??
    (props.errorField && props.error instanceof ApiError ? props.error.fieldMessage(props.errorField) : undefined);
  const describedBy = [props.hint && `${id}-hint`, problem && `${id}-error`].filter(Boolean).join(' ');
  // A password or secret field is left uncontrolled: React mirrors a controlled input's value into its
  // `value` attribute, which would put a typed secret or password into the serialized DOM. Its parent still
  // hears every change; to clear it, unmount it (the side panels do).
  const initialValue = useRef(props.value).current;
  const accepted = useRef(initialValue);
  const valueProps =
    props.type === 'password' || props.secret ? { defaultValue: initialValue } : { value: props.value };
  const common = {
    id,
    ...valueProps,
    readOnly: props.readOnly,
    placeholder: props.placeholder,
    'aria-describedby': describedBy || undefined,
    'aria-invalid': problem ? true : undefined,
    onChange: (e: { target: { value: string } }) => {
      const value = e.target.value;
      if (props.secret && props.maxBytes !== undefined && overUtf8Limit(value, props.maxBytes)) {
        e.target.value = accepted.current;
        props.onRefused?.(value.length);
        return;
      }
      accepted.current = value;
      props.onChange?.(value);
    },
  };
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      {props.secret ? (
        <textarea
          {...common}
          rows={3}
          className="masked-input"
          autoComplete="off"
          spellCheck={false}
          autoCapitalize="off"
          autoCorrect="off"
          data-1p-ignore=""
          data-lpignore="true"
          data-bwignore=""
          data-form-type="other"
          onPaste={(e) => {
            // Refused before it is inserted at all (the change handler catches typing and drops).
            if (props.maxBytes === undefined) return;
            const area = e.currentTarget;
            const pasted = e.clipboardData.getData('text');
            // What the field will hold: the paste replaces the selection.
            const result = area.value.slice(0, area.selectionStart) + pasted + area.value.slice(area.selectionEnd);
            if (overUtf8Limit(result, props.maxBytes)) {
              e.preventDefault();
              props.onRefused?.(result.length);
            }
          }}
        />
      ) : props.multiline ? (
        <textarea {...common} rows={3} />
      ) : (
        <input {...common} type={props.type ?? 'text'} autoComplete={props.autoComplete ?? 'off'} />
      )}
      {props.hint && (
        <small id={`${id}-hint`} className="hint">
          {props.hint}
        </small>
      )}
      {problem && <FieldProblem id={`${id}-error`} message={problem} />}
    </div>
  );
}

/**
 * A native modal <dialog>: focus is trapped and restored, Escape closes it,
 * and it needs no injected styles (the CSP allows none).
 */
function NativeDialog(props: {
  open: boolean;
  onOpenChange: (open: boolean) => void;
  title: string;
  className: string;
  children: ReactNode;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog ref={ref} className={props.className} aria-labelledby={titleId} onClose={() => props.onOpenChange(false)}>
      {props.open && (
        <>
          <header className="panel-head">
            <h2 id={titleId}>{props.title}</h2>
            <button type="button" className="ghost" aria-label="Close" onClick={() => props.onOpenChange(false)}>
              ×
            </button>
          </header>
          {props.children}
        </>
      )}
    </dialog>
  );
}

export function SidePanel(props: {
  open: boolean;
  onOpenChange: (open: boolean) => void;
  title: string;
  children: ReactNode;
}) {
  return <NativeDialog {...props} className="side-panel" />;
}

export function Modal(props: {
  open: boolean;
  onOpenChange: (open: boolean) => void;
  title: string;
  children: ReactNode;
}) {
  return <NativeDialog {...props} className="modal" />;
}

/**
 * A modal that asks before an irreversible or destructive action: the
 * question, Cancel, and a danger button named for the action. `onConfirm`
 * failing keeps nothing half-done here: the caller shows its error.
 */
export function ConfirmModal(props: {
  open: boolean;
  title: string;
  confirmLabel: string;
  onCancel: () => void;
  onConfirm: () => Promise<void>;
  children: ReactNode;
}) {
  return (
    <Modal open={props.open} onOpenChange={(o) => !o && props.onCancel()} title={props.title}>
      {props.children}
      <div className="actions">
        <button type="button" className="ghost" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="button" className="danger" onClick={() => void props.onConfirm()}>
          {props.confirmLabel}
        </button>
      </div>
    </Modal>
  );
}

/** A fixed row of dots: the same for every secret, never the value's length. */
export function Dots() {
  return (
    <span className="dots" role="img" aria-label="Hidden value">
      ••••••••••••
    </span>
  );
}

const ICONS = {
  eye: 'M1 12s4-7 11-7 11 7 11 7-4 7-11 7S1 12 1 12Zm11 4a4 4 0 1 0 0-8 4 4 0 0 0 0 8Z',
  eyeOff:
    'M3 3l18 18M10.6 5.1A11 11 0 0 1 12 5c7 0 11 7 11 7a19 19 0 0 1-3.2 4M6.6 6.6C3.3 8.6 1 12 1 12s4 7 11 7c1.8 0 3.4-.5 4.8-1.2M9.9 9.9a3 3 0 0 0 4.2 4.2',
  lock: 'M6 10V7a6 6 0 0 1 12 0v3M5 10h14v11H5z',
} as const;

/** A line icon; decorative unless given a label. */
export function Icon({ name, label }: { name: keyof typeof ICONS; label?: string }) {
  return (
    <svg
      className="icon-svg"
      viewBox="0 0 24 24"
      width="18"
      height="18"
      fill="none"
      stroke="currentColor"
      strokeWidth="2"
      strokeLinecap="round"
      strokeLinejoin="round"
      role={label ? 'img' : undefined}
      aria-label={label}
      aria-hidden={label ? undefined : true}
    >
      <path d={ICONS[name]} />
    </svg>
  );
}
